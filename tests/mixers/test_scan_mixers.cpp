// minGRU / minLSTM / S6 mixers: the fused linear scan and the log-space parallel scan agree,
// step() (token by token, from the carried state) equals the parallel forward, and the recurrence
// matches a plain sequential loop written from the paper's equations.
#include <longseq/attention.h>
#include <longseq/impl.h>
#include <longseq/mixers/min_rnn.h>
#include <longseq/model.h>
#include <longseq/registry.h>

#include "test_util.h"

namespace longseq {
namespace {

MixerConfig config(int64_t dim) {
  MixerConfig c;
  c.dim = dim;
  c.heads = 1;
  c.max_len = 64;
  c.causal = true;
  return c;
}

TEST(ScanMixers, MinGruEqualsTheSequentialRecurrenceOfThePaper) {
  torch::manual_seed(0);
  MinRnn m(MinRnnOptions(config(6), /*lstm=*/false).hidden(5));
  m->to(torch::kDouble);
  auto x = torch::randn({2, 9, 6}, torch::kDouble);
  auto y = m->forward(x);
  // h_t = (1 − z) h + z g(h̃): a loop over t, from the module's own weights.
  auto params = m->named_parameters();
  auto k = torch::linear(x, params["in.weight"], params["in.bias"]).chunk(2, 2);
  auto h = torch::zeros({2, 5}, torch::kDouble);
  std::vector<at::Tensor> hs;
  for (int64_t t = 0; t < 9; ++t) {
    auto z = torch::sigmoid(k[0].select(1, t));
    auto pre = k[1].select(1, t);
    auto g = torch::where(pre >= 0, pre + 0.5, torch::sigmoid(pre));
    h = (1 - z) * h + z * g;
    hs.push_back(h);
  }
  auto want = torch::linear(torch::stack(hs, 1), params["out.weight"]);
  EXPECT_TRUE(test::all_close(y, want, 1e-12, 1e-12));
}

TEST(ScanMixers, FusedAndLogSpaceScansAgreeWithGradients) {
  for (const std::string name : {"mingru", "minlstm"}) {
    SCOPED_TRACE(name);
    torch::manual_seed(1);
    auto m = make_mixer(name, config(8), {});
    auto x = torch::randn({3, 40, 8});
    auto pad = padding_mask_from_lengths(torch::tensor({40, 17, 3}), 40);
    std::vector<at::Tensor> outs, grads;
    for (Impl impl : {Impl::kFused, Impl::kComposite}) {
      ImplGuard guard(impl);
      auto xi = x.clone().requires_grad_();
      auto y = m->forward(xi, pad);
      y.pow(2).sum().backward();
      outs.push_back(y.detach());
      grads.push_back(xi.grad());
    }
    EXPECT_TRUE(test::all_close(outs[0], outs[1], 1e-5, 1e-5));
    EXPECT_TRUE(test::all_close(grads[0], grads[1], 1e-4, 1e-5));
  }
}

TEST(ScanMixers, StepEqualsParallelForward) {
  for (const std::string name : {"mingru", "minlstm", "s6"}) {
    for (Impl impl : {Impl::kFused, Impl::kComposite}) {
      SCOPED_TRACE(name + (impl == Impl::kFused ? " fused" : " composite"));
      ImplGuard guard(impl);
      torch::manual_seed(2);
      auto m = make_mixer(name, config(8),
                          name == "s6"
                              ? std::map<std::string, std::string>{{"state", "5"}, {"conv", "3"}}
                              : std::map<std::string, std::string>{});
      m->eval();
      auto x = torch::randn({2, 21, 8});
      auto want = m->forward(x);
      DecodeState state;
      std::vector<at::Tensor> got;
      int64_t t = 0;
      for (int64_t n : {4, 1, 1, 7, 1, 2, 5}) {
        got.push_back(m->step(x.narrow(1, t, n), state));
        t += n;
      }
      ASSERT_EQ(t, 21);
      EXPECT_TRUE(test::all_close(at::cat(got, 1), want, 1e-5, 1e-5));
    }
  }
}

TEST(ScanMixers, SelectiveSsmGradientsCentralDifferences) {
  torch::manual_seed(3);
  auto m = make_mixer("s6", config(4), {{"state", "3"}, {"expand", "1"}, {"conv", "2"}});
  m->to(torch::kDouble);
  auto pad = padding_mask_from_lengths(torch::tensor({5, 3}), 5);
  auto f = [&](const std::vector<at::Tensor>& in) { return m->forward(in[0], pad); };
  EXPECT_TRUE(test::gradcheck(f, {torch::randn({2, 5, 4}, torch::kDouble)}, 1e-6, 1e-5));
}

TEST(ScanMixers, ModelsGenerateWithScanMixersIncrementally) {
  ModelConfig c;
  c.vocab_size = 11;
  c.layers = 3;
  c.mixers = {"mingru", "s6", "lstm"};
  c.mixer.dim = 16;
  c.mixer.heads = 2;
  c.mixer.max_len = 40;
  c.mixer.causal = true;
  torch::manual_seed(4);
  SequenceModel m(c);
  m->to(torch::kDouble);
  m->eval();
  EXPECT_EQ(m->step_unsupported(), "");
  torch::NoGradGuard ng;
  auto tokens = torch::randint(0, 11, {2, 15}, torch::kLong);
  auto want = m->forward(tokens);
  ModelDecodeState state;
  auto a = m->step(tokens.narrow(1, 0, 6), state);
  std::vector<at::Tensor> pieces{a};
  for (int64_t t = 6; t < 15; ++t) pieces.push_back(m->step(tokens.narrow(1, t, 1), state));
  EXPECT_TRUE(test::all_close(at::cat(pieces, 1), want, 1e-10, 1e-10));
}

}  // namespace
}  // namespace longseq
