#pragma once
/// Time and memory of each mixer against sequence length (the engine of `longseq bench`).

#include <longseq/profile.h>
#include <longseq/roofline.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace longseq {

struct BenchConfig {
  std::vector<std::string> mixers;
  std::vector<int64_t> seq_lens;
  int64_t batch = 1;
  int64_t heads = 8;
  int64_t head_dim = 64;
  bool causal = false;
  std::string mode = "fwd+bwd";  ///< "fwd" (inference, no autograd) or "fwd+bwd"
  int repeats = 5;
  int warmup = 1;
  int64_t max_memory = 0;  ///< bytes; 0 = 80% of physical memory
  uint64_t seed = 0;
  std::string impl;  ///< "auto", "fused" or "composite"; empty = the process default (LONGSEQ_IMPL)
  /// Mechanism options per mixer: options["performer"]["features"] = "128".
  std::map<std::string, std::map<std::string, std::string>> options;
  /// The machine's measured rates (roofline.h): rows get their share of the limit they set.
  /// Zero rates: no share (pct_of_limit stays 0).
  MachineLimits limits;
  /// After timing each configuration, profile one more iteration (BenchRow::profile).
  bool profile = false;
};

struct BenchRow {
  std::string mixer;
  int64_t seq_len = 0;
  std::string mode;
  int64_t batch = 0, heads = 0, head_dim = 0;
  int threads = 0;
  bool causal = false;
  std::string impl;
  double median_ms = 0, min_ms = 0, max_ms = 0;
  double tokens_per_s = 0;
  int64_t peak_bytes = 0;   ///< peak live tensor bytes of one iteration above what was live before
  int64_t state_bytes = 0;  ///< parameters + input live before the iteration
  int64_t predicted_bytes = 0;
  /// The mixer's counted work for this row's mode (MixerSpec::work), the time it needs at the
  /// machine's limit, which rate sets that limit ("flops" or "bytes"), and limit_ms / median_ms.
  Work work;
  double limit_ms = 0;
  std::string bound;
  double pct_of_limit = 0;
  bool skipped = false;
  std::string skip_reason;
  std::optional<ProfileReport> profile;  ///< with BenchConfig::profile, for measured rows
};

/// Runs every (mixer, seq_len) configuration in order, calling `on_row` as each finishes.
/// Validates the whole configuration (names, options, sizes) before running anything.
std::vector<BenchRow> run_bench(const BenchConfig& config,
                                const std::function<void(const BenchRow&)>& on_row = {});

/// One configuration measured as run_bench() does (fresh mixer and input, `warmup` untimed and
/// `repeats` timed iterations, peak memory of one), with no memory prediction: the caller decides
/// it fits. `max_len` is the mixer's accepted length (>= t).
BenchRow measure_point(const BenchConfig& config, const std::string& mixer, int64_t t,
                       int64_t max_len);

/// One iteration of one configuration under the op profiler (profile.h), after `warmup`
/// untimed iterations (at least one): where its time goes, op by op.
ProfileReport profile_point(const BenchConfig& config, const std::string& mixer, int64_t t,
                            int64_t max_len);

/// How time and peak memory of one mixer grow with T: least-squares slopes of log(median_ms) and
/// log(peak_bytes) against log(T) over its measured (not skipped) rows; 1 is linear, 2 quadratic.
struct ScalingFit {
  std::string mixer;
  double time_exponent = 0, memory_exponent = 0;
  int64_t t_min = 0, t_max = 0;
  int points = 0;
};

/// One fit per mixer with at least two measured lengths, in the rows' order of mixers.
std::vector<ScalingFit> fit_scaling(const std::vector<BenchRow>& rows);

/// One-line description of how peak memory is measured (printed with results).
const char* bench_memory_method();

}  // namespace longseq
