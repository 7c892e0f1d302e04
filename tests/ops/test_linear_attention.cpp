// linear_attention: normalised linear attention over given non-negative features, fused (the
// Performer's GEMM and prefix-sum kernels) and composite, against the explicit quadratic form in
// float64: odd shapes, chunk lengths that do not divide T, padding (a fully padded sequence gives
// zero rows), central-difference gradients.
#include <longseq/impl.h>
#include <longseq/linear_attention.h>

#include "test_util.h"

namespace longseq {
namespace {

// W = fq fkᵀ [B, H, T, S] masked (causal: j <= i + S - T; padding), out = W v / W 1, 0 where W 1 =
// 0.
at::Tensor quadratic_form(const at::Tensor& fq, const at::Tensor& fk, const at::Tensor& v,
                          bool causal, const at::Tensor& key_padding) {
  auto q = fq.to(at::kDouble), k = fk.to(at::kDouble), vv = v.to(at::kDouble);
  const int64_t B = q.size(0), T = q.size(2), S = k.size(2);
  auto w = at::matmul(q, k.transpose(-2, -1));  // [B, H, T, S]
  if (causal) w = w * at::ones({T, S}, w.options()).tril(S - T);
  if (key_padding.defined()) w = w * key_padding.to(at::kDouble).view({B, 1, 1, S});
  auto den = w.sum(-1, /*keepdim=*/true);  // [B, H, T, 1]
  return at::matmul(w, vv) / den.masked_fill(den == 0, 1);
}

at::Tensor features(std::vector<int64_t> sizes, at::ScalarType dtype) {
  return at::rand(sizes, at::TensorOptions().dtype(dtype)) + 0.05;  // > 0, as elu + 1 gives
}

TEST(LinearAttention, FusedAndCompositeEqualTheQuadraticForm) {
  torch::manual_seed(0);
  for (auto dtype : {at::kFloat, at::kDouble}) {
    for (bool causal : {false, true}) {
      for (int64_t chunk : {1, 4, 5, 32}) {
        const int64_t B = 3, H = 2, T = 13, S = causal ? 13 : 11, R = 7, Dv = 5;
        auto fq = features({B, H, T, R}, dtype), fk = features({B, H, S, R}, dtype);
        auto v = at::randn({B, H, S, Dv}, at::TensorOptions().dtype(dtype));
        // Sequence 2 is all padding: its rows must be zero.
        auto kp = padding_mask_from_lengths(at::tensor(std::vector<int64_t>{S, 4, 0}), S);
        SCOPED_TRACE(std::string(dtype == at::kFloat ? "float" : "double") +
                     (causal ? " causal" : "") + " chunk " + std::to_string(chunk));
        const double tol = dtype == at::kFloat ? 1e-5 : 1e-12;
        auto want = quadratic_form(fq, fk, v, causal, kp);
        AttentionMask mask{causal, kp};
        auto fused = linear_attention(fq, fk, v, mask, chunk);
        auto composite = linear_attention_composite(fq, fk, v, mask, chunk);
        EXPECT_TRUE(test::all_close(fused, want, tol, tol));
        EXPECT_TRUE(test::all_close(composite, want, tol, tol));
        EXPECT_EQ(fused[2].abs().max().item<double>(), 0.0) << "padded sequence: zero rows";
        {
          ImplGuard composite_only(Impl::kComposite);
          EXPECT_TRUE(test::all_close(linear_attention(fq, fk, v, mask, chunk), want, tol, tol));
        }
      }
    }
  }
}

TEST(LinearAttention, GradientsMatchCentralDifferences) {
  torch::manual_seed(1);
  for (bool composite : {false, true}) {
    for (bool causal : {false, true}) {
      SCOPED_TRACE(std::string(composite ? "composite" : "fused") + (causal ? " causal" : ""));
      const int64_t B = 2, H = 1, T = 5, S = causal ? 5 : 6, R = 3, Dv = 2;
      auto kp = padding_mask_from_lengths(at::tensor(std::vector<int64_t>{S, 3}), S);
      auto f = [&](const std::vector<at::Tensor>& in) {
        AttentionMask mask{causal, kp};
        return composite ? linear_attention_composite(in[0], in[1], in[2], mask, 2)
                         : linear_attention(in[0], in[1], in[2], mask, 2);
      };
      EXPECT_TRUE(test::gradcheck(
          f, {features({B, H, T, R}, at::kDouble), features({B, H, S, R}, at::kDouble),
              at::randn({B, H, S, Dv}, at::kDouble)}));
    }
  }
}

TEST(LinearAttention, CausalOutputsIgnoreLaterKeys) {
  torch::manual_seed(2);
  auto fq = features({1, 2, 9, 4}, at::kDouble), fk = features({1, 2, 9, 4}, at::kDouble);
  auto v = at::randn({1, 2, 9, 3}, at::kDouble);
  auto y = linear_attention(fq, fk, v, test::mask_of(true), 4);
  auto fk2 = fk.clone(), v2 = v.clone();
  fk2.narrow(2, 5, 4).mul_(100);
  v2.narrow(2, 5, 4).normal_();
  auto y2 = linear_attention(fq, fk2, v2, test::mask_of(true), 4);
  EXPECT_TRUE(test::all_close(y2.narrow(2, 0, 5), y.narrow(2, 0, 5), 1e-12, 1e-12));
}

TEST(LinearAttention, ErrorsNameTheProblem) {
  auto fq = features({1, 1, 4, 3}, at::kFloat), fk = features({1, 1, 6, 3}, at::kFloat);
  auto v = at::randn({1, 1, 6, 2});
  auto error_of = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const c10::Error& e) {
      return e.what_without_backtrace();
    }
    return "<accepted>";
  };
  EXPECT_NE(error_of([&] {
              linear_attention(fq, fk, v, test::mask_of(true), 4);
            }).find("causal attention needs T == S"),
            std::string::npos);
  EXPECT_NE(error_of([&] { linear_attention(fq, fk, v, {}, 0); }).find("`chunk` > 0"),
            std::string::npos);
}

}  // namespace
}  // namespace longseq
