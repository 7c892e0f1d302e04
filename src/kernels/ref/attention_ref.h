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

}  // namespace longseq::ref
