// Linear transformer mixer (Katharopoulos et al. 2020): multi-head attention whose similarity is
// φ(q)·φ(k), φ(x) = elu(x) + 1, computed by linear_attention (ops/performer_attention.cpp: two
// GEMMs non-causal, the Performer's prefix sums causal). No random draws, no stabiliser: φ > 0
// and bounded by x + 1, so sums stay finite without one.
#include <longseq/op_work.h>
#include <longseq/mixers/linear.h>
#include <longseq/registry.h>

#include <ATen/ATen.h>

namespace longseq {
namespace {

const OptionSet<LinearAttentionOptions>& linear_options() {
  using O = LinearAttentionOptions;
  static const auto set = OptionSet<O>(O(MixerConfig{}))
                              .add(option("chunk", &O::chunk, "causal prefix-sum chunk length")
                                       .positive()
                                       .tests({"4", "2"}));
  return set;
}

at::Tensor feature_map(const at::Tensor& x) {
  return at::elu(x) + 1;  // [B, H, T, D], > 0
}

}  // namespace

LinearAttentionImpl::LinearAttentionImpl(const LinearAttentionOptions& options)
    : AttentionMixerImpl("linear", options.common()), options_(options) {
  linear_options().check(options_, name_);
}

at::Tensor LinearAttentionImpl::attend(const at::Tensor& /*x*/, const at::Tensor& q,
                                       const at::Tensor& k, const at::Tensor& v,
                                       const AttentionMask& mask) {
  auto out =
      linear_attention(feature_map(q), feature_map(k), v, mask, options_.chunk());  // [B, H, T, D]
  // No probability matrix to drop from (as in the Performer): dropout acts on the output.
  if (is_training() && config_.attn_dropout > 0) {
    out = at::dropout(out, config_.attn_dropout, /*train=*/true);
  }
  return out;  // [B, H, T, D]
}

std::string LinearAttentionImpl::step_unsupported() const {
  return config_.causal ? "" : SequenceMixerImpl::step_unsupported();
}

at::Tensor LinearAttentionImpl::attend_step(const at::Tensor& /*x*/, const at::Tensor& q,
                                            const at::Tensor& k, const at::Tensor& v,
                                            DecodeState& state) {
  const int64_t B = q.size(0), H = q.size(1), n = q.size(2), D = q.size(3), Dv = v.size(3);
  auto& s = state.tensors["s"];  // [B, H, D, Dv]: Σ φ(k_j) v_jᵀ over the positions so far
  auto& z = state.tensors["z"];  // [B, H, D]: Σ φ(k_j)
  if (!s.defined()) {
    s = q.new_zeros({B, H, D, Dv});
    z = q.new_zeros({B, H, D});
  }
  const auto fq = feature_map(q), fk = feature_map(k);  // [B, H, n, D]
  std::vector<at::Tensor> outs;
  outs.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    const auto fki = fk.select(2, i), fqi = fq.select(2, i);   // [B, H, D]
    s = s + fki.unsqueeze(-1) * v.select(2, i).unsqueeze(-2);  // [B, H, D, Dv]
    z = z + fki;                                               // [B, H, D]
    auto num = at::matmul(fqi.unsqueeze(-2), s).squeeze(-2);   // [B, H, Dv]
    auto den = (fqi * z).sum(-1);                              // [B, H], > 0
    outs.push_back(num / den.unsqueeze(-1));                   // [B, H, Dv]
  }
  return at::stack(outs, 2);  // [B, H, n, Dv]
}

// Roofline: Q/K/V/output projections and linear attention with R = D features (the elu + 1 map
// is elementwise).
static Work linear_work(const LinearAttentionOptions& o, int64_t batch, int64_t t, bool backward) {
  const auto& c = o.common();
  const int64_t D = c.resolved_head_dim();
  return attention_projection_work(c, batch, t, false, backward) +
         linear_attention_work(double(batch) * c.heads, t, t, D, D, c.causal, o.chunk(), backward);
}

MixerSpec linear_mixer_spec() {
  return mixer_spec<LinearAttention>(
      "linear",
      "linear transformer: softmax replaced by phi(q).phi(k), phi = elu + 1; O(T*D^2); causal "
      "by prefix sums",
      linear_options(), {}, linear_work);
}

}  // namespace longseq
