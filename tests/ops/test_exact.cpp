// exact_attention (composite) against the naive float64 loop.
#include <longseq/attention.h>

#include "kernels/ref/attention_ref.h"
#include "test_util.h"

#include <cmath>

namespace longseq {
namespace {

struct ExactCase {
  int64_t b, h, t, s, d;
  bool causal, padding;
};

void PrintTo(const ExactCase& c, std::ostream* os) {
  *os << "B" << c.b << " H" << c.h << " T" << c.t << " S" << c.s << " D" << c.d
      << (c.causal ? " causal" : "") << (c.padding ? " padded" : "");
}

class ExactVsNaive : public ::testing::TestWithParam<ExactCase> {};

TEST_P(ExactVsNaive, MatchesNaiveLoopInFloat64) {
  const auto c = GetParam();
  torch::manual_seed(1);
  auto q = torch::randn({c.b, c.h, c.t, c.d}, torch::kDouble);
  auto k = torch::randn({c.b, c.h, c.s, c.d}, torch::kDouble);
  auto v = torch::randn({c.b, c.h, c.s, c.d}, torch::kDouble);
  AttentionMask mask{c.causal, {}};
  if (c.padding) {
    auto lengths = torch::randint(1, c.s + 1, {c.b}, torch::kLong);
    lengths[0] = c.s;  // one full row, the rest random
    mask.key_padding = padding_mask_from_lengths(lengths, c.s);
  }
  auto got = exact_attention(q, k, v, mask);
  auto allowed = dense_allowed(mask, c.b, c.t, c.s, q.device());
  auto want = ref::attention_naive(q, k, v, allowed, 1.0 / std::sqrt(double(c.d)));
  EXPECT_TRUE(test::all_close(got, want, 1e-12, 1e-12));
  // float32 within float32 tolerance of the float64 truth.
  auto got32 = exact_attention(q.to(torch::kFloat), k.to(torch::kFloat), v.to(torch::kFloat), mask);
  EXPECT_TRUE(test::all_close(got32, want, 1e-4, 1e-5));
}

INSTANTIATE_TEST_SUITE_P(OddShapes, ExactVsNaive,
                         ::testing::Values(ExactCase{1, 1, 1, 1, 4, false, false},
                                           ExactCase{2, 3, 5, 5, 8, true, false},
                                           ExactCase{2, 2, 13, 13, 80, false, true},
                                           ExactCase{3, 2, 11, 11, 7, true, true},
                                           ExactCase{2, 2, 5, 9, 16, false, true},
                                           ExactCase{1, 2, 5, 9, 16, true, false},
                                           ExactCase{2, 1, 65, 65, 32, true, true}));

TEST(ExactAttention, FullyPaddedRowIsZeroWithFiniteGradient) {
  auto q = torch::randn({2, 2, 4, 8}, torch::requires_grad());
  auto k = torch::randn({2, 2, 4, 8}, torch::requires_grad());
  auto v = torch::randn({2, 2, 4, 8}, torch::requires_grad());
  AttentionMask mask{false, padding_mask_from_lengths(torch::tensor({4, 0}), 4)};
  auto out = exact_attention(q, k, v, mask);
  EXPECT_TRUE(out[1].eq(0).all().item<bool>());
  out.sum().backward();
  EXPECT_TRUE(q.grad().isfinite().all().item<bool>());
  EXPECT_TRUE(k.grad().isfinite().all().item<bool>());
}

TEST(ExactAttention, GradientMatchesCentralDifferences) {
  torch::manual_seed(2);
  for (bool causal : {false, true}) {
    auto pad = padding_mask_from_lengths(torch::tensor({5, 3}), 5);
    auto f = [&](const std::vector<at::Tensor>& in) {
      return exact_attention(in[0], in[1], in[2], test::mask_of(causal, pad));
    };
    EXPECT_TRUE(test::gradcheck(
        f, {torch::randn({2, 2, 5, 3}), torch::randn({2, 2, 5, 3}), torch::randn({2, 2, 5, 3})}))
        << "causal " << causal;
  }
}

TEST(ExactAttention, ClearErrors) {
  auto q = torch::randn({1, 2, 4, 8});
  EXPECT_THROW(exact_attention(q.view({2, 4, 8}), q, q), c10::Error);
  EXPECT_THROW(exact_attention(q, torch::randn({1, 2, 4, 6}), q), c10::Error);
  AttentionMask bad_pad{false, torch::ones({1, 3}, torch::kBool)};
  EXPECT_THROW(exact_attention(q, q, q, bad_pad), c10::Error);
  try {
    exact_attention(q, torch::randn({1, 2, 4, 6}), q);
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("head dims of `q` (8) and `k` (6)"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace longseq
