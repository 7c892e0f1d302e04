// The bench engine's scaling fit (longseq/bench.h): log-log slopes of time and memory against T.
#include <longseq/bench.h>

#include <gtest/gtest.h>

#include <cmath>

namespace longseq {
namespace {

BenchRow row(const std::string& mixer, int64_t t, double ms, double bytes) {
  BenchRow r;
  r.mixer = mixer;
  r.seq_len = t;
  r.median_ms = ms;
  r.peak_bytes = static_cast<int64_t>(bytes);
  return r;
}

TEST(BenchFit, SlopesOfLinearAndQuadraticGrowth) {
  std::vector<BenchRow> rows;
  for (int64_t t : {1024, 2048, 4096, 8192}) {
    rows.push_back(row("quad", t, 1e-6 * t * t, 4.0 * t * t));
    rows.push_back(row("lin", t, 0.01 * t * (1 + 0.01 * std::sin(double(t))), 64.0 * t));
  }
  BenchRow skipped = row("lin", 16384, 0, 0);
  skipped.skipped = true;
  rows.push_back(skipped);
  rows.push_back(row("single", 1024, 3, 100));  // one length: no fit
  const auto fits = fit_scaling(rows);
  ASSERT_EQ(fits.size(), 2u);
  EXPECT_EQ(fits[0].mixer, "quad");
  EXPECT_NEAR(fits[0].time_exponent, 2.0, 1e-9);
  EXPECT_NEAR(fits[0].memory_exponent, 2.0, 1e-9);
  EXPECT_EQ(fits[1].mixer, "lin");
  EXPECT_NEAR(fits[1].time_exponent, 1.0, 0.01);
  EXPECT_NEAR(fits[1].memory_exponent, 1.0, 1e-9);
  EXPECT_EQ(fits[1].points, 4);
  EXPECT_EQ(fits[1].t_min, 1024);
  EXPECT_EQ(fits[1].t_max, 8192);
}

}  // namespace
}  // namespace longseq
