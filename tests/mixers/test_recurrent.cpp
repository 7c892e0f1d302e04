// Recurrent mixers (elman, lstm, gru) as modules: state in and out, step() == forward(), the
// attention read-out, bidirectional padding, initialisations, option errors.
#include <longseq/attention.h>
#include <longseq/mixers/recurrent.h>
#include <longseq/registry.h>

#include "test_util.h"

namespace longseq {
namespace {

MixerConfig config(bool causal) {
  MixerConfig c;
  c.dim = 8;
  c.heads = 1;
  c.max_len = 64;
  c.causal = causal;
  return c;
}

TEST(RecurrentMixer, StepAndChunkedStateEqualForwardWithAndWithoutReadout) {
  for (const std::string name : {"elman", "lstm", "gru"}) {
    for (const std::string readout : {"none", "attention"}) {
      SCOPED_TRACE(name + " " + readout);
      torch::manual_seed(0);
      auto m = make_mixer(name, config(true), {{"hidden", "6"}, {"readout", readout}});
      m->to(torch::kDouble);
      m->eval();
      auto x = torch::randn({2, 17, 8}, torch::kDouble);
      auto want = m->forward(x);
      DecodeState s;
      std::vector<at::Tensor> parts;
      int64_t t = 0;
      for (int64_t n : {5, 1, 1, 10}) {
        parts.push_back(m->step(x.narrow(1, t, n), s));
        t += n;
      }
      EXPECT_TRUE(test::all_close(at::cat(parts, 1), want, 1e-10, 1e-11));
      EXPECT_EQ(s.position, 17);
    }
  }
}

TEST(RecurrentMixer, ReadoutIsCausalAndChangesTheOutput) {
  torch::manual_seed(1);
  auto plain = make_mixer("lstm", config(true), {});
  torch::manual_seed(1);
  auto attn = make_mixer("lstm", config(true), {{"readout", "attention"}});
  auto x = torch::randn({1, 12, 8});
  EXPECT_FALSE(test::all_close(attn->forward(x), plain->forward(x), 1e-3, 1e-3));
  auto x2 = x.clone();
  x2.narrow(1, 6, 6).normal_();
  EXPECT_TRUE(test::all_close(attn->forward(x2).narrow(1, 0, 6), attn->forward(x).narrow(1, 0, 6),
                              1e-6, 1e-6));
}

TEST(RecurrentMixer, BidirectionalIgnoresPaddingAndRefusesCausal) {
  torch::manual_seed(2);
  auto m = make_mixer("gru", config(false), {{"bidirectional", "true"}, {"readout", "attention"}});
  auto x = torch::randn({2, 10, 8});
  auto pad = padding_mask_from_lengths(torch::tensor({10, 4}), 10);
  auto y = m->forward(x, pad);
  auto x2 = x.clone();
  x2[1].narrow(0, 4, 6).normal_();
  EXPECT_TRUE(
      test::all_close(m->forward(x2, pad)[1].narrow(0, 0, 4), y[1].narrow(0, 0, 4), 1e-6, 1e-6));
  // The reverse pass reads the future: no step(), no causal.
  EXPECT_NE(m->step_unsupported().find("bidirectional"), std::string::npos);
  EXPECT_TRUE(test::throws_with(
      [&] {
        make_mixer("gru", config(true), {{"bidirectional", "true"}});
      },
      "cannot be combined with `causal`"));
}

TEST(RecurrentMixer, InitialisationsOfTheRecurrentWeights) {
  torch::manual_seed(3);
  auto ortho = std::dynamic_pointer_cast<RecurrentImpl>(
      make_mixer("lstm", config(true), {{"init", "orthogonal"}}));
  auto w = ortho->weights(0).w_hh;  // [4H, H]
  for (int64_t g = 0; g < 4; ++g) {
    auto block = w.narrow(0, g * 8, 8);
    EXPECT_TRUE(test::all_close(block.matmul(block.t()), torch::eye(8), 1e-5, 1e-5)) << g;
  }
  auto ident = std::dynamic_pointer_cast<RecurrentImpl>(
      make_mixer("elman", config(true), {{"init", "identity"}}));
  EXPECT_TRUE(test::all_close(ident->weights(0).w_hh, torch::eye(8), 0, 0));
  EXPECT_TRUE(test::throws_with(
      [&] {
        make_mixer("elman", config(true), {{"init", "xavier"}});
      },
      "init"));
}

TEST(RecurrentMixer, InitialStateInFinalStateOut) {
  torch::manual_seed(4);
  auto m = std::dynamic_pointer_cast<RecurrentImpl>(make_mixer("lstm", config(true), {}));
  auto x = torch::randn({3, 14, 8});
  auto whole = m->forward_with_state(x, {}, {}, {});
  auto first = m->forward_with_state(x.narrow(1, 0, 9), {}, {}, {});
  auto second = m->forward_with_state(x.narrow(1, 9, 5), {}, first[1], first[2]);
  EXPECT_TRUE(test::all_close(at::cat({first[0], second[0]}, 1), whole[0], 1e-5, 1e-6));
  EXPECT_TRUE(test::all_close(second[1], whole[1], 1e-5, 1e-6));
  EXPECT_TRUE(test::all_close(second[2], whole[2], 1e-5, 1e-6));
  EXPECT_TRUE(test::throws_with(
      [&] {
        m->forward_with_state(x, {}, torch::zeros({1, 3, 5}), {});
      },
      "expected initial state of shape [1, 3, 8]"));
}

}  // namespace
}  // namespace longseq
