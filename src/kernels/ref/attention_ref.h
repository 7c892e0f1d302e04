#pragma once
// Plain, obviously correct attention loops in float64: the ground truth the tests hold every
// mechanism to. Slow on purpose; never used on a hot path.

#include <ATen/core/Tensor.h>

namespace longseq::ref {

/// out[b,h,i] = Σ_j p_ij v[b,h,j], p_i = softmax over allowed j of scale·q_i·k_j.
/// `allowed`: bool broadcastable to [B, H, T, S], or undefined for all allowed.
/// Rows with no allowed key give zeros. Inputs of any float dtype; computes and returns float64.
at::Tensor attention_naive(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const at::Tensor& allowed, double scale);

/// Causal FAVOR+ from features, by the definition: out_t = Σ_{j≤t} w_tj v_j / Σ_{j≤t} w_tj with
/// w_tj = (fq_t·fk_j)·exp(m_j − m_t) (m undefined: weights fq_t·fk_j), 0 where the sum is 0.
/// fq, fk [B, H, T, R], v [B, H, T, Dv], m [B, H, T]. Computes and returns float64.
at::Tensor performer_causal_naive(const at::Tensor& fq, const at::Tensor& fk, const at::Tensor& v,
                                  const at::Tensor& m);

}  // namespace longseq::ref
