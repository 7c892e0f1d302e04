// Fused minGRU / minLSTM gated scan (kernels/cpu/min_rnn) against a float64 loop written from the
// paper's equations (forward) and autograd through the composite path (backward): odd lengths,
// channel counts around the kernel's 64-channel blocks, padded steps, given initial states.
#include <longseq/impl.h>
#include <longseq/scan.h>

#include "test_util.h"

#include <cmath>

namespace longseq {
namespace {

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double g_pos(double x) { return x >= 0 ? x + 0.5 : sigmoid(x); }

// h_t = a_t h_{t-1} + b_t with the gates of the header of min_rnn.cpp, one scalar at a time.
at::Tensor naive(const at::Tensor& xp_in, bool lstm, const at::Tensor& valid,
                 const at::Tensor& h0) {
  auto xp = xp_in.to(torch::kDouble).contiguous();
  const int64_t B = xp.size(0), T = xp.size(1), P = lstm ? 3 : 2, H = xp.size(2) / P;
  auto h = torch::zeros({B, T, H}, torch::kDouble);
  auto x = xp.accessor<double, 3>();
  auto o = h.accessor<double, 3>();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t c = 0; c < H; ++c) {
      double state = h0.defined() ? h0[b][c].item<double>() : 0.0;
      for (int64_t t = 0; t < T; ++t) {
        if (!valid.defined() || valid[b][t].item<bool>()) {
          double a, w;
          if (lstm) {
            const double f = sigmoid(x[b][t][c]), i = sigmoid(x[b][t][H + c]);
            a = f / (f + i);
            w = i / (f + i);
          } else {
            w = sigmoid(x[b][t][c]);
            a = 1 - w;
          }
          state = a * state + w * g_pos(x[b][t][(P - 1) * H + c]);
        }
        o[b][t][c] = state;
      }
    }
  }
  return h;
}

struct Case {
  int64_t b, t, h;
  bool lstm, valid, h0;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << "B" << c.b << " T" << c.t << " H" << c.h << (c.lstm ? " minlstm" : " mingru")
      << (c.valid ? " padded" : "") << (c.h0 ? " h0" : "");
}

class MinRnnFusedVsReference : public ::testing::TestWithParam<Case> {};

TEST_P(MinRnnFusedVsReference, ForwardAndBackward) {
  const auto c = GetParam();
  torch::manual_seed(41);
  const int64_t P = c.lstm ? 3 : 2;
  auto xp = torch::randn({c.b, c.t, P * c.h}, torch::kDouble) * 2;
  at::Tensor valid, h0;
  if (c.valid) {
    valid = torch::rand({c.b, c.t}) > 0.3;  // holes anywhere, also at t = 0
  }
  if (c.h0) h0 = torch::randn({c.b, c.h}, torch::kDouble);
  auto f = [&](const std::vector<at::Tensor>& in) {
    return min_rnn_scan(in[0], c.lstm, valid, c.h0 ? in[1] : at::Tensor());
  };
  std::vector<at::Tensor> inputs{xp, c.h0 ? h0 : torch::zeros({c.b, c.h}, torch::kDouble)};
  auto probe = torch::randn({c.b, c.t, c.h}, torch::kDouble);
  std::vector<at::Tensor> want_g;
  {
    ImplGuard composite(Impl::kComposite);
    want_g = test::grads_of(f, inputs, probe);
  }
  ImplGuard fused(Impl::kFused);
  {
    auto leaf = xp.detach().requires_grad_(true);
    auto node = min_rnn_scan(leaf, c.lstm, valid, h0).grad_fn();
    ASSERT_NE(node, nullptr);
    EXPECT_NE(node->name().find("MinRnnFunction"), std::string::npos) << node->name();
  }
  auto want = naive(xp, c.lstm, valid, h0);
  EXPECT_TRUE(test::all_close(f(inputs), want, 1e-12, 1e-12)) << "float64 forward";
  auto got_g = test::grads_of(f, inputs, probe);
  EXPECT_TRUE(test::all_close(got_g[0], want_g[0], 1e-10, 1e-11)) << "float64 dxp";
  if (c.h0) EXPECT_TRUE(test::all_close(got_g[1], want_g[1], 1e-10, 1e-11)) << "float64 dh0";
  auto got32 =
      min_rnn_scan(xp.to(torch::kFloat), c.lstm, valid, c.h0 ? h0.to(torch::kFloat) : at::Tensor());
  EXPECT_TRUE(test::all_close(got32, want, 1e-4, 1e-5)) << "float32 forward";
  auto got_g32 = test::grads_of(f, {inputs[0].to(torch::kFloat), inputs[1].to(torch::kFloat)},
                                probe.to(torch::kFloat));
  EXPECT_TRUE(test::all_close(got_g32[0], want_g[0], 1e-3, 1e-4)) << "float32 dxp";
}

INSTANTIATE_TEST_SUITE_P(
    OddShapes, MinRnnFusedVsReference,
    ::testing::Values(Case{1, 1, 1, false, false, false}, Case{3, 5, 7, true, true, true},
                      Case{2, 63, 80, false, true, false}, Case{2, 64, 64, true, false, true},
                      Case{2, 65, 130, false, false, true}, Case{1, 65, 65, true, true, false},
                      Case{2, 1000, 33, false, true, true}, Case{1, 1000, 80, true, false, false}));

TEST(MinRnnFused, GradientMatchesCentralDifferences) {
  ImplGuard fused(Impl::kFused);
  torch::manual_seed(42);
  for (bool lstm : {false, true}) {
    auto valid = torch::tensor({true, false, true, true, true, false, true, true}).view({2, 4});
    auto f = [&](const std::vector<at::Tensor>& in) {
      return min_rnn_scan(in[0], lstm, valid, in[1]);
    };
    EXPECT_TRUE(
        test::gradcheck(f, {torch::randn({2, 4, (lstm ? 3 : 2) * 3}) * 2, torch::randn({2, 3})}))
        << (lstm ? "minlstm" : "mingru");
  }
}

TEST(MinRnnFused, ClearErrors) {
  auto xp = torch::randn({2, 5, 6});
  EXPECT_TRUE(test::throws_with([&] { min_rnn_scan(xp.view({60}), false); }, "expected 3-D `xp`"));
  EXPECT_TRUE(test::throws_with([&] { min_rnn_scan(torch::randn({2, 5, 7}), true); }, "3·H"));
  EXPECT_TRUE(test::throws_with(
      [&] {
        min_rnn_scan(xp, false, torch::ones({2, 4}, torch::kBool));
      },
      "valid"));
  EXPECT_TRUE(test::throws_with([&] { min_rnn_scan(xp, false, {}, torch::randn({2, 4})); }, "h0"));
}

}  // namespace
}  // namespace longseq
