#pragma once
// Helpers shared by the CPU kernels' vectorised loops: runtime ISA dispatch and a branch-free
// float exp. Included only by files in src/kernels/cpu (the folder compiled with the kernel flags).

#include <cmath>
#include <cstdint>
#include <cstring>

namespace longseq::cpu {

// Runtime ISA dispatch for the hot non-GEMM loops: GCC emits one clone per
// listed target and an ifunc resolver picks the best at load time, so the library still runs on
// any x86-64 (the "default" clone is baseline SSE2) without ISA flags on the file.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LONGSEQ_ISA_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LONGSEQ_ISA_CLONES
#endif

// Forced inlining: the target clones stay scalar if these are calls.
#define LONGSEQ_INLINE __attribute__((always_inline)) inline

// exp(x) for float, branch-free so loops over it vectorise: x = n·ln2 + r (Cody–Waite split of
// ln2), e^r by the Cephes degree-6 polynomial (rel. error ~1e-7 on |r| <= ln2/2), 2^n built in the
// exponent bits. Exactly 0 for x < −87 (and −inf), where e^x is below float's normal range.
LONGSEQ_INLINE float exp_fast(float x) {
  // Ternaries, not std::min/max: those are not inlined into the target clones, which then stay
  // scalar.
  const float xhi = x < 88.0f ? x : 88.0f;
  const float xc = xhi > -87.0f ? xhi : -87.0f;
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x·log2 e)
  const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) * (1 << 23);
  float pow2n;
  std::memcpy(&pow2n, &bits, sizeof(float));
  return x < -87.0f ? 0.0f : y * pow2n;
}
// float64 is the tests' precision, not a hot path.
LONGSEQ_INLINE double exp_fast(double x) { return std::exp(x); }

// σ(x) = 1 / (1 + e^−x), branch-free (exp_fast: e^−x is exactly 0 above x = 87, so σ = 1).
template <typename scalar_t>
LONGSEQ_INLINE scalar_t sigmoid_fast(scalar_t x) {
  return scalar_t(1) / (scalar_t(1) + exp_fast(-x));
}

// tanh(x) for float, branch-free: 1 − 2/(e^2x + 1) (absolute error ~1e-7), and for |x| < 1/4,
// where that form loses relative precision, the odd Taylor polynomial to x^9 (relative error below
// 2e-8 there). Both are computed and one is selected, so loops over it vectorise.
LONGSEQ_INLINE float tanh_fast(float x) {
  const float x2 = x * x;
  float p = 62.0f / 2835.0f;
  p = p * x2 - 17.0f / 315.0f;
  p = p * x2 + 2.0f / 15.0f;
  p = p * x2 - 1.0f / 3.0f;
  const float small = x + x * x2 * p;
  const float large = 1.0f - 2.0f / (exp_fast(2.0f * x) + 1.0f);
  const float ax = x < 0.0f ? -x : x;
  return ax < 0.25f ? small : large;
}
LONGSEQ_INLINE double tanh_fast(double x) { return std::tanh(x); }

}  // namespace longseq::cpu
