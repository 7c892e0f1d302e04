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

}  // namespace longseq::cpu
