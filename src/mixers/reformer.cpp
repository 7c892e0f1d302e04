// Reformer mixer (Kitaev et al. 2020): shared-QK multi-head attention whose core is LSH attention
// (ops/reformer_attention.cpp). The hash rotations live in the buffer "rotations" (saved with the
// weights); draw k comes from the config seed and k, is redrawn every `redraw` training calls and
// stays fixed in eval.
#include <longseq/mixers/reformer.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

namespace longseq {
namespace {

const ReformerOptions& checked(const ReformerOptions& o) {
  TORCH_CHECK(o.buckets() == 1 || (o.buckets() >= 2 && o.buckets() % 2 == 0),
              "reformer: option `buckets` must be 1 or an even number >= 2, got ", o.buckets());
  TORCH_CHECK(o.n_hashes() > 0, "reformer: option `n_hashes` must be > 0, got ", o.n_hashes());
  TORCH_CHECK(o.chunk() > 0, "reformer: option `chunk` must be > 0, got ", o.chunk());
  TORCH_CHECK(o.redraw() >= 0, "reformer: option `redraw` must be >= 0 (0 = never), got ",
              o.redraw());
  return o;
}

}  // namespace

ReformerImpl::ReformerImpl(const ReformerOptions& options)
    : AttentionMixerImpl("reformer", checked(options).common(), /*shared_qk=*/true),
      options_(options),
      schedule_(options.redraw()) {
  core_.buckets = options_.buckets();
  core_.n_hashes = options_.n_hashes();
  core_.chunk = options_.chunk();
  core_.causal = config_.causal;
  rotations_ = register_buffer(
      "rotations", reformer_draw_rotations(core_, config_.resolved_head_dim(),
                                           RedrawSchedule::seed_for(config_.seed, 0)));  // [n, D, NB/2]
  register_buffer("redraw_state", schedule_.state());  // (training calls, draws)
}

void ReformerImpl::redraw_rotations() {
  auto fresh = reformer_draw_rotations(core_, rotations_.size(1), RedrawSchedule::seed_for(config_.seed, schedule_.advance()),
                                       rotations_.scalar_type());  // [n, D, NB/2]
  torch::NoGradGuard no_grad;
  // In place, so the registered buffer (and whatever device/dtype it was moved to) stays.
  rotations_.copy_(fresh);
}

at::Tensor ReformerImpl::attend(const at::Tensor& /*x*/, const at::Tensor& q,
                                const at::Tensor& /*k*/, const at::Tensor& v,
                                const at::Tensor& key_padding) {
  if (schedule_.tick(is_training())) redraw_rotations();
  // Shared QK: k == q here; the core normalises the keys itself.
  return reformer_attention(q, v, rotations_, core_, key_padding, config_.dropout,
                            is_training());  // [B, H, T, D]
}

}  // namespace longseq
