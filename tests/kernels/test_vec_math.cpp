// The kernels' branch-free float exp, σ and tanh (kernels/cpu/vec_math.h) against the C library in
// double: a dense grid over the range where they matter, tiny arguments (where 1 − 2/(e^2x + 1)
// would lose tanh's relative precision), the saturated ends and infinities.
#include "kernels/cpu/row_ops.h"
#include "kernels/cpu/vec_math.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace longseq::cpu {
namespace {

std::vector<float> grid() {
  std::vector<float> xs;
  for (int i = -200000; i <= 200000; ++i) xs.push_back(static_cast<float>(i) * 1e-4f);  // ±20
  for (float x = 1e-30f; x < 1.0f; x *= 1.7f) {
    xs.push_back(x);
    xs.push_back(-x);
  }
  for (float x : {0.0f, -0.0f, 0.2499999f, 0.25f, 0.2500001f, -0.25f, 30.0f, 44.5f, 87.5f, 100.0f,
                  -30.0f, -44.5f, -87.5f, -100.0f, 1e30f, -1e30f})
    xs.push_back(x);
  return xs;
}

TEST(VecMath, TanhFastMatchesTanh) {
  double worst_abs = 0, worst_rel_small = 0;
  for (float x : grid()) {
    const double want = std::tanh(static_cast<double>(x));
    const double got = tanh_fast(x);
    worst_abs = std::max(worst_abs, std::abs(got - want));
    if (std::abs(x) < 0.5f && x != 0.0f)
      worst_rel_small = std::max(worst_rel_small, std::abs(got - want) / std::abs(want));
  }
  EXPECT_LT(worst_abs, 3e-7) << "largest absolute error over ±20";
  EXPECT_LT(worst_rel_small, 1e-6) << "largest relative error for |x| < 0.5";
  EXPECT_EQ(tanh_fast(std::numeric_limits<float>::infinity()), 1.0f);
  EXPECT_EQ(tanh_fast(-std::numeric_limits<float>::infinity()), -1.0f);
  EXPECT_EQ(tanh_fast(0.0f), 0.0f);
}

TEST(VecMath, SigmoidFastMatchesLogistic) {
  double worst_rel = 0;
  for (float x : grid()) {
    if (std::abs(x) > 80.0f) continue;  // beyond, σ underflows float's normal range or is 1
    const double want = 1.0 / (1.0 + std::exp(-static_cast<double>(x)));
    const double got = sigmoid_fast(x);
    worst_rel = std::max(worst_rel, std::abs(got - want) / want);
  }
  EXPECT_LT(worst_rel, 5e-7) << "largest relative error over ±20 and tiny arguments";
  EXPECT_EQ(sigmoid_fast(100.0f), 1.0f);
  EXPECT_EQ(sigmoid_fast(std::numeric_limits<float>::infinity()), 1.0f);
  EXPECT_GE(sigmoid_fast(-100.0f), 0.0f);
  EXPECT_LT(sigmoid_fast(-100.0f), 1e-37f);
  EXPECT_LT(sigmoid_fast(-std::numeric_limits<float>::infinity()), 1e-37f);
}

TEST(VecMath, ExpFastMatchesExp) {
  double worst_rel = 0;
  for (float x : grid()) {
    if (std::abs(x) > 80.0f) continue;
    const double want = std::exp(static_cast<double>(x));
    worst_rel = std::max(worst_rel, std::abs(exp_fast(x) - want) / want);
  }
  EXPECT_LT(worst_rel, 3e-7);
  EXPECT_EQ(exp_fast(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(exp_fast(-100.0f), 0.0f);
  EXPECT_EQ(exp_fast(-88.0f), 0.0f);
  EXPECT_EQ(exp_fast(0.0f), 1.0f);
  EXPECT_TRUE(std::isnan(exp_fast(std::numeric_limits<float>::quiet_NaN())));
  // The sixteen-lane form gives the same bits as the scalar one, lane by lane.
  alignas(64) float xs[16] = {-100.0f, -88.0f, -87.5f, -87.0f, -20.0f, -1.0f, -0.3466f, 0.0f,
                              1e-8f,   0.3466f, 1.0f,  20.0f,  80.0f,  87.9f, 88.0f,   1e30f};
  Float16 v, e;
  std::memcpy(&v, xs, sizeof(v));
  exp_fast(v, e);
  alignas(64) float es[16];
  std::memcpy(es, &e, sizeof(es));
  for (int i = 0; i < 16; ++i) EXPECT_EQ(es[i], exp_fast(xs[i])) << xs[i];
}

// The softmax rows: exp_row writes exp(x − m) and returns its sum; exp_shift_row writes the same
// values without the sum. Odd lengths (vector tails), and −inf entries (masked scores) become 0.
TEST(RowOps, ExpRowsMatchExpAndTheirSum) {
  for (int64_t n : {1, 7, 8, 17, 192, 257}) {
    SCOPED_TRACE("n " + std::to_string(n));
    std::vector<float> x(n);
    for (int64_t c = 0; c < n; ++c) {
      x[c] = c % 5 == 3 ? -std::numeric_limits<float>::infinity() : 0.37f * float(c % 23) - 4.0f;
    }
    const float m = 3.5f;
    std::vector<float> a = x, b = x;
    const float sum = exp_row(a.data(), n, m);
    exp_shift_row(b.data(), n, m);
    double want_sum = 0;
    for (int64_t c = 0; c < n; ++c) {
      const double want = std::exp(double(x[c]) - double(m));
      want_sum += want;
      EXPECT_NEAR(a[c], want, 3e-7 * want + 1e-30) << c;
      EXPECT_EQ(a[c], b[c]) << c;
    }
    EXPECT_NEAR(sum, want_sum, 1e-6 * want_sum);
  }
}

}  // namespace
}  // namespace longseq::cpu
