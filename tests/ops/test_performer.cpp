// FAVOR+ (performer_attention) against float64 references: the explicit quadratic form with the
// same features, exact softmax attention as R grows, strict causality under huge future keys,
// padding, central-difference gradients, seeded feature draws, and the mixer's redraw schedule.
#include <longseq/attention.h>
#include <longseq/mixers/performer.h>

#include "kernels/ref/attention_ref.h"
#include "test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <iomanip>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

namespace {

using longseq::performer_attention;
using longseq::performer_draw_features;
using longseq::PerformerCoreOptions;
using longseq::PerformerKernel;
using longseq::test::all_close;
using longseq::test::rel_error;

const auto kF64 = at::TensorOptions().dtype(at::kDouble);

// The core's options and the mask's causal flag, as the tests vary them together.
struct Core {
  PerformerCoreOptions opts;
  bool causal;
};

Core core(PerformerKernel kernel, bool causal, int64_t chunk = 64) {
  Core c{{}, causal};
  c.opts.kernel = kernel;
  c.opts.chunk = chunk;
  return c;
}

at::Tensor performer(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& omega, const Core& c, const at::Tensor& key_padding = {}) {
  longseq::AttentionMask mask;
  mask.causal = c.causal;
  mask.key_padding = key_padding;
  return performer_attention(q, k, v, omega, c.opts, mask);
}

const char* kernel_name(PerformerKernel k) {
  return k == PerformerKernel::kRelu ? "relu" : "softmax";
}

// The quadratic form with the same features, built explicitly in float64 without stabilisers:
// W = φ(q) φ(k)ᵀ [B, H, T, S], masked (causal, padding), out = W v / W 1, zero rows give zeros.
at::Tensor quadratic_form(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const at::Tensor& omega, PerformerKernel kernel, bool causal,
                          const at::Tensor& key_padding = {}) {
  const int64_t B = q.size(0), T = q.size(2), S = k.size(2), D = q.size(3), R = omega.size(0);
  const double sc = std::pow(static_cast<double>(D), -0.25), inv = 1.0 / std::sqrt(double(R));
  auto w = omega.to(at::kDouble);
  auto qs = q.to(at::kDouble) * sc, ks = k.to(at::kDouble) * sc;
  at::Tensor fq, fk;
  if (kernel == PerformerKernel::kSoftmax) {
    fq = (at::matmul(qs, w.t()) - qs.pow(2).sum(-1, true) / 2).exp() * inv;  // [B, H, T, R]
    fk = (at::matmul(ks, w.t()) - ks.pow(2).sum(-1, true) / 2).exp() * inv;  // [B, H, S, R]
  } else {
    fq = at::relu(at::matmul(qs, w.t())) * inv + 1e-3;
    fk = at::relu(at::matmul(ks, w.t())) * inv + 1e-3;
  }
  auto weights = at::matmul(fq, fk.transpose(-2, -1));  // [B, H, T, S]
  if (causal) weights = weights * at::ones({T, S}, kF64).tril(S - T);
  if (key_padding.defined()) weights = weights * key_padding.view({B, 1, 1, S}).to(at::kDouble);
  auto den = weights.sum(-1, true);  // [B, H, T, 1]
  auto out = at::matmul(weights, v.to(at::kDouble)) / den;
  return at::where(den > 0, out, at::zeros_like(out));  // [B, H, T, Dv]
}

// Random padding mask [B, S] with holes, one row padded at the start, one row fully valid.
at::Tensor random_padding(int64_t B, int64_t S) {
  auto kp = at::rand({B, S}, kF64) > 0.3;
  kp[0].fill_(true);
  if (B > 1 && S > 3) kp[1].narrow(0, 0, 3).fill_(false);
  return kp;
}

::testing::AssertionResult throws_with(const std::function<void()>& f, const std::string& what) {
  try {
    f();
  } catch (const c10::Error& e) {
    const std::string msg = e.what();
    if (msg.find(what) != std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "message lacks '" << what << "': " << msg;
  }
  return ::testing::AssertionFailure() << "no error (expected one containing '" << what << "')";
}

}  // namespace

// 1. The chunked causal prefix-sum form equals the explicit quadratic form, odd lengths, chunk
// sizes that do and do not divide T, D = 80, padding, B·H > 1.
TEST(PerformerAttention, CausalChunkedMatchesQuadraticForm) {
  torch::manual_seed(1);
  const int64_t B = 2, H = 3;
  for (int64_t D : {16, 80}) {
    for (int64_t R : {24, 100}) {
      auto omega = performer_draw_features(R, D, 10 + R + D, at::kDouble);
      for (int64_t T : {1, 5, 63, 64, 65, 130}) {
        auto q = at::randn({B, H, T, D}, kF64), k = at::randn({B, H, T, D}, kF64);
        auto v = at::randn({B, H, T, 7}, kF64);
        for (bool padded : {false, true}) {
          auto kp = padded ? random_padding(B, T) : at::Tensor();
          for (auto kernel : {PerformerKernel::kSoftmax, PerformerKernel::kRelu}) {
            auto want = quadratic_form(q, k, v, omega, kernel, /*causal=*/true, kp);
            for (int64_t chunk : {64, 7, 1}) {
              SCOPED_TRACE(::testing::Message()
                           << "D=" << D << " R=" << R << " T=" << T << " chunk=" << chunk
                           << " padded=" << padded << " kernel=" << kernel_name(kernel));
              auto got = performer(q, k, v, omega, core(kernel, true, chunk), kp);
              EXPECT_TRUE(all_close(got, want, 1e-10, 1e-12));
            }
          }
        }
      }
    }
  }
}

// 2. The non-causal GEMM form equals the explicit quadratic form (T != S allowed).
TEST(PerformerAttention, NonCausalMatchesQuadraticForm) {
  torch::manual_seed(2);
  const int64_t B = 2, H = 2;
  for (int64_t D : {16, 80}) {
    auto omega = performer_draw_features(96, D, 3, at::kDouble);
    for (auto ts : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {37, 53}, {65, 13}}) {
      auto q = at::randn({B, H, ts.first, D}, kF64), k = at::randn({B, H, ts.second, D}, kF64);
      auto v = at::randn({B, H, ts.second, 5}, kF64);
      for (bool padded : {false, true}) {
        auto kp = padded ? random_padding(B, ts.second) : at::Tensor();
        for (auto kernel : {PerformerKernel::kSoftmax, PerformerKernel::kRelu}) {
          SCOPED_TRACE(::testing::Message()
                       << "D=" << D << " T=" << ts.first << " S=" << ts.second
                       << " padded=" << padded << " kernel=" << kernel_name(kernel));
          auto got = performer(q, k, v, omega, core(kernel, false), kp);
          auto want = quadratic_form(q, k, v, omega, kernel, false, kp);
          EXPECT_TRUE(all_close(got, want, 1e-10, 1e-12));
        }
      }
    }
  }
}

// Float32 inputs run the same computation to float32 accuracy.
TEST(PerformerAttention, Float32MatchesFloat64) {
  torch::manual_seed(3);
  auto omega = performer_draw_features(64, 32, 5, at::kDouble);
  auto q = at::randn({2, 2, 70, 32}, kF64), k = at::randn({2, 2, 70, 32}, kF64);
  auto v = at::randn({2, 2, 70, 32}, kF64);
  for (bool causal : {false, true}) {
    auto want = performer(q, k, v, omega, core(PerformerKernel::kSoftmax, causal, 16));
    auto got = performer(q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat), omega.to(at::kFloat),
                         core(PerformerKernel::kSoftmax, causal, 16));
    EXPECT_EQ(got.scalar_type(), at::kFloat);
    EXPECT_LT(rel_error(got, want), 1e-5) << "causal=" << causal;
  }
}

// 3. The approximation error against exact softmax attention falls as R grows.
TEST(PerformerAttention, ErrorVsExactFallsWithFeatures) {
  const int64_t B = 1, H = 2, T = 64, D = 16, seeds = 4;
  const std::vector<int64_t> feature_counts{16, 64, 256, 1024, 4096};
  for (bool causal : {false, true}) {
    std::vector<double> err(feature_counts.size(), 0.0);
    for (int64_t seed = 0; seed < seeds; ++seed) {
      torch::manual_seed(100 + seed);
      auto q = at::randn({B, H, T, D}, kF64) * 0.5, k = at::randn({B, H, T, D}, kF64) * 0.5;
      auto v = at::randn({B, H, T, D}, kF64);
      at::Tensor allowed = causal ? at::ones({T, T}, kF64).tril().to(at::kBool) : at::Tensor();
      auto want = longseq::ref::attention_naive(q, k, v, allowed, 1.0 / std::sqrt(double(D)));
      for (size_t i = 0; i < feature_counts.size(); ++i) {
        auto omega = performer_draw_features(feature_counts[i], D, 1000 * seed + i, at::kDouble);
        auto got = performer(q, k, v, omega, core(PerformerKernel::kSoftmax, causal));
        err[i] += rel_error(got, want) / seeds;
      }
    }
    std::cout << "[ performer ] causal=" << causal << " relative error vs exact (mean of " << seeds
              << " seeds):";
    for (size_t i = 0; i < feature_counts.size(); ++i) {
      std::cout << "  R=" << feature_counts[i] << ": " << std::setprecision(3) << err[i];
    }
    std::cout << "\n";
    EXPECT_LT(err[4], err[2]) << "causal=" << causal;
    EXPECT_LT(err[2], err[0]) << "causal=" << causal;
    EXPECT_LT(err[3], err[1]) << "causal=" << causal;
    // Monte Carlo error ~ 1/√R: 16x the features should cut it about 4x (measured 3.3-3.8x).
    EXPECT_GT(err[2] / err[4], 2.5) << "causal=" << causal;
    // Measured means 0.045 (non-causal) and 0.034 (causal); single seeds range 0.023-0.061.
    EXPECT_LT(err[4], 0.065) << "causal=" << causal;
  }
}

// 4. Strict causality: keys and values after position t, including a 30x-norm key and a key on a
// feature direction (the largest possible log-feature), leave outputs up to t unchanged.
TEST(PerformerAttention, CausalOutputsIgnoreHugeFutureKeys) {
  torch::manual_seed(4);
  const int64_t B = 2, H = 2, T = 40, D = 16, R = 64, t = 17;
  auto omega64 = performer_draw_features(R, D, 9, at::kDouble);
  auto q = at::randn({B, H, T, D}, kF64), k = at::randn({B, H, T, D}, kF64);
  auto v = at::randn({B, H, T, D}, kF64);
  // (keys, the same keys with positions > t perturbed)
  std::vector<std::pair<at::Tensor, at::Tensor>> cases;
  {
    auto k2 = k.clone();
    k2.narrow(2, t + 1, T - t - 1).normal_().mul_(30.0);  // huge-norm future keys
    cases.emplace_back(k, k2);
    // x = D^{-1/4}·k = ω_r maximises s_r = ω_r·x − |x|²/2 at |ω_r|²/2, the largest log-feature
    // any key can reach. After 8x-norm past keys (s ≈ −100) that gap underflows float32, so a
    // stabiliser taken over all keys would zero every past key.
    const int64_t r = omega64.norm(2, {1}).argmax().item<int64_t>();
    auto k3 = k.clone();
    k3.narrow(2, 0, t + 1).mul_(8.0);
    auto k4 = k3.clone();
    k4.select(2, t + 1).copy_(omega64[r] * std::pow(double(D), 0.25));
    cases.emplace_back(k3, k4);
  }
  auto v2 = v.clone();
  v2.narrow(2, t + 1, T - t - 1).normal_().mul_(30.0);
  for (auto dtype : {at::kDouble, at::kFloat}) {
    const double tol = dtype == at::kDouble ? 1e-12 : 1e-6;
    auto omega = omega64.to(dtype);
    for (auto kernel : {PerformerKernel::kSoftmax, PerformerKernel::kRelu}) {
      for (int64_t chunk : {64, 7, 5}) {
        auto opts = core(kernel, true, chunk);
        for (size_t i = 0; i < cases.size(); ++i) {
          SCOPED_TRACE(::testing::Message()
                       << "dtype=" << dtype << " kernel=" << kernel_name(kernel)
                       << " chunk=" << chunk << " case=" << i);
          auto base = performer(q.to(dtype), cases[i].first.to(dtype), v.to(dtype), omega, opts);
          auto pert = performer(q.to(dtype), cases[i].second.to(dtype), v2.to(dtype), omega, opts);
          EXPECT_TRUE(all_close(pert.narrow(2, 0, t + 1), base.narrow(2, 0, t + 1), tol, tol));
          // And the stabilised result is still right, float32 included.
          const double acc = dtype == at::kDouble ? 1e-10 : 1e-4;
          EXPECT_TRUE(all_close(base, quadratic_form(q, cases[i].first, v, omega64, kernel, true),
                                acc, acc));
          EXPECT_TRUE(pert.isfinite().all().item<bool>());
        }
      }
    }
  }
  // The test has teeth: the widely used stabiliser (one max of ω·x over all keys, plus eps) lets
  // the 30x future key change earlier outputs in float32.
  {
    const auto f32 = at::kFloat;
    auto leaky = [&](const at::Tensor& kk) {
      const double sc = std::pow(double(D), -0.25), inv = 1.0 / std::sqrt(double(R));
      auto w = omega64.to(f32);
      auto qs = q.to(f32) * sc, ks = kk.to(f32) * sc;
      auto qd = at::matmul(qs, w.t()), kd = at::matmul(ks, w.t());
      auto fq = ((qd - qs.pow(2).sum(-1, true) / 2 - qd.amax(-1, true)).exp() + 1e-4) * inv;
      auto fk = ((kd - ks.pow(2).sum(-1, true) / 2 - kd.amax({2, 3}, true)).exp() + 1e-4) * inv;
      auto wts = at::matmul(fq, fk.transpose(-2, -1)) * at::ones({T, T}, f32).tril();
      return at::matmul(wts, v.to(f32)) / wts.sum(-1, true);
    };
    auto diff = (leaky(cases[0].second) - leaky(k)).narrow(2, 0, t + 1).abs().max().item<double>();
    EXPECT_GT(diff, 1e-3) << "the huge future key should break a global key stabiliser";
  }
}

// 5a. Padded keys are excluded: the same as running on the truncated sequence.
TEST(PerformerAttention, PaddedKeysEqualTruncatedSequence) {
  torch::manual_seed(5);
  const int64_t B = 2, H = 2, T = 30, L = 19, D = 8;
  auto omega = performer_draw_features(32, D, 11, at::kDouble);
  auto q = at::randn({B, H, T, D}, kF64), k = at::randn({B, H, T, D}, kF64);
  auto v = at::randn({B, H, T, D}, kF64);
  // Padded keys get huge values, which must not matter.
  k.narrow(2, L, T - L).mul_(50.0);
  v.narrow(2, L, T - L).mul_(1e6);
  auto kp = longseq::padding_mask_from_lengths(at::full({B}, L, at::kLong), T);  // [B, T]
  for (auto kernel : {PerformerKernel::kSoftmax, PerformerKernel::kRelu}) {
    SCOPED_TRACE(kernel_name(kernel));
    auto kt = k.narrow(2, 0, L), vt = v.narrow(2, 0, L);
    auto nc = performer(q, k, v, omega, core(kernel, false), kp);
    EXPECT_TRUE(all_close(nc, performer(q, kt, vt, omega, core(kernel, false)), 1e-12, 1e-12));
    auto c = performer(q, k, v, omega, core(kernel, true, 7), kp);
    auto ct = performer(q.narrow(2, 0, L), kt, vt, omega, core(kernel, true, 7));
    EXPECT_TRUE(all_close(c.narrow(2, 0, L), ct, 1e-12, 1e-12));
    // Queries after the last real key see exactly keys [0, L).
    EXPECT_TRUE(all_close(c.narrow(2, L, T - L), nc.narrow(2, L, T - L), 1e-10, 1e-12));
  }
}

// 5b. A query with no visible real key outputs zeros, and gradients stay finite.
TEST(PerformerAttention, AllPaddedRowsGiveZerosAndFiniteGradients) {
  torch::manual_seed(6);
  const int64_t B = 3, H = 2, T = 12, D = 8;
  for (auto dtype : {at::kDouble, at::kFloat}) {
    auto omega = performer_draw_features(16, D, 12, dtype);
    auto kp = at::ones({B, T}, at::kBool);
    kp[1].fill_(false);                  // every key padded
    kp[2].narrow(0, 0, 5).fill_(false);  // leading padding: causal queries 0..4 see none
    for (auto kernel : {PerformerKernel::kSoftmax, PerformerKernel::kRelu}) {
      for (bool causal : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "dtype=" << dtype << " kernel=" << kernel_name(kernel)
                                          << " causal=" << causal);
        auto q = at::randn({B, H, T, D}, at::TensorOptions().dtype(dtype)).requires_grad_(true);
        auto k =
            (at::randn({B, H, T, D}, at::TensorOptions().dtype(dtype)) * 3).requires_grad_(true);
        auto v = at::randn({B, H, T, D}, at::TensorOptions().dtype(dtype)).requires_grad_(true);
        auto out = performer(q, k, v, omega, core(kernel, causal, 4), kp);
        EXPECT_TRUE(out.isfinite().all().item<bool>());
        EXPECT_EQ(out[1].abs().max().item<double>(), 0.0);
        if (causal) EXPECT_EQ(out[2].narrow(1, 0, 5).abs().max().item<double>(), 0.0);
        EXPECT_GT(out[2].narrow(1, 5, T - 5).abs().max().item<double>(), 0.0);
        (out * at::randn_like(out)).sum().backward();
        for (const auto* x : {&q, &k, &v}) {
          ASSERT_TRUE(x->grad().defined());
          EXPECT_TRUE(x->grad().isfinite().all().item<bool>());
        }
        // Nothing flows into padded keys and values.
        EXPECT_EQ(k.grad()[1].abs().max().item<double>(), 0.0);
        EXPECT_EQ(v.grad()[1].abs().max().item<double>(), 0.0);
      }
    }
  }
}

// 6. Central differences in float64 on tiny shapes.
TEST(PerformerAttention, GradientsMatchCentralDifferences) {
  torch::manual_seed(7);
  const int64_t B = 1, H = 2, T = 5, D = 4, R = 8;
  auto omega = performer_draw_features(R, D, 13, at::kDouble);
  auto kp = at::ones({B, T}, at::kBool);
  kp[0][3] = false;
  for (auto kernel : {PerformerKernel::kSoftmax, PerformerKernel::kRelu}) {
    for (bool causal : {false, true}) {
      for (bool padded : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "kernel=" << kernel_name(kernel)
                                          << " causal=" << causal << " padded=" << padded);
        auto opts = core(kernel, causal, 2);
        auto mask = padded ? kp : at::Tensor();
        auto f = [&](const std::vector<at::Tensor>& in) {
          return performer(in[0], in[1], in[2], omega, opts, mask);
        };
        EXPECT_TRUE(longseq::test::gradcheck(
            f, {at::randn({B, H, T, D}, kF64), at::randn({B, H, T, D}, kF64),
                at::randn({B, H, T, D}, kF64)}));
      }
    }
  }
}

// 7. Seeded, orthogonal feature draws; clear errors.
TEST(PerformerFeatures, SeededOrthogonalDraws) {
  const int64_t R = 40, D = 16;
  torch::manual_seed(1);
  auto a = performer_draw_features(R, D, 42, at::kDouble);
  torch::manual_seed(2);
  (void)at::randn({100});
  auto b = performer_draw_features(R, D, 42, at::kDouble);
  EXPECT_TRUE(at::equal(a, b)) << "same seed must give the same features, whatever the global RNG";
  EXPECT_FALSE(at::allclose(a, performer_draw_features(R, D, 43, at::kDouble)));
  EXPECT_EQ(a.sizes(), (at::IntArrayRef{R, D}));
  auto f = performer_draw_features(R, D, 42);
  EXPECT_EQ(f.scalar_type(), at::kFloat);
  EXPECT_TRUE(all_close(f, a, 1e-6, 1e-6));
  // Rows of each D-row block are orthogonal; row norms vary (chi-distributed).
  auto unit = a / a.norm(2, {1}, true);
  for (int64_t start = 0; start < R; start += D) {
    const int64_t n = std::min(D, R - start);
    auto blk = unit.narrow(0, start, n);
    EXPECT_TRUE(all_close(at::matmul(blk, blk.t()), at::eye(n, kF64), 1e-12, 1e-12))
        << "block at row " << start;
  }
  auto norms = a.norm(2, {1});
  EXPECT_GT((norms.max() - norms.min()).item<double>(), 0.1);
  EXPECT_NEAR(norms.pow(2).mean().item<double>(), double(D), 0.5 * D);
}

TEST(PerformerAttention, ClearErrors) {
  auto q = at::randn({1, 2, 6, 8}), k = at::randn({1, 2, 6, 8}), v = at::randn({1, 2, 6, 8});
  auto omega = performer_draw_features(16, 8, 0);
  auto opts = core(PerformerKernel::kSoftmax, false);
  EXPECT_TRUE(throws_with([] { performer_draw_features(0, 8, 0); }, "`features` (R) > 0, got 0"));
  EXPECT_TRUE(throws_with([] { performer_draw_features(4, 0, 0); }, "`head_dim` (D) > 0"));
  EXPECT_TRUE(throws_with(
      [&] {
        performer(q, k, v, at::zeros({0, 8}), opts);
      },
      "performer_attention: expected `omega` [R, D] with R > 0 and D = 8"));
  EXPECT_TRUE(throws_with([&] { performer(q, k, v, at::zeros({16, 5}), opts); }, "got [16, 5]"));
  EXPECT_TRUE(
      throws_with([&] { performer(q, k, v, at::zeros({16}), opts); }, "expected `omega` [R, D]"));
  EXPECT_TRUE(
      throws_with([&] { performer(q, k, v, at::Tensor(), opts); }, "expected `omega` [R, D]"));
  auto k10 = at::randn({1, 2, 10, 8}), v10 = at::randn({1, 2, 10, 8});
  EXPECT_NO_THROW(performer(q, k10, v10, omega, opts));
  EXPECT_TRUE(
      throws_with([&] { performer(q, k10, v10, omega, core(PerformerKernel::kSoftmax, true)); },
                  "causal attention needs T == S (self-attention), got T = 6, S = 10"));
  EXPECT_TRUE(
      throws_with([&] { performer(q, k, v, omega, core(PerformerKernel::kSoftmax, true, 0)); },
                  "expected `chunk` > 0, got 0"));
  EXPECT_TRUE(throws_with(
      [&] {
        performer(q, k, v, omega, opts, at::ones({1, 5}, at::kBool));
      },
      "performer_attention: expected `key_padding` of shape [1, 6]"));
  EXPECT_TRUE(
      throws_with([&] { performer(q, k.narrow(3, 0, 4), v, omega, opts); }, "performer_attention"));
}

// 8. The mixer: buffer "features", draw 0 from the config seed, redraw every k training calls,
// fixed in eval.
TEST(PerformerMixer, RedrawsEveryKTrainingCallsNotInEval) {
  longseq::MixerConfig c;
  c.dim = 16;
  c.heads = 2;
  c.seed = 7;
  c.max_len = 32;
  const uint64_t golden = 0x9E3779B97F4A7C15ULL;
  longseq::Performer mixer(longseq::PerformerOptions(c).features(12).redraw(3));
  auto buffers = mixer->named_buffers();
  ASSERT_TRUE(buffers.contains("features"));
  EXPECT_TRUE(at::equal(buffers["features"], mixer->features()));
  EXPECT_TRUE(at::equal(mixer->features(), performer_draw_features(12, 8, 7)));

  torch::manual_seed(8);
  auto x = torch::randn({2, 10, 16});
  mixer->train();
  std::vector<at::Tensor> seen;
  for (int call = 1; call <= 7; ++call) {
    auto y = mixer->forward(x);
    EXPECT_EQ(y.sizes(), x.sizes());
    seen.push_back(mixer->features().clone());  // the features call `call` used
  }
  // Calls 1-3 use draw 0, 4-6 draw 1, 7 draw 2.
  auto d1 = performer_draw_features(12, 8, 7 + golden);
  auto d2 = performer_draw_features(12, 8, 7 + 2 * golden);
  for (int i : {0, 1, 2}) EXPECT_TRUE(at::equal(seen[i], performer_draw_features(12, 8, 7))) << i;
  for (int i : {3, 4, 5}) EXPECT_TRUE(at::equal(seen[i], d1)) << i;
  EXPECT_TRUE(at::equal(seen[6], d2));

  mixer->eval();
  auto before = mixer->features().clone();
  auto y0 = mixer->forward(x);
  for (int call = 0; call < 7; ++call) {
    auto y = mixer->forward(x);
    EXPECT_TRUE(at::equal(y, y0)) << "eval must be deterministic";
  }
  EXPECT_TRUE(at::equal(mixer->features(), before));

  // redraw = 0 never redraws; a module moved to float64 keeps a float64 buffer after redraw.
  longseq::Performer fixed(longseq::PerformerOptions(c).features(12));
  fixed->train();
  for (int call = 0; call < 5; ++call) fixed->forward(x);
  EXPECT_TRUE(at::equal(fixed->features(), performer_draw_features(12, 8, 7)));
  fixed->to(at::kDouble);
  fixed->redraw_features();
  EXPECT_EQ(fixed->features().scalar_type(), at::kDouble);
  EXPECT_TRUE(at::equal(fixed->named_buffers()["features"], fixed->features()));
  EXPECT_TRUE(all_close(fixed->features(), d1, 1e-6, 1e-6));
}

TEST(PerformerMixer, CoreMatchesAndOptionsAreChecked) {
  longseq::MixerConfig c;
  c.dim = 16;
  c.heads = 2;
  c.causal = true;
  c.max_len = 64;
  auto opts = longseq::PerformerOptions(c);
  EXPECT_TRUE(throws_with([&] { longseq::Performer(longseq::PerformerOptions(c).features(0)); },
                          "performer: option `features` must be > 0, got 0"));
  EXPECT_TRUE(throws_with([&] { longseq::Performer(longseq::PerformerOptions(c).kernel("gelu")); },
                          "performer: option `kernel` must be one of softmax, relu, got 'gelu'"));
  EXPECT_TRUE(throws_with([&] { longseq::Performer(longseq::PerformerOptions(c).redraw(-1)); },
                          "performer: option `redraw` must be >= 0"));
  EXPECT_TRUE(throws_with([&] { longseq::Performer(longseq::PerformerOptions(c).chunk(0)); },
                          "performer: option `chunk` must be > 0, got 0"));

  // Causal mixer: perturbing token t+1.. leaves outputs up to t unchanged.
  torch::manual_seed(9);
  longseq::Performer mixer(longseq::PerformerOptions(c).features(32).kernel("relu").chunk(4));
  mixer->eval();
  auto x = torch::randn({2, 13, 16});
  auto x2 = x.clone();
  x2.narrow(1, 6, 7).normal_().mul_(20.0);
  auto y = mixer->forward(x), y2 = mixer->forward(x2);
  EXPECT_TRUE(all_close(y2.narrow(1, 0, 6), y.narrow(1, 0, 6), 1e-6, 1e-6));
  EXPECT_FALSE(all_close(y2.narrow(1, 6, 7), y.narrow(1, 6, 7), 1e-3, 1e-3));
}
