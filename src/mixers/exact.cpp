#include <longseq/op_work.h>
#include <longseq/mixers/exact.h>
#include <longseq/registry.h>
#include <longseq/ring_attention.h>

namespace longseq {

ExactAttentionImpl::ExactAttentionImpl(const ExactAttentionOptions& options)
    : AttentionMixerImpl("exact", options.common()) {}

at::Tensor ExactAttentionImpl::attend(const at::Tensor& /*x*/, const at::Tensor& q,
                                      const at::Tensor& k, const at::Tensor& v,
                                      const AttentionMask& mask) {
  if (shard_) {
    TORCH_CHECK(!mask.key_padding.defined(),
                "exact: sequence parallelism (ring attention) takes no padding mask");
    TORCH_CHECK(config_.attn_dropout == 0 || !is_training(),
                "exact: sequence parallelism (ring attention) has no attention dropout");
    return ring_attention(q, k, v, mask.causal, *shard_->dist, shard_->length);  // [B, H, T, D]
  }
  return exact_attention(q, k, v, mask, config_.attn_dropout, is_training());  // [B, H, T, D]
}

void ExactAttentionImpl::set_sequence_shard(std::shared_ptr<SequenceShard> shard) {
  shard_ = std::move(shard);
}

std::string ExactAttentionImpl::step_unsupported() const {
  return config_.causal ? "" : SequenceMixerImpl::step_unsupported();
}

at::Tensor ExactAttentionImpl::attend_step(const at::Tensor& /*x*/, const at::Tensor& q,
                                           const at::Tensor& k, const at::Tensor& v,
                                           DecodeState& state) {
  auto& kc = state.tensors["k"];  // [B, H, S, D], every position so far
  auto& vc = state.tensors["v"];  // [B, H, S, D]
  kc = kc.defined() ? at::cat({kc, k}, 2) : k;
  vc = vc.defined() ? at::cat({vc, v}, 2) : v;
  // Causal with S > n aligns the n queries with the last n keys.
  AttentionMask causal_mask;
  causal_mask.causal = true;
  return exact_attention(q, kc, vc, causal_mask);  // [B, H, n, D]
}

// Roofline: Q/K/V/output projections and exact attention over every (causal: earlier) pair.
static Work exact_work(const ExactAttentionOptions& o, int64_t batch, int64_t t, bool backward) {
  const auto& c = o.common();
  const int64_t D = c.resolved_head_dim();
  return attention_projection_work(c, batch, t, false, backward) +
         exact_attention_work(batch, c.heads, t, t, D, D, c.causal, backward);
}

MixerSpec exact_mixer_spec() {
  static const OptionSet<ExactAttentionOptions> options(ExactAttentionOptions(MixerConfig{}));
  return mixer_spec<ExactAttention>(
      "exact", "softmax(QK^T/sqrt(D) + mask) V; O(T^2) time and memory, the reference", options,
      {/*supports_causal=*/true, /*memory_exponent=*/2, /*fused_memory_exponent=*/1}, exact_work);
}

}  // namespace longseq
