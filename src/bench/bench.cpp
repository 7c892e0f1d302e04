// `longseq bench` engine: per configuration a fresh mixer and input, warm-up iterations, timed
// repetitions (median/min/max), and the peak of live tensor bytes during one iteration counted by
// the MemoryTracker allocator wrapper. Before running a configuration its peak is predicted from
// the two most recent measured lengths of the same mixer (short probes at first) and the mixer's
// declared memory exponent; one predicted above the budget is skipped instead of meeting the
// out-of-memory killer.
#include <longseq/bench.h>
#include <longseq/impl.h>
#include <longseq/memory_tracker.h>
#include <longseq/registry.h>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>

namespace longseq {

const char* bench_memory_method() {
  return "peak_bytes = highest live tensor bytes (LibTorch CPU allocator, counted by a wrapper) "
         "during one iteration, minus the bytes live before it (parameters and input, reported as "
         "state_bytes); excludes allocator caching and library workspaces";
}

namespace {

struct Prepared {
  SequenceMixer mixer;
  at::Tensor x, grad_out;
};

MixerConfig mixer_config(const BenchConfig& c, int64_t max_len) {
  MixerConfig mc;
  mc.heads = c.heads;
  mc.head_dim = c.head_dim;
  mc.dim = c.heads * c.head_dim;
  mc.causal = c.causal;
  mc.max_len = max_len;
  mc.seed = c.seed;
  return mc;
}

std::map<std::string, std::string> options_of(const BenchConfig& c, const std::string& name) {
  auto it = c.options.find(name);
  return it == c.options.end() ? std::map<std::string, std::string>{} : it->second;
}

Prepared prepare(const BenchConfig& c, const std::string& name, int64_t t, int64_t max_len) {
  const MixerConfig mc = mixer_config(c, max_len);
  torch::manual_seed(c.seed);
  Prepared p;
  p.mixer = make_mixer(name, mc, options_of(c, name));
  p.x = torch::randn({c.batch, t, mc.dim});
  if (c.mode == "fwd+bwd") {
    p.mixer->train();
    p.x.requires_grad_(true);
    p.grad_out = torch::randn({c.batch, t, mc.dim});
  } else {
    p.mixer->eval();
  }
  return p;
}

void iterate(const BenchConfig& c, Prepared& p) {
  if (c.mode == "fwd") {
    torch::NoGradGuard no_grad;
    auto y = p.mixer->forward(p.x);
    return;
  }
  for (auto& param : p.mixer->parameters()) param.mutable_grad() = at::Tensor();
  p.x.mutable_grad() = at::Tensor();
  auto y = p.mixer->forward(p.x);
  y.backward(p.grad_out);
}

// Peak live bytes (above the state before) of one iteration.
int64_t measure_peak(const BenchConfig& c, Prepared& p) {
  for (auto& param : p.mixer->parameters()) param.mutable_grad() = at::Tensor();
  p.x.mutable_grad() = at::Tensor();
  const int64_t before = MemoryTracker::current_bytes();
  MemoryTracker::reset_peak();
  iterate(c, p);
  return MemoryTracker::peak_bytes() - before;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Least-squares slope of y against x.
double slope(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sx += x[i];
    sy += y[i];
    sxx += x[i] * x[i];
    sxy += x[i] * y[i];
  }
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

}  // namespace

std::vector<ScalingFit> fit_scaling(const std::vector<BenchRow>& rows) {
  std::vector<ScalingFit> fits;
  std::vector<std::string> order;
  for (const auto& r : rows) {
    if (std::find(order.begin(), order.end(), r.mixer) == order.end()) order.push_back(r.mixer);
  }
  for (const auto& name : order) {
    std::vector<double> lt, ltime, lmem;
    ScalingFit f;
    f.mixer = name;
    for (const auto& r : rows) {
      if (r.mixer != name || r.skipped || r.median_ms <= 0 || r.peak_bytes <= 0) continue;
      lt.push_back(std::log(static_cast<double>(r.seq_len)));
      ltime.push_back(std::log(r.median_ms));
      lmem.push_back(std::log(static_cast<double>(r.peak_bytes)));
      f.t_min = f.points == 0 ? r.seq_len : std::min(f.t_min, r.seq_len);
      f.t_max = std::max(f.t_max, r.seq_len);
      ++f.points;
    }
    if (f.points < 2 || f.t_min == f.t_max) continue;
    f.time_exponent = slope(lt, ltime);
    f.memory_exponent = slope(lt, lmem);
    fits.push_back(f);
  }
  return fits;
}

namespace {

// A row's description of its configuration (what was run, before any measurement).
BenchRow row_for(const BenchConfig& c, const std::string& name, int64_t t) {
  BenchRow row;
  row.mixer = name;
  row.seq_len = t;
  row.mode = c.mode;
  row.batch = c.batch;
  row.heads = c.heads;
  row.head_dim = c.head_dim;
  row.causal = c.causal;
  row.impl = impl_name(default_impl());
  row.threads = at::get_num_threads();
  return row;
}

}  // namespace

BenchRow measure_point(const BenchConfig& c, const std::string& name, int64_t t, int64_t max_len) {
  MemoryTracker::install();
  BenchRow row = row_for(c, name, t);
  const int64_t live_before = MemoryTracker::current_bytes();
  auto p = prepare(c, name, t, max_len);
  row.state_bytes = MemoryTracker::current_bytes() - live_before;
  for (int i = 0; i < c.warmup; ++i) iterate(c, p);
  row.peak_bytes = measure_peak(c, p);
  std::vector<double> ms;
  for (int i = 0; i < c.repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    iterate(c, p);
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  row.median_ms = median(ms);
  row.min_ms = *std::min_element(ms.begin(), ms.end());
  row.max_ms = *std::max_element(ms.begin(), ms.end());
  row.tokens_per_s = static_cast<double>(c.batch * t) / (row.median_ms / 1000.0);
  row.work = mixer_work(name, mixer_config(c, max_len), options_of(c, name), c.batch, t, c.mode);
  if (c.limits.sgemm_gflops > 0 && c.limits.bandwidth_gbs > 0) {
    row.limit_ms = limit_ms(row.work, c.limits);
    row.bound = limit_kind(row.work, c.limits);
    row.pct_of_limit = 100 * row.limit_ms / row.median_ms;
  }
  return row;
}

ProfileReport profile_point(const BenchConfig& c, const std::string& name, int64_t t,
                            int64_t max_len) {
  auto p = prepare(c, name, t, max_len);
  for (int i = 0; i < std::max(1, c.warmup); ++i) iterate(c, p);
  return profile_region([&] { iterate(c, p); }, c.limits);
}

std::vector<BenchRow> run_bench(const BenchConfig& c,
                                const std::function<void(const BenchRow&)>& on_row) {
  TORCH_CHECK(!c.mixers.empty(), "run_bench: `BenchConfig::mixers` is empty; valid mixers: ", [] {
    std::string s;
    for (auto& n : mixer_names()) s += (s.empty() ? "" : ", ") + n;
    return s;
  }());
  TORCH_CHECK(!c.seq_lens.empty(), "run_bench: `BenchConfig::seq_lens` is empty");
  for (int64_t t : c.seq_lens)
    TORCH_CHECK(t > 0, "run_bench: `BenchConfig::seq_lens` values must be > 0, got ", t);
  TORCH_CHECK(c.batch > 0, "run_bench: `BenchConfig::batch` must be > 0, got ", c.batch);
  TORCH_CHECK(c.heads > 0, "run_bench: `BenchConfig::heads` must be > 0, got ", c.heads);
  TORCH_CHECK(c.head_dim > 0, "run_bench: `BenchConfig::head_dim` must be > 0, got ", c.head_dim);
  TORCH_CHECK(c.mode == "fwd" || c.mode == "fwd+bwd",
              "run_bench: `BenchConfig::mode` must be fwd or fwd+bwd, got '", c.mode, "'");
  TORCH_CHECK(c.repeats > 0, "run_bench: `BenchConfig::repeats` must be > 0, got ", c.repeats);
  TORCH_CHECK(c.warmup >= 0, "run_bench: `BenchConfig::warmup` must be >= 0, got ", c.warmup);
  for (const auto& [mixer, opts] : c.options) {
    TORCH_CHECK(std::find(c.mixers.begin(), c.mixers.end(), mixer) != c.mixers.end(),
                "run_bench: `BenchConfig::options` names mixer '", mixer,
                "', which is not in `mixers`");
  }
  auto seq_lens = c.seq_lens;
  std::sort(seq_lens.begin(), seq_lens.end());
  // Mixers accept lengths up to max_len; keep it at least the library default so default options
  // (a 256-token Longformer window) stay valid in short sweeps.
  const int64_t max_len = std::max<int64_t>(seq_lens.back(), MixerConfig{}.max_len);
  // Build each mixer once at the smallest length so bad names and options fail before any run.
  for (const auto& name : c.mixers) prepare(c, name, seq_lens.front(), max_len);

  ImplGuard impl_guard(c.impl.empty() ? default_impl()
                                      : parse_impl(c.impl, "run_bench: `BenchConfig::impl`"));
  const int64_t budget =
      c.max_memory > 0 ? c.max_memory : static_cast<int64_t>(0.8 * physical_memory_bytes());
  MemoryTracker::install();
  std::vector<BenchRow> rows;
  for (const auto& name : c.mixers) {
    const auto& spec = find_mixer(name);
    const int exponent = default_impl() != Impl::kComposite && spec.fused_memory_exponent > 0
                             ? spec.fused_memory_exponent
                             : spec.memory_exponent;
    // Prediction for length t from the two most recent measured lengths of this mixer: their
    // totals (state + peak) fitted as a + b·t^exponent, which separates what does not grow with
    // t (parameters sized by max_len and their gradients: Linformer's E, F [R, max_len] get
    // full-size gradients at any t) from what does. Short probes supply the first two points.
    std::vector<std::pair<int64_t, int64_t>> measured;  // (t, state + peak bytes)
    auto predict = [&](int64_t t) -> int64_t {
      const auto [t1, p1] = measured[measured.size() - 2];
      const auto [t2, p2] = measured.back();
      const double e = exponent;
      const double b =
          std::max(0.0, (p2 - p1) / (std::pow(double(t2), e) - std::pow(double(t1), e)));
      const double a = std::max(0.0, p2 - b * std::pow(double(t2), e));
      return static_cast<int64_t>(a + b * std::pow(static_cast<double>(t), e));
    };
    for (int64_t t : seq_lens) {
      BenchRow row = row_for(c, name, t);
      // Fewer than two measurements below a long length: probe short ones (256, 512).
      for (int64_t probe_t : {256, 512}) {
        if (measured.size() >= 2 || t <= 512) break;
        if (!measured.empty() && measured.back().first >= probe_t) continue;
        const int64_t live_before = MemoryTracker::current_bytes();
        auto p = prepare(c, name, probe_t, max_len);
        const int64_t state = MemoryTracker::current_bytes() - live_before;
        measured.emplace_back(probe_t, state + measure_peak(c, p));
      }
      if (measured.size() >= 2) row.predicted_bytes = predict(t);
      if (row.predicted_bytes > budget) {
        row.skipped = true;
        row.skip_reason = "predicted peak " + std::to_string(row.predicted_bytes >> 20) +
                          " MiB exceeds --max-memory " + std::to_string(budget >> 20) + " MiB";
        rows.push_back(row);
        if (on_row) on_row(row);
        continue;
      }
      const int64_t predicted = row.predicted_bytes;
      row = measure_point(c, name, t, max_len);
      row.predicted_bytes = predicted;
      if (c.profile) row.profile = profile_point(c, name, t, max_len);
      measured.emplace_back(t, row.state_bytes + row.peak_bytes);
      rows.push_back(row);
      if (on_row) on_row(row);
    }
  }
  return rows;
}

}  // namespace longseq
