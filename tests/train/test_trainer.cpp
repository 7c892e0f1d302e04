// Trainer: schedule, determinism, learning on a tiny task, non-finite guard.
#include <longseq/train.h>

#include "test_util.h"

namespace longseq {
namespace {

TrainConfig tiny_mqar() {
  TrainConfig c;
  c.task = "mqar";
  c.task_options = {{"length", "24"}, {"pairs", "4"}, {"vocab", "24"}};
  c.model.layers = 2;
  c.model.mixers = {"exact"};
  c.model.mixer.dim = 32;
  c.model.mixer.heads = 2;
  c.model.mixer.causal = true;
  c.model.ffn_mult = 2;
  c.steps = 300;
  c.batch_size = 32;
  c.lr = 1e-2;
  c.warmup = 10;
  c.eval_every = 0;
  c.seed = 1;
  return c;
}

TEST(Trainer, WarmupThenCosineSchedule) {
  auto c = tiny_mqar();
  c.steps = 110;
  c.warmup = 10;
  c.lr = 1.0;
  c.min_lr_ratio = 0.1;
  Trainer t(c);
  EXPECT_NEAR(t.lr_at(0), 0.1, 1e-12);
  EXPECT_NEAR(t.lr_at(9), 1.0, 1e-12);
  EXPECT_NEAR(t.lr_at(10), 1.0, 1e-12);
  EXPECT_NEAR(t.lr_at(60), 0.55, 1e-12);  // half way down the cosine
  EXPECT_NEAR(t.lr_at(110), 0.1, 1e-12);
}

TEST(Trainer, SameSeedSameLosses) {
  auto c = tiny_mqar();
  c.model.dropout = 0.1;
  // Dropout draws from the global generator, which a Trainer seeds when built: runs are
  // reproducible one after the other (not interleaved in one process).
  std::vector<double> first, second;
  {
    Trainer a(c);
    for (int i = 0; i < 4; ++i) first.push_back(a.step().loss);
  }
  Trainer b(c);
  for (int i = 0; i < 4; ++i) second.push_back(b.step().loss);
  EXPECT_EQ(first, second);
}

TEST(Trainer, LearnsAssociativeRecall) {
  Trainer t(tiny_mqar());
  const double before = evaluate(t.model(), t.task(), Split::kValidation, 64, 4).loss;
  t.run();
  const auto after = evaluate(t.model(), t.task(), Split::kValidation, 64, 4);
  EXPECT_LT(after.loss, 0.5 * before) << "validation loss " << before << " -> " << after.loss;
  EXPECT_GT(after.accuracy, 0.2);
}

TEST(Trainer, SkipsNonFiniteStepsAndStopsWithAdvice) {
  auto c = tiny_mqar();
  c.max_bad_steps = 3;
  Trainer t(c);
  {
    torch::NoGradGuard g;
    t.model()->parameters()[0].fill_(std::nan(""));
  }
  t.run();
  EXPECT_TRUE(t.stopped());
  EXPECT_EQ(t.current_step(), 3);
  EXPECT_EQ(t.skipped_steps(), 3);
  EXPECT_NE(t.stop_reason().find("lower `lr`"), std::string::npos);
}

TEST(Trainer, ClearConfigErrors) {
  auto c = tiny_mqar();
  c.steps = 0;
  EXPECT_THROW(Trainer{c}, c10::Error);
  c = tiny_mqar();
  c.task = "nosuch";
  EXPECT_THROW(Trainer{c}, c10::Error);
  c = tiny_mqar();
  c.lr = -1;
  EXPECT_THROW(Trainer{c}, c10::Error);
}

}  // namespace
}  // namespace longseq
