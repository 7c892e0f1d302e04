// `longseq recommend`: the mixers ranked for one sequence length, memory and time budget and
// quality level, from a report's measurements (--from report.json) or a quick measurement now.
#include "commands.h"
#include "report_io.h"
#include "util/json_read.h"

#include <longseq/registry.h>
#include <longseq/report.h>

#include <c10/util/Exception.h>
#include <fmt/core.h>

#include <fstream>
#include <sstream>

namespace longseq::cli {
namespace {

struct RecommendArgs {
  int64_t seq_len = 0;
  std::string memory;
  bool causal = false, train = false, infer = false;
  double max_ms = 0;
  std::string quality = "any";
  std::string from;
  bool json = false;
  double budget_minutes = 1.5;
};

Report quick_measurement(const RecommendArgs& a, const RecommendQuery& q) {
  fmt::print(stderr,
             "recommend: no --from report; measuring for about {:.1f} minutes "
             "(`longseq report` measures once for every question)\n",
             a.budget_minutes);
  Report r;
  r.machine = machine_json(false);
  SweepOptions so;
  for (const auto& m : mixer_names()) {
    if (!q.causal || find_mixer(m).supports_causal) so.mixers.push_back(m);
  }
  so.causal = {q.causal};
  so.modes = {q.mode};
  so.t_max = std::max<int64_t>(256, q.seq_len);
  so.seconds = a.budget_minutes * 60 * (q.quality == "high" ? 0.75 : 1.0);
  r.series = run_sweep(so);
  if (q.quality == "high") {
    ErrorOptions eo;
    eo.settings = default_error_settings();
    eo.causal = {q.causal};
    eo.seq_lens = {std::min<int64_t>(q.seq_len, 1024)};
    eo.seconds = a.budget_minutes * 60 * 0.25;
    r.errors = measure_errors(eo);
  }
  return r;
}

void run_recommend(const RecommendArgs& a) {
  TORCH_CHECK(a.seq_len > 0, "recommend: `--seq-len` must be > 0, got ", a.seq_len);
  TORCH_CHECK(!(a.train && a.infer), "recommend: give `--train` or `--infer`, not both");
  TORCH_CHECK(a.max_ms >= 0, "recommend: `--max-ms` must be >= 0, got ", a.max_ms);
  RecommendQuery q;
  q.seq_len = a.seq_len;
  q.causal = a.causal;
  q.mode = a.infer ? "fwd" : "fwd+bwd";
  q.max_ms = a.max_ms;
  q.quality = a.quality;
  if (!a.memory.empty()) q.memory_bytes = parse_bytes(a.memory, "recommend: `--memory`");
  Report r;
  if (!a.from.empty()) {
    r = report_from_json(read_regular_file(a.from, "recommend: `--from`", int64_t{256} << 20),
                         a.from);
  } else {
    r = quick_measurement(a, q);
  }
  const auto ranked = recommend(r.series, r.errors, q);
  TORCH_CHECK(!ranked.empty(), "recommend: the report has no measurements for ",
              q.causal ? "causal " : "non-causal ", q.mode == "fwd" ? "inference" : "training",
              "; run `longseq report` (it measures every setting)");
  const std::string question =
      fmt::format("T={} {} {}{}{} quality {}", q.seq_len, q.causal ? "causal" : "non-causal",
                  q.mode == "fwd" ? "inference" : "training",
                  q.memory_bytes > 0 ? ", memory " + format_bytes(q.memory_bytes) : "",
                  q.max_ms > 0 ? fmt::format(", at most {} ms", q.max_ms) : "", q.quality);
  if (a.json) {
    nlohmann::json out;
    out["question"] = {{"seq_len", q.seq_len},
                       {"causal", q.causal},
                       {"mode", q.mode},
                       {"memory_bytes", q.memory_bytes},
                       {"max_ms", q.max_ms},
                       {"quality", q.quality},
                       {"source", a.from.empty() ? "measured now" : a.from}};
    out["ranking"] = nlohmann::json::array();
    for (const auto& x : ranked) {
      out["ranking"].push_back({{"mixer", x.mixer},
                                {"fits", x.fits},
                                {"ms", x.ms},
                                {"bytes", x.bytes},
                                {"extrapolated", x.extrapolated},
                                {"rel_error", x.rel_error},
                                {"options", x.options},
                                {"why", x.why}});
    }
    fmt::print("{}\n", out.dump(2));
  } else {
    fmt::print("# {} (from {})\n", question, a.from.empty() ? "a measurement just now" : a.from);
    fmt::print("{:>4} {:<11} {:<5} {:>12} {:>11}  {}\n", "rank", "mixer", "fits", "ms", "memory",
               "why");
    int rank = 0;
    for (const auto& x : ranked) {
      std::string opts;
      for (const auto& [k, v] : x.options) opts += fmt::format(" --opt {}.{}={}", x.mixer, k, v);
      fmt::print("{:>4} {:<11} {:<5} {:>12.1f} {:>11}  {}{}\n", ++rank, x.mixer,
                 x.fits ? "yes" : "no", x.ms, format_bytes(x.bytes), x.why,
                 opts.empty() ? "" : "; use" + opts);
    }
  }
  if (ranked.front().fits) return;
  // Nothing fits: say what would.
  std::string hint;
  const auto& best = ranked.front();
  for (const auto& s : r.series) {
    if (s.mixer != best.mixer || s.causal != q.causal || s.mode != q.mode) continue;
    if (q.memory_bytes > 0) {
      bool extrapolated = false;
      const int64_t t = longest_within(s, q.memory_bytes, int64_t{1} << 40, &extrapolated);
      hint += fmt::format("; within {} {} reaches T={}{}", format_bytes(q.memory_bytes), s.mixer, t,
                          extrapolated ? " (extrapolated)" : "");
    }
  }
  TORCH_CHECK(false, "recommend: no mixer fits ", question, ". Closest: ", best.mixer, ", ",
              best.why, hint, ". Raise the budget to about ", format_bytes(best.bytes),
              q.max_ms > 0 ? fmt::format(" and {:.0f} ms", best.ms) : "",
              ", shorten the sequence, or relax --quality");
}

}  // namespace

Runner add_recommend_command(CLI::App& app) {
  auto a = std::make_shared<RecommendArgs>();
  auto* cmd = app.add_subcommand("recommend",
                                 "rank the mixers for one sequence length within a memory and "
                                 "time budget and a quality level");
  cmd->add_option("--seq-len", a->seq_len, "sequence length T")->required();
  cmd->add_option("--memory", a->memory, "memory budget, e.g. 8G or 512M (default: no limit)");
  cmd->add_flag("--causal", a->causal, "causal attention (language models)");
  cmd->add_flag("--train", a->train, "rank for training: forward + backward (the default)");
  cmd->add_flag("--infer", a->infer, "rank for inference: forward only");
  cmd->add_option("--max-ms", a->max_ms, "time budget per iteration in ms (default: no limit)");
  cmd->add_option("--quality", a->quality,
                  "exact: exact attention only; high: relative error <= 0.1 against exact "
                  "(measured); any")
      ->check(CLI::IsMember({"exact", "high", "any"}))
      ->capture_default_str();
  cmd->add_option("--from", a->from, "a report.json from `longseq report` (else measure now)");
  cmd->add_option("--budget-minutes", a->budget_minutes,
                  "time for the measurement when no --from is given")
      ->capture_default_str();
  cmd->add_flag("--json", a->json, "machine-readable output");
  return [a] { run_recommend(*a); };
}

}  // namespace longseq::cli
