// Contract tests over the registry: every mixer, without edits here when one is added.
#include <longseq/attention.h>
#include <longseq/registry.h>

#include "test_util.h"

namespace longseq {
namespace {

// Small mechanism options so tiny shapes exercise the real structure (several chunks, buckets):
// each option's test values, declared beside it in the mixer's .cpp.
std::map<std::string, std::string> small_options(const std::string& name) {
  return find_mixer(name).test_options();
}

MixerConfig small_config(bool causal) {
  MixerConfig c;
  c.dim = 16;
  c.heads = 2;
  c.max_len = 32;
  c.causal = causal;
  c.seed = 11;
  return c;
}

class MixerContract : public ::testing::TestWithParam<std::string> {};

TEST_P(MixerContract, OutputShapeAndPadding) {
  torch::manual_seed(0);
  auto m = make_mixer(GetParam(), small_config(false), small_options(GetParam()));
  m->eval();  // fixed random features / hash rotations across the calls compared below
  auto x = torch::randn({3, 13, 16});
  auto y = m->forward(x);
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_TRUE(y.isfinite().all().item<bool>());
  auto pad = padding_mask_from_lengths(torch::tensor({13, 7, 1}), 13);
  auto yp = m->forward(x, pad);
  EXPECT_EQ(yp.sizes(), x.sizes());
  EXPECT_TRUE(yp.isfinite().all().item<bool>());
  // Padded keys are invisible: changing tokens past a sequence's length leaves its real outputs.
  auto x2 = x.clone();
  x2[1].narrow(0, 7, 6).normal_();
  x2[2].narrow(0, 1, 12).normal_();
  auto yp2 = m->forward(x2, pad);
  EXPECT_TRUE(test::all_close(yp2[1].narrow(0, 0, 7), yp[1].narrow(0, 0, 7), 1e-5, 1e-5));
  EXPECT_TRUE(test::all_close(yp2[2].narrow(0, 0, 1), yp[2].narrow(0, 0, 1), 1e-5, 1e-5));
}

TEST_P(MixerContract, CausalOutputsIgnoreFutureTokens) {
  const auto& spec = find_mixer(GetParam());
  if (!spec.supports_causal) {
    EXPECT_THROW(make_mixer(GetParam(), small_config(true), small_options(GetParam())), c10::Error);
    return;
  }
  torch::manual_seed(0);
  auto m = make_mixer(GetParam(), small_config(true), small_options(GetParam()));
  m->to(torch::kDouble);
  m->eval();
  auto x = torch::randn({2, 17, 16}, torch::kDouble);
  auto y = m->forward(x);
  for (int64_t t : {0, 3, 8, 15}) {
    auto x2 = x.clone();
    x2.narrow(1, t + 1, 17 - t - 1).mul_(5).add_(torch::randn({2, 17 - t - 1, 16}, torch::kDouble));
    auto y2 = m->forward(x2);
    EXPECT_TRUE(test::all_close(y2.narrow(1, 0, t + 1), y.narrow(1, 0, t + 1), 1e-10, 1e-10))
        << GetParam() << ": output at <= " << t << " changed when later tokens changed";
  }
}

TEST_P(MixerContract, DeterministicUnderSeed) {
  auto run = [&](uint64_t seed) {
    torch::manual_seed(seed);
    auto c = small_config(false);
    c.seed = seed;
    auto m = make_mixer(GetParam(), c, small_options(GetParam()));
    m->eval();
    torch::manual_seed(99);
    return m->forward(torch::randn({2, 9, 16}));
  };
  EXPECT_TRUE(test::all_close(run(5), run(5), 0, 0));
  EXPECT_FALSE(test::all_close(run(5), run(6), 1e-6, 1e-6));
}

TEST_P(MixerContract, FiniteGradientsForEveryParameter) {
  torch::manual_seed(0);
  for (bool causal : {false, true}) {
    if (causal && !find_mixer(GetParam()).supports_causal) continue;
    auto m = make_mixer(GetParam(), small_config(causal), small_options(GetParam()));
    m->train();
    auto x = torch::randn({2, 11, 16}, torch::requires_grad());
    auto pad = padding_mask_from_lengths(torch::tensor({11, 4}), 11);
    m->forward(x, pad).pow(2).sum().backward();
    EXPECT_TRUE(x.grad().isfinite().all().item<bool>());
    for (const auto& p : m->named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << GetParam() << " " << p.key() << " got no gradient";
      EXPECT_TRUE(p.value().grad().isfinite().all().item<bool>()) << GetParam() << " " << p.key();
    }
  }
}

TEST_P(MixerContract, GradientCheckFloat64TinyShapes) {
  for (bool causal : {false, true}) {
    if (causal && !find_mixer(GetParam()).supports_causal) continue;
    torch::manual_seed(0);
    auto c = small_config(causal);
    c.dim = 4;
    c.max_len = 8;
    auto opts = find_mixer(GetParam()).test_options(/*tiniest=*/true);
    auto m = make_mixer(GetParam(), c, opts);
    m->to(torch::kDouble);
    m->eval();
    auto pad = padding_mask_from_lengths(torch::tensor({5, 3}), 5);
    auto f = [&](const std::vector<at::Tensor>& in) { return m->forward(in[0], pad); };
    EXPECT_TRUE(test::gradcheck(f, {torch::randn({2, 5, 4}, torch::kDouble)}, 1e-6, 1e-5))
        << GetParam() << " causal " << causal;
  }
}

TEST_P(MixerContract, ClearErrorsForBadOptions) {
  const auto& spec = find_mixer(GetParam());
  const auto base = small_config(false);
  auto expect_error = [&](const std::map<std::string, std::string>& bad,
                          const std::string& needle) {
    auto o = small_options(GetParam());
    for (const auto& kv : bad) o[kv.first] = kv.second;
    try {
      make_mixer(GetParam(), base, o);
      ADD_FAILURE() << GetParam() << ": accepted bad options";
    } catch (const c10::Error& e) {
      const std::string msg = e.what_without_backtrace();
      EXPECT_NE(msg.find(GetParam()), std::string::npos) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << "expected '" << needle << "' in: " << msg;
    }
  };
  // Every integer option rejects negative values and names itself.
  for (const auto& o : spec.options) {
    if (o.kind == OptionKind::kInt) expect_error({{o.name, "-1"}}, o.name);
    if (o.kind != OptionKind::kString) expect_error({{o.name, "abc"}}, o.name);
  }
  expect_error({{"dim", "0"}}, "dim");
  expect_error({{"heads", "-2"}}, "heads");
  expect_error({{"heads", "3"}}, "divide");
  expect_error({{"attn_dropout", "1.5"}}, "dropout");
  expect_error({{"no_such_option", "1"}}, "valid options");
  // Longer than max_len.
  auto m = make_mixer(GetParam(), base, small_options(GetParam()));
  EXPECT_THROW(m->forward(torch::randn({1, 33, 16})), c10::Error);
  EXPECT_THROW(m->forward(torch::randn({1, 8, 15})), c10::Error);
}

INSTANTIATE_TEST_SUITE_P(Registry, MixerContract, ::testing::ValuesIn(mixer_names()),
                         [](const auto& info) { return info.param; });

TEST(Registry, UnknownMixerListsValidNames) {
  try {
    make_mixer("nosuch", MixerConfig{});
    FAIL();
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    for (const auto& n : mixer_names()) EXPECT_NE(msg.find(n), std::string::npos) << msg;
  }
}

TEST(Registry, HasTheFiveAttentionMechanisms) {
  for (const char* n : {"exact", "linformer", "longformer", "performer", "reformer"}) {
    EXPECT_NO_THROW(find_mixer(n));
  }
}

TEST(Registry, MechanismSpecificErrors) {
  auto c = small_config(false);
  EXPECT_THROW(make_mixer("performer", c, {{"features", "0"}}), c10::Error);
  EXPECT_THROW(make_mixer("linformer", c, {{"proj_len", "0"}}), c10::Error);
  EXPECT_THROW(make_mixer("longformer", c, {{"window", "64"}}), c10::Error);  // > max_len 32
  EXPECT_THROW(make_mixer("reformer", c, {{"buckets", "3"}}), c10::Error);
  EXPECT_THROW(make_mixer("performer", c, {{"kernel", "tanh"}}), c10::Error);
  c.causal = true;
  EXPECT_THROW(make_mixer("linformer", c), c10::Error);
}

}  // namespace
}  // namespace longseq
