// minGRU / minLSTM mixers over the scans of ops/scan.cpp (see longseq/mixers/min_rnn.h).
#include <longseq/op_work.h>
#include <longseq/mixers/min_rnn.h>
#include <longseq/registry.h>
#include <longseq/scan.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

namespace longseq {
namespace {

const OptionSet<MinRnnOptions>& min_rnn_options(bool lstm) {
  using O = MinRnnOptions;
  auto make = [](bool lstm) {
    return OptionSet<O>(O(MixerConfig{}, lstm))
        .add(option("hidden", &O::hidden, "H, state width; 0 = dim").non_negative());
  };
  static const OptionSet<O> gru = make(false), lstm_set = make(true);
  return lstm ? lstm_set : gru;
}

}  // namespace

MinRnnImpl::MinRnnImpl(const MinRnnOptions& options)
    : SequenceMixerImpl(options.lstm() ? "minlstm" : "mingru", options.common()),
      options_(options) {
  min_rnn_options(options.lstm()).check(options, name_);
  hidden_ = options.hidden() > 0 ? options.hidden() : config_.dim;
  const int64_t parts = options.lstm() ? 3 : 2;  // (f, i, h̃) or (z, h̃)
  in_ = register_module("in", torch::nn::Linear(config_.dim, parts * hidden_));
  out_ = register_module(
      "out", torch::nn::Linear(torch::nn::LinearOptions(hidden_, config_.dim).bias(config_.bias)));
}

std::pair<at::Tensor, at::Tensor> MinRnnImpl::forward_with_state(const at::Tensor& x,
                                                                 const at::Tensor& key_padding,
                                                                 const at::Tensor& h0) {
  check_input(x, key_padding);
  const int64_t B = x.size(0), H = hidden_;
  TORCH_CHECK(!h0.defined() || h0.sizes() == at::IntArrayRef({B, H}), name_,
              ": expected initial state of shape [", B, ", ", H, "], got ", h0.sizes());
  auto xp = in_->forward(x);  // [B, T, P·H]
  // The op chooses: on CPU one fused kernel with the gates inside the scan, elsewhere the
  // paper's log-space parallel scan.
  auto h = min_rnn_scan(xp, options_.lstm(), key_padding, h0);  // [B, T, H]
  auto last = h.select(1, h.size(1) - 1);                       // [B, H]
  return {out_->forward(h), last};
}

at::Tensor MinRnnImpl::forward(const at::Tensor& x, const at::Tensor& key_padding) {
  return forward_with_state(x, key_padding, {}).first;  // [B, T, C]
}

at::Tensor MinRnnImpl::step(const at::Tensor& x, DecodeState& state) {
  auto& h = state.tensors["h"];  // [B, H]
  auto r = forward_with_state(x, {}, h);
  h = r.second;
  state.position += x.size(1);
  return r.first;  // [B, n, C]
}

// Roofline: the input projection to the gates' parts, the scan, the output projection.
static Work min_rnn_mixer_work(const MinRnnOptions& o, int64_t batch, int64_t t, bool backward) {
  const auto& c = o.common();
  const int64_t H = o.hidden() > 0 ? o.hidden() : c.dim, parts = o.lstm() ? 3 : 2;
  const double rows = double(batch) * t;
  return linear_layer_work(rows, c.dim, double(parts) * H, backward) +
         min_rnn_work(batch, t, H, parts, backward) +
         linear_layer_work(rows, H, c.dim, backward);
}

MixerSpec mingru_mixer_spec() {
  return mixer_spec<MinRnn>(
      "mingru", "minGRU: h = (1 - z) h + z g(W x), gates from x only; parallel scan, O(T)",
      min_rnn_options(false), {}, min_rnn_mixer_work);
}

MixerSpec minlstm_mixer_spec() {
  return mixer_spec<MinRnn>(
      "minlstm", "minLSTM: h = f' h + i' g(W x) with normalised f', i'; parallel scan, O(T)",
      min_rnn_options(true), {}, min_rnn_mixer_work);
}

}  // namespace longseq
