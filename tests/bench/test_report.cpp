// longseq/report.h: fits, predictions, crossovers, memory-budget lengths and the ranking on
// synthetic measurements (exact answers known), and a tiny real sweep and error measurement.
#include <longseq/report.h>

#include <gtest/gtest.h>

#include <cmath>

namespace longseq {
namespace {

// A series whose time and memory follow the given laws at T = 256 .. t_last (doubling).
Series synthetic(const std::string& mixer, double (*ms)(double), double (*bytes)(double),
                 int64_t t_last, bool causal = false, const std::string& mode = "fwd+bwd") {
  Series s;
  s.mixer = mixer;
  s.causal = causal;
  s.mode = mode;
  for (int64_t t = 256; t <= t_last; t *= 2) {
    s.points.push_back({t, ms(double(t)), ms(double(t)), ms(double(t)), bytes(double(t))});
  }
  fit_series(s);
  return s;
}

double quadratic_ms(double t) { return 1e-4 * t * t; }
double linear_ms(double t) { return 0.1 * t; }
double quadratic_bytes(double t) { return 64.0 * t * t; }
double linear_bytes(double t) { return 4096.0 * t + 1e6; }

TEST(Report, PowerFitRecoversALaw) {
  std::vector<double> t, y;
  for (double v : {100.0, 300.0, 1000.0, 5000.0}) {
    t.push_back(v);
    y.push_back(3 * std::pow(v, 1.5));
  }
  const PowerFit f = fit_power(t, y);
  EXPECT_NEAR(f.exponent, 1.5, 1e-9);
  EXPECT_NEAR(f.coef, 3, 1e-6);
  EXPECT_NEAR(f.exponent_stderr, 0, 1e-9);
  EXPECT_EQ(f.points, 4);
  y[2] *= 1.3;  // noise shows as spread
  EXPECT_GT(fit_power(t, y).exponent_stderr, 0.01);
  EXPECT_THROW(fit_power({}, {}), c10::Error);
  EXPECT_THROW(fit_power({1, 2}, {1, -1}), c10::Error);
}

TEST(Report, InterpolatesInsideAndExtrapolatesPastTheSweep) {
  const Series s = synthetic("exact", quadratic_ms, quadratic_bytes, 4096);
  bool extrapolated = true;
  EXPECT_NEAR(s.time_at(1024, &extrapolated), quadratic_ms(1024), 1e-9);
  EXPECT_FALSE(extrapolated);
  // Log-log interpolation is exact for a power law between points.
  EXPECT_NEAR(s.time_at(700, &extrapolated) / quadratic_ms(700), 1, 1e-9);
  EXPECT_FALSE(extrapolated);
  EXPECT_NEAR(s.time_at(65536, &extrapolated) / quadratic_ms(65536), 1, 1e-9);
  EXPECT_TRUE(extrapolated);
  EXPECT_NEAR(s.memory_at(1 << 20) / quadratic_bytes(1 << 20), 1, 1e-9);
  EXPECT_NEAR(s.time_fit.exponent, 2, 1e-9);

  // With the complexity class set, the tail keeps that exponent and fits the constant: 5 + 0.1·t.
  Series lin = synthetic(
      "mingru", [](double t) { return 5 + 0.1 * t; }, linear_bytes, 2048);
  lin.time_class = 1;
  fit_series(lin);
  EXPECT_NEAR(lin.time_tail.exponent, 1, 1e-12);
  EXPECT_NEAR(lin.time_at(1 << 20) / (5 + 0.1 * (1 << 20)), 1, 1e-6);
}

TEST(Report, CrossoverIsWhereTheCurvesMeet) {
  // 0.1 t = 1e-4 t² at t = 1000, inside both sweeps; memory: 4096 t + 1e6 = 64 t² at t ≈ 189
  // (below the first point: from the start of the range).
  const Series exact = synthetic("exact", quadratic_ms, quadratic_bytes, 4096);
  const Series lin = synthetic("performer", linear_ms, linear_bytes, 8192);
  const Crossover c = find_crossover(lin, exact, "time", 256, 1 << 20);
  EXPECT_NEAR(double(c.t), 1000, 1000 * 0.05);  // the grid has 16 points per octave
  EXPECT_FALSE(c.extrapolated);
  EXPECT_FALSE(c.from_start);
  const Crossover m = find_crossover(lin, exact, "memory", 256, 1 << 20);
  EXPECT_TRUE(m.from_start);
  EXPECT_EQ(m.t, 256);
  // Measured only to 512: the crossover at 1000 is an extrapolation.
  const Series short_exact = synthetic("exact", quadratic_ms, quadratic_bytes, 512);
  EXPECT_TRUE(find_crossover(lin, short_exact, "time", 256, 1 << 20).extrapolated);
  // A mixer slower everywhere never crosses.
  const Series slow = synthetic(
      "slow", [](double t) { return 10 * quadratic_ms(t); }, quadratic_bytes, 4096);
  EXPECT_EQ(find_crossover(slow, exact, "time", 256, 1 << 20).t, 0);
  EXPECT_THROW(find_crossover(lin, exact, "speed", 256, 1024), c10::Error);
}

TEST(Report, LongestSequenceWithinAMemoryBudget) {
  const Series lin = synthetic("performer", linear_ms, linear_bytes, 8192);
  bool extrapolated = false;
  // 4096 t + 1e6 <= 1 GiB  <=>  t <= (2^30 − 1e6) / 4096 = 261900.
  const int64_t t = longest_within(lin, double(1 << 30), int64_t{1} << 30, &extrapolated);
  EXPECT_NEAR(double(t), (double(1 << 30) - 1e6) / 4096, 2);
  EXPECT_TRUE(extrapolated);
  EXPECT_EQ(longest_within(lin, 100, 1 << 20, &extrapolated), 0);  // nothing fits 100 bytes
  const int64_t inside = longest_within(lin, linear_bytes(1000), 1 << 20, &extrapolated);
  EXPECT_NEAR(double(inside), 1000, 2);
  EXPECT_FALSE(extrapolated);
}

TEST(Report, RecommendRanksFitsFirstAndRefusesImpossibleBudgets) {
  std::vector<Series> series = {
      synthetic("exact", quadratic_ms, quadratic_bytes, 4096),
      synthetic("performer", linear_ms, linear_bytes, 8192),
      synthetic(
          "mingru", [](double t) { return 0.2 * t; }, linear_bytes, 8192),
      synthetic("exact", quadratic_ms, quadratic_bytes, 4096, /*causal=*/true)};
  RecommendQuery q;
  q.seq_len = 65536;
  q.memory_bytes = 4.0 * (1ll << 30);
  auto r = recommend(series, {}, q);
  ASSERT_EQ(r.size(), 3u);             // the causal series is another question
  EXPECT_EQ(r[0].mixer, "performer");  // fits, faster than mingru
  EXPECT_TRUE(r[0].fits);
  EXPECT_EQ(r[1].mixer, "mingru");
  EXPECT_TRUE(r[1].fits);
  EXPECT_EQ(r[2].mixer, "exact");  // 64·2^32 bytes = 256 GiB
  EXPECT_FALSE(r[2].fits);
  EXPECT_TRUE(r[2].extrapolated);
  EXPECT_NE(r[2].why.find("over the memory budget"), std::string::npos) << r[2].why;
  // The performer's largest features value within the budget: memory scales with R, and
  // 4096·65536 + 1e6 bytes ≈ 257 MiB at R = 256, so R = 1024 (×4) still fits 4 GiB.
  EXPECT_EQ(r[0].options.at("features"), "1024");

  q.quality = "exact";
  r = recommend(series, {}, q);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].fits);

  // "high": an approximation needs a measured error <= 0.1.
  q.quality = "high";
  std::vector<ErrorPoint> errors = {{"performer", "features=1024", false, 4096, 0.05}};
  r = recommend(series, errors, q);
  EXPECT_EQ(r[0].mixer, "performer");
  EXPECT_TRUE(r[0].fits);
  for (const auto& x : r) {
    if (x.mixer == "mingru") EXPECT_FALSE(x.fits) << "no measured error";
  }
  errors[0].rel_error = 0.5;
  r = recommend(series, errors, q);
  EXPECT_FALSE(r[0].fits);

  q.quality = "any";
  q.memory_bytes = 1 << 20;  // 1 MiB: nothing fits
  r = recommend(series, {}, q);
  EXPECT_FALSE(r[0].fits);
  q.quality = "best";
  EXPECT_THROW(recommend(series, {}, q), c10::Error);
}

TEST(Report, TinySweepMeasuresAndStopsWithinItsBudgets) {
  SweepOptions o;
  o.mixers = {"exact", "mingru"};
  o.causal = {true};
  o.modes = {"fwd"};
  o.heads = 2;
  o.head_dim = 8;
  o.t_start = 16;
  o.t_max = 64;
  o.warmup = 0;
  o.repeats = 1;
  o.seconds = 30;
  int calls = 0;
  const auto s = run_sweep(o, [&](int, int, const std::string&) { ++calls; });
  ASSERT_EQ(s.size(), 2u);
  for (const auto& x : s) {
    ASSERT_EQ(x.points.size(), 3u) << x.key() << ": " << x.stop_reason;  // 16, 32, 64
    EXPECT_EQ(x.stop_reason, "reached T=64");
    for (const auto& p : x.points) {
      EXPECT_GT(p.ms, 0);
      EXPECT_GT(p.bytes, 0);
    }
  }
  EXPECT_GT(calls, 2);
  // A memory budget below the first point's prediction stops after one point.
  o.memory_budget = 1;
  for (const auto& x : run_sweep(o)) {
    EXPECT_EQ(x.points.size(), 1u);
    EXPECT_NE(x.stop_reason.find("memory budget"), std::string::npos) << x.stop_reason;
  }
}

// A Longformer window that covers the whole sequence is exact attention, so its measured error
// is rounding; the Performer's is an approximation's.
TEST(Report, ErrorsAgainstExactAttention) {
  ErrorOptions o;
  o.seq_lens = {24};
  o.heads = 2;
  o.head_dim = 8;
  o.settings = {{"longformer", {{"window", {"64"}}}}, {"performer", {{"features", {"16"}}}}};
  const auto e = measure_errors(o);
  ASSERT_EQ(e.size(), 4u);  // 2 mixers × causal or not
  for (const auto& p : e) {
    SCOPED_TRACE(p.mixer + " " + p.setting + (p.causal ? " causal" : ""));
    EXPECT_TRUE(std::isfinite(p.rel_error));
    if (p.mixer == "longformer") EXPECT_LT(p.rel_error, 1e-5);
    if (p.mixer == "performer") EXPECT_GT(p.rel_error, 1e-3);
  }
}

}  // namespace
}  // namespace longseq
