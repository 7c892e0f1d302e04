// Fused Longformer banded kernel (kernels/cpu/longformer_attention) against the float64 naive loop
// under the pattern's dense mask (forward) and autograd through the composite path (backward), on
// odd shapes: lengths around the block size, head dims 32/64/80/128, dilation, globals, padding.
#include <longseq/attention.h>
#include <longseq/impl.h>
#include <longseq/memory_tracker.h>

#include "kernels/ref/attention_ref.h"
#include "test_util.h"

#include <cmath>

namespace longseq {
namespace {

struct BandCase {
  int64_t b, h, t, d, window;
  std::vector<int64_t> dilation, globals;
  bool causal, padding;
  int64_t block;
};

void PrintTo(const BandCase& c, std::ostream* os) {
  *os << "B" << c.b << " H" << c.h << " T" << c.t << " D" << c.d << " W" << c.window << " dil";
  for (auto d : c.dilation) *os << " " << d;
  *os << " globals";
  for (auto g : c.globals) *os << " " << g;
  *os << (c.causal ? " causal" : "") << (c.padding ? " padded" : "") << " block " << c.block;
}

class LongformerFusedVsReference : public ::testing::TestWithParam<BandCase> {};

TEST_P(LongformerFusedVsReference, ForwardAndBackward) {
  const auto c = GetParam();
  torch::manual_seed(11);
  auto q = torch::randn({c.b, c.h, c.t, c.d}, torch::kDouble);
  auto k = torch::randn({c.b, c.h, c.t, c.d}, torch::kDouble);
  auto v = torch::randn({c.b, c.h, c.t, c.d}, torch::kDouble);
  LongformerPattern p;
  p.window = c.window;
  p.dilation = c.dilation;
  p.global_positions = c.globals;
  p.block = c.block;
  at::Tensor pad;
  if (c.padding) {
    // Batch 0 loses its first keys (causal rows there see none), the last batch its second half.
    pad = torch::rand({c.b, c.t}) > 0.25;
    pad[0].narrow(0, 0, std::min<int64_t>(3, c.t)).fill_(false);
    if (c.b > 1) pad[c.b - 1].narrow(0, c.t / 2, c.t - c.t / 2).fill_(false);
  }
  auto f = [&](const std::vector<at::Tensor>& in) {
    return longformer_attention(in[0], in[1], in[2], p, test::mask_of(c.causal, pad));
  };
  auto allowed = longformer_dense_allowed(p, c.causal, c.h, c.t).unsqueeze(0);  // [1, H, T, T]
  if (pad.defined()) allowed = allowed.logical_and(pad.view({c.b, 1, 1, c.t}));
  auto want = ref::attention_naive(q, k, v, allowed, 1.0 / std::sqrt(double(c.d)));
  auto probe = torch::randn({c.b, c.h, c.t, c.d}, torch::kDouble);
  std::vector<at::Tensor> want_g;
  {
    ImplGuard composite(Impl::kComposite);
    want_g = test::grads_of(f, {q, k, v}, probe);
  }
  ImplGuard fused(Impl::kFused);
  {  // the fused path is the one that ran
    auto qq = q.detach().requires_grad_(true);
    auto node = longformer_attention(qq, k, v, p, test::mask_of(c.causal, pad)).grad_fn();
    std::string chain = node ? node->name() : "";
    for (const auto& e : node ? node->next_edges() : torch::autograd::edge_list{}) {
      if (e.function) chain += " " + e.function->name();
    }
    EXPECT_NE(chain.find("LongformerBandFunction"), std::string::npos) << chain;
  }
  auto q32 = q.to(torch::kFloat), k32 = k.to(torch::kFloat), v32 = v.to(torch::kFloat);
  EXPECT_TRUE(test::all_close(f({q, k, v}), want, 1e-10, 1e-11)) << "float64 forward";
  EXPECT_TRUE(test::all_close(f({q32, k32, v32}), want, 1e-4, 2e-5)) << "float32 forward";
  auto got_g = test::grads_of(f, {q, k, v}, probe);
  auto got_g32 = test::grads_of(f, {q32, k32, v32}, probe);
  const char* names[] = {"dq", "dk", "dv"};
  for (int n = 0; n < 3; ++n) {
    EXPECT_TRUE(test::all_close(got_g[n], want_g[n], 1e-9, 1e-10)) << "float64 " << names[n];
    EXPECT_TRUE(test::all_close(got_g32[n], want_g[n], 1e-3, 5e-4)) << "float32 " << names[n];
  }
}

INSTANTIATE_TEST_SUITE_P(
    OddShapes, LongformerFusedVsReference,
    ::testing::Values(
        BandCase{2, 2, 1, 32, 4, {1}, {}, false, false, 0},
        BandCase{1, 3, 5, 64, 2, {1}, {}, true, true, 0},
        BandCase{2, 2, 5, 80, 4, {2}, {1}, false, true, 2},
        BandCase{2, 2, 63, 128, 8, {1, 3}, {}, true, false, 16},
        BandCase{1, 2, 64, 64, 16, {1}, {0, 63}, false, true, 0},
        BandCase{2, 2, 65, 80, 6, {2, 1}, {5}, true, true, 7},
        BandCase{2, 2, 65, 32, 64, {1}, {}, false, false, 0},    // window wider than the block
        BandCase{1, 2, 13, 32, 6, {20, 1}, {}, false, true, 4},  // dilation past T
        BandCase{2, 4, 1000, 64, 32, {1, 2, 4, 8}, {0, 17, 999}, true, true, 0},
        BandCase{1, 2, 1000, 80, 64, {1, 3}, {3, 500}, false, false, 0}));

TEST(LongformerFused, DispatchFollowsTheSwitch) {
  auto q = torch::randn({1, 2, 16, 8}, torch::requires_grad());
  LongformerPattern p;
  p.window = 4;
  auto name = [](const at::Tensor& t) { return t.grad_fn() ? t.grad_fn()->name() : std::string(); };
  {
    ImplGuard g(Impl::kFused);
    EXPECT_NE(name(longformer_attention(q, q, q, p)).find("LongformerBand"), std::string::npos);
  }
  {
    // Dropout while training runs composite (kFused would refuse the call).
    ImplGuard g(Impl::kAuto);
    EXPECT_EQ(
        name(longformer_attention(q, q, q, p, {}, {}, {}, {}, 0.1, true)).find("LongformerBand"),
        std::string::npos);
  }
  ImplGuard g(Impl::kComposite);
  EXPECT_EQ(name(longformer_attention(q, q, q, p)).find("LongformerBand"), std::string::npos);
}

TEST(LongformerFused, FullyPaddedBatchIsZeroWithZeroGradient) {
  ImplGuard g(Impl::kFused);
  auto q = torch::randn({2, 2, 9, 8}, torch::requires_grad());
  LongformerPattern p;
  p.window = 4;
  p.global_positions = {2};
  auto pad = padding_mask_from_lengths(torch::tensor({9, 0}), 9);
  auto out = longformer_attention(q, q, q, p, test::mask_of(false, pad));
  EXPECT_TRUE(out[1].eq(0).all().item<bool>());
  out.sum().backward();
  EXPECT_TRUE(q.grad()[1].eq(0).all().item<bool>());
  EXPECT_TRUE(q.grad().isfinite().all().item<bool>());
}

// Tensor bytes through MemoryTracker are deterministic: the fused path's forward + backward holds
// O(T·D) (out, lse, gradients), below the composite's [T, c + W] scores and probabilities.
TEST(LongformerFused, UsesLessMemoryThanCompositeAndGrowsLinearly) {
  MemoryTracker::install();
  auto growth = [](int64_t t, Impl impl) {
    ImplGuard g(impl);
    auto q = torch::randn({1, 2, t, 64}, torch::requires_grad());
    LongformerPattern p;
    p.window = 128;
    p.global_positions = {0};
    const int64_t before = MemoryTracker::current_bytes();
    MemoryTracker::reset_peak();
    longformer_attention(q, q, q, p).sum().backward();
    return static_cast<double>(MemoryTracker::peak_bytes() - before);
  };
  const double f2 = growth(2048, Impl::kFused), f4 = growth(4096, Impl::kFused);
  const double c4 = growth(4096, Impl::kComposite);
  EXPECT_LT(f4 / f2, 2.2) << f2 << " -> " << f4;
  // A handful of [T, D] tensors (out, incoming gradient, dq, dk, dv and their sum), no [T, W] one.
  const double td = 4096.0 * 2 * 64 * sizeof(float);
  EXPECT_LT(f4, 10 * td) << "fused " << f4 / td << " × [T, D]";
  EXPECT_LT(f4, c4 / 2) << "fused " << f4 << " vs composite " << c4;
}

TEST(LongformerFused, GradientMatchesCentralDifferences) {
  ImplGuard g(Impl::kFused);
  torch::manual_seed(12);
  LongformerPattern p;
  p.window = 2;
  p.dilation = {2, 1};
  p.global_positions = {3};
  p.block = 3;
  for (bool causal : {false, true}) {
    auto pad = padding_mask_from_lengths(torch::tensor({7, 5}), 7);
    auto f = [&](const std::vector<at::Tensor>& in) {
      return longformer_attention(in[0], in[1], in[2], p, test::mask_of(causal, pad));
    };
    EXPECT_TRUE(test::gradcheck(
        f, {torch::randn({2, 2, 7, 3}), torch::randn({2, 2, 7, 3}), torch::randn({2, 2, 7, 3})}))
        << "causal " << causal;
  }
}

}  // namespace
}  // namespace longseq
