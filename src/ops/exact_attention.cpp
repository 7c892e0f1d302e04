// Exact softmax attention, composite LibTorch path.
//   out = softmax(q kᵀ · scale + mask) v          (Vaswani et al. 2017)
// Time O(B·H·T·S·D), memory O(B·H·T·S): the [B, H, T, S] score matrix is materialised and saved
// by autograd (probabilities) for backward. The fused O(T)-memory kernel replaces this on CPU.
#include <longseq/attention.h>

#include <ATen/ATen.h>

#include <cmath>

namespace longseq {

at::Tensor exact_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const AttentionMask& mask, double dropout_p, bool train,
                           std::optional<double> scale) {
  check_qkv("exact_attention", q, k, v);
  const int64_t B = q.size(0), T = q.size(2), S = k.size(2), D = q.size(3);
  check_key_padding("exact_attention", mask.key_padding, B, S);
  TORCH_CHECK(!mask.causal || S >= T, "exact_attention: causal attention needs S >= T, got T = ",
              T, ", S = ", S);
  TORCH_CHECK(dropout_p >= 0 && dropout_p < 1, "exact_attention: expected `dropout_p` in [0, 1), got ",
              dropout_p);
  const double sc = scale.value_or(1.0 / std::sqrt(static_cast<double>(D)));
  auto scores = at::matmul(q, k.transpose(-2, -1)) * sc;         // [B, H, T, S]
  auto allowed = dense_allowed(mask, B, T, S, q.device());       // [B|1, 1, T, S]
  auto probs = masked_softmax(scores, allowed, /*with_lse=*/false).first;            // [B, H, T, S]
  if (train && dropout_p > 0) probs = at::dropout(probs, dropout_p, /*train=*/true);
  return at::matmul(probs, v);                                   // [B, H, T, Dv]
}

}  // namespace longseq
