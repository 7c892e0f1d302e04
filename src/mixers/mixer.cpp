// Base classes of every mixer: config validation, input checks, and the multi-head projections
// shared by the attention mixers.
#include <longseq/attention.h>
#include <longseq/mixer.h>
#include <longseq/registry.h>
#include <longseq/ring_attention.h>

#include <ATen/ATen.h>

#include <vector>

namespace longseq {

const OptionSet<MixerConfig>& common_options() {
  using O = MixerConfig;
  static const auto set =
      OptionSet<O>(O{})
          .add(option("dim", &O::dim, "C, model width").positive())
          .add(option("heads", &O::heads, "H, attention heads").positive())
          .add(option("head_dim", &O::head_dim, "D; 0 = dim / heads").non_negative())
          .add(option("causal", &O::causal, "query t sees only keys <= t"))
          .add(option("attn_dropout", &O::attn_dropout, "attention dropout while training")
                   .range(0, 1, /*lo_open=*/false, /*hi_open=*/true))
          .add(option("max_len", &O::max_len, "longest accepted sequence").positive())
          .add(option("seed", &O::seed, "seed of the mixer's own random draws"))
          .add(option("bias", &O::bias, "bias in the projections"))
          .add(option("rotary", &O::rotary, "rotary position embedding on q and k"));
  return set;
}

int64_t MixerConfig::resolved_head_dim() const { return head_dim > 0 ? head_dim : dim / heads; }

void MixerConfig::validate(const std::string& mixer) const {
  common_options().check(*this, mixer);
  TORCH_CHECK(head_dim > 0 || dim % heads == 0, mixer, ": option `heads` (", heads,
              ") must divide `dim` (", dim, ") when `head_dim` is not given");
  TORCH_CHECK(!rotary || (head_dim > 0 ? head_dim : dim / heads) % 2 == 0, mixer,
              ": option `rotary` needs an even head dim, got ",
              head_dim > 0 ? head_dim : dim / heads);
}

RedrawSchedule::RedrawSchedule(int64_t every)
    : every_(every), state_(at::zeros({2}, at::TensorOptions().dtype(at::kLong))) {}

namespace {
thread_local bool t_replaying = false;
}  // namespace

RedrawSchedule::ReplayGuard::ReplayGuard() : previous_(t_replaying) { t_replaying = true; }
RedrawSchedule::ReplayGuard::~ReplayGuard() { t_replaying = previous_; }
bool RedrawSchedule::replaying() { return t_replaying; }

bool RedrawSchedule::tick(bool training) {
  if (!training || every_ <= 0 || t_replaying) return false;
  // item()/fill_() rather than data_ptr: the buffer may have been moved to another dtype/device.
  const int64_t calls = state_[0].item<int64_t>();
  state_[0].fill_(calls + 1);
  return calls > 0 && calls % every_ == 0;
}

int64_t RedrawSchedule::advance() {
  const int64_t draw = state_[1].item<int64_t>() + 1;
  state_[1].fill_(draw);
  return draw;
}

SequenceMixerImpl::SequenceMixerImpl(std::string name, MixerConfig config)
    : name_(std::move(name)), config_(config) {
  config_.validate(name_);
}

void SequenceMixerImpl::check_input(const at::Tensor& x, const at::Tensor& key_padding) const {
  TORCH_CHECK(x.defined() && x.dim() == 3, name_, ": expected `x` of shape [B, T, C], got ",
              x.defined() ? x.dim() : 0, "-D");
  TORCH_CHECK(x.size(2) == config_.dim, name_, ": expected `x` with C = dim = ", config_.dim,
              " channels, got ", x.size(2));
  TORCH_CHECK(x.size(1) >= 1, name_, ": expected a sequence of length >= 1, got ", x.size(1));
  TORCH_CHECK(x.size(1) <= config_.max_len, name_, ": sequence length ", x.size(1),
              " exceeds option `max_len` = ", config_.max_len);
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), name_, ": expected floating `x`, got ",
              x.scalar_type());
  if (key_padding.defined()) {
    TORCH_CHECK(key_padding.scalar_type() == at::kBool, name_,
                ": expected bool `key_padding` [B, T] (true = real token), got ",
                key_padding.scalar_type());
    TORCH_CHECK(key_padding.dim() == 2 && key_padding.size(0) == x.size(0) &&
                    key_padding.size(1) == x.size(1),
                name_, ": expected `key_padding` of shape [", x.size(0), ", ", x.size(1), "], got ",
                key_padding.sizes());
  }
}

void SequenceMixerImpl::set_sequence_shard(std::shared_ptr<SequenceShard> /*shard*/) {
  TORCH_CHECK(false, name_, ": no sequence-parallel form (model.sequence_parallel needs every "
              "layer to be `exact`, whose form is ring attention)");
}

std::string SequenceMixerImpl::step_unsupported() const {
  if (!config_.causal)
    return name_ + " is not causal, so a prefix's outputs change as tokens arrive";
  return name_ + " keeps no incremental state";
}

at::Tensor SequenceMixerImpl::step(const at::Tensor& /*x*/, DecodeState& /*state*/) {
  const std::string why = step_unsupported();
  TORCH_CHECK(false, name_, ": step() is not available: ", why.empty() ? "not implemented" : why);
}

at::Tensor AttentionMixerImpl::attend_step(const at::Tensor& /*x*/, const at::Tensor& /*q*/,
                                           const at::Tensor& /*k*/, const at::Tensor& /*v*/,
                                           DecodeState& /*state*/) {
  TORCH_CHECK(false, name_, ": step() is not available: ", step_unsupported());
}

AttentionMixerImpl::AttentionMixerImpl(std::string name, MixerConfig config, bool shared_qk)
    : SequenceMixerImpl(std::move(name), config) {
  const int64_t inner = config_.heads * config_.resolved_head_dim();
  auto lin = [&](int64_t in, int64_t out) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(config_.bias));
  };
  wq_ = register_module("wq", lin(config_.dim, inner));
  if (!shared_qk) wk_ = register_module("wk", lin(config_.dim, inner));
  wv_ = register_module("wv", lin(config_.dim, inner));
  wo_ = register_module("wo", lin(inner, config_.dim));
}

at::Tensor AttentionMixerImpl::split_heads(const at::Tensor& x) const {
  const int64_t B = x.size(0), T = x.size(1);
  return x.view({B, T, config_.heads, config_.resolved_head_dim()})
      .transpose(1, 2);  // [B, H, T, D]
}

at::Tensor AttentionMixerImpl::merge_heads(const at::Tensor& x) {
  const int64_t B = x.size(0), H = x.size(1), T = x.size(2), D = x.size(3);
  return x.transpose(1, 2).reshape({B, T, H * D});  // [B, T, H·D]
}

// One GEMM [B·T, C] × [C, (2|3)·H·D] in place of two or three: at C = 256 and T = 4096, OpenBLAS
// ran the [4096, 256] × [256, 768] product at 340 GFLOP/s on 2 threads and each [256, 256] one at
// 294 (and the weight gradients 335 against 280); the layers' fwd+bwd took 2–2.5 ms less
// (docs/performance.md). The concatenated weight is a copy of (2|3)·C·H·D values per call; the
// split views' backward is one concatenation of the gradients.
std::array<at::Tensor, 3> AttentionMixerImpl::project_qkv(
    const at::Tensor& x, std::optional<int64_t> position) const {
  std::vector<at::Tensor> weights{wq_->weight}, biases;
  if (wk_) weights.push_back(wk_->weight);
  weights.push_back(wv_->weight);
  if (config_.bias) {
    biases.push_back(wq_->bias);
    if (wk_) biases.push_back(wk_->bias);
    biases.push_back(wv_->bias);
  }
  const int64_t inner = wq_->weight.size(0);
  auto parts = at::linear(x, at::cat(weights), config_.bias ? at::cat(biases) : at::Tensor())
                   .split(inner, -1);  // [B, T, H·D] each, views of one [B, T, (2|3)·H·D]
  auto rotate = [&](const at::Tensor& t) {
    if (!config_.rotary) return t;
    if (position) return rotary_embedding(t, *position);  // decoding: the state's position
    if (shard_) return rotary_embedding(t, shard_->positions.to(t.device()));  // this rank's
    return rotary_embedding(t);
  };
  auto q = rotate(split_heads(parts[0]));            // [B, H, T, D]
  auto k = wk_ ? rotate(split_heads(parts[1])) : q;  // [B, H, T, D]
  auto v = split_heads(parts.back());                // [B, H, T, D]
  return {q, k, v};
}

at::Tensor AttentionMixerImpl::forward(const at::Tensor& x, const at::Tensor& key_padding) {
  check_input(x, key_padding);
  const auto [q, k, v] = project_qkv(x);  // [B, H, T, D] each
  AttentionMask mask;
  mask.causal = config_.causal;
  mask.key_padding = key_padding;
  auto o = attend(x, q, k, v, mask);    // [B, H, T, D]
  return wo_->forward(merge_heads(o));  // [B, T, C]
}

at::Tensor AttentionMixerImpl::step(const at::Tensor& x, DecodeState& state) {
  const std::string why = step_unsupported();
  TORCH_CHECK(why.empty(), name_, ": step() is not available: ", why);
  check_input(x, {});
  TORCH_CHECK(state.position + x.size(1) <= config_.max_len, name_, ": position ",
              state.position + x.size(1), " exceeds option `max_len` = ", config_.max_len);
  const auto [q, k, v] = project_qkv(x, state.position);  // [B, H, n, D] each
  auto o = attend_step(x, q, k, v, state);  // [B, H, n, D]
  state.position += x.size(1);
  return wo_->forward(merge_heads(o));  // [B, n, C]
}

}  // namespace longseq
