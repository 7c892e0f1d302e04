#pragma once
/// Parallel-scan recurrences: minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?")
/// and a selective state-space mixer in the spirit of Mamba's S6 (Gu & Dao 2023). Their state
/// updates are linear in the state, so training scans all steps at once (longseq/scan.h) instead
/// of T dependent matrix products; generation steps one token at a time from the carried state.

#include <longseq/mixer.h>

#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

namespace longseq {

struct MinRnnOptions {
  MinRnnOptions(MixerConfig common, bool lstm) : common_(common), lstm_(lstm) {}
  TORCH_ARG(MixerConfig, common);
  TORCH_ARG(bool, lstm);            ///< minLSTM (forget + input gates) instead of minGRU
  TORCH_ARG(int64_t, hidden) = 0;   ///< H; 0 = dim
};

/// minGRU:  z = σ(W_z x), h̃ = g(W_h x), h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t
/// minLSTM: f = σ(W_f x), i = σ(W_i x), h_t = f'_t ⊙ h_{t−1} + i'_t ⊙ h̃_t with f' = f / (f + i),
///          i' = i / (f + i)
/// g(x) = x + 0.5 for x ≥ 0, σ(x) otherwise (positive, so the log-space scan applies). Gates
/// depend on x_t only, so h_t = a_t ⊙ h_{t−1} + b_t: the fused linear scan on CPU, the log-space
/// parallel scan (the paper's form) on the composite path. Padded positions carry the state.
class MinRnnImpl : public SequenceMixerImpl {
 public:
  explicit MinRnnImpl(const MinRnnOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& key_padding = {}) override;
  /// {output [B, T, C], final state [B, H]} from an initial state h0 [B, H] (undefined = zeros).
  std::pair<at::Tensor, at::Tensor> forward_with_state(const at::Tensor& x,
                                                       const at::Tensor& key_padding,
                                                       const at::Tensor& h0);
  std::string step_unsupported() const override { return ""; }
  at::Tensor step(const at::Tensor& x, DecodeState& state) override;

 private:
  MinRnnOptions options_;
  int64_t hidden_;
  torch::nn::Linear in_{nullptr}, out_{nullptr};
};
TORCH_MODULE(MinRnn);

struct SelectiveSsmOptions {
  explicit SelectiveSsmOptions(MixerConfig common) : common_(common) {}
  TORCH_ARG(MixerConfig, common);
  TORCH_ARG(int64_t, state) = 16;   ///< N, state size per channel
  TORCH_ARG(int64_t, expand) = 2;   ///< E = expand · C inner channels
  TORCH_ARG(int64_t, conv) = 4;     ///< width of the causal depthwise convolution
  TORCH_ARG(int64_t, dt_rank) = 0;  ///< rank of the step-size projection; 0 = ceil(C / 16)
};

/// Selective SSM block (Mamba's S6 layer): (u, gate) = W_in x; u = SiLU(causal depthwise
/// conv(u)); Δ = softplus(W_Δ (W_r u) + b_Δ), B_t = W_B u_t, C_t = W_C u_t (input-dependent);
/// per channel e and state n, h_tn = exp(Δ_te A_en) h_{t−1,n} + Δ_te B_tn u_te with diagonal
/// A = −exp(A_log) (S4D-real init −1, −2, …, −N); y = C_t · h_t + D ⊙ u; out = W_out (y ⊙ SiLU(gate)).
/// Padded positions get Δ = 0 and u = 0 (the state carries over). Step state: "h" [B, E, N] and
/// "conv" [B, conv − 1, E], the last pre-convolution inputs.
class SelectiveSsmImpl : public SequenceMixerImpl {
 public:
  explicit SelectiveSsmImpl(const SelectiveSsmOptions& options);
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
  SelectiveSsmOptions options_;
  int64_t inner_, rank_;
  torch::nn::Linear in_{nullptr}, x_proj_{nullptr}, dt_proj_{nullptr}, out_{nullptr};
  at::Tensor conv_weight_, conv_bias_, a_log_, d_;
};
TORCH_MODULE(SelectiveSsm);

}  // namespace longseq
