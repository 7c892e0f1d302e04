// Recurrent layers: the fused Elman/LSTM/GRU recurrence equals torch::nn::RNN/LSTM/GRU with the
// same weights (outputs, final states, every gradient), handles variable lengths like running each
// sequence alone, and matches its per-step ATen twin and central differences in float64.
#include <longseq/impl.h>
#include <longseq/rnn.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

#include "test_util.h"

namespace longseq {
namespace {

constexpr RnnCell kCells[] = {RnnCell::kElman, RnnCell::kLstm, RnnCell::kGru};

// w_hh's scale is 0.4 up to 7 hidden units and 0.4·√(7 / H) beyond, so that wide states do not
// saturate every gate.
RnnWeights random_weights(RnnCell cell, int64_t in, int64_t hidden, at::ScalarType dtype) {
  const int64_t G = rnn_gates(cell);
  auto o = torch::TensorOptions().dtype(dtype);
  const double hh = 0.4 * std::sqrt(std::min(1.0, 7.0 / static_cast<double>(hidden)));
  return {torch::randn({G * hidden, in}, o) * 0.4, torch::randn({G * hidden, hidden}, o) * hh,
          torch::randn({G * hidden}, o) * 0.3, torch::randn({G * hidden}, o) * 0.3};
}

RnnWeights with_grad(const RnnWeights& w) {
  return {w.w_ih.clone().requires_grad_(), w.w_hh.clone().requires_grad_(),
          w.b_ih.clone().requires_grad_(), w.b_hh.clone().requires_grad_()};
}

// torch::nn module of the same cell with weights copied in; returns {out, h, c}.
struct TorchRnn {
  torch::nn::AnyModule module;
  RnnCell cell;
  std::vector<at::Tensor> run(const at::Tensor& x, const at::Tensor& h0, const at::Tensor& c0) {
    if (cell == RnnCell::kLstm) {
      auto r = module.get<torch::nn::LSTM>()->forward(x, std::make_tuple(h0, c0));
      return {std::get<0>(r), std::get<0>(std::get<1>(r)), std::get<1>(std::get<1>(r))};
    }
    std::tuple<at::Tensor, at::Tensor> r = cell == RnnCell::kGru
                                               ? module.get<torch::nn::GRU>()->forward(x, h0)
                                               : module.get<torch::nn::RNN>()->forward(x, h0);
    return {std::get<0>(r), std::get<1>(r), at::Tensor()};
  }
};

TorchRnn torch_rnn(RnnCell cell, int64_t in, int64_t hidden, bool bidirectional,
                   const std::vector<RnnWeights>& dirs, at::ScalarType dtype) {
  TorchRnn t{{}, cell};
  if (cell == RnnCell::kLstm) {
    t.module = torch::nn::AnyModule(torch::nn::LSTM(
        torch::nn::LSTMOptions(in, hidden).batch_first(true).bidirectional(bidirectional)));
  } else if (cell == RnnCell::kGru) {
    t.module = torch::nn::AnyModule(torch::nn::GRU(
        torch::nn::GRUOptions(in, hidden).batch_first(true).bidirectional(bidirectional)));
  } else {
    t.module = torch::nn::AnyModule(torch::nn::RNN(
        torch::nn::RNNOptions(in, hidden).batch_first(true).bidirectional(bidirectional)));
  }
  t.module.ptr()->to(dtype);
  torch::NoGradGuard ng;
  auto params = t.module.ptr()->named_parameters();
  for (size_t d = 0; d < dirs.size(); ++d) {
    const std::string sfx = d == 0 ? "_l0" : "_l0_reverse";
    params["weight_ih" + sfx].copy_(dirs[d].w_ih);
    params["weight_hh" + sfx].copy_(dirs[d].w_hh);
    params["bias_ih" + sfx].copy_(dirs[d].b_ih);
    params["bias_hh" + sfx].copy_(dirs[d].b_hh);
  }
  return t;
}

// Outputs, final states and every gradient of the fused layer against torch::nn's module.
void expect_fused_equals_torch(RnnCell cell, at::ScalarType dtype, int64_t B, int64_t T, int64_t I,
                               int64_t H, double tol) {
  SCOPED_TRACE(std::string(rnn_cell_name(cell)) + " B=" + std::to_string(B) +
               " T=" + std::to_string(T) + " H=" + std::to_string(H) +
               (dtype == at::kFloat ? " float" : " double"));
  torch::manual_seed(T + H);
  auto w = random_weights(cell, I, H, dtype);
  auto x = torch::randn({B, T, I}, dtype);
  auto h0 = torch::randn({B, H}, dtype) * 0.5, c0 = torch::randn({B, H}, dtype) * 0.5;
  auto gout = torch::randn({B, T, H}, dtype), gh = torch::randn({B, H}, dtype),
       gc = torch::randn({B, H}, dtype);
  const bool lstm = cell == RnnCell::kLstm;

  auto ours_w = with_grad(w);
  auto xa = x.clone().requires_grad_(), ha = h0.clone().requires_grad_(),
       ca = c0.clone().requires_grad_();
  auto r = rnn_layer(cell, xa, ours_w, ha, lstm ? ca : at::Tensor());
  auto loss =
      (r.out * gout).sum() + (r.h * gh).sum() + (lstm ? (r.c * gc).sum() : at::zeros({}, dtype));
  loss.backward();

  auto ref = torch_rnn(cell, I, H, false, {w}, dtype);
  auto xb = x.clone().requires_grad_(), hb = h0.unsqueeze(0).clone().requires_grad_(),
       cb = c0.unsqueeze(0).clone().requires_grad_();
  auto t = ref.run(xb, hb, cb);
  auto loss2 = (t[0] * gout).sum() + (t[1][0] * gh).sum() +
               (lstm ? (t[2][0] * gc).sum() : at::zeros({}, dtype));
  loss2.backward();

  EXPECT_TRUE(test::all_close(r.out, t[0], tol, tol));
  EXPECT_TRUE(test::all_close(r.h, t[1][0], tol, tol));
  if (lstm) EXPECT_TRUE(test::all_close(r.c, t[2][0], tol, tol));
  EXPECT_TRUE(test::all_close(xa.grad(), xb.grad(), tol, tol));
  EXPECT_TRUE(test::all_close(ha.grad(), hb.grad()[0], tol, tol));
  if (lstm) EXPECT_TRUE(test::all_close(ca.grad(), cb.grad()[0], tol, tol));
  auto p = ref.module.ptr()->named_parameters();
  EXPECT_TRUE(test::all_close(ours_w.w_ih.grad(), p["weight_ih_l0"].grad(), tol, tol));
  EXPECT_TRUE(test::all_close(ours_w.w_hh.grad(), p["weight_hh_l0"].grad(), tol, tol));
  EXPECT_TRUE(test::all_close(ours_w.b_ih.grad(), p["bias_ih_l0"].grad(), tol, tol));
  EXPECT_TRUE(test::all_close(ours_w.b_hh.grad(), p["bias_hh_l0"].grad(), tol, tol));
}

TEST(Rnn, FusedEqualsTorchModulesForwardAndBackward) {
  for (RnnCell cell : kCells) {
    for (auto dtype : {at::kDouble, at::kFloat}) {
      for (int64_t T : {1, 5, 37}) {
        expect_fused_equals_torch(cell, dtype, 3, T, 5, 7, dtype == at::kFloat ? 2e-5 : 1e-11);
      }
    }
  }
}

// H = 260: the per-step GEMMs run in column blocks with a tail (lstm forward 4 × 256 + 16 of its
// 1040 gate columns, backward 128 + 128 + 4 of 260; gru forward 3 × 256 + 12), for a full block of
// four rows and a partial one.
TEST(Rnn, FusedEqualsTorchModulesWithWideStates) {
  for (RnnCell cell : kCells) {
    for (auto dtype : {at::kDouble, at::kFloat}) {
      expect_fused_equals_torch(cell, dtype, 5, 6, 3, 260, dtype == at::kFloat ? 2e-5 : 1e-11);
    }
  }
}

TEST(Rnn, ReverseDirectionEqualsTorchBidirectional) {
  for (RnnCell cell : kCells) {
    SCOPED_TRACE(rnn_cell_name(cell));
    torch::manual_seed(1);
    const int64_t B = 2, T = 9, I = 4, H = 6;
    auto fw = random_weights(cell, I, H, at::kDouble), bw = random_weights(cell, I, H, at::kDouble);
    auto x = torch::randn({B, T, I}, at::kDouble);
    auto ref = torch_rnn(cell, I, H, true, {fw, bw}, at::kDouble);
    auto zeros = torch::zeros({2, B, H}, at::kDouble);
    auto t = ref.run(x, zeros, zeros);  // out [B, T, 2H], h [2, B, H]
    auto f = rnn_layer(cell, x, fw), b = rnn_layer(cell, x, bw, {}, {}, {}, /*reverse=*/true);
    EXPECT_TRUE(test::all_close(at::cat({f.out, b.out}, 2), t[0], 1e-11, 1e-11));
    EXPECT_TRUE(test::all_close(b.h, t[1][1], 1e-11, 1e-11));
  }
}

TEST(Rnn, PaddedSequencesEqualRunningEachAlone) {
  for (RnnCell cell : kCells) {
    for (bool reverse : {false, true}) {
      SCOPED_TRACE(std::string(rnn_cell_name(cell)) + (reverse ? " reverse" : ""));
      torch::manual_seed(2);
      const int64_t T = 11, I = 3, H = 5;
      const std::vector<int64_t> lengths = {11, 6, 1};
      const int64_t B = static_cast<int64_t>(lengths.size());
      auto w = random_weights(cell, I, H, at::kDouble);
      auto x = torch::randn({B, T, I}, at::kDouble);
      auto h0 = torch::randn({B, H}, at::kDouble);
      auto valid = torch::zeros({B, T}, torch::kBool);
      for (int64_t b = 0; b < B; ++b) valid[b].narrow(0, 0, lengths[b]).fill_(true);
      auto r = rnn_layer(cell, x, w, h0, {}, valid, reverse);
      for (int64_t b = 0; b < B; ++b) {
        const int64_t L = lengths[b];
        auto alone = rnn_layer_composite(cell, x[b].narrow(0, 0, L).unsqueeze(0), w,
                                         h0[b].unsqueeze(0), {}, {}, reverse);
        EXPECT_TRUE(test::all_close(r.out[b].narrow(0, 0, L), alone.out[0], 1e-11, 1e-11)) << b;
        EXPECT_TRUE(test::all_close(r.h[b], alone.h[0], 1e-11, 1e-11)) << b;
        EXPECT_EQ(r.out[b].narrow(0, L, T - L).abs().sum().item<double>(), 0.0) << b;
      }
    }
  }
}

// The fused recurrence splits the batch into fixed blocks of rows, so its per-step GEMMs have the
// same shapes, and its outputs and gradients the same bits, whatever the thread count (the split
// once followed the thread count, and OpenBLAS may round an M = 1 GEMM differently from an M = 2
// one). The large dW_hh GEMM runs in fixed row blocks too: OpenBLAS's own threads split it by the
// thread count, and with the Haswell core on Zen 5 that changed its last bits.
// The input projection and its gradients (x.grad, w_ih.grad) are LibTorch GEMMs on OpenBLAS's
// threads, outside the kernel: with OpenBLAS's AVX2 cores (Haswell, Zen) on Zen 5, its threaded
// sgemm itself rounds differently on 1, 2 and 3 threads (at::mm of [4096, 256] × [256, 256], say),
// so those two are compared to float rounding, and the kernel's own results bit for bit.
TEST(Rnn, ResultsDoNotDependOnTheThreadCount) {
  const int saved = at::get_num_threads();
  for (RnnCell cell : kCells) {
    for (int64_t H : {9, 260}) {  // 260: the per-step GEMMs in column blocks
      SCOPED_TRACE(std::string(rnn_cell_name(cell)) + " H=" + std::to_string(H));
      torch::manual_seed(4);
      const int64_t B = 11, T = 13, I = 6;  // B: two full blocks and a partial one
      auto w = random_weights(cell, I, H, at::kFloat);
      auto x = torch::randn({B, T, I});
      auto valid = torch::rand({B, T}) > 0.2;
      auto gout = torch::randn({B, T, H});
      std::vector<std::vector<at::Tensor>> runs;
      for (int threads : {1, 2, 3}) {
        at::set_num_threads(threads);
        auto wg = with_grad(w);
        auto xg = x.clone().requires_grad_();
        auto r = rnn_layer(cell, xg, wg, {}, {}, valid);
        ((r.out * gout).sum() + r.h.sum()).backward();
        runs.push_back({r.out, r.h, xg.grad(), wg.w_ih.grad(), wg.w_hh.grad(), wg.b_hh.grad()});
      }
      at::set_num_threads(saved);
      for (size_t run = 1; run < runs.size(); ++run) {
        for (size_t i = 0; i < runs[0].size(); ++i) {
          const bool through_aten_gemm = i == 2 || i == 3;  // x.grad, w_ih.grad
          const double tol = through_aten_gemm ? 1e-5 : 0;
          EXPECT_TRUE(test::all_close(runs[run][i], runs[0][i], tol, tol))
              << "tensor " << i << ", run " << run;
        }
      }
    }
  }
}

TEST(Rnn, FusedBackwardEqualsAutogradThroughTheReferenceWithMasks) {
  for (RnnCell cell : kCells) {
    for (bool reverse : {false, true}) {
      SCOPED_TRACE(std::string(rnn_cell_name(cell)) + (reverse ? " reverse" : ""));
      torch::manual_seed(3);
      const int64_t B = 3, T = 13, I = 4, H = 6;
      const bool lstm = cell == RnnCell::kLstm;
      auto w = random_weights(cell, I, H, at::kDouble);
      auto x = torch::randn({B, T, I}, at::kDouble);
      auto h0 = torch::randn({B, H}, at::kDouble), c0 = torch::randn({B, H}, at::kDouble);
      auto valid = torch::rand({B, T}) > 0.3;  // holes anywhere, not only at the end
      auto gout = torch::randn({B, T, H}, at::kDouble), gh = torch::randn({B, H}, at::kDouble);
      std::vector<std::vector<at::Tensor>> grads;
      std::vector<RnnOutput> outs;
      for (bool fused : {true, false}) {
        auto ww = with_grad(w);
        auto xa = x.clone().requires_grad_(), ha = h0.clone().requires_grad_(),
             ca = c0.clone().requires_grad_();
        auto r =
            fused ? rnn_layer(cell, xa, ww, ha, lstm ? ca : at::Tensor(), valid, reverse)
                  : rnn_layer_composite(cell, xa, ww, ha, lstm ? ca : at::Tensor(), valid, reverse);
        auto loss = (r.out * gout).sum() + (r.h * gh).sum() +
                    (lstm ? r.c.pow(2).sum() : at::zeros({}, at::kDouble));
        loss.backward();
        grads.push_back({xa.grad(), ha.grad(), ww.w_ih.grad(), ww.w_hh.grad(), ww.b_ih.grad(),
                         ww.b_hh.grad(), lstm ? ca.grad() : torch::zeros({1})});
        outs.push_back(r);
      }
      EXPECT_TRUE(test::all_close(outs[0].out, outs[1].out, 1e-11, 1e-11));
      EXPECT_TRUE(test::all_close(outs[0].h, outs[1].h, 1e-11, 1e-11));
      for (size_t i = 0; i < grads[0].size(); ++i) {
        EXPECT_TRUE(test::all_close(grads[0][i], grads[1][i], 1e-10, 1e-11)) << "gradient " << i;
      }
    }
  }
}

TEST(Rnn, CentralDifferencesFloat64) {
  for (RnnCell cell : kCells) {
    SCOPED_TRACE(rnn_cell_name(cell));
    torch::manual_seed(4);
    auto w = random_weights(cell, 3, 4, at::kDouble);
    auto valid =
        torch::tensor({true, true, true, true, true, true, true, false, false, true}).view({2, 5});
    auto f = [&](const std::vector<at::Tensor>& in) {
      RnnWeights ww{in[2], in[3], in[4], in[5]};
      auto r = rnn_layer(cell, in[0], ww, in[1], {}, valid);
      return at::cat({r.out.flatten(), r.h.flatten()});
    };
    EXPECT_TRUE(test::gradcheck(f,
                                {torch::randn({2, 5, 3}, at::kDouble),
                                 torch::randn({2, 4}, at::kDouble), w.w_ih, w.w_hh, w.b_ih, w.b_hh},
                                1e-6, 1e-5));
  }
}

TEST(Rnn, CompositeSwitchRunsTheBuiltInWithTheSameResult) {
  torch::manual_seed(5);
  for (RnnCell cell : kCells) {
    auto w = random_weights(cell, 4, 6, at::kFloat);
    auto x = torch::randn({2, 17, 4});
    auto fused = rnn_layer(cell, x, w, {}, {}, {}, true);
    ImplGuard composite(Impl::kComposite);
    auto builtin = rnn_layer(cell, x, w, {}, {}, {}, true);
    EXPECT_TRUE(test::all_close(fused.out, builtin.out, 2e-5, 2e-5)) << rnn_cell_name(cell);
  }
}

TEST(Rnn, BadShapesAreRefusedNamingTheArgument) {
  auto w = random_weights(RnnCell::kLstm, 4, 6, at::kFloat);
  auto x = torch::randn({2, 5, 4});
  EXPECT_TRUE(test::throws_with(
      [&] {
        rnn_layer(RnnCell::kLstm, x.view({10, 4}), w);
      },
      "lstm: expected `x` of shape [B, T, I]"));
  EXPECT_TRUE(test::throws_with([&] { rnn_layer(RnnCell::kGru, x, w); },
                                "gru: expected `w_hh` of shape [3·H, H], got [24, 6]"));
  EXPECT_TRUE(test::throws_with(
      [&] {
        rnn_layer(RnnCell::kLstm, x, w, torch::zeros({2, 5}));
      },
      "lstm: expected `h0` of shape [2, 6], got [2, 5]"));
  EXPECT_TRUE(test::throws_with(
      [&] {
        rnn_layer(RnnCell::kLstm, x, w, {}, {}, torch::ones({2, 4}, torch::kBool));
      },
      "lstm: expected bool `valid` of shape [2, 5], got [2, 4]"));
}

}  // namespace
}  // namespace longseq
