#pragma once
/// Where the time of one region goes, op by op: LibTorch's profiler records every op (ATen ops,
/// autograd nodes, and longseq's fused kernels, which open a named scope), and each op's self time
/// is set against its counted work and the machine's limit. Used by `longseq bench --profile` and
/// `longseq train --profile-steps`.

#include <longseq/roofline.h>

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace longseq {

/// One op (name and input shapes) summed over the region.
struct ProfileRow {
  std::string name;      ///< e.g. "aten::mm", "longseq::flash_attention_backward"
  std::string category;  ///< gemm, kernel, copy, alloc, elementwise, autograd, other
  std::string shapes;    ///< input shapes, e.g. "[4096, 256], [256, 768]"
  int64_t calls = 0;
  double self_ms = 0;  ///< time in the op itself, not in the ops it called
  double share = 0;    ///< self_ms / the region's wall time
  Work work;           ///< counted FLOPs and bytes of all calls (0 where not counted)
  double gflops = 0, gbs = 0;  ///< achieved rates on the counted work
  double pct_of_limit = 0;     ///< limit_ms(work) / self_ms × 100; 0 where not counted
};

struct ProfileReport {
  double wall_ms = 0;     ///< the region, by the clock
  double in_ops_ms = 0;   ///< top-level ops' time on the calling thread
  /// The sum of every row's limit (each op at its own roofline limit): the time the region's
  /// counted work needs at the machine's rates. Ops without counted work add nothing.
  double limit_ms = 0;
  MachineLimits limits;
  std::vector<ProfileRow> rows;  ///< by self time, largest first
  /// Chrome trace events ({"traceEvents": [...]}) for chrome://tracing or Perfetto.
  std::string trace_json;
};

/// Profiles one call of `fn` on the calling thread (and the threads LibTorch's parallel_for
/// hands work to). Throws if a profile is already being taken in this process.
ProfileReport profile_region(const std::function<void()>& fn, const MachineLimits& limits);

/// The table for people: the top `top` rows, then the rest summed, then the time outside ops.
std::string format_profile(const ProfileReport& report, int top = 20);

/// Rows and totals as JSON (without the trace).
nlohmann::json profile_to_json(const ProfileReport& report);

}  // namespace longseq
