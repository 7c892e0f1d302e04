// The machine limit of counted work (roofline.h) and the side channel through which fused kernels
// report their counted work to a profile being taken (profile.cpp reads it).
#include "bench/profile_state.h"

#include <longseq/machine.h>
#include <longseq/roofline.h>

#include <algorithm>

namespace longseq {

Work gemm_work(double m, double k, double n, double elem) {
  return {2 * m * k * n, elem * (m * k + k * n + m * n)};
}

MachineLimits measure_machine_limits(int threads) {
  MachineLimits m;
  m.sgemm_gflops = measure_sgemm_gflops(threads, 2048);
  m.bandwidth_gbs = measure_copy_bandwidth_gbs();
  return m;
}

double limit_ms(const Work& w, const MachineLimits& m) {
  const double flop_ms = m.sgemm_gflops > 0 ? w.flops / (m.sgemm_gflops * 1e6) : 0;
  const double byte_ms = m.bandwidth_gbs > 0 ? w.bytes / (m.bandwidth_gbs * 1e6) : 0;
  return std::max(flop_ms, byte_ms);
}

const char* limit_kind(const Work& w, const MachineLimits& m) {
  const double flop_ms = m.sgemm_gflops > 0 ? w.flops / (m.sgemm_gflops * 1e6) : 0;
  const double byte_ms = m.bandwidth_gbs > 0 ? w.bytes / (m.bandwidth_gbs * 1e6) : 0;
  return flop_ms >= byte_ms ? "flops" : "bytes";
}

void record_kernel_work(const char* name, const Work& w) {
  auto& s = profile_state();
  if (!s.active.load(std::memory_order_relaxed)) return;
  std::lock_guard<std::mutex> lock(s.mutex);
  s.kernel_work[name] += w;
}

}  // namespace longseq
