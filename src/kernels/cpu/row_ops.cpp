// Row helpers of the softmax-attention kernels (row_ops.h). Each loop keeps eight independent
// accumulator lanes so the compiler vectorises reductions without reassociation flags; the float
// versions are target_clones, so the best ISA is picked at load time.
#include "kernels/cpu/row_ops.h"
#include "kernels/cpu/vec_math.h"

#include <limits>

namespace longseq::cpu {
namespace {

// max_c x[c]
template <typename scalar_t>
LONGSEQ_INLINE scalar_t row_max_impl(const scalar_t* x, int64_t n) {
  constexpr scalar_t kNegInf = -std::numeric_limits<scalar_t>::infinity();
  scalar_t acc[8] = {kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int u = 0; u < 8; ++u) acc[u] = acc[u] < x[c + u] ? x[c + u] : acc[u];
  scalar_t mx = kNegInf;
  for (int u = 0; u < 8; ++u) mx = mx < acc[u] ? acc[u] : mx;
  for (; c < n; ++c) mx = mx < x[c] ? x[c] : mx;  // scalar tail
  return mx;
}

// x[c] ← exp(x[c] − m); returns Σ_c x[c].
template <typename scalar_t>
LONGSEQ_INLINE scalar_t exp_row_impl(scalar_t* x, int64_t n, scalar_t m) {
  for (int64_t c = 0; c < n; ++c) x[c] = exp_fast(x[c] - m);
  scalar_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int u = 0; u < 8; ++u) acc[u] += x[c + u];
  scalar_t sum = 0;
  for (int u = 0; u < 8; ++u) sum += acc[u];
  for (; c < n; ++c) sum += x[c];  // scalar tail
  return sum;
}

// ds[c] ← p[c] · (ds[c] − d_i)
template <typename scalar_t>
LONGSEQ_INLINE void ds_row_impl(const scalar_t* p, scalar_t* ds, int64_t n, scalar_t d_i) {
  for (int64_t c = 0; c < n; ++c) ds[c] = p[c] * (ds[c] - d_i);
}

// x[c] ← x[c] · a
template <typename scalar_t>
LONGSEQ_INLINE void scale_row_impl(scalar_t* x, int64_t n, scalar_t a) {
  for (int64_t c = 0; c < n; ++c) x[c] *= a;
}

// Σ_c x[c]·y[c]
template <typename scalar_t>
LONGSEQ_INLINE scalar_t dot_row_impl(const scalar_t* x, const scalar_t* y, int64_t n) {
  scalar_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int u = 0; u < 8; ++u) acc[u] += x[c + u] * y[c + u];
  scalar_t sum = 0;
  for (int u = 0; u < 8; ++u) sum += acc[u];
  for (; c < n; ++c) sum += x[c] * y[c];  // scalar tail
  return sum;
}

}  // namespace

double row_max(const double* x, int64_t n) { return row_max_impl(x, n); }
double exp_row(double* x, int64_t n, double m) { return exp_row_impl(x, n, m); }
void ds_row(const double* p, double* ds, int64_t n, double d_i) { ds_row_impl(p, ds, n, d_i); }
void scale_row(double* x, int64_t n, double a) { scale_row_impl(x, n, a); }
double dot_row(const double* x, const double* y, int64_t n) { return dot_row_impl(x, y, n); }
LONGSEQ_ISA_CLONES float row_max(const float* x, int64_t n) { return row_max_impl(x, n); }
LONGSEQ_ISA_CLONES float exp_row(float* x, int64_t n, float m) { return exp_row_impl(x, n, m); }
LONGSEQ_ISA_CLONES void ds_row(const float* p, float* ds, int64_t n, float d_i) {
  ds_row_impl(p, ds, n, d_i);
}
LONGSEQ_ISA_CLONES void scale_row(float* x, int64_t n, float a) { scale_row_impl(x, n, a); }
LONGSEQ_ISA_CLONES float dot_row(const float* x, const float* y, int64_t n) {
  return dot_row_impl(x, y, n);
}

}  // namespace longseq::cpu
