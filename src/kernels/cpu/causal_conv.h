#pragma once
// Fused causal depthwise 1-D convolution on CPU, channels last (see causal_conv.cpp). Raw
// pointers, contiguous row-major layouts; no autograd. The reference is the composite path
// (at::conv1d over [prefix; x], transposed to channels first) and a float64 loop in the tests.

#include <cstdint>

namespace longseq::cpu {

struct CausalConvParams {
  int64_t batch = 0;     ///< B
  int64_t t = 0;         ///< T, steps
  int64_t channels = 0;  ///< E
  int64_t width = 0;     ///< K, taps
};

/// out_t = bias + Σ_k w_k ⊙ full_{t+k}, full = [prefix; x] ([B, K − 1 + T, E]).
/// x [B, T, E]; w [E, K]; bias [E] or nullptr; prefix [B, K − 1, E] or nullptr (zeros).
/// Writes every element of out [B, T, E].
template <typename scalar_t>
void causal_conv_forward(const scalar_t* x, const scalar_t* w, const scalar_t* bias,
                         const scalar_t* prefix, scalar_t* out, const CausalConvParams& p);

/// Gradients of sum(out ⊙ grad_out). Writes every element of grad_x [B, T, E], grad_w [E, K], and
/// unless nullptr grad_bias [E] and grad_prefix [B, K − 1, E].
template <typename scalar_t>
void causal_conv_backward(const scalar_t* x, const scalar_t* w, const scalar_t* prefix,
                          const scalar_t* grad_out, scalar_t* grad_x, scalar_t* grad_w,
                          scalar_t* grad_bias, scalar_t* grad_prefix, const CausalConvParams& p);

}  // namespace longseq::cpu
