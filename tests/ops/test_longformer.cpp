// longformer_attention equals exact attention under the equivalent dense mask.
#include <longseq/attention.h>
#include <longseq/memory_tracker.h>
#include <longseq/mixers/longformer.h>

#include "kernels/ref/attention_ref.h"
#include "test_util.h"

namespace longseq {
namespace {

struct LfCase {
  int64_t t, d, window;
  std::vector<int64_t> dilation;
  std::vector<int64_t> globals;
  bool causal, padding;
  int64_t block;
};

void PrintTo(const LfCase& c, std::ostream* os) {
  *os << "T" << c.t << " D" << c.d << " W" << c.window << " dil";
  for (auto d : c.dilation) *os << " " << d;
  *os << " globals";
  for (auto g : c.globals) *os << " " << g;
  *os << (c.causal ? " causal" : "") << (c.padding ? " padded" : "") << " block " << c.block;
}

class LongformerVsDense : public ::testing::TestWithParam<LfCase> {};

TEST_P(LongformerVsDense, EqualsExactUnderDenseMask) {
  const auto c = GetParam();
  const int64_t B = 2, H = 2;
  torch::manual_seed(6);
  auto q = torch::randn({B, H, c.t, c.d}, torch::kDouble);
  auto k = torch::randn({B, H, c.t, c.d}, torch::kDouble);
  auto v = torch::randn({B, H, c.t, c.d}, torch::kDouble);
  LongformerPattern p;
  p.window = c.window;
  p.dilation = c.dilation;
  p.global_positions = c.globals;
  p.block = c.block;
  at::Tensor pad;
  if (c.padding) pad = padding_mask_from_lengths(torch::tensor({c.t, (c.t + 1) / 2}), c.t);
  auto got = longformer_attention(q, k, v, p, test::mask_of(c.causal, pad));
  auto allowed = longformer_dense_allowed(p, c.causal, H, c.t).unsqueeze(0);  // [1, H, T, T]
  if (pad.defined()) allowed = allowed.logical_and(pad.view({B, 1, 1, c.t}));
  auto want = ref::attention_naive(q, k, v, allowed, 1.0 / std::sqrt(double(c.d)));
  EXPECT_TRUE(test::all_close(got, want, 1e-11, 1e-11));
}

INSTANTIATE_TEST_SUITE_P(Patterns, LongformerVsDense,
                         ::testing::Values(LfCase{1, 4, 2, {1}, {}, false, false, 0},
                                           LfCase{5, 8, 2, {1}, {}, false, false, 2},
                                           LfCase{13, 8, 4, {1}, {}, true, false, 3},
                                           LfCase{33, 80, 6, {1, 3}, {}, false, true, 7},
                                           LfCase{33, 16, 3, {2, 1}, {}, true, true, 5},
                                           LfCase{40, 16, 4, {1}, {0, 7, 39}, false, false, 8},
                                           LfCase{40, 16, 4, {2, 3}, {3, 20}, true, true, 6},
                                           LfCase{17, 8, 40, {1}, {2}, false, true, 0},
                                           LfCase{65, 32, 8, {1, 4}, {0, 1}, false, true, 16}));

TEST(Longformer, GlobalProjectionsDriveGlobalRows) {
  torch::manual_seed(7);
  const int64_t B = 1, H = 2, T = 12, D = 8;
  auto r = [&] { return torch::randn({B, H, T, D}, torch::kDouble); };
  auto q = r(), k = r(), v = r(), qg = r(), kg = r(), vg = r();
  LongformerPattern p;
  p.window = 2;
  p.global_positions = {0, 5};
  auto got = longformer_attention(q, k, v, p, {}, qg, kg, vg);
  // Global rows: full attention with the global projections.
  auto want_g = ref::attention_naive(qg, kg, vg, {}, 1.0 / std::sqrt(double(D)));
  for (int64_t g : p.global_positions) {
    EXPECT_TRUE(test::all_close(got.select(2, g), want_g.select(2, g), 1e-11, 1e-11));
  }
  // Other rows: the ordinary q, k, v under the dense mask.
  auto allowed = longformer_dense_allowed(p, false, H, T).unsqueeze(0);
  auto want = ref::attention_naive(q, k, v, allowed, 1.0 / std::sqrt(double(D)));
  EXPECT_TRUE(test::all_close(got.select(2, 3), want.select(2, 3), 1e-11, 1e-11));
  EXPECT_TRUE(test::all_close(got.select(2, 11), want.select(2, 11), 1e-11, 1e-11));
}

TEST(Longformer, GradientMatchesCentralDifferences) {
  torch::manual_seed(8);
  LongformerPattern p;
  p.window = 2;
  p.dilation = {1, 2};
  p.global_positions = {1};
  p.block = 2;
  for (bool causal : {false, true}) {
    auto pad = padding_mask_from_lengths(torch::tensor({6, 4}), 6);
    auto f = [&](const std::vector<at::Tensor>& in) {
      return longformer_attention(in[0], in[1], in[2], p, test::mask_of(causal, pad));
    };
    EXPECT_TRUE(test::gradcheck(
        f, {torch::randn({2, 2, 6, 3}), torch::randn({2, 2, 6, 3}), torch::randn({2, 2, 6, 3})}));
  }
}

TEST(Longformer, MemoryGrowsLinearlyNotQuadratically) {
  // Live tensor bytes are deterministic (not a timing): doubling T must about double the peak.
  MemoryTracker::install();
  auto peak_at = [](int64_t t) {
    auto q = torch::randn({1, 2, t, 32}, torch::requires_grad());
    LongformerPattern p;
    p.window = 64;
    p.global_positions = {0};
    const int64_t before = MemoryTracker::current_bytes();
    MemoryTracker::reset_peak();
    longformer_attention(q, q, q, p).sum().backward();
    return MemoryTracker::peak_bytes() - before;
  };
  const double p1 = static_cast<double>(peak_at(2048)), p2 = static_cast<double>(peak_at(4096));
  EXPECT_LT(p2 / p1, 2.3) << p1 << " -> " << p2;
  // A single T×T float matrix at 4096 would be 64 MiB per head; we stay far below.
  EXPECT_LT(p2, 2 * 4096.0 * 4096.0 * 4);
}

TEST(Longformer, ClearErrors) {
  MixerConfig c;
  c.dim = 16;
  c.heads = 2;
  c.max_len = 64;
  EXPECT_THROW(Longformer{LongformerOptions(c).window(0)}, c10::Error);
  EXPECT_THROW(Longformer{LongformerOptions(c).window(3)}, c10::Error);    // odd, non-causal
  EXPECT_THROW(Longformer{LongformerOptions(c).window(128)}, c10::Error);  // > max_len
  EXPECT_THROW(Longformer{LongformerOptions(c).dilation({1, 2, 3})}, c10::Error);
  EXPECT_THROW(Longformer{LongformerOptions(c).dilation({0})}, c10::Error);
  EXPECT_THROW(Longformer{LongformerOptions(c).global_tokens(2).global_positions({1})}, c10::Error);
  Longformer m{LongformerOptions(c).window(4).global_positions({10})};
  EXPECT_THROW(m->forward(torch::randn({1, 8, 16})), c10::Error);  // global 10 outside T = 8
  EXPECT_NO_THROW(m->forward(torch::randn({1, 11, 16})));
}

}  // namespace
}  // namespace longseq
