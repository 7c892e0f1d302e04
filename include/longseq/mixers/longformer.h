#pragma once
#include <longseq/attention.h>
#include <longseq/mixer.h>

namespace longseq {

struct LongformerOptions {
  explicit LongformerOptions(MixerConfig common) : common_(common) {}
  TORCH_ARG(MixerConfig, common);
  TORCH_ARG(int64_t, window) = LongformerPattern{}.window;                   ///< W
  TORCH_ARG(std::vector<int64_t>, dilation) = LongformerPattern{}.dilation;  ///< per head, or one
  TORCH_ARG(int64_t, global_tokens) = 0;              ///< the first k positions are global
  TORCH_ARG(std::vector<int64_t>, global_positions);  ///< or these positions (not both)
  TORCH_ARG(bool, global_proj) = false;               ///< separate Q/K/V projections for globals
  TORCH_ARG(int64_t, block) = LongformerPattern{}.block;  ///< query block, 0 = auto
};

/// Longformer (Beltagy et al. 2020): sliding window with per-head dilation plus global tokens,
/// computed block by block in O(T·W) memory.
class LongformerImpl : public AttentionMixerImpl {
 public:
  explicit LongformerImpl(const LongformerOptions& options);
  const LongformerOptions& options() const { return options_; }

  /// Causal: a KV cache trimmed to the window once past the last global position.
  std::string step_unsupported() const override;

 protected:
  at::Tensor attend(const at::Tensor& x, const at::Tensor& q, const at::Tensor& k,
                    const at::Tensor& v, const AttentionMask& mask) override;
  at::Tensor attend_step(const at::Tensor& x, const at::Tensor& q, const at::Tensor& k,
                         const at::Tensor& v, DecodeState& state) override;

 private:
  /// The pattern for sequences of length t; t = 0: open-ended (incremental decoding), no length
  /// checks.
  LongformerPattern pattern_for(int64_t t) const;
  LongformerOptions options_;
  torch::nn::Linear wq_global_{nullptr}, wk_global_{nullptr}, wv_global_{nullptr};
};
TORCH_MODULE(Longformer);

}  // namespace longseq
