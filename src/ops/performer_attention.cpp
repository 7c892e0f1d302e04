// FAVOR+ attention (Choromanski et al. 2021, "Rethinking Attention with Performers", ICLR): the
// feature maps (performer_features.cpp: φ(q), φ(k) and the causal key stabiliser) followed by
// normalised linear attention on them (linear_attention.cpp: two GEMMs non-causal, chunked prefix
// sums causal). Each half has a fused CPU kernel and a composite path;
// performer_attention_composite
// runs both composite. Time O(B·H·(T + S)·R·(D + Dv)), memory O(B·H·(T + S)·R), never T×S.
// performer_causal_step continues the causal form one position at a time for decoding.
#include <longseq/attention.h>

#include "ops/fused.h"
#include "ops/performer.h"

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

namespace longseq {

using detail::kReluFloor;

namespace {

// The checks both paths make, so that they refuse the same inputs with the same words.
void check_attention_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& omega, const PerformerCoreOptions& opts,
                            const AttentionMask& mask) {
  constexpr const char* op = "performer_attention";
  check_qkv(op, q, k, v);
  detail::check_performer_inputs(op, q, k, omega, mask);
  TORCH_CHECK(opts.chunk > 0, op, ": expected `chunk` > 0, got ", opts.chunk);
}

}  // namespace

at::Tensor performer_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& omega, const PerformerCoreOptions& opts,
                               const AttentionMask& mask) {
  check_attention_inputs(q, k, v, omega, opts, mask);
  // Padded keys get zero features, so linear attention needs no key padding of its own.
  const auto f = performer_features(q, k, omega, opts.kernel, mask);
  return detail::stabilised_linear_attention(f.fq, f.fk, v, f.m, mask.causal, opts.chunk,
                                             /*composite=*/false);  // [B, H, T, Dv]
}

at::Tensor performer_attention_composite(const at::Tensor& q, const at::Tensor& k,
                                         const at::Tensor& v, const at::Tensor& omega,
                                         const PerformerCoreOptions& opts,
                                         const AttentionMask& mask) {
  check_attention_inputs(q, k, v, omega, opts, mask);
  const auto f = performer_features_composite(q, k, omega, opts.kernel, mask);
  return detail::stabilised_linear_attention(f.fq, f.fk, v, f.m, mask.causal, opts.chunk,
                                             /*composite=*/true);  // [B, H, T, Dv]
}

at::Tensor performer_causal_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& omega, PerformerKernel kernel, at::Tensor& s,
                                 at::Tensor& z, at::Tensor& m) {
  constexpr const char* op = "performer_causal_step";
  check_qkv(op, q, k, v);
  TORCH_CHECK(q.size(2) == k.size(2), op, ": expected as many new keys as queries, got ", q.size(2),
              " and ", k.size(2));
  const int64_t B = q.size(0), H = q.size(1), n = q.size(2), D = q.size(3), Dv = v.size(3);
  TORCH_CHECK(omega.defined() && omega.dim() == 2 && omega.size(1) == D, op,
              ": expected `omega` [R, D] with D = ", D);
  const int64_t R = omega.size(0);
  const double in_scale = std::pow(static_cast<double>(D), -0.25);
  const double inv_sqrt_r = 1.0 / std::sqrt(static_cast<double>(R));
  const auto w = omega.to(q.options());  // [R, D]
  if (!s.defined()) {
    s = q.new_zeros({B, H, R, Dv});
    z = q.new_zeros({B, H, R});
  }
  TORCH_CHECK(
      s.sizes() == at::IntArrayRef({B, H, R, Dv}) && z.sizes() == at::IntArrayRef({B, H, R}), op,
      ": state shapes do not match the inputs (", s.sizes(), ", ", z.sizes(), ")");
  auto q_proj = at::matmul(q * in_scale, w.t());  // [B, H, n, R]
  auto ks = k * in_scale;                         // [B, H, n, D]
  auto k_proj = at::matmul(ks, w.t());            // [B, H, n, R]
  at::Tensor fq, key_log;
  if (kernel == PerformerKernel::kRelu) {
    fq = at::relu(q_proj) * inv_sqrt_r + kReluFloor;  // [B, H, n, R]
  } else {
    fq = (q_proj - q_proj.amax(-1, /*keepdim=*/true)).exp() * inv_sqrt_r;  // [B, H, n, R]
    key_log = k_proj - ks.pow(2).sum(-1, /*keepdim=*/true) * 0.5;          // [B, H, n, R]
  }
  std::vector<at::Tensor> outs;
  outs.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    at::Tensor fk;  // [B, H, R]
    if (kernel == PerformerKernel::kRelu) {
      fk = at::relu(k_proj.select(2, i)) * inv_sqrt_r + kReluFloor;
    } else {
      auto li = key_log.select(2, i);                                        // [B, H, R]
      auto m_new = m.defined() ? at::maximum(m, li.amax(-1)) : li.amax(-1);  // [B, H]
      if (m.defined()) {
        auto decay = (m - m_new).exp();  // [B, H], <= 1
        s = s * decay.view({B, H, 1, 1});
        z = z * decay.view({B, H, 1});
      }
      m = m_new;
      fk = (li - m.unsqueeze(-1)).exp() * inv_sqrt_r;  // [B, H, R]
    }
    s = s + fk.unsqueeze(-1) * v.select(2, i).unsqueeze(-2);           // [B, H, R, Dv]
    z = z + fk;                                                        // [B, H, R]
    auto fqi = fq.select(2, i);                                        // [B, H, R]
    auto num = at::matmul(fqi.unsqueeze(-2), s).squeeze(-2);           // [B, H, Dv]
    auto den = (fqi * z).sum(-1);                                      // [B, H]
    outs.push_back(num / den.masked_fill(den == 0, 1).unsqueeze(-1));  // [B, H, Dv]
  }
  return at::stack(outs, 2);  // [B, H, n, Dv]
}

}  // namespace longseq
