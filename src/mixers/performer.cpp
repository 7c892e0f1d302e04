// Performer mixer (Choromanski et al. 2021): multi-head attention whose core is FAVOR+
// (ops/performer_attention.cpp). The random features ω [R, D] live in the buffer "features"
// (saved with the weights). Draw n uses seed config().seed + n·0x9E3779B97F4A7C15 (mod 2⁶⁴), so
// draw 0 is performer_draw_features(R, D, config().seed); in training a new draw is made every
// `redraw` calls (0 = never); eval never redraws and does not count calls.
#include <longseq/mixers/performer.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

namespace longseq {
namespace {

const PerformerOptions& checked(const PerformerOptions& o) {
  TORCH_CHECK(o.features() > 0, "performer: option `features` must be > 0, got ", o.features());
  TORCH_CHECK(o.kernel() == "softmax" || o.kernel() == "relu",
              "performer: option `kernel` must be one of softmax, relu, got '", o.kernel(), "'");
  TORCH_CHECK(o.redraw() >= 0, "performer: option `redraw` must be >= 0 (0 = never), got ",
              o.redraw());
  TORCH_CHECK(o.chunk() > 0, "performer: option `chunk` must be > 0, got ", o.chunk());
  return o;
}

// Seed of draw number `draw` (0 = the initial features, which use the config seed itself).
uint64_t draw_seed(uint64_t seed, int64_t draw) {
  return seed + 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(draw);
}

}  // namespace

PerformerImpl::PerformerImpl(const PerformerOptions& options)
    : AttentionMixerImpl("performer", checked(options).common()), options_(options) {
  core_.kernel = options_.kernel() == "relu" ? PerformerKernel::kRelu : PerformerKernel::kSoftmax;
  core_.causal = config_.causal;
  core_.chunk = options_.chunk();
  omega_ = register_buffer(
      "features", performer_draw_features(options_.features(), config_.resolved_head_dim(),
                                          draw_seed(config_.seed, 0)));  // [R, D]
}

void PerformerImpl::redraw_features() {
  ++draws_;
  auto fresh = performer_draw_features(omega_.size(0), omega_.size(1),
                                       draw_seed(config_.seed, draws_),
                                       omega_.scalar_type());  // [R, D]
  torch::NoGradGuard no_grad;
  // In place, so the registered buffer (and whatever device/dtype it was moved to) stays.
  omega_.copy_(fresh);
}

at::Tensor PerformerImpl::attend(const at::Tensor& /*x*/, const at::Tensor& q, const at::Tensor& k,
                                 const at::Tensor& v, const at::Tensor& key_padding) {
  if (is_training() && options_.redraw() > 0) {
    // Training calls 0..redraw-1 use the current draw, then a new one every `redraw` calls.
    if (calls_ > 0 && calls_ % options_.redraw() == 0) redraw_features();
    ++calls_;
  }
  auto out = performer_attention(q, k, v, omega_, core_, key_padding);  // [B, H, T, D]
  // FAVOR+ never forms the attention probabilities, so `dropout` cannot act on them as in the
  // other mixers; it drops elements of the attention output [B, H, T, D] instead (training only).
  if (is_training() && config_.dropout > 0) out = at::dropout(out, config_.dropout, /*train=*/true);
  return out;  // [B, H, T, D]
}

}  // namespace longseq
