// Engine of `longseq report` and `longseq recommend` (longseq/report.h).
//
// Predictions. Inside a sweep, time and memory at an unmeasured length are interpolated in log-log
// between the measured neighbours; past it, offset + coef·T^k fitted to the last three points
// carries on, k the mixer's complexity class from the registry (a pure power law through points
// that include a constant cost, such as weights, bends too early and under-predicts; a free
// exponent fitted to three short, noisy lengths extrapolates wildly). Everything predicted past
// the measured lengths is marked extrapolated wherever it is shown.
#include <longseq/bench.h>
#include <longseq/impl.h>
#include <longseq/memory_tracker.h>
#include <longseq/model.h>
#include <longseq/registry.h>
#include <longseq/report.h>
#include <longseq/train.h>

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

namespace longseq {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Log-log interpolation of (t, y) points at t, or the tail fit outside [t_first, t_last].
double curve_at(const std::vector<SweepPoint>& pts, double SweepPoint::*field, const PowerFit& tail,
                double t, bool* extrapolated) {
  TORCH_CHECK(!pts.empty(), "report: a series without measured points cannot predict");
  const bool outside = t < pts.front().t || t > pts.back().t;
  if (extrapolated) *extrapolated = outside && t > pts.back().t;
  if (outside) {
    // Below the first point: scale from it with the tail's exponent (short lengths are cheap).
    if (t < pts.front().t) return pts.front().*field * std::pow(t / pts.front().t, tail.exponent);
    return tail.at(t);
  }
  for (size_t i = 1; i < pts.size(); ++i) {
    if (t <= pts[i].t) {
      const double t0 = pts[i - 1].t, t1 = pts[i].t;
      const double y0 = std::max(pts[i - 1].*field, 1e-12), y1 = std::max(pts[i].*field, 1e-12);
      const double w = std::log(t / t0) / std::log(t1 / t0);
      return std::exp(std::log(y0) + w * (std::log(y1) - std::log(y0)));
    }
  }
  return pts.back().*field;
}

PowerFit fit_field(const std::vector<SweepPoint>& pts, double SweepPoint::*field, size_t last,
                   bool with_offset, double fixed_exponent = 0) {
  std::vector<double> t, y;
  const size_t first = pts.size() > last ? pts.size() - last : 0;
  for (size_t i = first; i < pts.size(); ++i) {
    t.push_back(static_cast<double>(pts[i].t));
    y.push_back(std::max(pts[i].*field, 1e-12));
  }
  return with_offset ? fit_offset_power(t, y, fixed_exponent) : fit_power(t, y);
}

// For a fixed exponent e: the least-squares (offset >= 0, coef) of y ≈ offset + coef·t^e, weighted
// by 1/y (relative error), and that error. coef <= 0 gives an infinite error.
double fit_for_exponent(const std::vector<double>& t, const std::vector<double>& y, double e,
                        double* offset, double* coef) {
  double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    const double w = 1 / (y[i] * y[i]), x = std::pow(t[i], e);
    sw += w, sx += w * x, sy += w * y[i], sxx += w * x * x, sxy += w * x * y[i];
  }
  double b = (sw * sxy - sx * sy) / (sw * sxx - sx * sx), a = (sy - b * sx) / sw;
  if (!(a >= 0)) a = 0, b = sxy / sxx;  // no negative constant cost
  if (!(b > 0)) return std::numeric_limits<double>::infinity();
  double err = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    const double r = (a + b * std::pow(t[i], e) - y[i]) / y[i];
    err += r * r;
  }
  *offset = a;
  *coef = b;
  return err;
}

}  // namespace

double PowerFit::at(double t) const { return offset + coef * std::pow(t, exponent); }

PowerFit fit_offset_power(const std::vector<double>& t, const std::vector<double>& y,
                          double fixed_exponent) {
  PowerFit pure = fit_power(t, y);
  if (fixed_exponent > 0 && t.size() >= 2) {
    PowerFit f;
    f.exponent = fixed_exponent;
    f.points = static_cast<int>(t.size());
    if (std::isfinite(fit_for_exponent(t, y, fixed_exponent, &f.offset, &f.coef))) return f;
  }
  if (t.size() < 3) return pure;
  // A grid over the exponent, then golden-section refinement around the best grid point.
  double a = 0, b = 0, best_e = 1, best = std::numeric_limits<double>::infinity();
  for (double e = 0.2; e <= 3.0 + 1e-9; e += 0.01) {
    const double err = fit_for_exponent(t, y, e, &a, &b);
    if (err < best) best = err, best_e = e;
  }
  if (!std::isfinite(best)) return pure;
  double lo = std::max(0.2, best_e - 0.01), hi = std::min(3.0, best_e + 0.01);
  const double g = (std::sqrt(5.0) - 1) / 2;
  for (int it = 0; it < 60; ++it) {
    const double m1 = hi - g * (hi - lo), m2 = lo + g * (hi - lo);
    if (fit_for_exponent(t, y, m1, &a, &b) < fit_for_exponent(t, y, m2, &a, &b)) {
      hi = m2;
    } else {
      lo = m1;
    }
  }
  PowerFit f;
  f.exponent = (lo + hi) / 2;
  if (!std::isfinite(fit_for_exponent(t, y, f.exponent, &f.offset, &f.coef))) return pure;
  f.points = static_cast<int>(t.size());
  return f;
}

PowerFit fit_power(const std::vector<double>& t, const std::vector<double>& y) {
  TORCH_CHECK(!t.empty() && t.size() == y.size(),
              "fit_power: expected equal, non-empty `t` and `y`, got ", t.size(), " and ", y.size(),
              " points");
  PowerFit f;
  f.points = static_cast<int>(t.size());
  const size_t n = t.size();
  if (n == 1) {
    f.exponent = 1;
    f.coef = y[0] / t[0];
    return f;
  }
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i) {
    TORCH_CHECK(t[i] > 0 && y[i] > 0, "fit_power: points must be positive, got (", t[i], ", ", y[i],
                ")");
    mx += std::log(t[i]);
    my += std::log(y[i]);
  }
  mx /= n;
  my /= n;
  double sxx = 0, sxy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxx += (std::log(t[i]) - mx) * (std::log(t[i]) - mx);
    sxy += (std::log(t[i]) - mx) * (std::log(y[i]) - my);
  }
  if (sxx <= 0) {  // all at one length
    f.exponent = 1;
    f.coef = std::exp(my) / std::exp(mx);
    return f;
  }
  f.exponent = sxy / sxx;
  f.coef = std::exp(my - f.exponent * mx);
  if (n > 2) {
    double rss = 0;
    for (size_t i = 0; i < n; ++i) {
      const double r = std::log(y[i]) - (my + f.exponent * (std::log(t[i]) - mx));
      rss += r * r;
    }
    f.exponent_stderr = std::sqrt(rss / (n - 2) / sxx);
  }
  return f;
}

double Series::time_at(double t, bool* extrapolated) const {
  return curve_at(points, &SweepPoint::ms, time_tail, t, extrapolated);
}

double Series::memory_at(double t, bool* extrapolated) const {
  return curve_at(points, &SweepPoint::bytes, memory_tail, t, extrapolated);
}

std::string Series::key() const { return mixer + (causal ? " causal " : " ") + mode; }

void fit_series(Series& s) {
  if (s.points.empty()) return;
  s.time_fit = fit_field(s.points, &SweepPoint::ms, s.points.size(), false);
  s.memory_fit = fit_field(s.points, &SweepPoint::bytes, s.points.size(), false);
  s.time_tail = fit_field(s.points, &SweepPoint::ms, 3, true, s.time_class);
  s.memory_tail = fit_field(s.points, &SweepPoint::bytes, 3, true, s.memory_class);
}

void set_complexity_classes(Series& s) {
  const auto names = mixer_names();
  if (std::find(names.begin(), names.end(), s.mixer) == names.end()) return;
  const MixerSpec& spec = find_mixer(s.mixer);
  s.time_class = spec.memory_exponent;  // the composite path's exponent: its scores' count
  s.memory_class = default_impl() != Impl::kComposite && spec.fused_memory_exponent > 0
                       ? spec.fused_memory_exponent
                       : spec.memory_exponent;
}

Crossover find_crossover(const Series& s, const Series& reference, const std::string& quantity,
                         int64_t t_min, int64_t t_max) {
  TORCH_CHECK(quantity == "time" || quantity == "memory",
              "find_crossover: `quantity` must be time or memory, got '", quantity, "'");
  TORCH_CHECK(t_min > 0 && t_max >= t_min, "find_crossover: expected 0 < t_min <= t_max, got ",
              t_min, " and ", t_max);
  Crossover c;
  c.mixer = s.mixer;
  c.quantity = quantity;
  c.causal = s.causal;
  c.mode = s.mode;
  auto below = [&](double t) {
    return quantity == "time" ? s.time_at(t) < reference.time_at(t)
                              : s.memory_at(t) < reference.memory_at(t);
  };
  // A grid of 16 points per octave; the crossover is the first grid point after the last one at
  // which s is not below the reference.
  std::vector<double> grid;
  for (double t = static_cast<double>(t_min); t <= static_cast<double>(t_max) * 1.0001;
       t *= std::pow(2.0, 1.0 / 16)) {
    grid.push_back(t);
  }
  int64_t last_not_below = -1;
  for (size_t i = 0; i < grid.size(); ++i) {
    if (!below(grid[i])) last_not_below = static_cast<int64_t>(i);
  }
  if (last_not_below == static_cast<int64_t>(grid.size()) - 1) return c;  // never
  const size_t at = static_cast<size_t>(last_not_below + 1);
  c.t = static_cast<int64_t>(std::llround(grid[at]));
  c.from_start = last_not_below < 0;
  const double measured =
      std::min(s.points.empty() ? 0.0 : double(s.points.back().t),
               reference.points.empty() ? 0.0 : double(reference.points.back().t));
  c.extrapolated = grid[at] > measured;
  return c;
}

int64_t longest_within(const Series& s, double budget_bytes, int64_t t_max, bool* extrapolated) {
  if (s.points.empty()) return 0;
  auto fits = [&](int64_t t) { return s.memory_at(static_cast<double>(t)) <= budget_bytes; };
  if (!fits(1)) return 0;
  int64_t lo = 1, hi = t_max;
  if (fits(hi)) {
    lo = hi;
  } else {
    while (hi - lo > 1) {  // fits(lo), !fits(hi); memory grows with t
      const int64_t mid = lo + (hi - lo) / 2;
      (fits(mid) ? lo : hi) = mid;
    }
  }
  if (extrapolated) *extrapolated = lo > s.points.back().t;
  return lo;
}

std::vector<Series> run_sweep(const SweepOptions& o,
                              const std::function<void(int, int, const std::string&)>& progress) {
  TORCH_CHECK(!o.mixers.empty(), "report: no mixers to sweep");
  TORCH_CHECK(o.t_start > 0 && o.t_max >= o.t_start, "report: expected 0 < t_start <= t_max, got ",
              o.t_start, " and ", o.t_max);
  TORCH_CHECK(o.seconds > 0, "report: the sweep's time budget must be > 0 seconds, got ",
              o.seconds);
  const double memory_budget =
      o.memory_budget > 0 ? o.memory_budget : 0.5 * static_cast<double>(physical_memory_bytes());
  std::vector<Series> plan;
  for (const auto& name : o.mixers) {
    const bool causal_ok = find_mixer(name).supports_causal;
    for (bool causal : o.causal) {
      if (causal && !causal_ok) continue;
      for (const auto& mode : o.modes) {
        Series s;
        s.mixer = name;
        s.causal = causal;
        s.mode = mode;
        set_complexity_classes(s);
        plan.push_back(s);
      }
    }
  }
  MemoryTracker::install();
  const int total = static_cast<int>(plan.size());
  const auto sweep_start = Clock::now();
  for (int i = 0; i < total; ++i) {
    const double series_seconds =
        std::max(0.0, o.seconds - seconds_since(sweep_start)) / static_cast<double>(total - i);
    Series& s = plan[i];
    BenchConfig c;
    c.batch = o.batch;
    c.heads = o.heads;
    c.head_dim = o.head_dim;
    c.causal = s.causal;
    c.mode = s.mode;
    c.warmup = o.warmup;
    c.repeats = o.repeats;
    c.seed = o.seed;
    const auto opt = o.options.find(s.mixer);
    if (opt != o.options.end()) c.options[s.mixer] = opt->second;
    const auto t0 = Clock::now();
    const int iterations = o.warmup + o.repeats + 1;  // + the memory-measuring one
    for (int64_t t = o.t_start; t <= o.t_max; t *= 2) {
      if (progress) progress(i, total, s.key() + " T=" + std::to_string(t));
      if (!s.points.empty()) {
        fit_series(s);
        const double ms = s.time_at(static_cast<double>(t));
        const double bytes = s.memory_at(static_cast<double>(t));
        const double left = series_seconds - seconds_since(t0);
        if (bytes > memory_budget) {
          s.stop_reason = "T=" + std::to_string(t) + " predicted " +
                          std::to_string(static_cast<int64_t>(bytes) >> 20) +
                          " MiB, above the memory budget";
          break;
        }
        if (ms > o.point_ms_max) {
          s.stop_reason = "T=" + std::to_string(t) + " predicted " +
                          std::to_string(static_cast<int64_t>(ms)) + " ms per iteration";
          break;
        }
        if (ms * iterations / 1000.0 > left) {
          s.stop_reason = "T=" + std::to_string(t) + " would not finish in the series' time budget";
          break;
        }
      }
      // Mixers accept up to max_len; the sweep's weights are those a model of length t would have.
      const int64_t max_len = std::max<int64_t>(t, MixerConfig{}.max_len);
      const BenchRow r = measure_point(c, s.mixer, t, max_len);
      s.points.push_back(
          {t, r.median_ms, r.min_ms, r.max_ms, static_cast<double>(r.state_bytes + r.peak_bytes)});
    }
    if (s.stop_reason.empty()) s.stop_reason = "reached T=" + std::to_string(o.t_max);
    fit_series(s);
  }
  if (progress) progress(total, total, "done");
  return plan;
}

std::map<std::string, std::map<std::string, std::vector<std::string>>> default_error_settings() {
  return {{"performer", {{"features", {"64", "128", "256"}}}},
          {"reformer", {{"n_hashes", {"1", "2", "4"}}}},
          {"longformer", {{"window", {"64", "128", "256"}}}},
          {"linformer", {{"proj_len", {"64", "128", "256"}}}}};
}

namespace {

// ‖approx(x) − exact(x)‖ / ‖exact(x)‖ for the mixer `name` built with `mc` and one option set,
// sharing every parameter of `exact` it has by name and shape (Q/K/V/output projections).
double error_against(const SequenceMixer& exact, const MixerConfig& mc, const std::string& name,
                     const std::string& key, const std::string& value, const at::Tensor& x,
                     const at::Tensor& key_padding) {
  auto approx = make_mixer(name, mc, {{key, value}});
  approx->eval();
  const auto from = exact->named_parameters();
  for (auto& p : approx->named_parameters()) {
    if (const auto* src = from.find(p.key()); src && src->sizes() == p.value().sizes()) {
      p.value().copy_(*src);
    }
  }
  auto want = exact->forward(x, key_padding);  // [B, T, C]
  auto got = approx->forward(x, key_padding);  // [B, T, C]
  if (key_padding.defined()) {                 // padded rows are not outputs anyone reads
    const auto keep = key_padding.unsqueeze(-1).to(want.scalar_type());
    want = want * keep;
    got = got * keep;
  }
  return ((got - want).norm() / want.norm()).item<double>();
}

}  // namespace

std::vector<ErrorPoint> measure_errors(
    const ErrorOptions& o, const std::function<void(int, int, const std::string&)>& progress) {
  struct Job {
    std::string mixer, key, value;
    bool causal;
    int64_t t;
  };
  std::vector<Job> jobs;
  for (int64_t t : o.seq_lens) {
    for (const auto& [mixer, by_key] : o.settings) {
      const bool causal_ok = find_mixer(mixer).supports_causal;
      for (bool causal : o.causal) {
        if (causal && !causal_ok) continue;
        for (const auto& [key, values] : by_key) {
          for (const auto& v : values) jobs.push_back({mixer, key, v, causal, t});
        }
      }
    }
  }
  std::vector<ErrorPoint> out;
  const auto t0 = Clock::now();
  torch::NoGradGuard no_grad;
  for (size_t j = 0; j < jobs.size(); ++j) {
    const Job& job = jobs[j];
    if (seconds_since(t0) > o.seconds) break;
    if (progress) {
      progress(static_cast<int>(j), static_cast<int>(jobs.size()),
               job.mixer + " " + job.key + "=" + job.value + " T=" + std::to_string(job.t));
    }
    MixerConfig mc;
    mc.heads = o.heads;
    mc.head_dim = o.head_dim;
    mc.dim = o.heads * o.head_dim;
    mc.causal = job.causal;
    mc.max_len = std::max<int64_t>(job.t, MixerConfig{}.max_len);
    mc.seed = o.seed;
    torch::manual_seed(o.seed);
    auto exact = make_mixer("exact", mc);
    exact->eval();
    torch::manual_seed(o.seed + 1);
    // Scaled so that the attention logits have a standard deviation of about 2, as in trained
    // models: with x ~ N(0, 1) and default initialisation they have about 0.3, attention is
    // nearly uniform, exact attention's output nearly cancels, and every relative error is large.
    auto x = torch::randn({1, job.t, mc.dim}) * kErrorInputScale;  // [B, T, C]
    out.push_back({job.mixer, job.key + "=" + job.value, job.causal, job.t,
                   error_against(exact, mc, job.mixer, job.key, job.value, x, {})});
  }
  if (progress) progress(static_cast<int>(jobs.size()), static_cast<int>(jobs.size()), "done");
  return out;
}

std::vector<ErrorPoint> measure_errors_on_activations(
    SequenceModel& model, const at::Tensor& input, const at::Tensor& key_padding,
    const std::map<std::string, std::map<std::string, std::vector<std::string>>>& settings) {
  torch::NoGradGuard no_grad;
  model->eval();
  std::vector<at::Tensor> stream;
  model->forward_recorded(input, key_padding, stream);
  const auto& blocks = model->blocks();
  const ModelConfig& cfg = model->config();
  for (size_t l = 0; l < blocks.size(); ++l) {
    if (cfg.mixers[cfg.mixers.size() == 1 ? 0 : l] != "exact") continue;
    MixerConfig mc = cfg.mixer;
    mc.seed = cfg.mixer.seed + static_cast<uint64_t>(l);
    mc.attn_dropout = 0;
    Block block = blocks[l];                             // a handle: its forward is not const
    const at::Tensor x = block->mixer_input(stream[l]);  // [B, T, C]
    std::vector<ErrorPoint> out;
    for (const auto& [mixer, by_key] : settings) {
      if (mc.causal && !find_mixer(mixer).supports_causal) continue;
      for (const auto& [key, values] : by_key) {
        for (const auto& v : values) {
          out.push_back({mixer, key + "=" + v, mc.causal, x.size(1),
                         error_against(block->mixer(), mc, mixer, key, v, x, key_padding)});
        }
      }
    }
    return out;
  }
  TORCH_CHECK(
      false,
      "report: the model has no `exact` attention layer whose activations could "
      "be used (mixers: ",
      [&] {
        std::string s;
        for (const auto& m : cfg.mixers) s += m + " ";
        return s;
      }(),
      ")");
}

std::vector<QualityPoint> measure_quality(
    const std::vector<std::string>& mixers, double seconds_each, int64_t max_steps,
    const std::function<void(int, int, const std::string&)>& progress) {
  std::vector<QualityPoint> out;
  for (size_t i = 0; i < mixers.size(); ++i) {
    if (progress) progress(static_cast<int>(i), static_cast<int>(mixers.size()), mixers[i]);
    if (!find_mixer(mixers[i]).supports_causal) continue;  // MQAR is causal language modelling
    TrainConfig c;
    c.task = "mqar";
    c.task_options = {{"length", "64"}, {"pairs", "8"}, {"vocab", "128"}};
    c.model.layers = 2;
    c.model.mixers = {mixers[i]};
    c.model.mixer.dim = 64;
    c.model.mixer.heads = 2;
    c.model.mixer.causal = true;
    c.model.ffn_mult = 2;
    c.model.token_shift = true;
    c.steps = max_steps;
    c.batch_size = 32;
    c.lr = 3e-3;
    c.warmup = std::min<int64_t>(50, max_steps / 4);
    c.weight_decay = 0.1;
    c.eval_every = 0;
    Trainer trainer(c);
    const auto t0 = Clock::now();
    QualityPoint q;
    q.mixer = mixers[i];
    q.task = "mqar(length=64, pairs=8, vocab=128)";
    while (trainer.current_step() < max_steps && !trainer.stopped() &&
           seconds_since(t0) < seconds_each) {
      trainer.step();
    }
    q.seconds = seconds_since(t0);
    q.steps = trainer.current_step();
    const auto r = evaluate(trainer.model(), trainer.task(), Split::kValidation, 64, 4);
    q.accuracy = r.accuracy;
    q.loss = r.loss;
    out.push_back(q);
  }
  if (progress) progress(static_cast<int>(mixers.size()), static_cast<int>(mixers.size()), "done");
  return out;
}

std::vector<Recommendation> recommend(const std::vector<Series>& series,
                                      const std::vector<ErrorPoint>& errors,
                                      const RecommendQuery& q) {
  TORCH_CHECK(q.seq_len > 0, "recommend: `RecommendQuery::seq_len` must be > 0, got ", q.seq_len);
  TORCH_CHECK(q.quality == "exact" || q.quality == "high" || q.quality == "any",
              "recommend: `RecommendQuery::quality` must be exact, high or any, got '", q.quality,
              "'");
  const double t = static_cast<double>(q.seq_len);
  // The option each approximate mechanism trades cost for, with the values tried (largest first)
  // and how time and memory scale with it relative to the default: linearly in the option (the
  // mechanism's O(T·R) / O(T·W) / per-round terms), a stated model, not a measurement.
  // The base is the option's default, read from the registry.
  struct Knob {
    std::string key;
    std::vector<double> values;
    double base = 0;
  };
  std::map<std::string, Knob> knobs = {
      {"performer", {"features", {1024, 512, 256, 128, 64, 32}}},
      {"linformer", {"proj_len", {1024, 512, 256, 128, 64, 32}}},
      {"longformer", {"window", {2048, 1024, 512, 256, 128, 64, 32}}},
      {"reformer", {"n_hashes", {8, 4, 2, 1}}}};
  for (auto& [mixer, knob] : knobs) {
    for (const auto& o : find_mixer(mixer).options) {
      if (o.name == knob.key) knob.base = std::stod(o.default_value);
    }
    TORCH_INTERNAL_ASSERT(knob.base > 0, "recommend: no default for ", mixer, ".", knob.key);
  }
  std::vector<Recommendation> out;
  for (const auto& s : series) {
    if (s.causal != q.causal || s.mode != q.mode || s.points.empty()) continue;
    if (q.quality == "exact" && s.mixer != "exact") continue;
    Recommendation r;
    r.mixer = s.mixer;
    r.ms = s.time_at(t, &r.extrapolated);
    bool mem_extrapolated = false;
    r.bytes = s.memory_at(t, &mem_extrapolated);
    r.extrapolated = r.extrapolated || mem_extrapolated;
    // Approximation error at the measured length nearest seq_len (log distance), default setting
    // or the one the knob picks.
    auto error_for = [&](const std::string& setting) {
      double best = -1, dist = 1e300;
      for (const auto& e : errors) {
        if (e.mixer != s.mixer || e.causal != s.causal || e.setting != setting) continue;
        const double d = std::abs(std::log(double(e.t) / t));
        if (d < dist) dist = d, best = e.rel_error;
      }
      return best;
    };
    const auto knob = knobs.find(s.mixer);
    auto within = [&](double ms, double bytes) {
      return (q.max_ms <= 0 || ms <= q.max_ms) && (q.memory_bytes <= 0 || bytes <= q.memory_bytes);
    };
    bool fits = within(r.ms, r.bytes);
    double chosen_scale = 0;
    if (knob != knobs.end()) {
      const Knob& k = knob->second;
      r.rel_error = error_for(k.key + "=" + std::to_string(static_cast<int64_t>(k.base)));
      for (double v : k.values) {  // the largest value that fits the budget
        const double scale = v / k.base;
        // Constant and weight costs do not scale; only the mechanism term does, so scaling the
        // whole figure is the cautious side for v > base and the optimistic side below it.
        if (within(r.ms * scale, r.bytes * scale)) {
          chosen_scale = scale;
          r.options[k.key] = std::to_string(static_cast<int64_t>(v));
          const double e = error_for(k.key + "=" + std::to_string(static_cast<int64_t>(v)));
          if (e >= 0) r.rel_error = e;
          if (!fits) {
            r.ms *= scale;
            r.bytes *= scale;
            fits = true;
          }
          break;
        }
      }
    }
    std::string quality_note;
    if (q.quality == "high" && s.mixer != "exact") {
      if (r.rel_error < 0) {
        fits = false;
        quality_note = "no measured error against exact attention, so not counted as high quality";
      } else if (r.rel_error > 0.1) {
        fits = false;
        quality_note = "relative error " + std::to_string(r.rel_error) + " > 0.1 against exact";
      }
    }
    r.fits = fits;
    char buf[256];
    std::snprintf(
        buf, sizeof buf, "predicted %.1f ms and %.0f MiB at T=%lld%s", r.ms, r.bytes / 1048576.0,
        static_cast<long long>(q.seq_len),
        r.extrapolated ? " (extrapolated past the measured lengths)" : " (measured range)");
    r.why = buf;
    if (!within(r.ms, r.bytes)) {
      r.why += q.memory_bytes > 0 && r.bytes > q.memory_bytes ? "; over the memory budget"
                                                              : "; over the time budget";
    }
    if (!r.options.empty()) {
      char opt[160];
      std::snprintf(opt, sizeof opt, "; largest %s within the budget: %s (about %.2g× the %s)",
                    knob->second.key.c_str(), r.options.begin()->second.c_str(), chosen_scale,
                    chosen_scale < 1 ? "default's cost, which does not fit" : "default's cost");
      r.why += opt;
    }
    if (r.rel_error >= 0) r.why += "; error vs exact " + std::to_string(r.rel_error);
    if (!quality_note.empty()) r.why += "; " + quality_note;
    out.push_back(r);
  }
  std::stable_sort(out.begin(), out.end(), [&](const Recommendation& a, const Recommendation& b) {
    if (a.fits != b.fits) return a.fits;
    if (a.fits) return a.ms < b.ms;
    // Misses: the smaller overshoot of the tighter budget first.
    auto miss = [&](const Recommendation& r) {
      double m = 0;
      if (q.memory_bytes > 0) m = std::max(m, r.bytes / q.memory_bytes);
      if (q.max_ms > 0) m = std::max(m, r.ms / q.max_ms);
      return m;
    };
    return miss(a) < miss(b);
  });
  return out;
}

}  // namespace longseq
