#pragma once
// The fused flash kernel (kernels/cpu/flash_attention.h) on tensors: one place that fills its
// parameters, allocates its outputs and dispatches on dtype, for the ops built on it (exact
// attention, and ring attention per block).

#include <ATen/core/Tensor.h>

#include <array>
#include <utility>

namespace longseq {

/// q [B, H, T, D], k [B, H, S, D], v [B, H, S, Dv] contiguous CPU float or double; key_padding
/// contiguous bool [B, S] or undefined. Returns out [B, H, T, Dv] and lse [B, H, T].
std::pair<at::Tensor, at::Tensor> flash_forward(const at::Tensor& q, const at::Tensor& k,
                                                const at::Tensor& v,
                                                const at::Tensor& key_padding, bool causal,
                                                double scale);

/// The gradients {dq, dk, dv} given the forward's out and lse (which may be those of a larger
/// attention whose keys this call sees a block of: ring attention) and grad_out [B, H, T, Dv],
/// all contiguous.
std::array<at::Tensor, 3> flash_backward(const at::Tensor& q, const at::Tensor& k,
                                         const at::Tensor& v, const at::Tensor& key_padding,
                                         const at::Tensor& out, const at::Tensor& lse,
                                         const at::Tensor& grad_out, bool causal, double scale);

}  // namespace longseq
