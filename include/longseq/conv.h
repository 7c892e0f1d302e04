#pragma once
/// Causal depthwise 1-D convolution over time, channels last: the short convolution before
/// Mamba's selective scan. CPU float/double calls run a fused kernel (see longseq/impl.h for the
/// switch); everything else runs the composite LibTorch path, also exposed as
/// causal_conv1d_composite (the reference).

#include <ATen/core/Tensor.h>

namespace longseq {

/// out[b, t, e] = bias[e] + Σ_{k<K} weight[e, k] · full[b, t + k, e], full = [prefix; x] along
/// time: output t sees inputs t − K + 1 .. t, and before the first, the prefix rows (zeros when
/// prefix is undefined). x [B, T, E]; weight [E, K]; bias [E], optional; prefix [B, K − 1, E],
/// optional (the last K − 1 inputs of a previous call, for decoding in pieces).
/// Returns out [B, T, E]; differentiable in x, weight, bias and prefix.
at::Tensor causal_conv1d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {},
                         const at::Tensor& prefix = {});
/// The composite LibTorch path of causal_conv1d (at::conv1d on [B, E, K − 1 + T]), whatever the
/// switch says.
at::Tensor causal_conv1d_composite(const at::Tensor& x, const at::Tensor& weight,
                                   const at::Tensor& bias = {}, const at::Tensor& prefix = {});

}  // namespace longseq
