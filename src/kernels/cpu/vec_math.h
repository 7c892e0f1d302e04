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

// Sixteen floats (and their 32-bit patterns) as one GCC vector: one zmm register in the AVX-512F clone,
// two ymm in the AVX2 one. For loops whose per-lane accumulators must stay in registers across an
// outer loop: arrays of 16 in their place are stored to the stack and reloaded in every iteration.
typedef float Float16 __attribute__((vector_size(64)));
typedef uint32_t UInt16 __attribute__((vector_size(64)));

// Reductions of sixteen lanes, in a fixed order (so fixed bits): the sum as a tree, lane l plus
// lane l + 8, then + 4, then (0 + 2) + (1 + 3); the max and min left to right. One definition for
// the selective scan's lane arrays (scalar_t[16]) and the row helpers' Float16 accumulators.
template <typename scalar_t>
LONGSEQ_INLINE scalar_t sum_lanes(const scalar_t* x) {
  scalar_t s[8];
  for (int i = 0; i < 8; ++i) s[i] = x[i] + x[i + 8];
  for (int i = 0; i < 4; ++i) s[i] += s[i + 4];
  return (s[0] + s[2]) + (s[1] + s[3]);
}
LONGSEQ_INLINE float sum_lanes(const Float16& v) {
  alignas(64) float t[16];
  std::memcpy(t, &v, sizeof(t));
  return sum_lanes(t);
}
LONGSEQ_INLINE float max_lanes(const Float16& v) {
  alignas(64) float t[16];
  std::memcpy(t, &v, sizeof(t));
  float mx = t[0];
  for (int i = 1; i < 16; ++i) mx = mx < t[i] ? t[i] : mx;
  return mx;
}
LONGSEQ_INLINE float min_lanes(const Float16& v) {
  alignas(64) float t[16];
  std::memcpy(t, &v, sizeof(t));
  float mn = t[0];
  for (int i = 1; i < 16; ++i) mn = t[i] < mn ? t[i] : mn;
  return mn;
}

// exp(x) for float, branch-free so loops over it vectorise: x = n·ln2 + r (Cody–Waite split of
// ln2), e^r by the Cephes degree-6 polynomial (rel. error ~1e-7 on |r| <= ln2/2), 2^n built in the
// exponent bits. n comes from the bits of k = x·log2 e + (1.5·2^23 + 127): adding the magic
// number rounds to an integer, and k's low bits then hold n + 127, which the shift moves into the
// exponent field; so x <= −88 (n = −127, −inf included) gives a zero exponent field, 2^n = 0 and
// exactly 0, with no compare or blend (16 operations per vector, against 20 with a conversion and
// a select). Below about −87.3 the result is 0 or subnormal, where e^x is below float's normal
// range; above 88 it is e^88. NaN stays NaN (the clamps keep it).
// V is float (with I = uint32_t) or Float16 (with I = UInt16): the same operations on each lane.
// Ternaries, not std::min/max: those are not inlined into the target clones, which then stay
// scalar. Results by reference: a Float16 argument or result by value would warn of AVX-512 ABI
// changes outside the AVX-512F clone.
template <typename V, typename I>
LONGSEQ_INLINE void exp_fast_into(const V& x, V& out) {
  constexpr float kMagic = 12582912.0f + 127.0f;  // 1.5·2^23 + the exponent bias
  const V hi = V{} + 88.0f, lo = V{} - 88.0f;
  const V xhi = x > hi ? hi : x;  // a NaN x is kept by both
  const V xc = xhi < lo ? lo : xhi;
  const V k = xc * 1.44269504088896341f + kMagic;
  const V n = k - kMagic;  // round(x·log2 e)
  const V r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  V y = V{} + 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  I bits;
  std::memcpy(&bits, &k, sizeof(V));
  bits = bits << 23;  // (n + 127) in the exponent field: the higher bits of k shift out
  V pow2n;
  std::memcpy(&pow2n, &bits, sizeof(V));
  out = y * pow2n;
}
LONGSEQ_INLINE float exp_fast(float x) {
  float y;
  exp_fast_into<float, uint32_t>(x, y);
  return y;
}
LONGSEQ_INLINE void exp_fast(const Float16& x, Float16& out) {
  exp_fast_into<Float16, UInt16>(x, out);
}
// float64 is the tests' precision, not a hot path.
LONGSEQ_INLINE double exp_fast(double x) { return std::exp(x); }

// σ(x) = 1 / (1 + e^−x), branch-free (exp_fast: e^−x is below 1e-38 above x = 87, so σ = 1).
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
