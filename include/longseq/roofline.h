#pragma once
/// Work counted from shapes, and the machine limit it implies: the time a computation would take
/// if it ran at the measured sgemm rate (FLOPs) or at the measured memory bandwidth (bytes),
/// whichever is slower. `longseq bench` reports every row's share of that limit; the profiler
/// reports each op's.

#include <string>

namespace longseq {

/// FLOPs (a multiply-add is 2) and bytes moved to or from memory (reads + writes, each tensor
/// once: the minimum a perfect cache would allow).
struct Work {
  double flops = 0;
  double bytes = 0;
  Work& operator+=(const Work& o) {
    flops += o.flops;
    bytes += o.bytes;
    return *this;
  }
  friend Work operator+(Work a, const Work& b) { return a += b; }
  friend Work operator*(double s, Work w) { return {s * w.flops, s * w.bytes}; }
};

/// A matrix product [m, k] x [k, n] of `elem`-byte elements: 2mkn FLOPs, both inputs read and
/// the output written once.
Work gemm_work(double m, double k, double n, double elem = 4);

/// The machine's rates, measured in the same process as the timings they judge.
struct MachineLimits {
  double sgemm_gflops = 0;   ///< sgemm 2048^3 at the thread count in use
  double bandwidth_gbs = 0;  ///< memcpy of 256 MiB: bytes read + written per second
};

/// Measures both at `threads` threads (about a second).
MachineLimits measure_machine_limits(int threads);

/// The time `w` needs at the machine's limit: max(flops / sgemm rate, bytes / bandwidth), in ms.
double limit_ms(const Work& w, const MachineLimits& m);

/// "flops" when the FLOP term sets limit_ms, else "bytes".
const char* limit_kind(const Work& w, const MachineLimits& m);

/// Records a fused kernel's counted work while a profile is being taken (profile.h); a no-op
/// otherwise. `name` is the kernel's profiler scope (LONGSEQ_KERNEL_SCOPE in src/ops/fused.h).
void record_kernel_work(const char* name, const Work& w);

}  // namespace longseq
