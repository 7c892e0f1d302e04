// Reversible residual stack: the recomputing backward equals ordinary autograd through the same
// coupling (dropout, random-feature redraws and LSH hashing replayed exactly), and its activation
// memory does not grow with depth.
#include <longseq/memory_tracker.h>
#include <longseq/model.h>
#include <longseq/registry.h>

#include "test_util.h"

namespace longseq {
namespace {

ModelConfig reversible_config(const std::string& mixer) {
  ModelConfig c;
  c.vocab_size = 13;
  c.layers = 3;
  c.mixers = {mixer};
  c.mixer.dim = 16;
  c.mixer.heads = 2;
  c.mixer.max_len = 40;
  c.mixer.causal = find_mixer(mixer).supports_causal;
  c.mixer.attn_dropout = 0.1;
  c.dropout = 0.1;
  c.reversible = true;
  if (mixer == "longformer") c.mixer_options[mixer] = {{"window", "4"}, {"global_tokens", "1"}};
  if (mixer == "performer") c.mixer_options[mixer] = {{"features", "8"}, {"redraw", "1"}};
  if (mixer == "reformer") {
    c.mixer_options[mixer] = {{"buckets", "4"}, {"chunk", "4"}, {"n_hashes", "2"}, {"redraw", "1"}};
  }
  if (mixer == "linformer") c.mixer_options[mixer] = {{"proj_len", "6"}};
  return c;
}

struct StepResult {
  at::Tensor loss, next_random;
  std::vector<at::Tensor> grads;
};

StepResult train_step(SequenceModel& m, const at::Tensor& tokens, const at::Tensor& padding) {
  m->zero_grad();
  torch::manual_seed(123);
  auto logits = m->forward(tokens, padding);  // [B, T, V]
  auto loss = logits.pow(2).mean() + logits.select(2, 3).sum() * 0.01;
  loss.backward();
  StepResult r{loss.detach(), torch::rand({4}, torch::kDouble), {}};
  for (const auto& p : m->parameters()) {
    r.grads.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  }
  return r;
}

TEST(Reversible, RecomputedGradientsEqualOrdinaryAutogradForEveryMixer) {
  for (const auto& name : mixer_names()) {
    SCOPED_TRACE(name);
    torch::manual_seed(0);
    SequenceModel m(reversible_config(name));
    m->to(torch::kDouble);
    m->train();
    auto tokens = torch::randint(0, 13, {2, 23}, torch::kLong);
    auto padding = torch::ones({2, 23}, torch::kBool);
    padding[1].narrow(0, 17, 6).fill_(false);
    // One call first, so redraw=1 mixers redraw on the compared call (the replay must not).
    {
      torch::NoGradGuard ng;
      m->forward(tokens, padding);
    }
    std::vector<at::Tensor> buffers;
    for (const auto& b : m->buffers()) buffers.push_back(b.clone());

    m->set_reversible_recompute(false);
    const StepResult plain = train_step(m, tokens, padding);
    {
      torch::NoGradGuard ng;
      size_t i = 0;
      for (auto& b : m->buffers()) b.copy_(buffers[i++]);
    }
    m->set_reversible_recompute(true);
    const StepResult rev = train_step(m, tokens, padding);

    EXPECT_TRUE(test::all_close(rev.loss, plain.loss, 0, 0));
    EXPECT_TRUE(test::all_close(rev.next_random, plain.next_random, 0, 0))
        << "backward's replay must leave the caller's RNG stream where forward left it";
    ASSERT_EQ(rev.grads.size(), plain.grads.size());
    size_t nonzero = 0;
    for (size_t i = 0; i < rev.grads.size(); ++i) {
      EXPECT_TRUE(test::all_close(rev.grads[i], plain.grads[i], 1e-9, 1e-11)) << "parameter " << i;
      nonzero += plain.grads[i].abs().sum().item<double>() > 0;
    }
    EXPECT_GT(nonzero, rev.grads.size() / 2);  // the comparison is not between zeros
    // Redraw counters advanced exactly once (for the compared call), in both runs.
    for (const auto& b : m->named_buffers()) {
      if (b.key().find("redraw_state") != std::string::npos) {
        EXPECT_EQ(b.value()[0].item<int64_t>(), 2) << b.key();
      }
    }
  }
}

TEST(Reversible, DropoutIsActiveSoTheReplayMatters) {
  // Guard against the test above passing vacuously: two training forwards with different RNG
  // states differ, so a replay that did not restore the state would change the gradients.
  torch::manual_seed(0);
  SequenceModel m(reversible_config("exact"));
  m->to(torch::kDouble);
  m->train();
  auto tokens = torch::randint(0, 13, {2, 11}, torch::kLong);
  torch::NoGradGuard ng;
  torch::manual_seed(1);
  auto a = m->forward(tokens);
  torch::manual_seed(2);
  auto b = m->forward(tokens);
  EXPECT_GT((a - b).abs().max().item<double>(), 1e-3);
}

TEST(Reversible, MatchesAnOrdinaryStackInEvalOnlyInShape) {
  // Reversible and ordinary stacks are different functions; the reversible one still maps
  // [B, T] tokens to [B, T, V] logits, is causal, and runs without grad.
  auto c = reversible_config("exact");
  c.dropout = 0;
  c.mixer.attn_dropout = 0;
  torch::manual_seed(0);
  SequenceModel m(c);
  m->eval();
  auto tokens = torch::randint(0, 13, {2, 20}, torch::kLong);
  auto y = m->forward(tokens);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, 20, 13}));
  auto changed = tokens.clone();
  changed.narrow(1, 12, 8).random_(0, 13);
  auto y2 = m->forward(changed);
  EXPECT_TRUE(test::all_close(y2.narrow(1, 0, 12), y.narrow(1, 0, 12), 1e-6, 1e-6));
}

int64_t training_peak_bytes(int64_t layers, bool reversible) {
  ModelConfig c;
  c.vocab_size = 8;
  c.layers = layers;
  c.mixers = {"exact"};
  c.mixer.dim = 32;
  c.mixer.heads = 2;
  c.mixer.max_len = 512;
  c.mixer.causal = true;
  c.reversible = reversible;
  torch::manual_seed(0);
  SequenceModel m(c);
  auto tokens = torch::randint(0, 8, {4, 512}, torch::kLong);
  MemoryTracker::install();
  const int64_t before = MemoryTracker::current_bytes();
  MemoryTracker::reset_peak();
  m->forward(tokens).pow(2).mean().backward();
  return MemoryTracker::peak_bytes() - before;
}

TEST(Reversible, ActivationMemoryDoesNotGrowWithDepth) {
  const double ordinary = static_cast<double>(training_peak_bytes(8, false)) /
                          static_cast<double>(training_peak_bytes(2, false));
  const double reversible = static_cast<double>(training_peak_bytes(8, true)) /
                            static_cast<double>(training_peak_bytes(2, true));
  std::cout << "training peak, 8 layers / 2 layers: ordinary " << ordinary << "x, reversible "
            << reversible << "x\n";
  EXPECT_GT(ordinary, 2.5) << "ordinary stack keeps every layer's activations";
  EXPECT_LT(reversible, 1.3) << "reversible stack keeps one layer's";
}

}  // namespace
}  // namespace longseq
