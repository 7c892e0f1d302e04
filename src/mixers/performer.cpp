// Performer mixer (Choromanski et al. 2021): multi-head attention whose core is FAVOR+
// (ops/performer_attention.cpp). The random features ω [R, D] live in the buffer "features"
// (saved with the weights). Draw n uses seed config().seed + n·0x9E3779B97F4A7C15 (mod 2⁶⁴), so
// draw 0 is performer_draw_features(R, D, config().seed); in training a new draw is made every
// `redraw` calls (0 = never); eval never redraws and does not count calls.
#include <longseq/op_work.h>
#include <longseq/mixers/performer.h>
#include <longseq/registry.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

namespace longseq {
namespace {

const OptionSet<PerformerOptions>& performer_options() {
  using O = PerformerOptions;
  static const auto set =
      OptionSet<O>(O(MixerConfig{}))
          .add(option("features", &O::features, "R, number of random features")
                   .positive()
                   .tests({"16"}))
          .add(option("kernel", &O::kernel, "feature map").choices({"softmax", "relu"}))
          .add(option("redraw", &O::redraw, "redraw features every k training calls; 0 = never")
                   .non_negative())
          .add(option("chunk", &O::chunk, "causal prefix-sum chunk length")
                   .positive()
                   .tests({"4", "2"}));
  return set;
}

}  // namespace

PerformerImpl::PerformerImpl(const PerformerOptions& options)
    : AttentionMixerImpl("performer", options.common()),
      options_(options),
      schedule_(options.redraw()) {
  performer_options().check(options_, name_);
  core_.kernel = options_.kernel() == "relu" ? PerformerKernel::kRelu : PerformerKernel::kSoftmax;
  core_.chunk = options_.chunk();
  omega_ = register_buffer(
      "features", performer_draw_features(options_.features(), config_.resolved_head_dim(),
                                          RedrawSchedule::seed_for(config_.seed, 0)));  // [R, D]
  register_buffer("redraw_state", schedule_.state());  // (training calls, draws)
}

void PerformerImpl::redraw_features() {
  auto fresh = performer_draw_features(omega_.size(0), omega_.size(1),
                                       RedrawSchedule::seed_for(config_.seed, schedule_.advance()),
                                       omega_.scalar_type());  // [R, D]
  torch::NoGradGuard no_grad;
  // In place, so the registered buffer (and whatever device/dtype it was moved to) stays.
  omega_.copy_(fresh);
}

at::Tensor PerformerImpl::attend(const at::Tensor& /*x*/, const at::Tensor& q, const at::Tensor& k,
                                 const at::Tensor& v, const AttentionMask& mask) {
  if (schedule_.tick(is_training())) redraw_features();
  auto out = performer_attention(q, k, v, omega_, core_, mask);  // [B, H, T, D]
  // FAVOR+ never forms the attention probabilities, so `dropout` cannot act on them as in the
  // other mixers; it drops elements of the attention output [B, H, T, D] instead (training only).
  if (is_training() && config_.attn_dropout > 0) {
    out = at::dropout(out, config_.attn_dropout, /*train=*/true);
  }
  return out;  // [B, H, T, D]
}

std::string PerformerImpl::step_unsupported() const {
  return config_.causal ? "" : SequenceMixerImpl::step_unsupported();
}

at::Tensor PerformerImpl::attend_step(const at::Tensor& /*x*/, const at::Tensor& q,
                                      const at::Tensor& k, const at::Tensor& v,
                                      DecodeState& state) {
  return performer_causal_step(q, k, v, omega_, core_.kernel, state.tensors["s"],
                               state.tensors["z"], state.tensors["m"]);  // [B, H, n, D]
}

// Roofline: Q/K/V/output projections, the feature maps of q and k, linear attention on them.
static Work performer_work(const PerformerOptions& o, int64_t batch, int64_t t, bool backward) {
  const auto& c = o.common();
  const int64_t D = c.resolved_head_dim(), R = o.features();
  const double bh = double(batch) * c.heads;
  const bool relu = o.kernel() == "relu";
  return attention_projection_work(c, batch, t, false, backward) +
         2 * performer_features_work(bh, t, D, R, relu, backward) +
         linear_attention_work(bh, t, t, R, D, c.causal, o.chunk(), backward);
}

MixerSpec performer_mixer_spec() {
  return mixer_spec<Performer>(
      "performer",
      "FAVOR+ positive orthogonal random features for softmax; O(T*R*D); causal by prefix sums",
      performer_options(), {}, performer_work);
}

}  // namespace longseq
