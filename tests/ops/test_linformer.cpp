// linformer_attention equals softmax(Q(EK)ᵀ/√D)(FV), computed here in float64 by plain matmuls.
#include <longseq/attention.h>
#include <longseq/impl.h>
#include <longseq/memory_tracker.h>
#include <longseq/mixers/linformer.h>

#include "kernels/ref/attention_ref.h"
#include "test_util.h"

namespace longseq {
namespace {

TEST(Linformer, EqualsLowRankReference) {
  torch::manual_seed(3);
  for (int64_t t : {1, 5, 13, 64, 65}) {
    for (int64_t d : {8, 80}) {
      const int64_t B = 2, H = 3, R = 7, max_len = 70;
      auto q = torch::randn({B, H, t, d}, torch::kDouble);
      auto k = torch::randn({B, H, t, d}, torch::kDouble);
      auto v = torch::randn({B, H, t, d}, torch::kDouble);
      auto e = torch::randn({R, max_len}, torch::kDouble);
      auto f = torch::randn({R, max_len}, torch::kDouble);
      auto got = linformer_attention(q, k, v, e, f);
      // Reference: project explicitly, then the naive attention loop over the R projected keys.
      auto kp = torch::einsum("rs,bhsd->bhrd", {e.narrow(1, 0, t), k});
      auto vp = torch::einsum("rs,bhsd->bhrd", {f.narrow(1, 0, t), v});
      auto want = ref::attention_naive(q, kp, vp, {}, 1.0 / std::sqrt(double(d)));
      EXPECT_TRUE(test::all_close(got, want, 1e-10, 1e-10)) << "T " << t << " D " << d;
    }
  }
}

TEST(Linformer, PaddedKeysAreZeroedBeforeProjection) {
  torch::manual_seed(4);
  const int64_t t = 9;
  auto q = torch::randn({2, 2, t, 8}, torch::kDouble);
  auto k = torch::randn({2, 2, t, 8}, torch::kDouble);
  auto v = torch::randn({2, 2, t, 8}, torch::kDouble);
  auto e = torch::randn({5, 16}, torch::kDouble);
  auto pad = padding_mask_from_lengths(torch::tensor({9, 4}), t);
  auto got = linformer_attention(q, k, v, e, e, test::mask_of(false, pad));
  // Sequence 1 has 4 real tokens: equal to running on the first 4 keys with E sliced to 4 columns.
  auto want = linformer_attention(q[1].unsqueeze(0), k[1].unsqueeze(0).narrow(2, 0, 4),
                                  v[1].unsqueeze(0).narrow(2, 0, 4), e, e);
  EXPECT_TRUE(test::all_close(got[1].unsqueeze(0), want, 1e-12, 1e-12));
  // Changing padded keys changes nothing.
  auto k2 = k.clone();
  k2[1].narrow(1, 4, t - 4).normal_();
  EXPECT_TRUE(
      test::all_close(linformer_attention(q, k2, v, e, e, test::mask_of(false, pad)), got, 0, 0));
}

TEST(Linformer, GradientMatchesCentralDifferences) {
  torch::manual_seed(5);
  auto pad = padding_mask_from_lengths(torch::tensor({5, 3}), 5);
  auto f = [&](const std::vector<at::Tensor>& in) {
    return linformer_attention(in[0], in[1], in[2], in[3], in[4], test::mask_of(false, pad));
  };
  EXPECT_TRUE(
      test::gradcheck(f, {torch::randn({2, 1, 5, 3}), torch::randn({2, 1, 5, 3}),
                          torch::randn({2, 1, 5, 3}), torch::randn({3, 6}), torch::randn({3, 6})}));
}

// The fused path (one GEMM per projection, FlashAttention over the R projected keys) against the
// composite path in float64: outputs and the gradients of q, k, v, E and F, with padding, odd
// lengths and head dims 32/64/80/128.
TEST(Linformer, FusedMatchesCompositeForwardAndBackward) {
  torch::manual_seed(6);
  for (int64_t t : {1, 5, 63, 64, 65, 1000}) {
    for (int64_t d : {32, 64, 80, 128}) {
      if (t == 1000 && d != 80) continue;  // one long case is enough
      const int64_t B = 2, H = 2, R = 19, max_len = 1003;
      auto q = torch::randn({B, H, t, d}, torch::kDouble);
      auto k = torch::randn({B, H, t, d}, torch::kDouble);
      auto v = torch::randn({B, H, t, d}, torch::kDouble);
      auto e = torch::randn({R, max_len}, torch::kDouble) / std::sqrt(double(R));
      auto f = torch::randn({R, max_len}, torch::kDouble) / std::sqrt(double(R));
      auto pad = torch::rand({B, t}) > 0.3;
      pad[0].fill_(true);
      auto fn = [&](const std::vector<at::Tensor>& in) {
        return linformer_attention(in[0], in[1], in[2], in[3], in[4], test::mask_of(false, pad));
      };
      auto probe = torch::randn({B, H, t, d}, torch::kDouble);
      at::Tensor want;
      std::vector<at::Tensor> want_g;
      {
        ImplGuard g(Impl::kComposite);
        want = fn({q, k, v, e, f});
        want_g = test::grads_of(fn, {q, k, v, e, f}, probe);
      }
      ImplGuard g(Impl::kFused);
      const std::string where = "T " + std::to_string(t) + " D " + std::to_string(d);
      EXPECT_TRUE(test::all_close(fn({q, k, v, e, f}), want, 1e-10, 1e-11)) << where;
      auto got_g = test::grads_of(fn, {q, k, v, e, f}, probe);
      for (int n = 0; n < 5; ++n) {
        EXPECT_TRUE(test::all_close(got_g[n], want_g[n], 1e-9, 1e-10)) << where << " grad " << n;
      }
      auto got32 =
          linformer_attention(q.to(torch::kFloat), k.to(torch::kFloat), v.to(torch::kFloat),
                              e.to(torch::kFloat), f.to(torch::kFloat), test::mask_of(false, pad));
      // float32: the projections sum S products, so the error grows like √S·ε.
      EXPECT_TRUE(test::all_close(got32, want, 1e-3, 2e-4)) << where << " float32";
    }
  }
}

// No [B·H, R, S] broadcast of E and no [T, R] probabilities: the fused path holds O((S + T)·D)
// tensors beyond the projections.
TEST(Linformer, FusedUsesLessMemoryThanComposite) {
  MemoryTracker::install();
  auto growth = [](Impl impl) {
    ImplGuard g(impl);
    const int64_t t = 4096;
    auto q = torch::randn({1, 4, t, 64}, torch::requires_grad());
    auto e = torch::randn({256, t}, torch::requires_grad());
    const int64_t before = MemoryTracker::current_bytes();
    MemoryTracker::reset_peak();
    linformer_attention(q, q, q, e, e).sum().backward();
    return static_cast<double>(MemoryTracker::peak_bytes() - before);
  };
  const double fused = growth(Impl::kFused), composite = growth(Impl::kComposite);
  EXPECT_LT(fused, composite / 2) << "fused " << fused << " vs composite " << composite;
}

TEST(Linformer, RefusesCausalAndOverlongInput) {
  MixerConfig c;
  c.dim = 16;
  c.heads = 2;
  c.max_len = 32;
  c.causal = true;
  try {
    Linformer m{LinformerOptions(c)};
    FAIL() << "causal linformer was accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("future"), std::string::npos);
  }
  c.causal = false;
  Linformer m{LinformerOptions(c).proj_len(8)};
  EXPECT_NO_THROW(m->forward(torch::randn({1, 32, 16})));
  EXPECT_THROW(m->forward(torch::randn({1, 33, 16})), c10::Error);
  EXPECT_THROW(Linformer{LinformerOptions(c).proj_len(0)}, c10::Error);
}

}  // namespace
}  // namespace longseq
