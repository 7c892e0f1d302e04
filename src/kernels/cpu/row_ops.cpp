// Row helpers of the softmax-attention kernels (row_ops.h). Each loop keeps eight independent
// accumulator lanes so the compiler vectorises reductions without reassociation flags; the float
// versions are target_clones, so the best ISA is picked at load time.
#include "kernels/cpu/row_ops.h"
#include "kernels/cpu/vec_math.h"

#include <limits>

namespace longseq::cpu {
namespace {

// Σ_c x[c]
template <typename scalar_t>
LONGSEQ_INLINE scalar_t sum_impl(const scalar_t* x, int64_t n) {
  scalar_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int u = 0; u < 8; ++u) acc[u] += x[c + u];
  scalar_t sum = 0;
  for (int u = 0; u < 8; ++u) sum += acc[u];
  for (; c < n; ++c) sum += x[c];  // scalar tail
  return sum;
}

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

// x[c] ← exp(x[c] − m)
template <typename scalar_t>
LONGSEQ_INLINE void exp_shift_row_impl(scalar_t* x, int64_t n, scalar_t m) {
  for (int64_t c = 0; c < n; ++c) x[c] = exp_fast(x[c] - m);
}

// x[c] ← exp(x[c] − m); returns Σ_c x[c].
template <typename scalar_t>
LONGSEQ_INLINE scalar_t exp_row_impl(scalar_t* x, int64_t n, scalar_t m) {
  exp_shift_row_impl(x, n, m);
  return sum_impl(x, n);
}

// float: sixteen lanes as one vector (Float16). GCC kept the eight-accumulator loops above scalar
// for the float max (vmaxss, eight per eight entries) and reduced the sums through the stack; at
// head dim 16 the score rows' max and exp took more of the flash forward than its GEMMs (perf).
// The sum is taken in the exp pass; the min, dot and product-sum rows below the same way. Lanes
// are reduced in a fixed order (vec_math.h).
LONGSEQ_INLINE float sum_impl(const float* x, int64_t n) {
  Float16 acc{};
  int64_t c = 0;
  for (; c + 16 <= n; c += 16) {
    Float16 v;
    std::memcpy(&v, x + c, sizeof(v));
    acc += v;
  }
  float sum = sum_lanes(acc);
  for (; c < n; ++c) sum += x[c];  // scalar tail
  return sum;
}
LONGSEQ_INLINE float row_max_impl(const float* x, int64_t n) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  Float16 acc = Float16{} + kNegInf;
  int64_t c = 0;
  for (; c + 16 <= n; c += 16) {
    Float16 v;
    std::memcpy(&v, x + c, sizeof(v));
    acc = acc < v ? v : acc;
  }
  float mx = max_lanes(acc);
  for (; c < n; ++c) mx = mx < x[c] ? x[c] : mx;  // scalar tail
  return mx;
}
LONGSEQ_INLINE float exp_row_impl(float* x, int64_t n, float m) {
  Float16 acc{};
  int64_t c = 0;
  for (; c + 16 <= n; c += 16) {
    Float16 v, e;
    std::memcpy(&v, x + c, sizeof(v));
    exp_fast(v - m, e);
    std::memcpy(x + c, &e, sizeof(e));
    acc += e;
  }
  float sum = sum_lanes(acc);
  for (; c < n; ++c) {  // scalar tail
    x[c] = exp_fast(x[c] - m);
    sum += x[c];
  }
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

// x[c] ← x[c] · exp(m[c] − ref)
template <typename scalar_t>
LONGSEQ_INLINE void mul_exp_row_impl(scalar_t* x, const scalar_t* m, scalar_t ref, int64_t n) {
  for (int64_t c = 0; c < n; ++c) x[c] *= exp_fast(m[c] - ref);
}

// y[c] ← y[c] + a·x[c]
template <typename scalar_t>
LONGSEQ_INLINE void axpy_row_impl(scalar_t* y, const scalar_t* x, scalar_t a, int64_t n) {
  for (int64_t c = 0; c < n; ++c) y[c] += a * x[c];
}

// y[c] ← y[c] + a[c]·x[c]
template <typename scalar_t>
LONGSEQ_INLINE void mul_add_row_impl(scalar_t* y, const scalar_t* a, const scalar_t* x, int64_t n) {
  for (int64_t c = 0; c < n; ++c) y[c] += a[c] * x[c];
}

// x[c] ← x[c] − b; min_c x[c]
template <typename scalar_t>
LONGSEQ_INLINE scalar_t shift_row_min_impl(scalar_t* x, int64_t n, scalar_t b) {
  for (int64_t c = 0; c < n; ++c) x[c] -= b;
  constexpr scalar_t kInf = std::numeric_limits<scalar_t>::infinity();
  scalar_t acc[8] = {kInf, kInf, kInf, kInf, kInf, kInf, kInf, kInf};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int u = 0; u < 8; ++u) acc[u] = x[c + u] < acc[u] ? x[c + u] : acc[u];
  scalar_t mn = kInf;
  for (int u = 0; u < 8; ++u) mn = acc[u] < mn ? acc[u] : mn;
  for (; c < n; ++c) mn = x[c] < mn ? x[c] : mn;  // scalar tail
  return mn;
}

// out[c] ← x[c]·y[c]; Σ_c out[c]
template <typename scalar_t>
LONGSEQ_INLINE scalar_t mul_row_sum_impl(scalar_t* out, const scalar_t* x, const scalar_t* y,
                                         int64_t n) {
  for (int64_t c = 0; c < n; ++c) out[c] = x[c] * y[c];
  return sum_impl(out, n);
}

// x[c] ← max(x[c], 0)·a + b
template <typename scalar_t>
LONGSEQ_INLINE void relu_affine_row_impl(scalar_t* x, int64_t n, scalar_t a, scalar_t b) {
  for (int64_t c = 0; c < n; ++c) x[c] = (x[c] > 0 ? x[c] : scalar_t(0)) * a + b;
}

// h[c] ← h[c] > 0 ? g[c]·a : 0
template <typename scalar_t>
LONGSEQ_INLINE void relu_grad_row_impl(scalar_t* h, const scalar_t* g, int64_t n, scalar_t a) {
  for (int64_t c = 0; c < n; ++c) h[c] = h[c] > 0 ? g[c] * a : scalar_t(0);
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

LONGSEQ_INLINE float shift_row_min_impl(float* x, int64_t n, float b) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  Float16 acc = Float16{} + kInf;
  int64_t c = 0;
  for (; c + 16 <= n; c += 16) {
    Float16 v;
    std::memcpy(&v, x + c, sizeof(v));
    v -= b;
    std::memcpy(x + c, &v, sizeof(v));
    acc = v < acc ? v : acc;
  }
  float mn = min_lanes(acc);
  for (; c < n; ++c) {  // scalar tail
    x[c] -= b;
    mn = x[c] < mn ? x[c] : mn;
  }
  return mn;
}
// Σ_c x[c]·y[c], with kStore also out[c] ← x[c]·y[c] (dot_row and mul_row_sum below).
template <bool kStore>
LONGSEQ_INLINE float product_sum(float* out, const float* x, const float* y, int64_t n) {
  Float16 acc{};
  int64_t c = 0;
  for (; c + 16 <= n; c += 16) {
    Float16 a, b;
    std::memcpy(&a, x + c, sizeof(a));
    std::memcpy(&b, y + c, sizeof(b));
    const Float16 p = a * b;
    if constexpr (kStore) std::memcpy(out + c, &p, sizeof(p));
    acc += p;
  }
  float sum = sum_lanes(acc);
  for (; c < n; ++c) {  // scalar tail
    const float p = x[c] * y[c];
    if constexpr (kStore) out[c] = p;
    sum += p;
  }
  return sum;
}
LONGSEQ_INLINE float dot_row_impl(const float* x, const float* y, int64_t n) {
  return product_sum<false>(nullptr, x, y, n);
}
LONGSEQ_INLINE float mul_row_sum_impl(float* out, const float* x, const float* y, int64_t n) {
  return product_sum<true>(out, x, y, n);
}

}  // namespace

double row_max(const double* x, int64_t n) { return row_max_impl(x, n); }
double exp_row(double* x, int64_t n, double m) { return exp_row_impl(x, n, m); }
void exp_shift_row(double* x, int64_t n, double m) { exp_shift_row_impl(x, n, m); }
void ds_row(const double* p, double* ds, int64_t n, double d_i) { ds_row_impl(p, ds, n, d_i); }
void scale_row(double* x, int64_t n, double a) { scale_row_impl(x, n, a); }
double dot_row(const double* x, const double* y, int64_t n) { return dot_row_impl(x, y, n); }
void axpy_row(double* y, const double* x, double a, int64_t n) { axpy_row_impl(y, x, a, n); }
double shift_row_min(double* x, int64_t n, double b) { return shift_row_min_impl(x, n, b); }
void mul_add_row(double* y, const double* a, const double* x, int64_t n) {
  mul_add_row_impl(y, a, x, n);
}
double mul_row_sum(double* out, const double* x, const double* y, int64_t n) {
  return mul_row_sum_impl(out, x, y, n);
}
void relu_affine_row(double* x, int64_t n, double a, double b) { relu_affine_row_impl(x, n, a, b); }
void relu_grad_row(double* h, const double* g, int64_t n, double a) {
  relu_grad_row_impl(h, g, n, a);
}
double sum_row(const double* x, int64_t n) { return sum_impl(x, n); }
void mul_exp_row(double* x, const double* m, double ref, int64_t n) {
  mul_exp_row_impl(x, m, ref, n);
}
LONGSEQ_ISA_CLONES float row_max(const float* x, int64_t n) { return row_max_impl(x, n); }
LONGSEQ_ISA_CLONES float exp_row(float* x, int64_t n, float m) { return exp_row_impl(x, n, m); }
LONGSEQ_ISA_CLONES void exp_shift_row(float* x, int64_t n, float m) { exp_shift_row_impl(x, n, m); }
LONGSEQ_ISA_CLONES void ds_row(const float* p, float* ds, int64_t n, float d_i) {
  ds_row_impl(p, ds, n, d_i);
}
LONGSEQ_ISA_CLONES void scale_row(float* x, int64_t n, float a) { scale_row_impl(x, n, a); }
LONGSEQ_ISA_CLONES void mul_exp_row(float* x, const float* m, float ref, int64_t n) {
  mul_exp_row_impl(x, m, ref, n);
}
LONGSEQ_ISA_CLONES void axpy_row(float* y, const float* x, float a, int64_t n) {
  axpy_row_impl(y, x, a, n);
}
LONGSEQ_ISA_CLONES void mul_add_row(float* y, const float* a, const float* x, int64_t n) {
  mul_add_row_impl(y, a, x, n);
}
LONGSEQ_ISA_CLONES float shift_row_min(float* x, int64_t n, float b) {
  return shift_row_min_impl(x, n, b);
}
LONGSEQ_ISA_CLONES float mul_row_sum(float* out, const float* x, const float* y, int64_t n) {
  return mul_row_sum_impl(out, x, y, n);
}
LONGSEQ_ISA_CLONES void relu_affine_row(float* x, int64_t n, float a, float b) {
  relu_affine_row_impl(x, n, a, b);
}
LONGSEQ_ISA_CLONES void relu_grad_row(float* h, const float* g, int64_t n, float a) {
  relu_grad_row_impl(h, g, n, a);
}
LONGSEQ_ISA_CLONES float sum_row(const float* x, int64_t n) { return sum_impl(x, n); }
LONGSEQ_ISA_CLONES float dot_row(const float* x, const float* y, int64_t n) {
  return dot_row_impl(x, y, n);
}

}  // namespace longseq::cpu
