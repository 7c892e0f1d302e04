#include <longseq/op_work.h>
#include <longseq/mixers/longformer.h>
#include <longseq/registry.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

namespace longseq {
namespace {

const OptionSet<LongformerOptions>& longformer_options() {
  using O = LongformerOptions;
  static const auto set =
      OptionSet<O>(O(MixerConfig{}))
          .add(option("window", &O::window, "W: +-W/2 neighbours, or the W previous when causal")
                   .positive()
                   .tests({"4", "2"}))
          .add(option("dilation", &O::dilation, "dilation per head (one value for all heads)")
                   .positive())
          .add(option("global_tokens", &O::global_tokens,
                      "the first k positions attend to and from all")
                   .non_negative()
                   .tests({"1"}))
          .add(option("global_positions", &O::global_positions,
                      "explicit global positions (instead of k)")
                   .non_negative())
          .add(option("global_proj", &O::global_proj, "separate Q/K/V projections for global rows"))
          .add(option("block", &O::block, "queries per block of the banded pass; 0 = auto")
                   .non_negative()
                   .tests({"3"}));
  return set;
}

}  // namespace

LongformerImpl::LongformerImpl(const LongformerOptions& options)
    : AttentionMixerImpl("longformer", options.common()), options_(options) {
  const auto& o = options_;
  longformer_options().check(o, name_);
  TORCH_CHECK(o.window() <= config_.max_len, "longformer: option `window` (", o.window(),
              ") is larger than allowed: it must be <= `max_len` (", config_.max_len, ")");
  TORCH_CHECK(config_.causal || o.window() % 2 == 0,
              "longformer: non-causal option `window` must be even (W/2 keys on each side), got ",
              o.window());
  TORCH_CHECK(
      o.dilation().size() == 1 || static_cast<int64_t>(o.dilation().size()) == config_.heads,
      "longformer: option `dilation` needs 1 or `heads` = ", config_.heads, " values, got ",
      o.dilation().size());
  TORCH_CHECK(o.global_tokens() <= config_.max_len, "longformer: option `global_tokens` (",
              o.global_tokens(), ") exceeds `max_len` (", config_.max_len, ")");
  TORCH_CHECK(o.global_tokens() == 0 || o.global_positions().empty(),
              "longformer: give either `global_tokens` or `global_positions`, not both");
  for (int64_t g : o.global_positions()) {
    TORCH_CHECK(g >= 0 && g < config_.max_len, "longformer: option `global_positions` entry ", g,
                " is outside [0, max_len = ", config_.max_len, ")");
  }
  if (o.global_proj()) {
    const int64_t inner = config_.heads * config_.resolved_head_dim();
    auto lin = [&] {
      return torch::nn::Linear(torch::nn::LinearOptions(config_.dim, inner).bias(config_.bias));
    };
    wq_global_ = register_module("wq_global", lin());
    wk_global_ = register_module("wk_global", lin());
    wv_global_ = register_module("wv_global", lin());
  }
}

LongformerPattern LongformerImpl::pattern_for(int64_t t) const {
  LongformerPattern p;
  p.window = options_.window();
  p.dilation = options_.dilation();
  p.block = options_.block();
  if (options_.global_tokens() > 0) {
    TORCH_CHECK(t == 0 || options_.global_tokens() <= t, "longformer: option `global_tokens` (",
                options_.global_tokens(), ") exceeds the sequence length T = ", t);
    for (int64_t i = 0; i < options_.global_tokens(); ++i) p.global_positions.push_back(i);
  } else {
    p.global_positions = options_.global_positions();
    std::sort(p.global_positions.begin(), p.global_positions.end());
    p.global_positions.erase(std::unique(p.global_positions.begin(), p.global_positions.end()),
                             p.global_positions.end());
    for (int64_t g : p.global_positions) {
      TORCH_CHECK(t == 0 || g < t, "longformer: global position ", g,
                  " is outside the sequence of length T = ", t);
    }
  }
  return p;
}

at::Tensor LongformerImpl::attend(const at::Tensor& x, const at::Tensor& q, const at::Tensor& k,
                                  const at::Tensor& v, const AttentionMask& mask) {
  const auto pattern = pattern_for(x.size(1));
  at::Tensor qg, kg, vg;
  if (wq_global_ && !pattern.global_positions.empty()) {
    qg = split_heads(wq_global_->forward(x));  // [B, H, T, D]
    kg = split_heads(wk_global_->forward(x));  // [B, H, T, D]
    vg = split_heads(wv_global_->forward(x));  // [B, H, T, D]
  }
  return longformer_attention(q, k, v, pattern, mask, qg, kg, vg, config_.attn_dropout,
                              is_training());  // [B, H, T, D]
}

std::string LongformerImpl::step_unsupported() const {
  if (!config_.causal) return SequenceMixerImpl::step_unsupported();
  if (wq_global_ && (options_.global_tokens() > 0 || !options_.global_positions().empty())) {
    return "longformer with `global_proj` gives global rows their own projections of every key";
  }
  return "";
}

at::Tensor LongformerImpl::attend_step(const at::Tensor& /*x*/, const at::Tensor& q,
                                       const at::Tensor& k, const at::Tensor& v,
                                       DecodeState& state) {
  const LongformerPattern p = pattern_for(0);  // causal (step_unsupported says so)
  const int64_t n = q.size(2), end = state.position + n;
  auto& kc = state.tensors["k"];      // [B, H, S, D]: the keys later queries may still see
  auto& vc = state.tensors["v"];      // [B, H, S, D]
  auto& kpos = state.tensors["pos"];  // [S] int64, their positions
  auto new_pos = at::arange(state.position, end, at::TensorOptions().dtype(at::kLong));
  kc = kc.defined() ? at::cat({kc, k}, 2) : k;
  vc = vc.defined() ? at::cat({vc, v}, 2) : v;
  kpos = kpos.defined() ? at::cat({kpos, new_pos}) : new_pos;
  AttentionMask mask;  // the pattern's causal band and globals, as an explicit pattern
  mask.allowed = longformer_allowed(p, /*causal=*/true, config_.heads, new_pos, kpos)
                     .to(q.device());           // [H, n, S]
  auto out = exact_attention(q, kc, vc, mask);  // [B, H, n, D]
  // Later queries t >= end see band keys j >= t - W·dmax and global keys; a global query would
  // see every key, so nothing is dropped until the last global position has passed.
  const int64_t last_global = p.global_positions.empty() ? -1 : p.global_positions.back();
  if (end > last_global + 1) {
    const int64_t dmax = *std::max_element(p.dilation.begin(), p.dilation.end());
    auto keep = kpos >= end - p.window * dmax;  // [S]
    for (int64_t g : p.global_positions) keep = keep.logical_or(kpos == g);
    auto idx = keep.nonzero().view(-1);  // [S']
    if (idx.numel() < kpos.numel()) {
      kpos = kpos.index_select(0, idx);
      kc = kc.index_select(2, idx.to(kc.device()));
      vc = vc.index_select(2, idx.to(vc.device()));
    }
  }
  return out;
}

// Roofline: Q/K/V/output projections (and the global ones), the band with its global keys, and
// the global query rows' attention over every (causal: earlier) key.
static Work longformer_work(const LongformerOptions& o, int64_t batch, int64_t t, bool backward) {
  const auto& c = o.common();
  const int64_t D = c.resolved_head_dim();
  LongformerPattern p;
  p.window = o.window();
  p.dilation = o.dilation();
  p.global_positions = o.global_positions();
  for (int64_t g = 0; g < std::min(o.global_tokens(), t); ++g) p.global_positions.push_back(g);
  double global_pairs = 0;
  for (int64_t g : p.global_positions) global_pairs += c.causal ? double(g + 1) : double(t);
  const double G = double(p.global_positions.size());
  Work w = attention_projection_work(c, batch, t, false, backward) +
           longformer_attention_work(batch, c.heads, t, D, D, p, c.causal, backward) +
           softmax_attention_work(double(batch) * c.heads, global_pairs, G, double(t), D, D,
                                  backward);
  if (o.global_proj()) w += (3.0 / 4.0) * attention_projection_work(c, batch, t, false, backward);
  return w;
}

MixerSpec longformer_mixer_spec() {
  return mixer_spec<Longformer>(
      "longformer",
      "sliding window (+-W/2, or W previous when causal) with per-head dilation and global "
      "tokens; O(T*W)",
      longformer_options(), {}, longformer_work);
}

}  // namespace longseq
