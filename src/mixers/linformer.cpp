#include <longseq/op_work.h>
#include <longseq/mixers/linformer.h>
#include <longseq/registry.h>

#include <torch/nn/init.h>

#include <cmath>

namespace longseq {
namespace {

const OptionSet<LinformerOptions>& linformer_options() {
  using O = LinformerOptions;
  static const auto set =
      OptionSet<O>(O(MixerConfig{}))
          .add(option("proj_len", &O::proj_len, "R, projected length of keys and values")
                   .positive()
                   .tests({"6"}))
          .add(option("share_kv", &O::share_kv, "use one projection for keys and values (F = E)"));
  return set;
}

}  // namespace

LinformerImpl::LinformerImpl(const LinformerOptions& options)
    : AttentionMixerImpl("linformer", options.common()), options_(options) {
  linformer_options().check(options_, name_);
  TORCH_CHECK(!config_.causal,
              "linformer: `causal` is not supported: the projections E and F mix every position "
              "of the sequence, so each output would depend on future tokens");
  TORCH_CHECK(
      !config_.rotary,
      "linformer: `rotary` is not supported: E and F project keys along the sequence, so "
      "scores no longer compare individual positions and rotary's relative encoding is lost");
  // Entries N(0, 1/R): a Johnson-Lindenstrauss projection, so E k keeps the scale of k.
  const double std = 1.0 / std::sqrt(static_cast<double>(options_.proj_len()));
  e_proj_ =
      register_parameter("e_proj", torch::randn({options_.proj_len(), config_.max_len}) * std);
  if (!options_.share_kv()) {
    f_proj_ =
        register_parameter("f_proj", torch::randn({options_.proj_len(), config_.max_len}) * std);
  }
}

at::Tensor LinformerImpl::attend(const at::Tensor& /*x*/, const at::Tensor& q, const at::Tensor& k,
                                 const at::Tensor& v, const AttentionMask& mask) {
  const auto& f = options_.share_kv() ? e_proj_ : f_proj_;
  return linformer_attention(q, k, v, e_proj_, f, mask, config_.attn_dropout, is_training());
}

// Roofline: Q/K/V/output projections; per head E k and F v ([R, T] by [T, D]), the scores
// q (E k)ᵀ and their product with F v; backward twice the forward's GEMMs.
static Work linformer_work(const LinformerOptions& o, int64_t batch, int64_t t, bool backward) {
  const auto& c = o.common();
  const double D = double(c.resolved_head_dim()), R = double(o.proj_len()), bh = double(batch) * c.heads;
  const Work core = bh * (2 * gemm_work(R, t, D) + gemm_work(t, D, R) + gemm_work(t, R, D));
  return attention_projection_work(c, batch, t, false, backward) + (backward ? 2 * core : core);
}

MixerSpec linformer_mixer_spec() {
  return mixer_spec<Linformer>(
      "linformer",
      "keys/values projected along the sequence to R rows by learned E, F; O(T*R); no causal",
      linformer_options(), {/*supports_causal=*/false}, linformer_work);
}

}  // namespace longseq
