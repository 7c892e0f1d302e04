// linformer_attention equals softmax(Q(EK)ᵀ/√D)(FV), computed here in float64 by plain matmuls.
#include <longseq/attention.h>
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
  auto got = linformer_attention(q, k, v, e, e, pad);
  // Sequence 1 has 4 real tokens: equal to running on the first 4 keys with E sliced to 4 columns.
  auto want = linformer_attention(q[1].unsqueeze(0), k[1].unsqueeze(0).narrow(2, 0, 4),
                                  v[1].unsqueeze(0).narrow(2, 0, 4), e, e);
  EXPECT_TRUE(test::all_close(got[1].unsqueeze(0), want, 1e-12, 1e-12));
  // Changing padded keys changes nothing.
  auto k2 = k.clone();
  k2[1].narrow(1, 4, t - 4).normal_();
  EXPECT_TRUE(test::all_close(linformer_attention(q, k2, v, e, e, pad), got, 0, 0));
}

TEST(Linformer, GradientMatchesCentralDifferences) {
  torch::manual_seed(5);
  auto pad = padding_mask_from_lengths(torch::tensor({5, 3}), 5);
  auto f = [&](const std::vector<at::Tensor>& in) {
    return linformer_attention(in[0], in[1], in[2], in[3], in[4], pad);
  };
  EXPECT_TRUE(test::gradcheck(f, {torch::randn({2, 1, 5, 3}), torch::randn({2, 1, 5, 3}),
                                  torch::randn({2, 1, 5, 3}), torch::randn({3, 6}),
                                  torch::randn({3, 6})}));
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
