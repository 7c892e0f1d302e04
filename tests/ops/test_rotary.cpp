// Rotary embedding: relative positions only, norms kept, mixers honour it, linformer refuses it.
#include <longseq/attention.h>
#include <longseq/registry.h>

#include "test_util.h"

namespace longseq {
namespace {

TEST(Rotary, ScoresDependOnRelativePositionOnly) {
  torch::manual_seed(0);
  auto q = torch::randn({2, 3, 9, 80}, torch::kDouble),
       k = torch::randn({2, 3, 9, 80}, torch::kDouble);
  auto s0 = torch::matmul(rotary_embedding(q), rotary_embedding(k).transpose(-1, -2));
  auto s7 = torch::matmul(rotary_embedding(q, 7), rotary_embedding(k, 7).transpose(-1, -2));
  EXPECT_TRUE(test::all_close(s7, s0, 1e-10, 1e-10));
  EXPECT_TRUE(test::all_close(rotary_embedding(q).norm(2, -1), q.norm(2, -1), 1e-12, 1e-12));
  // Position 0 is not rotated; others are.
  EXPECT_TRUE(test::all_close(rotary_embedding(q).narrow(2, 0, 1), q.narrow(2, 0, 1), 0, 0));
  EXPECT_FALSE(test::all_close(rotary_embedding(q).narrow(2, 1, 1), q.narrow(2, 1, 1), 1e-3, 1e-3));
  EXPECT_THROW(rotary_embedding(torch::randn({1, 1, 4, 5})), c10::Error);
}

TEST(Rotary, EveryMixerThatAcceptsItStaysCausalAndChangesOutputs) {
  for (const auto& name : mixer_names()) {
    MixerConfig c;
    c.dim = 16;
    c.heads = 2;
    c.max_len = 512;  // room for longformer's default window
    c.rotary = true;
    c.causal = find_mixer(name).supports_causal;
    if (name == "linformer") {
      EXPECT_THROW(make_mixer(name, c), c10::Error);
      continue;
    }
    torch::manual_seed(1);
    auto with = make_mixer(name, c);
    c.rotary = false;
    torch::manual_seed(1);
    auto without = make_mixer(name, c);
    with->eval();
    without->eval();
    auto x = torch::randn({1, 12, 16});
    if (!std::dynamic_pointer_cast<AttentionMixerImpl>(with)) {
      // The recurrent family ignores rotary (order is implicit in the recurrence; docs/mixers.md),
      // so a hybrid model with rotary positions rotates only its attention layers.
      EXPECT_TRUE(test::all_close(with->forward(x), without->forward(x), 0, 0)) << name;
      continue;
    }
    EXPECT_FALSE(test::all_close(with->forward(x), without->forward(x), 1e-4, 1e-4)) << name;
    auto x2 = x.clone();
    x2.narrow(1, 6, 6).normal_();
    EXPECT_TRUE(test::all_close(with->forward(x2).narrow(1, 0, 6), with->forward(x).narrow(1, 0, 6),
                                1e-5, 1e-5))
        << name;
  }
}

}  // namespace
}  // namespace longseq
