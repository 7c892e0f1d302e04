#include <longseq/mixers/exact.h>

namespace longseq {

ExactAttentionImpl::ExactAttentionImpl(const ExactAttentionOptions& options)
    : AttentionMixerImpl("exact", options.common()) {}

at::Tensor ExactAttentionImpl::attend(const at::Tensor& /*x*/, const at::Tensor& q,
                                      const at::Tensor& k, const at::Tensor& v,
                                      const at::Tensor& key_padding) {
  AttentionMask mask{config_.causal, key_padding};
  return exact_attention(q, k, v, mask, config_.dropout, is_training());  // [B, H, T, D]
}

}  // namespace longseq
