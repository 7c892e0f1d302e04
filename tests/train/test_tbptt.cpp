// Truncated BPTT: the chunked pass computes the same loss as the full one; with no recurrent
// connection (W_hh = 0) its update equals full BPTT exactly, with one it differs (gradients are
// truncated); unsuitable models and tasks are refused with the reason.
#include <longseq/train.h>

#include "test_util.h"

namespace longseq {
namespace {

TrainConfig copy_with(const std::string& mixer, int64_t tbptt) {
  TrainConfig c;
  c.task = "copy";
  c.task_options = {{"blanks", "13"}};  // T = 33
  c.model.layers = 2;
  c.model.mixers = {mixer};
  c.model.mixer.dim = 16;
  c.model.mixer.heads = 2;
  c.model.mixer.causal = true;
  c.model.ffn_mult = 2;
  c.steps = 5;
  c.batch_size = 4;
  c.warmup = 1;
  c.eval_every = 0;
  c.seed = 3;
  c.tbptt = tbptt;
  return c;
}

std::vector<at::Tensor> params_after_step(Trainer& t, double* loss, bool zero_recurrence) {
  if (zero_recurrence) {
    torch::NoGradGuard ng;
    for (auto& p : t.model()->named_parameters()) {
      if (p.key().find("weight_hh") != std::string::npos) p.value().zero_();
    }
  }
  *loss = t.step().loss;
  std::vector<at::Tensor> out;
  for (const auto& p : t.model()->parameters()) out.push_back(p.detach().clone());
  return out;
}

TEST(Tbptt, SameLossAndExactUpdateWithoutRecurrence) {
  // Elman with W_hh = 0 has no path between steps (a GRU keeps z ⊙ h, an LSTM its cell state),
  // so truncating loses nothing: the chunked update must equal the full one.
  {
    const std::string mixer = "elman";
    Trainer full(copy_with(mixer, 0)), chunked(copy_with(mixer, 7));
    double lf = 0, lc = 0;
    auto pf = params_after_step(full, &lf, /*zero_recurrence=*/true);
    auto pc = params_after_step(chunked, &lc, /*zero_recurrence=*/true);
    EXPECT_NEAR(lf, lc, 1e-5);
    ASSERT_EQ(pf.size(), pc.size());
    for (size_t i = 0; i < pf.size(); ++i)
      EXPECT_TRUE(test::all_close(pc[i], pf[i], 1e-5, 1e-6)) << i;
  }
}

TEST(Tbptt, TruncationChangesTheGradientWhenStateCarriesInformation) {
  Trainer full(copy_with("lstm", 0)), chunked(copy_with("lstm", 7));
  double lf = 0, lc = 0;
  auto pf = params_after_step(full, &lf, false);
  auto pc = params_after_step(chunked, &lc, false);
  EXPECT_NEAR(lf, lc, 1e-5);  // the forward pass is the same function
  double diff = 0;
  for (size_t i = 0; i < pf.size(); ++i) diff += (pf[i] - pc[i]).abs().sum().item<double>();
  EXPECT_GT(diff, 1e-6);
  // Training keeps working in chunks.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(std::isfinite(chunked.step().loss));
}

TEST(Tbptt, RefusesModelsAndTasksItCannotChunk) {
  auto c = copy_with("reformer", 7);
  c.model.mixer_options["reformer"] = {{"buckets", "4"}, {"chunk", "4"}};
  EXPECT_TRUE(test::throws_with([&] { Trainer t(c); }, "`tbptt` runs the model step by step"));
  auto neg = copy_with("lstm", -1);
  EXPECT_TRUE(test::throws_with([&] { Trainer t(neg); }, "`tbptt` must be >= 0"));
}

}  // namespace
}  // namespace longseq
