// Reformer mixer (Kitaev et al. 2020): shared-QK multi-head attention whose core is LSH attention
// (ops/reformer_attention.cpp). The hash rotations live in the buffer "rotations" (saved with the
// weights); draw k comes from the config seed and k, is redrawn every `redraw` training calls and
// stays fixed in eval.
#include <longseq/op_work.h>
#include <longseq/mixers/reformer.h>
#include <longseq/registry.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <cmath>

namespace longseq {
namespace {

const OptionSet<ReformerOptions>& reformer_options() {
  using O = ReformerOptions;
  static const auto set =
      OptionSet<O>(O(MixerConfig{}))
          .add(option("buckets", &O::buckets, "NB hash buckets (1, or even)")
                   .rule([](double b) { return b == 1 || (b >= 2 && std::fmod(b, 2) == 0); },
                         "1 or an even number >= 2")
                   .tests({"4"}))
          .add(option("n_hashes", &O::n_hashes, "hashing rounds").positive().tests({"2"}))
          .add(option("chunk", &O::chunk, "chunk length of the sorted sequence")
                   .positive()
                   .tests({"4", "2"}))
          .add(option("redraw", &O::redraw, "new rotations every k training calls; 0 = never")
                   .non_negative());
  return set;
}

}  // namespace

ReformerImpl::ReformerImpl(const ReformerOptions& options)
    : AttentionMixerImpl("reformer", options.common(), /*shared_qk=*/true),
      options_(options),
      schedule_(options.redraw()) {
  reformer_options().check(options_, name_);
  core_.buckets = options_.buckets();
  core_.n_hashes = options_.n_hashes();
  core_.chunk = options_.chunk();
  rotations_ = register_buffer(
      "rotations",
      reformer_draw_rotations(core_, config_.resolved_head_dim(),
                              RedrawSchedule::seed_for(config_.seed, 0)));  // [n, D, NB/2]
  register_buffer("redraw_state", schedule_.state());  // (training calls, draws)
}

void ReformerImpl::redraw_rotations() {
  auto fresh = reformer_draw_rotations(core_, rotations_.size(1),
                                       RedrawSchedule::seed_for(config_.seed, schedule_.advance()),
                                       rotations_.scalar_type());  // [n, D, NB/2]
  torch::NoGradGuard no_grad;
  // In place, so the registered buffer (and whatever device/dtype it was moved to) stays.
  rotations_.copy_(fresh);
}

at::Tensor ReformerImpl::attend(const at::Tensor& /*x*/, const at::Tensor& q,
                                const at::Tensor& /*k*/, const at::Tensor& v,
                                const AttentionMask& mask) {
  if (schedule_.tick(is_training())) redraw_rotations();
  // Shared QK: k == q here; the core normalises the keys itself.
  return reformer_attention(q, v, rotations_, core_, mask, config_.attn_dropout,
                            is_training());  // [B, H, T, D]
}

// Roofline: shared-QK, V and output projections, the hash (qk by the rotations, forward only)
// and LSH attention.
static Work reformer_work(const ReformerOptions& o, int64_t batch, int64_t t, bool backward) {
  const auto& c = o.common();
  const int64_t D = c.resolved_head_dim();
  const double bh = double(batch) * c.heads;
  Work w = attention_projection_work(c, batch, t, true, backward) +
           reformer_attention_work(batch, c.heads, t, D, D, o.n_hashes(), o.chunk(), c.causal,
                                   backward);
  if (!backward)
    w += bh * gemm_work(t, D, double(o.n_hashes()) * std::max<int64_t>(o.buckets() / 2, 1));
  return w;
}

MixerSpec reformer_mixer_spec() {
  return mixer_spec<Reformer>(
      "reformer",
      "LSH attention: shared QK hashed into buckets, sorted, attend within chunk + previous; "
      "O(T*chunk)",
      reformer_options(), {}, reformer_work);
}

}  // namespace longseq
