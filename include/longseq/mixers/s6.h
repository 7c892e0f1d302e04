#pragma once
/// S6: a selective state-space mixer in the spirit of Mamba (Gu & Dao 2023). The state update is
/// linear in the state, so training runs the selective scan over all steps at once
/// (longseq/scan.h: selective_scan); generation steps one token at a time.

#include <longseq/mixer.h>

#include <torch/nn/modules/linear.h>

namespace longseq {

struct S6Options {
  explicit S6Options(MixerConfig common) : common_(common) {}
  TORCH_ARG(MixerConfig, common);
  TORCH_ARG(int64_t, state) = 16;   ///< N, state size per channel
  TORCH_ARG(int64_t, expand) = 2;   ///< E = expand · C inner channels
  TORCH_ARG(int64_t, conv) = 4;     ///< width of the causal depthwise convolution
  TORCH_ARG(int64_t, dt_rank) = 0;  ///< rank of the step-size projection; 0 = ceil(C / 16)
};

/// Selective SSM block (Mamba's S6 layer): (u, gate) = W_in x; u = SiLU(causal depthwise
/// conv(u)); Δ = softplus(W_Δ (W_r u) + b_Δ), B_t = W_B u_t, C_t = W_C u_t (input-dependent);
/// per channel e and state n, h_tn = exp(Δ_te A_en) h_{t−1,n} + Δ_te B_tn u_te with diagonal
/// A = −exp(A_log) (S4D-real init −1, −2, …, −N); y = C_t · h_t + D ⊙ u; out = W_out (y ⊙
/// SiLU(gate)).
/// Padded positions get Δ = 0 and u = 0 (the state carries over). Step state: "h" [B, E, N] and
/// "conv" [B, conv − 1, E], the last pre-convolution inputs.
class S6Impl : public SequenceMixerImpl {
 public:
  explicit S6Impl(const S6Options& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& key_padding = {}) override;
  std::string step_unsupported() const override { return ""; }
  at::Tensor step(const at::Tensor& x, DecodeState& state) override;

 private:
  /// Shared by forward and step: `conv_prefix` [B, K − 1, E] are the pre-convolution inputs before
  /// x (zeros at the start); returns {out [B, T, C], h_T, new prefix}.
  std::tuple<at::Tensor, at::Tensor, at::Tensor> run(const at::Tensor& x,
                                                     const at::Tensor& key_padding,
                                                     const at::Tensor& h0,
                                                     const at::Tensor& conv_prefix);
  S6Options options_;
  int64_t inner_, rank_;
  torch::nn::Linear in_{nullptr}, x_proj_{nullptr}, dt_proj_{nullptr}, out_{nullptr};
  at::Tensor conv_weight_, conv_bias_, a_log_, d_;
};
TORCH_MODULE(S6);

}  // namespace longseq
