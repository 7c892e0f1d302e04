// The linear transformer mixer: equals softmax-free attention with φ = elu + 1 computed
// explicitly from its own projections, causal and not, with padding; step() continues a causal
// sequence exactly as forward() computes it. (Shape, causality, determinism, gradients and
// option errors: the registry contract tests.)
#include <longseq/mixers/linear.h>
#include <longseq/registry.h>

#include "test_util.h"

namespace longseq {
namespace {

MixerConfig config(bool causal) {
  MixerConfig c;
  c.dim = 12;
  c.heads = 3;
  c.max_len = 64;
  c.causal = causal;
  return c;
}

// The mixer's output from its weights: x W_qᵀ, x W_kᵀ, x W_vᵀ split into heads, weights
// φ(q)·φ(k) masked, normalised, merged, W_o.
at::Tensor reference(LinearAttention& m, const at::Tensor& x, const at::Tensor& key_padding,
                     bool causal) {
  auto p = m->named_parameters();
  const int64_t B = x.size(0), T = x.size(1), H = 3, D = 4;
  auto heads = [&](const at::Tensor& w) {
    return at::matmul(x, w.t()).view({B, T, H, D}).transpose(1, 2);  // [B, H, T, D]
  };
  auto phi = [](const at::Tensor& t) { return at::elu(t) + 1; };
  auto q = heads(p["wq.weight"]), k = heads(p["wk.weight"]), v = heads(p["wv.weight"]);
  auto w = at::matmul(phi(q), phi(k).transpose(-2, -1));  // [B, H, T, T]
  if (causal) w = w * at::ones({T, T}, w.options()).tril();
  if (key_padding.defined()) w = w * key_padding.to(w.scalar_type()).view({B, 1, 1, T});
  auto den = w.sum(-1, /*keepdim=*/true);
  auto o = at::matmul(w, v) / den.masked_fill(den == 0, 1);  // [B, H, T, D]
  return at::matmul(o.transpose(1, 2).reshape({B, T, H * D}), p["wo.weight"].t());
}

TEST(LinearMixer, EqualsTheExplicitFormula) {
  for (bool causal : {false, true}) {
    for (const std::string chunk : {"1", "5", "32"}) {
      SCOPED_TRACE(std::string(causal ? "causal" : "non-causal") + " chunk " + chunk);
      torch::manual_seed(0);
      auto m = std::dynamic_pointer_cast<LinearAttentionImpl>(
          make_mixer("linear", config(causal), {{"chunk", chunk}}));
      ASSERT_TRUE(m);
      LinearAttention holder(m);
      holder->to(torch::kDouble);
      holder->eval();
      torch::NoGradGuard no_grad;
      auto x = torch::randn({3, 13, 12}, torch::kDouble);
      auto pad = padding_mask_from_lengths(torch::tensor({13, 6, 1}), 13);
      EXPECT_TRUE(
          test::all_close(holder->forward(x), reference(holder, x, {}, causal), 1e-10, 1e-12));
      EXPECT_TRUE(test::all_close(holder->forward(x, pad), reference(holder, x, pad, causal), 1e-10,
                                  1e-12));
    }
  }
}

TEST(LinearMixer, StepContinuesACausalSequenceAsForwardComputesIt) {
  torch::manual_seed(1);
  auto m = make_mixer("linear", config(true), {{"chunk", "4"}});
  m->to(torch::kDouble);
  m->eval();
  ASSERT_EQ(m->step_unsupported(), "");
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, 19, 12}, torch::kDouble);
  auto want = m->forward(x);  // [B, T, C]
  DecodeState state;
  std::vector<at::Tensor> got;
  int64_t t = 0;
  for (int64_t piece : {5, 1, 3, 1, 4, 5}) {
    got.push_back(m->step(x.narrow(1, t, piece), state));
    t += piece;
  }
  ASSERT_EQ(t, 19);
  EXPECT_EQ(state.position, 19);
  EXPECT_EQ(state.tensors.at("s").sizes(), at::IntArrayRef({2, 3, 4, 4}));  // O(D·Dv), not O(T)
  EXPECT_TRUE(test::all_close(at::cat(got, 1), want, 1e-10, 1e-12));
}

TEST(LinearMixer, NonCausalHasNoStepAndBadChunkNamesTheOption) {
  auto m = make_mixer("linear", config(false));
  EXPECT_NE(m->step_unsupported(), "");
  try {
    LinearAttention(LinearAttentionOptions(config(true)).chunk(0));
    ADD_FAILURE() << "accepted chunk = 0";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("linear: option `chunk` must be > 0"),
              std::string::npos)
        << e.what_without_backtrace();
  }
}

}  // namespace
}  // namespace longseq
