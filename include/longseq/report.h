#pragma once
/// The engine of `longseq report` and `longseq recommend`: which mechanism for a given length,
/// memory and quality. It sweeps each mixer's time and peak memory over geometric lengths until a
/// time or memory budget (predicting the next point, so a sweep stops before the budget), fits
/// power laws, finds where each mixer overtakes `exact` and how long a sequence fits a memory
/// budget, measures each approximate attention's error against exact attention, and ranks mixers
/// for one length. docs/report.md defines the JSON it is saved as.

#include <longseq/model.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace longseq {

/// y ≈ offset + coef · T^exponent. fit_power() fits offset 0 (least squares in log-log;
/// exponent_stderr is the slope's standard error, 0 with two points); fit_offset_power() fits all
/// three, for predictions past a sweep, where a constant cost (weights, start-up) would otherwise
/// bend a pure power law.
struct PowerFit {
  double offset = 0, coef = 0, exponent = 0, exponent_stderr = 0;
  int points = 0;
  double at(double t) const;
};

/// Fits y = coef · t^exponent to the points (t > 0, y > 0). Needs at least one point; with one the
/// exponent is 1.
PowerFit fit_power(const std::vector<double>& t, const std::vector<double>& y);

/// Fits y = offset + coef · t^exponent (offset >= 0, coef > 0, exponent in [0.2, 3]) minimising
/// the squared relative error; fewer than three points fall back to fit_power(). With
/// `fixed_exponent` > 0 only offset and coef are fitted.
PowerFit fit_offset_power(const std::vector<double>& t, const std::vector<double>& y,
                          double fixed_exponent = 0);

/// One measured length of a series.
struct SweepPoint {
  int64_t t = 0;
  double ms = 0, ms_min = 0, ms_max = 0;  ///< median, min, max over the timed repetitions
  double bytes = 0;                       ///< peak live tensor bytes, inputs and weights included
};

/// One mixer in one setting (causal or not, "fwd" or "fwd+bwd") over lengths.
struct Series {
  std::string mixer;
  bool causal = false;
  std::string mode = "fwd+bwd";
  std::vector<SweepPoint> points;   ///< increasing t
  std::string stop_reason;          ///< why the sweep ended
  PowerFit time_fit, memory_fit;    ///< over every point: the reported exponents
  PowerFit time_tail, memory_tail;  ///< fit_offset_power() over the last three points: predictions
                                    ///< past the sweep
  /// The mixer's complexity in T from the registry (time: its scores' exponent, memory: that of
  /// the path that runs), the tails' exponent: a free exponent fitted to three noisy short
  /// lengths extrapolates wildly. 0 = fit it (series of unknown mixers).
  double time_class = 0, memory_class = 0;

  /// Predicted ms / bytes at t: log-log interpolation between measured points inside the sweep,
  /// the tail fit outside it (then *extrapolated is set true).
  double time_at(double t, bool* extrapolated = nullptr) const;
  double memory_at(double t, bool* extrapolated = nullptr) const;
  std::string key() const;  ///< "performer causal fwd+bwd"
};

/// Fills the four fits from the points.
void fit_series(Series& s);

/// Sets time_class and memory_class from the registry (0 for an unknown name).
void set_complexity_classes(Series& s);

/// Where `s` becomes faster (quantity "time") or smaller ("memory") than `reference` for good:
/// the smallest t in [t_min, t_max] from which s stays below reference up to t_max. t = 0 when it
/// never does; `from_start` when it is below at t_min already.
struct Crossover {
  std::string mixer, quantity;
  bool causal = false;
  std::string mode;
  int64_t t = 0;
  bool extrapolated = false;  ///< t lies beyond either series' measured lengths
  bool from_start = false;
};
Crossover find_crossover(const Series& s, const Series& reference, const std::string& quantity,
                         int64_t t_min, int64_t t_max);

/// Longest t in [1, t_max] whose predicted memory is within budget_bytes (0 if none);
/// *extrapolated tells whether that t lies beyond the measured lengths.
int64_t longest_within(const Series& s, double budget_bytes, int64_t t_max, bool* extrapolated);

struct SweepOptions {
  std::vector<std::string> mixers;
  std::vector<bool> causal = {false, true};
  std::vector<std::string> modes = {"fwd", "fwd+bwd"};
  int64_t batch = 1, heads = 8, head_dim = 64;
  int64_t t_start = 256, t_max = 1 << 20;
  /// Time budget of the whole sweep, shared out as it goes: each series may use the time left
  /// divided by the series still to run.
  double seconds = 120;
  double point_ms_max = 4000;  ///< no point whose median is predicted above this
  double memory_budget = 0;    ///< bytes; 0 = 50% of physical memory
  /// The peak-memory iteration runs first and warms up; `warmup` adds untimed ones before it.
  int warmup = 0, repeats = 2;
  uint64_t seed = 0;
  std::map<std::string, std::map<std::string, std::string>> options;  ///< per mixer
};

/// Sweeps every (mixer, causal, mode) the mixer supports. `progress(done, total, what)` is called
/// before each point, `done` and `total` in series.
std::vector<Series> run_sweep(
    const SweepOptions& options,
    const std::function<void(int done, int total, const std::string& what)>& progress = {});

/// Standard deviation of the synthetic error inputs: x ~ N(0, 2.5²) puts the attention logits of
/// default-initialised projections at a standard deviation of about 2.
constexpr double kErrorInputScale = 2.5;

/// Relative error ‖y − y_exact‖ / ‖y_exact‖ of an approximate attention mixer against `exact`
/// with the same Q/K/V/output weights, on x ~ N(0, 2.5²) [1, T, C], eval mode.
struct ErrorPoint {
  std::string mixer, setting;  ///< setting: "features=64" (the option varied), or "default"
  bool causal = false;
  int64_t t = 0;
  double rel_error = 0;
};

struct ErrorOptions {
  std::vector<int64_t> seq_lens = {256, 1024, 4096};
  std::vector<bool> causal = {false, true};
  int64_t heads = 8, head_dim = 64;
  uint64_t seed = 0;
  /// mixer → option → values tried (the others at their defaults).
  std::map<std::string, std::map<std::string, std::vector<std::string>>> settings;
  double seconds = 60;  ///< stop starting new points after this
};

/// The default settings: performer features, reformer n_hashes, longformer window, linformer
/// proj_len, each at three values.
std::map<std::string, std::map<std::string, std::vector<std::string>>> default_error_settings();

std::vector<ErrorPoint> measure_errors(
    const ErrorOptions& options,
    const std::function<void(int done, int total, const std::string& what)>& progress = {});

/// The same errors on a trained model's activations: the input of its first `exact` layer (the
/// normalised residual stream for `input`), against that layer itself, with every approximation
/// built from the model's mixer settings and sharing the layer's projections. Lengths are the
/// input's. Throws when the model has no exact layer.
std::vector<ErrorPoint> measure_errors_on_activations(
    SequenceModel& model, const at::Tensor& input, const at::Tensor& key_padding,
    const std::map<std::string, std::map<std::string, std::vector<std::string>>>& settings);

/// A short training probe of one mixer on a task.
struct QualityPoint {
  std::string mixer, task;
  double accuracy = -1, loss = 0, seconds = 0;
  int64_t steps = 0;
};

/// Trains each mixer on MQAR (8 pairs, T = 64) for up to `seconds_each` or `max_steps`, and
/// reports validation accuracy.
std::vector<QualityPoint> measure_quality(
    const std::vector<std::string>& mixers, double seconds_each, int64_t max_steps,
    const std::function<void(int done, int total, const std::string& what)>& progress = {});

/// What `recommend` is asked.
struct RecommendQuery {
  int64_t seq_len = 0;
  double memory_bytes = 0;  ///< 0 = no limit
  bool causal = false;
  std::string mode = "fwd+bwd";  ///< "fwd+bwd" (train) or "fwd" (infer)
  double max_ms = 0;             ///< 0 = no limit
  std::string quality = "any";   ///< "exact", "high" or "any"
};

struct Recommendation {
  std::string mixer;
  double ms = 0, bytes = 0;
  bool extrapolated = false;  ///< a prediction past the measured lengths
  bool fits = false;          ///< within every budget and the quality level
  double rel_error = -1;      ///< measured approximation error near seq_len (-1: none/exact)
  std::map<std::string, std::string> options;  ///< options that fit the budget (may be empty)
  std::string why;
};

/// Ranks every series matching the query: mixers that fit first, by predicted time, then the
/// others by how far they miss. Errors (from measure_errors) decide the "high" quality level
/// (relative error <= 0.1 at the nearest measured length).
std::vector<Recommendation> recommend(const std::vector<Series>& series,
                                      const std::vector<ErrorPoint>& errors,
                                      const RecommendQuery& query);

}  // namespace longseq
