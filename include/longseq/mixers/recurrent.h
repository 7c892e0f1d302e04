#pragma once
#include <longseq/mixer.h>
#include <longseq/rnn.h>

#include <torch/nn/modules/linear.h>

#include <string>
#include <vector>

namespace longseq {

struct RecurrentOptions {
  RecurrentOptions(MixerConfig common, RnnCell cell) : common_(common), cell_(cell) {}
  TORCH_ARG(MixerConfig, common);
  TORCH_ARG(RnnCell, cell);
  TORCH_ARG(int64_t, hidden) = 0;          ///< H per direction; 0 = dim
  TORCH_ARG(bool, bidirectional) = false;  ///< a second pass from the end (non-causal only)
  /// Recurrent weights: "default" (PyTorch's U(±1/√H)), "orthogonal" (each gate block of W_hh
  /// orthogonal; Saxe et al. 2014) or "identity" (W_hh blocks = I; Le et al. 2015, IRNN).
  TORCH_ARG(std::string, init) = "default";
  /// "attention": the output also reads the layer's own earlier states by single-head attention
  /// (query from h_t, keys/values from h_j, j <= t when causal, all j otherwise): attention over
  /// the past for a recurrent layer. "none": the states alone.
  TORCH_ARG(std::string, readout) = "none";
};

/// Classic recurrent mixer (`elman`, `lstm`, `gru`): the recurrence over norm(x) [B, T, C] then a
/// linear map of the (concatenated) hidden states back to C. Weights per direction use PyTorch's
/// names and layout (weight_ih, weight_hh, bias_ih, bias_hh, + "_reverse"), so they copy to and
/// from torch::nn::RNN/LSTM/GRU. Key padding freezes the state past each sequence's end.
/// Unidirectional layers are causal by construction and step() token by token (also in training,
/// which truncated BPTT uses: state tensors "h" [B, H] and, for lstm, "c"; with the attention
/// read-out also the cache "rk", "rv" of earlier states' keys and values).
class RecurrentImpl : public SequenceMixerImpl {
 public:
  explicit RecurrentImpl(const RecurrentOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& key_padding = {}) override;
  /// Initial state in (undefined = zeros), final state out: {output [B, T, C], h, c} where h, c
  /// are [D, B, H] for D directions (c undefined unless lstm).
  std::vector<at::Tensor> forward_with_state(const at::Tensor& x, const at::Tensor& key_padding,
                                             const at::Tensor& h0, const at::Tensor& c0);
  std::string step_unsupported() const override;
  at::Tensor step(const at::Tensor& x, DecodeState& state) override;
  const RecurrentOptions& options() const { return options_; }
  /// Weights of direction d (0 forward, 1 reverse).
  RnnWeights weights(int64_t direction) const;

 private:
  RecurrentOptions options_;
  int64_t hidden_;
  /// The read-out on hidden states [B, T, D·H] -> [B, T, C]; `cache` carries keys/values (step).
  at::Tensor read_out(const at::Tensor& states, const at::Tensor& key_padding, DecodeState* cache);
  std::vector<RnnWeights> dirs_;
  torch::nn::Linear out_{nullptr}, rq_{nullptr}, rk_{nullptr}, rv_{nullptr};
  DecodeState* cache_ = nullptr;  // set during step() only
};
TORCH_MODULE(Recurrent);

}  // namespace longseq
