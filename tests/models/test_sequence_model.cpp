// Sequence models over the registry: heads, hybrids, causality, padding, chunked feed-forward.
#include <longseq/attention.h>
#include <longseq/model.h>
#include <longseq/registry.h>

#include "test_util.h"

namespace longseq {
namespace {

ModelConfig tiny(const std::string& head) {
  ModelConfig c;
  c.vocab_size = 11;
  c.layers = 2;
  c.mixer.dim = 16;
  c.mixer.heads = 2;
  c.mixer.max_len = 32;
  c.head = head;
  c.num_outputs = head == "lm" ? 0 : 3;
  c.mixer_options["longformer"] = {{"window", "4"}};
  c.mixer_options["performer"] = {{"features", "16"}};
  c.mixer_options["reformer"] = {{"buckets", "4"}, {"chunk", "4"}};
  c.mixer_options["linformer"] = {{"proj_len", "8"}};
  return c;
}

void keep_used_options(ModelConfig& c) {
  for (auto it = c.mixer_options.begin(); it != c.mixer_options.end();) {
    if (std::find(c.mixers.begin(), c.mixers.end(), it->first) == c.mixers.end()) {
      it = c.mixer_options.erase(it);
    } else {
      ++it;
    }
  }
}

TEST(SequenceModel, EveryMixerBuildsAnLmWithTheRightShape) {
  for (const auto& name : mixer_names()) {
    auto c = tiny("lm");
    c.mixers = {name};
    c.mixer.causal = find_mixer(name).supports_causal;
    keep_used_options(c);
    torch::manual_seed(0);
    SequenceModel m(c);
    auto y = m->forward(torch::randint(0, 11, {3, 9}, torch::kLong));
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{3, 9, 11})) << name;
    EXPECT_TRUE(y.isfinite().all().item<bool>()) << name;
  }
}

TEST(SequenceModel, CausalHybridLmIgnoresFutureTokens) {
  auto c = tiny("lm");
  c.layers = 4;
  c.mixers = {"exact", "performer", "longformer", "reformer"};
  c.mixer.causal = true;
  c.positions = "sinusoidal";
  c.norm = "rmsnorm";
  keep_used_options(c);
  torch::manual_seed(1);
  SequenceModel m(c);
  m->eval();
  m->to(torch::kDouble);
  auto x = torch::randint(0, 11, {2, 20}, torch::kLong);
  auto y = m->forward(x);
  auto x2 = x.clone();
  x2.narrow(1, 12, 8).random_(0, 11);
  auto y2 = m->forward(x2);
  EXPECT_TRUE(test::all_close(y2.narrow(1, 0, 12), y.narrow(1, 0, 12), 1e-10, 1e-10));
  EXPECT_FALSE(test::all_close(y2.narrow(1, 12, 8), y.narrow(1, 12, 8), 1e-6, 1e-6));
}

TEST(SequenceModel, ClassifierMeanPoolsOnlyRealTokens) {
  auto c = tiny("classify");
  c.mixers = {"exact"};
  keep_used_options(c);
  torch::manual_seed(2);
  SequenceModel m(c);
  m->eval();
  auto x = torch::randint(0, 11, {2, 10}, torch::kLong);
  auto pad = padding_mask_from_lengths(torch::tensor({10, 6}), 10);
  auto y = m->forward(x, pad);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 3}));
  auto x2 = x.clone();
  x2[1].narrow(0, 6, 4).random_(0, 11);  // padding content changes nothing
  EXPECT_TRUE(test::all_close(m->forward(x2, pad), y, 1e-5, 1e-6));
  // Equal to classifying the unpadded sequence alone (learned positions start at 0 either way).
  auto alone = m->forward(x[1].narrow(0, 0, 6).unsqueeze(0));
  EXPECT_TRUE(test::all_close(alone[0], y[1], 1e-5, 1e-6));
}

TEST(SequenceModel, ContinuousInputsAndPerPositionHead) {
  auto c = tiny("per_position");
  c.vocab_size = 0;
  c.input_dim = 2;
  c.num_outputs = 1;
  c.mixers = {"performer"};
  keep_used_options(c);
  SequenceModel m(c);
  auto y = m->forward(torch::randn({4, 7, 2}));
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{4, 7, 1}));
}

TEST(SequenceModel, ChunkedFeedForwardEqualsWhole) {
  auto c = tiny("lm");
  c.mixers = {"exact"};
  keep_used_options(c);
  torch::manual_seed(3);
  SequenceModel whole(c);
  c.ffn_chunk = 3;
  torch::manual_seed(3);
  SequenceModel chunked(c);
  auto x = torch::randint(0, 11, {2, 13}, torch::kLong);
  EXPECT_TRUE(test::all_close(chunked->forward(x), whole->forward(x), 1e-6, 1e-6));
}

TEST(SequenceModel, ClearConfigErrors) {
  auto expect_error = [](ModelConfig c, const std::string& needle) {
    try {
      SequenceModel m(c);
      ADD_FAILURE() << "accepted a bad config, expected: " << needle;
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what_without_backtrace()).find(needle), std::string::npos)
          << e.what_without_backtrace();
    }
  };
  auto c = tiny("lm");
  c.mixers = {"exact"};
  keep_used_options(c);
  auto bad = c;
  bad.mixers = {"exact", "performer", "exact"};
  expect_error(bad, "one per layer");
  bad = c;
  bad.mixers = {"nosuch"};
  expect_error(bad, "valid mixers");
  bad = c;
  bad.norm = "batchnorm";
  expect_error(bad, "`norm` must be one of layernorm, rmsnorm");
  bad = c;
  bad.positions = "alibi";
  expect_error(bad, "`positions`");
  bad = c;
  bad.head = "classify";
  bad.num_outputs = 0;
  expect_error(bad, "num_outputs");
  bad = c;
  bad.mixer_options["performer"] = {{"features", "8"}};
  expect_error(bad, "which no layer uses");
  bad = c;
  bad.mixer_options["exact"] = {{"causal", "true"}};  // model.causal is the only entrance
  expect_error(bad, "set it with `model.causal`");
  SequenceModel m(c);
  EXPECT_THROW(m->forward(torch::randint(0, 11, {1, 33}, torch::kLong)), c10::Error);  // > max_len
  EXPECT_THROW(m->forward(torch::full({1, 4}, 11, torch::kLong)), c10::Error);  // id >= vocab
  EXPECT_THROW(m->forward(torch::randn({1, 4})), c10::Error);                   // not int64
}

}  // namespace
}  // namespace longseq
