// Legendre Memory Unit, parallel form (see include/longseq/mixers/lmu.h).
#include <longseq/op_work.h>
#include <longseq/lmu.h>
#include <longseq/mixers/lmu.h>
#include <longseq/registry.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <cmath>

namespace longseq {
namespace {

const OptionSet<LmuOptions>& lmu_options() {
  using O = LmuOptions;
  static const auto set =
      OptionSet<O>(O(MixerConfig{}))
          .add(option("order", &O::order, "d, Legendre coefficients per memory channel")
                   .positive()
                   .tests({"6"}))
          .add(option("window", &O::window, "theta, history length in steps")
                   .positive()
                   .tests({"8"}))
          .add(option("channels", &O::channels, "U, memorised input signals")
                   .positive()
                   .tests({"2"}));
  return set;
}

}  // namespace

LmuImpl::LmuImpl(const LmuOptions& options)
    : SequenceMixerImpl("lmu", options.common()), options_(options) {
  const auto& o = options_;
  lmu_options().check(o, name_);
  const int64_t d = o.order();
  auto [a_bar, b_bar] = lmu_system(d, o.window());  // [d, d], [d]
  a_bar_ = register_buffer("a_bar", a_bar);
  b_bar_ = register_buffer("b_bar", b_bar);
  const int64_t C = config_.dim, U = o.channels();
  in_ = register_module("in", torch::nn::Linear(C, U));
  hidden_ = register_module("hidden", torch::nn::Linear(C + U * d, C));
  out_ =
      register_module("out", torch::nn::Linear(torch::nn::LinearOptions(C, C).bias(config_.bias)));
}

at::Tensor LmuImpl::memory(const at::Tensor& u) const {
  return lmu_memory(u, a_bar_, b_bar_);  // [B, T, U, d]
}

at::Tensor LmuImpl::memory_recurrent(const at::Tensor& u, const at::Tensor& m0) const {
  return lmu_memory_recurrent(u, a_bar_, b_bar_, m0);  // [B, T, U, d]
}

at::Tensor LmuImpl::output(const at::Tensor& x, const at::Tensor& m) {
  auto feats = at::cat({x, m.flatten(2)}, 2);               // [B, T, C + U·d]
  return out_->forward(at::tanh(hidden_->forward(feats)));  // [B, T, C]
}

at::Tensor LmuImpl::forward(const at::Tensor& x, const at::Tensor& key_padding) {
  check_input(x, key_padding);
  auto u = in_->forward(x);  // [B, T, U]
  // Padded steps write nothing; with right padding real positions never see them.
  if (key_padding.defined()) u = u.masked_fill(key_padding.logical_not().unsqueeze(-1), 0.0);
  return output(x, memory(u));
}

at::Tensor LmuImpl::step(const at::Tensor& x, DecodeState& state) {
  check_input(x, {});
  auto& m0 = state.tensors["m"];                   // [B, U, d]
  auto m = memory_recurrent(in_->forward(x), m0);  // [B, n, U, d]
  m0 = m.select(1, m.size(1) - 1);
  state.position += x.size(1);
  return output(x, m);
}

// Roofline: the projections (in, hidden over [x, memory], out) and the memory [B, T, U, d]
// written (forward) or read and its gradient written (backward); the FFT convolution's FLOPs are
// small beside the projections and not counted.
static Work lmu_work(const LmuOptions& o, int64_t batch, int64_t t, bool backward) {
  const auto& c = o.common();
  const int64_t C = c.dim, U = o.channels(), d = o.order();
  const double rows = double(batch) * t, memory = rows * U * d * 4;
  return linear_layer_work(rows, C, U, backward) +
         linear_layer_work(rows, C + double(U) * d, C, backward) +
         linear_layer_work(rows, C, C, backward) + Work{0, backward ? 2 * memory : memory};
}

MixerSpec lmu_mixer_spec() {
  return mixer_spec<Lmu>(
      "lmu",
      "Legendre Memory Unit: the input history over a window held as Legendre coefficients by a "
      "fixed LTI system; FFT convolution, O(T log T)",
      lmu_options(), {}, lmu_work);
}

}  // namespace longseq
