// Linformer attention (Wang et al. 2020, "Linformer: Self-Attention with Linear Complexity").
//   k' = E[:, :S] k,  v' = F[:, :S] v          E, F: [R, max_len], learned
//   out = softmax(q k'ᵀ / √D) v'
// Time O(B·H·(T·R·D + S·R·D)), memory O(B·H·T·R). Padded keys are zeroed before the projection so
// they contribute nothing to k', v'. Non-causal only: every row of E mixes all positions.
// Two paths:
// - composite: at::matmul(E, k) broadcasts E over B·H (a [B·H, R, S] copy forward and the same
//   size of gradient backward), then softmax(q k'ᵀ) v' with the [B, H, T, R] probabilities saved.
// - fused (CPU, float/double, no dropout while training): the projections are one GEMM each on
//   the keys laid out [S, B·H·D] (E [R, S] times it; backward one GEMM for dE, one for dk), and the
//   attention over the R projected keys runs the FlashAttention kernel (exact_attention), which
//   saves only the row log-sum-exp. Memory O(B·H·(S + T)·D + R·S), no [T, R] tensor.
#include <longseq/attention.h>

#include "ops/fused.h"

#include <ATen/ATen.h>

#include <cmath>
#include <utility>

namespace longseq {

namespace {

constexpr const char* kOp = "linformer_attention";

// Checks the inputs; returns k and v with the padded keys zeroed.
std::pair<at::Tensor, at::Tensor> checked_keys(const at::Tensor& q, const at::Tensor& k,
                                               const at::Tensor& v, const at::Tensor& e_proj,
                                               const at::Tensor& f_proj,
                                               const AttentionMask& mask) {
  check_qkv(kOp, q, k, v);
  const int64_t B = q.size(0), S = k.size(2);
  check_mask(kOp, mask, B, q.size(1), q.size(2), S, /*causal_ok=*/false, /*pattern_ok=*/false);
  for (const auto* p : {&e_proj, &f_proj}) {
    const char* name = p == &e_proj ? "e_proj" : "f_proj";
    TORCH_CHECK(p->defined() && p->dim() == 2, kOp, ": expected 2-D `", name,
                "` [R, max_len], got ", p->defined() ? p->dim() : 0, "-D");
    TORCH_CHECK(p->size(1) >= S, kOp, ": sequence length ", S,
                " exceeds the projection length max_len = ", p->size(1), " of `", name, "`");
    TORCH_CHECK(p->size(0) > 0, kOp, ": `", name, "` has R = 0 rows");
  }
  TORCH_CHECK(e_proj.size(0) == f_proj.size(0), kOp, ": `e_proj` has R = ", e_proj.size(0),
              " but `f_proj` has R = ", f_proj.size(0));
  if (!mask.key_padding.defined()) return {k, v};
  auto keep = mask.key_padding.to(k.device()).view({B, 1, S, 1}).to(k.scalar_type());  // [B,1,S,1]
  return {k * keep, v * keep};
}

at::Tensor composite_path(const at::Tensor& q, const at::Tensor& kk, const at::Tensor& vv,
                          const at::Tensor& e_proj, const at::Tensor& f_proj, double dropout_p,
                          bool train) {
  const int64_t S = kk.size(2), D = q.size(3);
  auto e = e_proj.narrow(1, 0, S).to(kk.scalar_type());  // [R, S]
  auto f = f_proj.narrow(1, 0, S).to(vv.scalar_type());  // [R, S]
  auto kp = at::matmul(e, kk);                           // [B, H, R, D]
  auto vp = at::matmul(f, vv);                           // [B, H, R, Dv]
  auto scores =
      at::matmul(q, kp.transpose(-2, -1)) / std::sqrt(static_cast<double>(D));  // [B, H, T, R]
  auto probs = at::softmax(scores, -1);                                         // [B, H, T, R]
  if (train && dropout_p > 0) probs = at::dropout(probs, dropout_p, /*train=*/true);
  return at::matmul(probs, vp);  // [B, H, T, Dv]
}

}  // namespace

at::Tensor linformer_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& e_proj, const at::Tensor& f_proj,
                               const AttentionMask& mask, double dropout_p, bool train) {
  const auto [kk, vv] = checked_keys(q, k, v, e_proj, f_proj, mask);
  const bool fused =
      use_fused_kernel(kOp, q, train && dropout_p > 0 ? "dropout while training" : nullptr);
  if (!fused) return composite_path(q, kk, vv, e_proj, f_proj, dropout_p, train);
  const int64_t B = q.size(0), S = k.size(2);
  // E x for x [B, H, S, E'] as one GEMM: [R, S] × [S, B·H·E'] -> [B, H, R, E'].
  auto project = [&](const at::Tensor& proj, const at::Tensor& x) {
    const int64_t H = x.size(1), E = x.size(3);
    auto cols = x.permute({2, 0, 1, 3}).reshape({S, B * H * E});      // [S, B·H·E']
    auto y = at::mm(proj.narrow(1, 0, S).to(x.scalar_type()), cols);  // [R, B·H·E']
    return y.view({-1, B, H, E}).permute({1, 2, 0, 3});               // [B, H, R, E']
  };
  return exact_attention(q, project(e_proj, kk), project(f_proj, vv));  // [B, H, T, Dv]
}

at::Tensor linformer_attention_composite(const at::Tensor& q, const at::Tensor& k,
                                         const at::Tensor& v, const at::Tensor& e_proj,
                                         const at::Tensor& f_proj, const AttentionMask& mask,
                                         double dropout_p, bool train) {
  const auto [kk, vv] = checked_keys(q, k, v, e_proj, f_proj, mask);
  return composite_path(q, kk, vv, e_proj, f_proj, dropout_p, train);
}

}  // namespace longseq
