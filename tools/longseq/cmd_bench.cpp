// `longseq bench`: time and peak memory of mixers against sequence length.
#include "commands.h"

#include <longseq/atomic_file.h>
#include <longseq/bench.h>
#include <longseq/impl.h>
#include <longseq/registry.h>

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <map>

namespace longseq::cli {
namespace {

struct BenchArgs {
  std::vector<std::string> mixers = mixer_names();
  std::vector<int64_t> seq_lens = {1024, 2048, 4096};
  std::vector<std::string> opts;
  std::string json_path;
  std::string trace_dir;
  int profile_top = 15;
  double max_memory_gib = 0;
  BenchConfig config;
};

std::map<std::string, std::map<std::string, std::string>> parse_opts(
    const std::vector<std::string>& opts) {
  std::map<std::string, std::map<std::string, std::string>> out;
  for (const auto& o : opts) {
    const auto dot = o.find('.'), eq = o.find('=');
    TORCH_CHECK(dot != std::string::npos && eq != std::string::npos && dot < eq && dot > 0,
                "bench: `--opt` expects MIXER.KEY=VALUE (e.g. performer.features=128), got '", o,
                "'");
    const std::string mixer = o.substr(0, dot);
    find_mixer(mixer);  // unknown names fail here, listing the valid ones
    out[mixer][o.substr(dot + 1, eq - dot - 1)] = o.substr(eq + 1);
  }
  return out;
}

std::string mib(int64_t bytes) { return fmt::format("{:.1f}", bytes / 1048576.0); }

// The flags' own errors, named as the user typed them (the library names BenchConfig's fields).
void check_flags(const BenchArgs& a) {
  TORCH_CHECK(!a.mixers.empty(), "bench: `--mixers` is empty");
  TORCH_CHECK(!a.seq_lens.empty(), "bench: `--seq-lens` is empty");
  for (int64_t t : a.seq_lens)
    TORCH_CHECK(t > 0, "bench: `--seq-lens` values must be > 0, got ", t);
  TORCH_CHECK(a.config.batch > 0, "bench: `--batch` must be > 0, got ", a.config.batch);
  TORCH_CHECK(a.config.heads > 0, "bench: `--heads` must be > 0, got ", a.config.heads);
  TORCH_CHECK(a.config.head_dim > 0, "bench: `--head-dim` must be > 0, got ", a.config.head_dim);
  TORCH_CHECK(a.config.repeats > 0, "bench: `--repeats` must be > 0, got ", a.config.repeats);
  TORCH_CHECK(a.config.warmup >= 0, "bench: `--warmup` must be >= 0, got ", a.config.warmup);
  TORCH_CHECK(a.profile_top > 0, "bench: `--profile-top` must be > 0, got ", a.profile_top);
  TORCH_CHECK(a.trace_dir.empty() || a.config.profile,
              "bench: `--trace-dir` writes the profiler's traces: it needs `--profile`");
  for (const auto& [mixer, opts] : parse_opts(a.opts)) {
    TORCH_CHECK(std::find(a.mixers.begin(), a.mixers.end(), mixer) != a.mixers.end(),
                "bench: `--opt` names mixer '", mixer, "', which is not in `--mixers`");
  }
}

void run(BenchArgs& a) {
  check_flags(a);
  a.config.mixers = a.mixers;
  a.config.seq_lens = a.seq_lens;
  a.config.options = parse_opts(a.opts);
  a.config.max_memory = static_cast<int64_t>(a.max_memory_gib * (1ll << 30));
  const nlohmann::json machine = machine_json(true);
  // Every row's share of the limit is judged against the rates measured here, in this run.
  a.config.limits.sgemm_gflops = machine["measured"]["sgemm_gflops_all_threads"].get<double>();
  a.config.limits.bandwidth_gbs = machine["measured"]["copy_gbs"].get<double>();
  if (!a.trace_dir.empty()) make_output_directory(a.trace_dir, "bench: `--trace-dir`");
  fmt::print(
      "# {}\n# {}\n# batch {}, heads {}, head dim {}, mode {}, causal {}, impl {}, {} warm-up + {} "
      "timed repetitions per configuration\n# memory: {}\n# limit: {}\n",
      machine_line(), blas_line(machine), a.config.batch, a.config.heads, a.config.head_dim,
      a.config.mode, a.config.causal,
      a.config.impl.empty() ? impl_name(default_impl()) : a.config.impl, a.config.warmup,
      a.config.repeats, bench_memory_method(),
      fmt::format("the counted FLOPs at sgemm {:.1f} GFLOP/s or the counted bytes at memcpy {:.1f} "
                  "GB/s, whichever takes longer (docs/performance.md); %limit = limit / median",
                  a.config.limits.sgemm_gflops, a.config.limits.bandwidth_gbs));
  const char* header_format =
      "{:<11} {:>7} {:>8} {:>11} {:>10} {:>10} {:>12} {:>10} {:>7} {:>7} {:>9} {:>8} {:>7} {:>6}\n";
  fmt::print(header_format, "mixer", "T", "mode", "median_ms", "min_ms", "max_ms", "tokens/s",
             "peak_MiB", "time_x", "mem_x", "state_MiB", "GFLOP", "%limit", "bound");
  std::map<std::string, BenchRow> prev;
  auto on_row = [&](const BenchRow& r) {
    if (r.skipped) {
      fmt::print("{:<11} {:>7} {:>8} skipped: {}\n", r.mixer, r.seq_len, r.mode, r.skip_reason);
    } else {
      std::string tx = "-", mx = "-";
      auto it = prev.find(r.mixer);
      if (it != prev.end() && !it->second.skipped) {
        tx = fmt::format("{:.2f}", r.median_ms / it->second.median_ms);
        mx = fmt::format("{:.2f}", static_cast<double>(r.peak_bytes) / it->second.peak_bytes);
      }
      fmt::print(
          "{:<11} {:>7} {:>8} {:>11.2f} {:>10.2f} {:>10.2f} {:>12.0f} {:>10} {:>7} {:>7} {:>9} "
          "{:>8.2f} {:>7.1f} {:>6}\n",
          r.mixer, r.seq_len, r.mode, r.median_ms, r.min_ms, r.max_ms, r.tokens_per_s,
          mib(r.peak_bytes), tx, mx, mib(r.state_bytes), r.work.flops / 1e9, r.pct_of_limit,
          r.bound);
      if (r.profile) {
        fmt::print("{}", format_profile(*r.profile, a.profile_top));
        if (!a.trace_dir.empty()) {
          const std::string path = fmt::format("{}/{}_T{}_{}.trace.json", a.trace_dir, r.mixer,
                                               r.seq_len, r.mode == "fwd" ? "fwd" : "fwd_bwd");
          write_file_atomic(path, r.profile->trace_json);
          fmt::print("# trace: {}\n", path);
        }
      }
    }
    std::fflush(stdout);
    prev[r.mixer] = r;
  };
  auto rows = run_bench(a.config, on_row);
  fmt::print("# time_x, mem_x: ratio to the previous length of the same mixer\n");
  // The rates again, after the rows: on a shared machine they move (other tenants), and a %limit
  // judged against a rate measured in a slow moment overstates the share.
  const MachineLimits after = measure_machine_limits(at::get_num_threads());
  fmt::print("{}", rates_after_line(a.config.limits, after, "rows"));
  const auto fits = fit_scaling(rows);
  for (const auto& f : fits) {
    fmt::print(
        "# {:<11} fitted exponents over T = {}..{} ({} lengths): time {:.2f}, memory {:.2f}\n",
        f.mixer, f.t_min, f.t_max, f.points, f.time_exponent, f.memory_exponent);
  }
  if (!a.json_path.empty()) {
    nlohmann::json out;
    out["meta"] = {{"machine", machine_line()},
                   {"memory_method", bench_memory_method()},
                   {"blas_core", machine["blas"]["core"]},
                   {"sgemm_gflops", a.config.limits.sgemm_gflops},
                   {"bandwidth_gbs", a.config.limits.bandwidth_gbs},
                   {"sgemm_gflops_after", after.sgemm_gflops},
                   {"bandwidth_gbs_after", after.bandwidth_gbs},
                   {"env", machine}};
    out["rows"] = nlohmann::json::array();
    for (const auto& r : rows) {
      out["rows"].push_back({{"mixer", r.mixer},
                             {"seq_len", r.seq_len},
                             {"mode", r.mode},
                             {"batch", r.batch},
                             {"heads", r.heads},
                             {"head_dim", r.head_dim},
                             {"causal", r.causal},
                             {"threads", r.threads},
                             {"impl", r.impl},
                             {"median_ms", r.median_ms},
                             {"min_ms", r.min_ms},
                             {"max_ms", r.max_ms},
                             {"tokens_per_s", r.tokens_per_s},
                             {"peak_bytes", r.peak_bytes},
                             {"state_bytes", r.state_bytes},
                             {"predicted_bytes", r.predicted_bytes},
                             {"flops", r.work.flops},
                             {"bytes", r.work.bytes},
                             {"limit_ms", r.limit_ms},
                             {"bound", r.bound},
                             {"pct_of_limit", r.pct_of_limit},
                             {"skipped", r.skipped},
                             {"skip_reason", r.skip_reason}});
      if (r.profile) out["rows"].back()["profile"] = profile_to_json(*r.profile);
    }
    out["fits"] = nlohmann::json::array();
    for (const auto& f : fits) {
      out["fits"].push_back({{"mixer", f.mixer},
                             {"time_exponent", f.time_exponent},
                             {"memory_exponent", f.memory_exponent},
                             {"t_min", f.t_min},
                             {"t_max", f.t_max},
                             {"points", f.points}});
    }
    write_file_atomic(a.json_path, out.dump(2) + "\n");
    fmt::print("# wrote {} rows to {}\n", rows.size(), a.json_path);
  }
}

}  // namespace

Runner add_bench_command(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "time and peak memory of mixers against sequence length");
  cmd->add_option("--mixers", a->mixers, "comma-separated mixer names")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--seq-lens", a->seq_lens, "comma-separated sequence lengths")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--batch", a->config.batch, "batch size B")->capture_default_str();
  cmd->add_option("--heads", a->config.heads, "heads H")->capture_default_str();
  cmd->add_option("--head-dim", a->config.head_dim, "head dim D (model dim C = H*D)")
      ->capture_default_str();
  cmd->add_flag("--causal", a->config.causal, "causal masking (mixers without it are refused)");
  cmd->add_option("--mode", a->config.mode, "fwd or fwd+bwd")
      ->check(CLI::IsMember({"fwd", "fwd+bwd"}))
      ->capture_default_str();
  cmd->add_option("--repeats", a->config.repeats, "timed repetitions")->capture_default_str();
  cmd->add_option("--warmup", a->config.warmup, "untimed warm-up iterations")
      ->capture_default_str();
  cmd->add_option("--seed", a->config.seed, "seed for weights, inputs and random features")
      ->capture_default_str();
  cmd->add_option("--max-memory", a->max_memory_gib,
                  "skip configurations predicted above this many GiB (default 80% of RAM)");
  cmd->add_option("--impl", a->config.impl,
                  "attention implementation: fused kernels, composite LibTorch path, or auto "
                  "(default: $LONGSEQ_IMPL, else auto)")
      ->check(CLI::IsMember({"auto", "fused", "composite"}));
  cmd->add_option("--opt", a->opts, "mechanism option MIXER.KEY=VALUE (repeatable)");
  cmd->add_option("--json", a->json_path, "write rows as JSON to this file");
  cmd->add_flag("--profile", a->config.profile,
                "after timing each configuration, profile one iteration: each op's self time, "
                "share, achieved rate and % of the machine's limit");
  cmd->add_option("--profile-top", a->profile_top, "ops listed per profile (the rest summed)")
      ->capture_default_str();
  cmd->add_option("--trace-dir", a->trace_dir,
                  "with --profile, write each profile's chrome trace (chrome://tracing, Perfetto) "
                  "to DIR/<mixer>_T<len>_<mode>.trace.json");
  return [a] { run(*a); };
}

}  // namespace longseq::cli
