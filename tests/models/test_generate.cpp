// Incremental decoding: step() equals forward() row for row (KV cache for exact and windowed
// attention, running state for causal Performer), caches stay bounded where the mixer allows,
// and generation with and without the cache produces the same tokens.
#include <longseq/generate.h>
#include <longseq/model.h>
#include <longseq/registry.h>

#include "test_util.h"

namespace longseq {
namespace {

ModelConfig lm(const std::string& mixer, const std::string& positions) {
  ModelConfig c;
  c.vocab_size = 17;
  c.layers = 2;
  c.mixers = {mixer};
  c.mixer.dim = 32;
  c.mixer.heads = 2;
  c.mixer.head_dim = 10;  // odd-ish head dim, inner width 20 != dim
  c.mixer.max_len = 48;
  c.mixer.causal = true;
  c.positions = positions;
  return c;
}

// Logits of the whole sequence through step(), fed in uneven pieces.
at::Tensor stepped_logits(SequenceModel& m, const at::Tensor& tokens) {
  ModelDecodeState state;
  std::vector<at::Tensor> out;
  const int64_t T = tokens.size(1);
  int64_t t = 0;
  for (int64_t piece : {5, 1, 3, 1, 1}) {
    if (t >= T) break;
    const int64_t n = std::min(piece, T - t);
    out.push_back(m->step(tokens.narrow(1, t, n), state));
    t += n;
  }
  while (t < T) out.push_back(m->step(tokens.narrow(1, t++, 1), state));
  EXPECT_EQ(state.position, T);
  return at::cat(out, 1);  // [B, T, V]
}

struct Case {
  std::string mixer;
  std::map<std::string, std::string> options;
};

TEST(Generate, StepEqualsForwardForEveryMixerWithIncrementalState) {
  const std::vector<Case> cases = {
      {"exact", {}},
      {"performer", {{"features", "12"}, {"chunk", "4"}}},
      {"performer", {{"features", "12"}, {"kernel", "relu"}}},
      {"longformer", {{"window", "3"}, {"dilation", "1,2"}, {"global_tokens", "2"}}},
      {"longformer", {{"window", "4"}, {"global_positions", "6"}}},
      {"longformer", {{"window", "2"}}},
  };
  for (const auto& cs : cases) {
    for (const std::string positions : {"learned", "sinusoidal", "rotary"}) {
      for (bool reversible : {false, true}) {
        SCOPED_TRACE(cs.mixer + " " + positions + (reversible ? " reversible" : ""));
        auto c = lm(cs.mixer, positions);
        c.mixer_options[cs.mixer] = cs.options;
        c.reversible = reversible;
        torch::manual_seed(3);
        SequenceModel m(c);
        m->to(torch::kDouble);
        m->eval();
        ASSERT_EQ(m->step_unsupported(), "");
        torch::NoGradGuard ng;
        auto tokens = torch::randint(0, 17, {3, 23}, torch::kLong);
        auto want = m->forward(tokens);  // [B, T, V]
        auto got = stepped_logits(m, tokens);
        EXPECT_TRUE(test::all_close(got, want, 1e-9, 1e-10));
      }
    }
  }
}

TEST(Generate, TokenShiftStepsLikeForwardAndIsCausal) {
  auto c = lm("exact", "learned");
  c.token_shift = true;
  torch::manual_seed(5);
  SequenceModel m(c);
  m->to(torch::kDouble);
  m->eval();
  torch::NoGradGuard ng;
  auto tokens = torch::randint(0, 17, {2, 19}, torch::kLong);
  auto want = m->forward(tokens);
  EXPECT_TRUE(test::all_close(stepped_logits(m, tokens), want, 1e-9, 1e-10));
  auto changed = tokens.clone();
  changed.narrow(1, 10, 9).random_(0, 17);
  EXPECT_TRUE(
      test::all_close(m->forward(changed).narrow(1, 0, 10), want.narrow(1, 0, 10), 1e-12, 1e-12));
  EXPECT_FALSE(
      test::all_close(m->forward(changed).narrow(1, 10, 1), want.narrow(1, 10, 1), 1e-6, 1e-6));
}

TEST(Generate, LongformerCacheKeepsOnlyTheWindowAndGlobalKeys) {
  auto c = lm("longformer", "learned");
  c.layers = 1;
  c.mixer_options["longformer"] = {{"window", "3"}, {"dilation", "1,2"}, {"global_tokens", "2"}};
  torch::manual_seed(0);
  SequenceModel m(c);
  m->eval();
  torch::NoGradGuard ng;
  ModelDecodeState state;
  for (int64_t t = 0; t < 40; ++t) m->step(torch::randint(0, 17, {1, 1}, torch::kLong), state);
  const auto& kpos = state.layers[0].tensors.at("pos");
  // Band keys back to W·dmax = 6 positions plus the two global tokens.
  EXPECT_EQ(kpos.numel(), 6 + 2);
  EXPECT_EQ(kpos[0].item<int64_t>(), 0);
  EXPECT_EQ(kpos[1].item<int64_t>(), 1);
  EXPECT_EQ(kpos[2].item<int64_t>(), 40 - 6);
  EXPECT_EQ(state.layers[0].tensors.at("k").size(2), 8);
}

TEST(Generate, PerformerStateDoesNotGrowWithLength) {
  auto c = lm("performer", "rotary");
  c.mixer_options["performer"] = {{"features", "12"}};
  torch::manual_seed(0);
  SequenceModel m(c);
  m->eval();
  torch::NoGradGuard ng;
  ModelDecodeState state;
  m->step(torch::randint(0, 17, {2, 30}, torch::kLong), state);
  EXPECT_EQ(state.layers[1].tensors.at("s").sizes(), (std::vector<int64_t>{2, 2, 12, 10}));
  EXPECT_EQ(state.layers[1].tensors.at("z").sizes(), (std::vector<int64_t>{2, 2, 12}));
}

TEST(Generate, CachedAndRecomputedGenerationAgree) {
  for (const std::string mixer : {"exact", "performer", "longformer"}) {
    SCOPED_TRACE(mixer);
    auto c = lm(mixer, "learned");
    if (mixer == "longformer") c.mixer_options[mixer] = {{"window", "4"}};
    torch::manual_seed(1);
    SequenceModel m(c);
    m->to(torch::kDouble);
    auto prompt = torch::randint(0, 17, {2, 4}, torch::kLong);
    for (double temperature : {0.0, 0.8}) {
      GenerateOptions o;
      o.max_new = 20;
      o.temperature = temperature;
      o.top_k = 5;
      o.seed = 9;
      auto cached = generate(m, prompt, o);
      o.use_cache = false;
      auto plain = generate(m, prompt, o);
      EXPECT_TRUE(cached.cached);
      EXPECT_FALSE(plain.cached);
      EXPECT_EQ(plain.why_uncached, "caching turned off");
      ASSERT_EQ(cached.tokens.sizes(), (std::vector<int64_t>{2, 24}));
      EXPECT_TRUE(cached.tokens.equal(plain.tokens)) << "temperature " << temperature;
      EXPECT_TRUE(cached.tokens.narrow(1, 0, 4).equal(prompt));
    }
  }
}

TEST(Generate, TopKOneIsGreedyAndSeedsChangeSamples) {
  auto c = lm("exact", "learned");
  torch::manual_seed(2);
  SequenceModel m(c);
  auto prompt = torch::randint(0, 17, {1, 3}, torch::kLong);
  GenerateOptions greedy;
  greedy.max_new = 12;
  greedy.temperature = 0;
  GenerateOptions top1 = greedy;
  top1.temperature = 1.5;
  top1.top_k = 1;
  EXPECT_TRUE(generate(m, prompt, greedy).tokens.equal(generate(m, prompt, top1).tokens));
  GenerateOptions a = greedy, b = greedy;
  a.temperature = b.temperature = 5.0;  // nearly uniform over 17 tokens
  a.seed = 1;
  b.seed = 2;
  EXPECT_FALSE(generate(m, prompt, a).tokens.equal(generate(m, prompt, b).tokens));
}

TEST(Generate, MixersWithoutIncrementalStateRecomputeAndSayWhy) {
  auto c = lm("reformer", "learned");
  c.mixer_options["reformer"] = {{"buckets", "4"}, {"chunk", "4"}};
  torch::manual_seed(0);
  SequenceModel m(c);
  EXPECT_NE(m->step_unsupported().find("layer 0: reformer"), std::string::npos)
      << m->step_unsupported();
  GenerateOptions o;
  o.max_new = 5;
  auto r = generate(m, torch::zeros({1, 2}, torch::kLong), o);
  EXPECT_FALSE(r.cached);
  EXPECT_EQ(r.tokens.size(1), 7);
  ModelDecodeState state;
  EXPECT_TRUE(test::throws_with(
      [&] {
        m->step(torch::zeros({1, 2}, torch::kLong), state);
      },
      "step() is not available"));
}

TEST(Generate, RejectsBadRequestsNamingTheArgument) {
  auto c = lm("exact", "learned");
  torch::manual_seed(0);
  SequenceModel m(c);
  GenerateOptions o;
  o.max_new = 48;
  EXPECT_TRUE(test::throws_with(
      [&] {
        generate(m, torch::zeros({1, 2}, torch::kLong), o);
      },
      "exceeds the model's `max_len` = 48"));
  o.max_new = 3;
  o.top_k = -1;
  EXPECT_TRUE(test::throws_with(
      [&] {
        generate(m, torch::zeros({1, 2}, torch::kLong), o);
      },
      "`top_k` must be >= 0"));
  o.top_k = 0;
  EXPECT_TRUE(test::throws_with([&] { generate(m, torch::zeros({2}, torch::kLong), o); },
                                "expected int64 prompt token ids [B, P]"));
  auto nc = lm("exact", "learned");
  nc.mixer.causal = false;
  SequenceModel bidirectional(nc);
  EXPECT_TRUE(test::throws_with(
      [&] {
        generate(bidirectional, torch::zeros({1, 2}, torch::kLong), o);
      },
      "needs a causal language model"));
  EXPECT_NE(bidirectional->step_unsupported().find("not causal"), std::string::npos);
}

}  // namespace
}  // namespace longseq
