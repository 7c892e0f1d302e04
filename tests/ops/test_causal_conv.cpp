// causal_conv1d (kernels/cpu/causal_conv): the fused kernel against a float64 loop (forward) and
// autograd through the composite path (backward), with and without bias and prefix, widths 1..5
// and odd sizes; central differences; causality; pieces with a carried prefix equal the whole;
// thread-count independence; errors that name the argument.
#include <longseq/conv.h>
#include <longseq/impl.h>

#include "test_util.h"

#include <ATen/Parallel.h>

#include <tuple>

namespace longseq {
namespace {

// out[b, t, e] = bias[e] + Σ_k w[e, k] · full[b, t + k, e], full = [prefix (or zeros); x]: loops.
at::Tensor conv_naive(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias,
                      const at::Tensor& prefix) {
  const int64_t B = x.size(0), T = x.size(1), E = x.size(2), K = w.size(1);
  auto out = torch::zeros({B, T, E}, torch::kDouble);
  auto xa = x.accessor<double, 3>();
  auto wa = w.accessor<double, 2>();
  auto oa = out.accessor<double, 3>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t e = 0; e < E; ++e) {
        double s = bias.defined() ? bias[e].item<double>() : 0.0;
        for (int64_t k = 0; k < K; ++k) {
          const int64_t f = t + k - (K - 1);  // index into x; negative: the prefix
          const double v = f >= 0 ? xa[b][f][e]
                                  : (prefix.defined() ? prefix[b][K - 1 + f][e].item<double>() : 0);
          s += wa[e][k] * v;
        }
        oa[b][t][e] = s;
      }
  return out;
}

// Gradients of sum(out ⊙ probe) w.r.t. x, w, bias and prefix (undefined where not given).
std::vector<at::Tensor> conv_grads(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias,
                                   const at::Tensor& prefix, const at::Tensor& probe,
                                   bool composite) {
  auto req = [](const at::Tensor& t) {
    return t.defined() ? t.detach().requires_grad_(true) : at::Tensor();
  };
  auto xx = req(x), ww = req(w), bb = req(bias), pp = req(prefix);
  auto out = composite ? causal_conv1d_composite(xx, ww, bb, pp) : causal_conv1d(xx, ww, bb, pp);
  (out * probe).sum().backward();
  auto grad = [](const at::Tensor& t) { return t.defined() ? t.grad() : at::Tensor(); };
  return {grad(xx), grad(ww), grad(bb), grad(pp)};
}

using ConvCase = std::tuple<int64_t, int64_t, int64_t, int64_t, bool, bool>;  // B T E K bias prefix

class CausalConvVsReference : public ::testing::TestWithParam<ConvCase> {};

TEST_P(CausalConvVsReference, ForwardAndBackward) {
  const auto [B, T, E, K, with_bias, with_prefix] = GetParam();
  ImplGuard fused(Impl::kFused);
  torch::manual_seed(21);
  auto x = torch::randn({B, T, E}, torch::kDouble);
  auto w = torch::randn({E, K}, torch::kDouble);
  auto bias = with_bias ? torch::randn({E}, torch::kDouble) : at::Tensor();
  auto prefix = with_prefix ? torch::randn({B, K - 1, E}, torch::kDouble) : at::Tensor();

  auto want = conv_naive(x, w, bias, prefix);
  EXPECT_TRUE(test::all_close(causal_conv1d(x, w, bias, prefix), want, 1e-12, 1e-12)) << "fused";
  EXPECT_TRUE(test::all_close(causal_conv1d_composite(x, w, bias, prefix), want, 1e-12, 1e-12))
      << "composite";
  auto f32 = [](const at::Tensor& t) { return t.defined() ? t.to(torch::kFloat) : at::Tensor(); };
  auto got32 = causal_conv1d(f32(x), f32(w), f32(bias), f32(prefix));
  EXPECT_EQ(got32.scalar_type(), torch::kFloat);
  EXPECT_TRUE(test::all_close(got32, want, 1e-5, 1e-5)) << "float32 fused";

  auto probe = torch::randn({B, T, E}, torch::kDouble);
  auto want_g = conv_grads(x, w, bias, prefix, probe, /*composite=*/true);
  auto got_g = conv_grads(x, w, bias, prefix, probe, /*composite=*/false);
  auto got_g32 = conv_grads(f32(x), f32(w), f32(bias), f32(prefix), f32(probe), false);
  const char* names[] = {"dx", "dweight", "dbias", "dprefix"};
  for (int n = 0; n < 4; ++n) {
    ASSERT_EQ(got_g[n].defined(), want_g[n].defined()) << names[n];
    if (!want_g[n].defined()) continue;
    EXPECT_TRUE(test::all_close(got_g[n], want_g[n], 1e-10, 1e-10)) << "float64 " << names[n];
    EXPECT_TRUE(test::all_close(got_g32[n], want_g[n], 1e-3, 1e-4)) << "float32 " << names[n];
  }
}

INSTANTIATE_TEST_SUITE_P(
    CausalConv, CausalConvVsReference,
    ::testing::Values(ConvCase{1, 1, 1, 1, false, false}, ConvCase{2, 1, 3, 4, true, true},
                      ConvCase{2, 2, 5, 4, true, false}, ConvCase{1, 3, 7, 5, false, true},
                      ConvCase{3, 17, 9, 4, true, true}, ConvCase{2, 255, 33, 3, true, false},
                      ConvCase{2, 257, 16, 4, false, true}, ConvCase{1, 600, 70, 2, true, true}));

TEST(CausalConv, GradientMatchesCentralDifferences) {
  ImplGuard fused(Impl::kFused);
  torch::manual_seed(22);
  auto f = [](const std::vector<at::Tensor>& in) {
    return causal_conv1d(in[0], in[1], in[2], in[3]);
  };
  EXPECT_TRUE(test::gradcheck(f, {torch::randn({2, 5, 3}), torch::randn({3, 4}), torch::randn({3}),
                                  torch::randn({2, 3, 3})}));
  auto f0 = [](const std::vector<at::Tensor>& in) { return causal_conv1d(in[0], in[1]); };
  EXPECT_TRUE(test::gradcheck(f0, {torch::randn({1, 2, 4}), torch::randn({4, 3})}));
}

TEST(CausalConv, OutputsDoNotSeeLaterInputs) {
  ImplGuard fused(Impl::kFused);
  torch::manual_seed(23);
  auto x = torch::randn({2, 40, 6});
  auto w = torch::randn({6, 4}), bias = torch::randn({6});
  auto before = causal_conv1d(x, w, bias);
  for (int64_t t : {0, 13, 39}) {
    auto y = x.clone();
    y.narrow(1, t, 40 - t).add_(torch::randn({2, 40 - t, 6}));
    auto after = causal_conv1d(y, w, bias);
    EXPECT_TRUE(torch::equal(after.narrow(1, 0, t), before.narrow(1, 0, t)))
        << "inputs from " << t << " on changed an earlier output";
    EXPECT_FALSE(torch::equal(after.narrow(1, t, 1), before.narrow(1, t, 1)))
        << "the perturbation at " << t << " did not reach output " << t;
  }
}

TEST(CausalConv, PiecesWithACarriedPrefixEqualTheWhole) {
  ImplGuard fused(Impl::kFused);
  torch::manual_seed(24);
  const int64_t K = 4;
  auto x = torch::randn({2, 11, 5}, torch::kDouble);
  auto w = torch::randn({5, K}, torch::kDouble), bias = torch::randn({5}, torch::kDouble);
  auto whole = causal_conv1d(x, w, bias);
  at::Tensor prefix = torch::zeros({2, K - 1, 5}, torch::kDouble);
  std::vector<at::Tensor> pieces;
  for (int64_t t0 : {0, 1, 3, 8}) {  // pieces of 1, 2, 5 and 3 steps
    const int64_t len = t0 == 0 ? 1 : t0 == 1 ? 2 : t0 == 3 ? 5 : 3;
    auto piece = x.narrow(1, t0, len);
    pieces.push_back(causal_conv1d(piece, w, bias, prefix));
    prefix = at::cat({prefix, piece}, 1).narrow(1, len, K - 1);
  }
  EXPECT_TRUE(test::all_close(at::cat(pieces, 1), whole, 1e-12, 1e-12));
}

TEST(CausalConv, ResultsDoNotDependOnTheThreadCount) {
  ImplGuard fused(Impl::kFused);
  torch::manual_seed(25);
  auto x = torch::randn({3, 1000, 37}), w = torch::randn({37, 4}), bias = torch::randn({37});
  auto probe = torch::randn({3, 1000, 37});
  const int saved = at::get_num_threads();
  std::vector<std::vector<at::Tensor>> runs;
  for (int threads : {1, 2, 3}) {
    at::set_num_threads(threads);
    auto g = conv_grads(x, w, bias, {}, probe, false);
    g.push_back(causal_conv1d(x, w, bias));
    runs.push_back(g);
  }
  at::set_num_threads(saved);
  for (size_t r = 1; r < runs.size(); ++r)
    for (size_t i = 0; i < runs[0].size(); ++i)
      if (runs[0][i].defined()) EXPECT_TRUE(torch::equal(runs[r][i], runs[0][i])) << r << " " << i;
}

TEST(CausalConv, BadInputsAreNamed) {
  auto x = torch::randn({2, 5, 3}), w = torch::randn({3, 4});
  EXPECT_TRUE(test::throws_with([&] { causal_conv1d(x.select(0, 0), w); },
                                "causal_conv1d: expected 3-D `x` [B, T, E], got 2-D"));
  EXPECT_TRUE(test::throws_with(
      [&] {
        causal_conv1d(x, torch::randn({4, 4}));
      },
      "expected `weight` of shape [E, K] = [3, K >= 1], got [4, 4]"));
  EXPECT_TRUE(test::throws_with(
      [&] {
        causal_conv1d(x, torch::randn({3, 0}));
      },
      "expected `weight` of shape [E, K] = [3, K >= 1], got [3, 0]"));
  EXPECT_TRUE(test::throws_with([&] { causal_conv1d(x, w, torch::randn({2})); },
                                "expected `bias` of shape [E] = [3], got [2]"));
  EXPECT_TRUE(test::throws_with(
      [&] {
        causal_conv1d(x, w, {}, torch::randn({2, 4, 3}));
      },
      "expected `prefix` of shape [B, K − 1, E] = [2, 3, 3], got [2, 4, 3]"));
  EXPECT_TRUE(test::throws_with([&] { causal_conv1d(x, w.to(torch::kDouble)); },
                                "expected `weight` of dtype Float (as `x`), got Double"));
  EXPECT_TRUE(test::throws_with([&] { causal_conv1d(x.to(torch::kLong), w); },
                                "expected a floating-point `x`, got Long"));
}

TEST(CausalConv, EmptyInputsGiveEmptyOutputs) {
  ImplGuard fused(Impl::kFused);
  auto w = torch::randn({3, 4}, torch::requires_grad());
  auto out = causal_conv1d(torch::randn({2, 0, 3}), w);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 0, 3}));
  out.sum().backward();
  EXPECT_TRUE(torch::equal(w.grad(), torch::zeros({3, 4})));
}

}  // namespace
}  // namespace longseq
