#pragma once
#include <longseq/attention.h>
#include <longseq/mixer.h>

namespace longseq {

struct ExactAttentionOptions {
  explicit ExactAttentionOptions(MixerConfig common) : common_(common) {}
  TORCH_ARG(MixerConfig, common);
};

/// Full softmax attention, O(T²) time and memory: the baseline every other mixer approximates.
class ExactAttentionImpl : public AttentionMixerImpl {
 public:
  explicit ExactAttentionImpl(const ExactAttentionOptions& options);

  /// Causal: a KV cache of every position.
  std::string step_unsupported() const override;
  /// Ring attention over the shard's ranks (longseq/ring_attention.h).
  void set_sequence_shard(std::shared_ptr<SequenceShard> shard) override;

 protected:
  at::Tensor attend(const at::Tensor& x, const at::Tensor& q, const at::Tensor& k,
                    const at::Tensor& v, const AttentionMask& mask) override;
  at::Tensor attend_step(const at::Tensor& x, const at::Tensor& q, const at::Tensor& k,
                         const at::Tensor& v, DecodeState& state) override;
};
TORCH_MODULE(ExactAttention);

}  // namespace longseq
