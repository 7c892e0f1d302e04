#pragma once
/// minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates from x_t only, so the
/// state update is linear in the state and training scans all steps at once (longseq/scan.h)
/// instead of T dependent matrix products; generation steps one token at a time.

#include <longseq/mixer.h>

#include <torch/nn/modules/linear.h>

namespace longseq {

struct MinRnnOptions {
  MinRnnOptions(MixerConfig common, bool lstm) : common_(common), lstm_(lstm) {}
  TORCH_ARG(MixerConfig, common);
  TORCH_ARG(bool, lstm);           ///< minLSTM (forget + input gates) instead of minGRU
  TORCH_ARG(int64_t, hidden) = 0;  ///< H; 0 = dim
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

}  // namespace longseq
