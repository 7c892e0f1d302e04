// Classic recurrent mixers (Elman, LSTM, GRU) over the fused recurrence op (ops/rnn.cpp).
#include <longseq/op_work.h>
#include <longseq/attention.h>
#include <longseq/mixers/recurrent.h>
#include <longseq/registry.h>

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/torch.h>

#include <cmath>

namespace longseq {
namespace {

// One declaration for the three cells; the cell is fixed by the registry entry.
OptionSet<RecurrentOptions> recurrent_options(RnnCell cell) {
  using O = RecurrentOptions;
  return OptionSet<O>(O(MixerConfig{}, cell))
      .add(option("hidden", &O::hidden, "H, state width per direction; 0 = dim").non_negative())
      .add(option("bidirectional", &O::bidirectional, "add a reverse pass (non-causal only)"))
      .add(option("init", &O::init, "recurrent weights")
               .choices({"default", "orthogonal", "identity"}))
      .add(option("readout", &O::readout, "attention over the layer's earlier states")
               .choices({"none", "attention"}));
}

const OptionSet<RecurrentOptions>& recurrent_options_of(RnnCell cell) {
  static const OptionSet<RecurrentOptions> sets[] = {recurrent_options(RnnCell::kElman),
                                                     recurrent_options(RnnCell::kLstm),
                                                     recurrent_options(RnnCell::kGru)};
  return cell == RnnCell::kElman ? sets[0] : cell == RnnCell::kLstm ? sets[1] : sets[2];
}

}  // namespace

RecurrentImpl::RecurrentImpl(const RecurrentOptions& options)
    : SequenceMixerImpl(rnn_cell_name(options.cell()), options.common()), options_(options) {
  const auto& o = options_;
  recurrent_options_of(o.cell()).check(o, name_);
  TORCH_CHECK(
      !(o.bidirectional() && config_.causal), name_,
      ": option `bidirectional` reads future tokens, so it cannot be combined with `causal`");
  hidden_ = o.hidden() > 0 ? o.hidden() : config_.dim;
  const int64_t H = hidden_, C = config_.dim, G = rnn_gates(o.cell());
  const double bound = 1.0 / std::sqrt(static_cast<double>(H));
  const int64_t directions = o.bidirectional() ? 2 : 1;
  torch::NoGradGuard no_grad;
  for (int64_t d = 0; d < directions; ++d) {
    const std::string suffix = d == 0 ? "" : "_reverse";
    RnnWeights w;
    w.w_ih =
        register_parameter("weight_ih" + suffix, torch::empty({G * H, C}).uniform_(-bound, bound));
    w.w_hh =
        register_parameter("weight_hh" + suffix, torch::empty({G * H, H}).uniform_(-bound, bound));
    w.b_ih = register_parameter("bias_ih" + suffix, torch::empty({G * H}).uniform_(-bound, bound));
    w.b_hh = register_parameter("bias_hh" + suffix, torch::empty({G * H}).uniform_(-bound, bound));
    for (int64_t g = 0; g < G; ++g) {
      auto block = w.w_hh.narrow(0, g * H, H);  // [H, H]
      if (o.init() == "orthogonal") torch::nn::init::orthogonal_(block);
      if (o.init() == "identity") block.copy_(torch::eye(H));
    }
    dirs_.push_back(w);
  }
  int64_t features = directions * H;
  if (o.readout() == "attention") {
    const int64_t R = std::min<int64_t>(features, 64);  // read-out head width
    rq_ = register_module("readout_q", torch::nn::Linear(features, R));
    rk_ = register_module("readout_k", torch::nn::Linear(features, R));
    rv_ = register_module("readout_v", torch::nn::Linear(features, R));
    features += R;
  }
  out_ = register_module(
      "out", torch::nn::Linear(torch::nn::LinearOptions(features, C).bias(config_.bias)));
}

at::Tensor RecurrentImpl::read_out(const at::Tensor& states, const at::Tensor& key_padding,
                                   DecodeState* cache) {
  if (!rq_) return out_->forward(states);         // [B, T, C]
  auto q = rq_->forward(states).unsqueeze(1);     // [B, 1, T, R]
  auto k = rk_->forward(states).unsqueeze(1);     // [B, 1, T, R]
  auto v = rv_->forward(states).unsqueeze(1);     // [B, 1, T, R]
  const bool causal = !options_.bidirectional();  // a one-way layer reads its past only
  if (cache) {
    auto& kc = cache->tensors["rk"];
    auto& vc = cache->tensors["rv"];
    kc = kc.defined() ? at::cat({kc, k}, 2) : k;  // [B, 1, S, R]
    vc = vc.defined() ? at::cat({vc, v}, 2) : v;
    k = kc;
    v = vc;
  }
  AttentionMask mask;
  mask.causal = causal;
  mask.key_padding = key_padding;
  auto ctx = exact_attention(q, k, v, mask);                   // [B, 1, T, R]
  return out_->forward(at::cat({states, ctx.squeeze(1)}, 2));  // [B, T, C]
}

RnnWeights RecurrentImpl::weights(int64_t direction) const { return dirs_.at(direction); }

std::vector<at::Tensor> RecurrentImpl::forward_with_state(const at::Tensor& x,
                                                          const at::Tensor& key_padding,
                                                          const at::Tensor& h0,
                                                          const at::Tensor& c0) {
  check_input(x, key_padding);
  const int64_t D = static_cast<int64_t>(dirs_.size()), B = x.size(0), H = hidden_;
  for (const auto* s : {&h0, &c0}) {
    TORCH_CHECK(!s->defined() || s->sizes() == at::IntArrayRef({D, B, H}), name_,
                ": expected initial state of shape [", D, ", ", B, ", ", H, "], got ", s->sizes());
  }
  std::vector<at::Tensor> outs, hs, cs;
  for (int64_t d = 0; d < D; ++d) {
    auto r = rnn_layer(options_.cell(), x, dirs_[d], h0.defined() ? h0[d] : at::Tensor(),
                       c0.defined() ? c0[d] : at::Tensor(), key_padding, /*reverse=*/d == 1);
    outs.push_back(r.out);  // [B, T, H]
    hs.push_back(r.h);      // [B, H]
    if (r.c.defined()) cs.push_back(r.c);
  }
  auto y = read_out(D == 1 ? outs[0] : at::cat(outs, 2), key_padding, cache_);  // [B, T, C]
  return {y, at::stack(hs), cs.empty() ? at::Tensor() : at::stack(cs)};
}

at::Tensor RecurrentImpl::forward(const at::Tensor& x, const at::Tensor& key_padding) {
  return forward_with_state(x, key_padding, {}, {})[0];  // [B, T, C]
}

std::string RecurrentImpl::step_unsupported() const {
  return options_.bidirectional() ? name_ + " is bidirectional: its reverse pass reads the future"
                                  : "";
}

at::Tensor RecurrentImpl::step(const at::Tensor& x, DecodeState& state) {
  const std::string why = step_unsupported();
  TORCH_CHECK(why.empty(), name_, ": step() is not available: ", why);
  auto& h = state.tensors["h"];  // [1, B, H]
  auto& c = state.tensors["c"];  // [1, B, H] (lstm)
  cache_ = &state;               // the read-out's key/value cache lives in the same state
  std::vector<at::Tensor> r;
  try {
    r = forward_with_state(x, {}, h, c);
  } catch (...) {
    cache_ = nullptr;
    throw;
  }
  cache_ = nullptr;
  h = r[1];
  c = r[2];
  state.position += x.size(1);
  return r[0];  // [B, n, C]
}

// Roofline: per direction the input projection (one GEMM over all steps) and the sequential cell
// (longseq/op_work.h: rnn_work); the optional attention read-out; the output projection.
static Work recurrent_work(const RecurrentOptions& o, int64_t batch, int64_t t, bool backward) {
  const auto& c = o.common();
  const int64_t H = o.hidden() > 0 ? o.hidden() : c.dim, G = rnn_gates(o.cell());
  const int64_t dirs = o.bidirectional() ? 2 : 1;
  const double rows = double(batch) * t;
  Work w = double(dirs) * (linear_layer_work(rows, c.dim, double(G) * H, backward) +
                           rnn_work(batch, t, H, G, backward));
  int64_t features = dirs * H;
  if (o.readout() == "attention") {
    const int64_t R = std::min<int64_t>(features, 64);
    w += 3 * linear_layer_work(rows, features, R, backward) +
         exact_attention_work(batch, 1, t, t, R, R, !o.bidirectional(), backward);
    features += R;
  }
  return w + linear_layer_work(rows, features, c.dim, backward);
}

MixerSpec elman_mixer_spec() {
  return mixer_spec<Recurrent>(
      "elman", "tanh RNN: h' = tanh(W x + U h + b); fused cell, O(T) sequential steps",
      recurrent_options_of(RnnCell::kElman), {}, recurrent_work);
}

MixerSpec lstm_mixer_spec() {
  return mixer_spec<Recurrent>(
      "lstm", "LSTM (i, f, g, o gates, cell state); fused cell, O(T) sequential steps",
      recurrent_options_of(RnnCell::kLstm), {}, recurrent_work);
}

MixerSpec gru_mixer_spec() {
  return mixer_spec<Recurrent>("gru", "GRU (r, z, n gates); fused cell, O(T) sequential steps",
                               recurrent_options_of(RnnCell::kGru), {}, recurrent_work);
}

}  // namespace longseq
