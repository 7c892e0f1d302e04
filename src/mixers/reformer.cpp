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

// Seed of draw number `draw` (0 = the initial rotations, which use the config seed itself, so
// reformer_draw_rotations(core, D, seed) reproduces a fresh mixer's buffer).
uint64_t draw_seed(uint64_t seed, int64_t draw) {
  return seed + 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(draw);
}

}  // namespace

ReformerImpl::ReformerImpl(const ReformerOptions& options)
    : AttentionMixerImpl("reformer", checked(options).common(), /*shared_qk=*/true),
      options_(options) {
  core_.buckets = options_.buckets();
  core_.n_hashes = options_.n_hashes();
  core_.chunk = options_.chunk();
  core_.causal = config_.causal;
  rotations_ = register_buffer(
      "rotations", reformer_draw_rotations(core_, config_.resolved_head_dim(),
                                           draw_seed(config_.seed, 0)));  // [n, D, NB/2]
}

void ReformerImpl::redraw_rotations() {
  ++draws_;
  auto fresh = reformer_draw_rotations(core_, rotations_.size(1), draw_seed(config_.seed, draws_),
                                       rotations_.scalar_type());  // [n, D, NB/2]
  torch::NoGradGuard no_grad;
  // In place, so the registered buffer (and whatever device/dtype it was moved to) stays.
  rotations_.copy_(fresh);
}

at::Tensor ReformerImpl::attend(const at::Tensor& /*x*/, const at::Tensor& q,
                                const at::Tensor& /*k*/, const at::Tensor& v,
                                const at::Tensor& key_padding) {
  if (is_training() && options_.redraw() > 0) {
    // Training calls 0..redraw-1 use the current draw, then a new one every `redraw` calls.
    if (calls_ > 0 && calls_ % options_.redraw() == 0) redraw_rotations();
    ++calls_;
  }
  // Shared QK: k == q here; the core normalises the keys itself.
  return reformer_attention(q, v, rotations_, core_, key_padding, config_.dropout,
                            is_training());  // [B, H, T, D]
}

}  // namespace longseq
