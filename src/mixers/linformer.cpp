#include <longseq/mixers/linformer.h>

#include <torch/nn/init.h>

#include <cmath>

namespace longseq {

LinformerImpl::LinformerImpl(const LinformerOptions& options)
    : AttentionMixerImpl("linformer", options.common()), options_(options) {
  TORCH_CHECK(!config_.causal,
              "linformer: `causal` is not supported: the projections E and F mix every position "
              "of the sequence, so each output would depend on future tokens");
  TORCH_CHECK(!config_.rotary,
              "linformer: `rotary` is not supported: E and F project keys along the sequence, so "
              "scores no longer compare individual positions and rotary's relative encoding is lost");
  TORCH_CHECK(options_.proj_len() > 0, "linformer: option `proj_len` must be > 0, got ",
              options_.proj_len());
  // Entries N(0, 1/R): a Johnson-Lindenstrauss projection, so E k keeps the scale of k.
  const double std = 1.0 / std::sqrt(static_cast<double>(options_.proj_len()));
  e_proj_ = register_parameter("e_proj", torch::randn({options_.proj_len(), config_.max_len}) * std);
  if (!options_.share_kv()) {
    f_proj_ = register_parameter("f_proj", torch::randn({options_.proj_len(), config_.max_len}) * std);
  }
}

at::Tensor LinformerImpl::attend(const at::Tensor& /*x*/, const at::Tensor& q, const at::Tensor& k,
                                 const at::Tensor& v, const at::Tensor& key_padding) {
  const auto& f = options_.share_kv() ? e_proj_ : f_proj_;
  return linformer_attention(q, k, v, e_proj_, f, key_padding, config_.dropout, is_training());
}

}  // namespace longseq
