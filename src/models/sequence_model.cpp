// Sequence models: embedding + positions, pre-norm blocks (mixer from the registry by name, then
// feed-forward, optionally chunked over T), final norm, head.
#include <longseq/model.h>
#include <longseq/registry.h>
#include <longseq/ring_attention.h>

#include <ATen/ATen.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/modules/normalization.h>

#include <cmath>
#include <cstdlib>

namespace longseq {

const OptionSet<ModelConfig>& model_options() {
  using O = ModelConfig;
  static const auto set =
      OptionSet<O>(O{})
          .add(option("layers", &O::layers, "blocks in the stack").positive())
          .add(option("norm", &O::norm, "normalisation before each branch")
                   .choices({"layernorm", "rmsnorm"}))
          .add(option("ffn_mult", &O::ffn_mult, "feed-forward width = ffn_mult * dim").positive())
          .add(option("ffn_chunk", &O::ffn_chunk, "> 0: feed-forward over T in chunks")
                   .non_negative())
          .add(option("dropout", &O::dropout, "residual and embedding dropout")
                   .range(0, 1, /*lo_open=*/false, /*hi_open=*/true))
          .add(option("positions", &O::positions, "position encoding")
                   .choices({"learned", "sinusoidal", "rotary", "none"}))
          .add(option("pooling", &O::pooling, "classify: pooling over the sequence")
                   .choices({"mean", "first"}))
          .add(option("reversible", &O::reversible, "reversible residual stack (RevNet)"))
          .add(option("token_shift", &O::token_shift, "add W_s x_{t-1} to each embedding"))
          .add(option("sequence_parallel", &O::sequence_parallel,
                      "on N ranks: each holds T/N positions, attention is the ring"));
  return set;
}

void ModelConfig::validate() const {
  TORCH_CHECK(vocab_size > 0 || input_dim > 0,
              "model: set `vocab_size` (token inputs) or `input_dim` (continuous inputs), got "
              "vocab_size = ",
              vocab_size, ", input_dim = ", input_dim);
  TORCH_CHECK(vocab_size >= 0 && input_dim >= 0,
              "model: `vocab_size` and `input_dim` must be >= 0");
  model_options().check(*this, "model");
  TORCH_CHECK(mixers.size() == 1 || static_cast<int64_t>(mixers.size()) == layers,
              "model: `mixers` needs 1 name or one per layer (", layers, "), got ", mixers.size());
  for (const auto& m : mixers) find_mixer(m);
  for (const auto& kv : mixer_options) {
    TORCH_CHECK(std::find(mixers.begin(), mixers.end(), kv.first) != mixers.end(),
                "model: `mixer_options` names mixer '", kv.first,
                "', which no layer uses (after changing `mixers`, clear it with --set "
                "'model.mixer_options={}' or set the new mixer's options)");
    // One entrance for causality: a layer that saw a different mask than the model's head and
    // its step() assume would leak future tokens into a "causal" model (or the reverse).
    TORCH_CHECK(!kv.second.count("causal"), "model: `mixer_options.", kv.first,
                ".causal` is not accepted: causality is the model's, set it with `model.causal`");
  }
  mixer.validate("model");
  if (sequence_parallel) {
    auto refuse = [](bool bad, const std::string& why) {
      TORCH_CHECK(!bad, "model: `sequence_parallel` ", why);
    };
    for (const auto& m : mixers) {
      refuse(m != "exact", "needs every layer `exact` (ring attention), got mixer '" + m + "'");
    }
    refuse(head == "classify", "needs a per-position head (lm or per_position): a `classify` "
                               "head pools over positions that live on other ranks");
    refuse(token_shift, "cannot take `token_shift` (the previous position may be on another rank)");
    refuse(reversible, "cannot take a `reversible` stack (its backward replays the ring)");
    refuse(mixer.attn_dropout != 0, "has no attention dropout (`attn_dropout` must be 0)");
    for (const auto& [name, opts] : mixer_options) {
      const auto it = opts.find("attn_dropout");
      refuse(it != opts.end() && std::strtod(it->second.c_str(), nullptr) != 0,
             "has no attention dropout (`mixer_options." + name + ".attn_dropout` must be 0)");
    }
  }
  TORCH_CHECK(head == "lm" || head == "classify" || head == "per_position",
              "model: `head` must be one of lm, classify, per_position, got '", head, "'");
  TORCH_CHECK(head != "lm" || vocab_size > 0,
              "model: head `lm` needs token inputs (`vocab_size` > 0)");
  TORCH_CHECK(head == "lm" || num_outputs > 0, "model: head `", head,
              "` needs `num_outputs` > 0, got ", num_outputs);
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight_ = register_parameter("weight", torch::ones({dim}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  auto rms = (x.pow(2).mean(-1, /*keepdim=*/true) + eps_).rsqrt();  // [..., 1]
  return x * rms * weight_;
}

namespace {

torch::nn::AnyModule make_norm(const std::string& kind, int64_t dim) {
  if (kind == "rmsnorm") return torch::nn::AnyModule(RMSNorm(dim));
  return torch::nn::AnyModule(torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
}

}  // namespace

BlockImpl::BlockImpl(const ModelConfig& config, int64_t layer) : config_(config) {
  const int64_t c = config.mixer.dim;
  const std::string& name = config.mixers.size() == 1 ? config.mixers[0] : config.mixers[layer];
  MixerConfig mc = config.mixer;
  mc.seed = config.mixer.seed + static_cast<uint64_t>(layer);
  mc.rotary = mc.rotary || config.positions == "rotary";
  auto it = config.mixer_options.find(name);
  mixer_ = register_module(
      "mixer", make_mixer(name, mc,
                          it == config.mixer_options.end() ? std::map<std::string, std::string>{}
                                                           : it->second));
  norm1_ = make_norm(config.norm, c);
  norm2_ = make_norm(config.norm, c);
  register_module("norm1", norm1_.ptr());
  register_module("norm2", norm2_.ptr());
  ff1_ = register_module("ff1", torch::nn::Linear(c, config.ffn_mult * c));
  ff2_ = register_module("ff2", torch::nn::Linear(config.ffn_mult * c, c));
  drop_ = register_module("drop", torch::nn::Dropout(config.dropout));
}

at::Tensor BlockImpl::ffn(const at::Tensor& x) {
  auto f = [&](const at::Tensor& part) {
    return ff2_->forward(torch::nn::functional::gelu(ff1_->forward(norm2_.forward(part))));
  };
  const int64_t t = x.size(1);
  if (config_.ffn_chunk <= 0 || config_.ffn_chunk >= t) return f(x);  // [B, T, C]
  // Position-wise, so chunks over T give the same result with a [B, chunk, ffn_mult·C] peak.
  std::vector<at::Tensor> parts;
  for (const auto& part : x.split(config_.ffn_chunk, 1)) parts.push_back(f(part));
  return at::cat(parts, 1);  // [B, T, C]
}

at::Tensor BlockImpl::mixer_input(const at::Tensor& x) { return norm1_.forward(x); }

at::Tensor BlockImpl::mix(const at::Tensor& x, const at::Tensor& key_padding) {
  return drop_->forward(mixer_->forward(norm1_.forward(x), key_padding));  // [B, T, C]
}

at::Tensor BlockImpl::feed(const at::Tensor& x) { return drop_->forward(ffn(x)); }  // [B, T, C]

at::Tensor BlockImpl::mix_step(const at::Tensor& x, DecodeState& state) {
  return drop_->forward(mixer_->step(norm1_.forward(x), state));  // [B, n, C]
}

at::Tensor BlockImpl::step(const at::Tensor& x, DecodeState& state) {
  auto h = x + mix_step(x, state);  // [B, n, C]
  return h + feed(h);               // [B, n, C]
}

at::Tensor BlockImpl::forward(const at::Tensor& x, const at::Tensor& key_padding) {
  auto h = x + mix(x, key_padding);  // [B, T, C]
  return h + feed(h);                // [B, T, C]
}

SequenceModelImpl::SequenceModelImpl(ModelConfig config) : config_(std::move(config)) {
  config_.validate();
  const int64_t c = config_.mixer.dim;
  if (config_.vocab_size > 0) {
    tok_ = register_module("tok", torch::nn::Embedding(config_.vocab_size, c));
  } else {
    in_proj_ = register_module("in_proj", torch::nn::Linear(config_.input_dim, c));
  }
  if (config_.positions == "learned") {
    pos_ = register_module("pos", torch::nn::Embedding(config_.mixer.max_len, c));
  } else if (config_.positions == "sinusoidal") {
    // PE[t, 2i] = sin(t / 10000^(2i/C)), PE[t, 2i+1] = cos(...)  (Vaswani et al. 2017)
    auto pos = torch::arange(config_.mixer.max_len, torch::kDouble).unsqueeze(1);  // [L, 1]
    auto freq =
        torch::exp(torch::arange(0, c, 2, torch::kDouble) * (-std::log(10000.0) / c));  // [C/2]
    auto pe = torch::zeros({config_.mixer.max_len, c}, torch::kDouble);
    pe.index_put_({torch::indexing::Slice(), torch::indexing::Slice(0, c, 2)},
                  torch::sin(pos * freq));
    pe.index_put_({torch::indexing::Slice(), torch::indexing::Slice(1, c, 2)},
                  torch::cos(pos * freq).narrow(1, 0, c / 2));
    sinusoid_ = register_buffer("sinusoid", pe.to(torch::kFloat));  // [L, C]
  }
  for (int64_t l = 0; l < config_.layers; ++l) {
    blocks_.push_back(register_module("block" + std::to_string(l), Block(config_, l)));
  }
  final_norm_ = make_norm(config_.norm, c);
  register_module("final_norm", final_norm_.ptr());
  const int64_t outputs = config_.num_outputs > 0 ? config_.num_outputs : config_.vocab_size;
  out_ = register_module("out", torch::nn::Linear(c, outputs));
  if (config_.token_shift) {
    shift_ =
        register_module("shift", torch::nn::Linear(torch::nn::LinearOptions(c, c).bias(false)));
  }
  drop_ = register_module("drop", torch::nn::Dropout(config_.dropout));
}

void SequenceModelImpl::check_inputs(const at::Tensor& input) const {
  if (config_.vocab_size > 0) {
    TORCH_CHECK(input.dim() == 2 && input.scalar_type() == at::kLong,
                "model: expected int64 token ids [B, T], got ", input.scalar_type(), " of shape ",
                input.sizes());
    if (input.numel() > 0) {
      const int64_t lo = input.min().item<int64_t>(), hi = input.max().item<int64_t>();
      TORCH_CHECK(lo >= 0 && hi < config_.vocab_size, "model: token ids must be in [0, ",
                  config_.vocab_size, "), got values in [", lo, ", ", hi, "]");
    }
  } else {
    TORCH_CHECK(input.dim() == 3 && input.size(2) == config_.input_dim,
                "model: expected inputs [B, T, ", config_.input_dim, "], got ", input.sizes());
  }
}

void SequenceModelImpl::shard_sequence(std::shared_ptr<Distributed> dist) {
  TORCH_CHECK(dist != nullptr, "model: shard_sequence() needs the ranks");
  TORCH_CHECK(config_.sequence_parallel,
              "model: shard_sequence() needs `sequence_parallel: true` in the model config");
  shard_ = std::make_shared<SequenceShard>();
  shard_->dist = std::move(dist);
  for (auto& block : blocks_) block->mixer()->set_sequence_shard(shard_);
}

at::Tensor SequenceModelImpl::embed(const at::Tensor& input, int64_t offset, at::Tensor* previous,
                                    const at::Tensor& positions) {
  check_inputs(input);
  at::Tensor h = config_.vocab_size > 0
                     ? tok_->forward(input)                                          // [B, T, C]
                     : in_proj_->forward(input.to(in_proj_->weight.scalar_type()));  // [B, T, C]
  const int64_t t = h.size(1);
  TORCH_CHECK(offset + t <= config_.mixer.max_len, "model: sequence length ", offset + t,
              " exceeds `max_len` = ", config_.mixer.max_len);
  const auto where = positions.defined()
                         ? positions.to(h.device())
                         : torch::arange(offset, offset + t, torch::kLong).to(h.device());  // [T]
  if (pos_) h = h + pos_->forward(where);
  if (sinusoid_.defined()) h = h + sinusoid_.index_select(0, where).to(h.scalar_type());  // [B, T, C]
  if (shift_) {
    at::Tensor before =
        previous && previous->defined() ? *previous : h.new_zeros({h.size(0), 1, h.size(2)});
    auto shifted =
        at::cat({before, h.narrow(1, 0, t - 1)}, 1);  // [B, T, C], position t holds t − 1
    if (previous) *previous = h.narrow(1, t - 1, 1);
    h = h + shift_->forward(shifted);  // [B, T, C]
  }
  return drop_->forward(h);
}

at::Tensor SequenceModelImpl::forward(const at::Tensor& input, const at::Tensor& key_padding) {
  at::Tensor h;
  if (shard_) {  // this rank's positions of the whole sequence: embedding to head are local
    TORCH_CHECK(!key_padding.defined(),
                "model: `sequence_parallel` takes unpadded batches only (got a key padding mask)");
    check_inputs(input);  // the whole sequence: every rank fails alike, none waits in the ring
    const int64_t length = input.size(1);
    TORCH_CHECK(length <= config_.mixer.max_len, "model: sequence length ", length,
                " exceeds `max_len` = ", config_.mixer.max_len);
    shard_->length = length;
    shard_->positions =
        SequenceLayout(length, shard_->dist->size()).positions(shard_->dist->rank());
    h = embed(input.index_select(1, shard_->positions.to(input.device())), 0, nullptr,
              shard_->positions);  // [B, T_r, C]
  } else {
    h = embed(input);  // [B, T, C]
  }
  if (config_.reversible) {
    h = reversible_blocks(blocks_, h, key_padding, reversible_recompute_);  // [B, T, C]
  } else {
    for (auto& block : blocks_) h = block->forward(h, key_padding);  // [B, T, C]
  }
  return head_output(h, key_padding);
}

at::Tensor SequenceModelImpl::head_output(const at::Tensor& stream, const at::Tensor& key_padding) {
  auto h = final_norm_.forward(stream);                     // [B, T, C]
  if (config_.head != "classify") return out_->forward(h);  // [B, T, outputs]
  at::Tensor pooled;
  if (config_.pooling == "first") {
    pooled = h.select(1, 0);  // [B, C]
  } else if (key_padding.defined()) {
    auto w = key_padding.to(h.scalar_type()).unsqueeze(-1);  // [B, T, 1]
    pooled = (h * w).sum(1) / w.sum(1).clamp_min(1.0);       // [B, C]
  } else {
    pooled = h.mean(1);  // [B, C]
  }
  return out_->forward(pooled);  // [B, outputs]
}

at::Tensor SequenceModelImpl::forward_recorded(const at::Tensor& input,
                                               const at::Tensor& key_padding,
                                               std::vector<at::Tensor>& stream) {
  TORCH_CHECK(!config_.reversible, "model: forward_recorded() does not support reversible stacks");
  TORCH_CHECK(!shard_, "model: forward_recorded() runs in one process (not sequence parallel)");
  stream.clear();
  auto h = embed(input);  // [B, T, C]
  for (auto& block : blocks_) {
    if (h.requires_grad()) h.retain_grad();
    stream.push_back(h);
    h = block->forward(h, key_padding);  // [B, T, C]
  }
  if (h.requires_grad()) h.retain_grad();
  stream.push_back(h);
  return head_output(h, key_padding);
}

std::string SequenceModelImpl::step_unsupported() const {
  if (config_.head == "classify")
    return "the model has a `classify` head (one output per sequence)";
  for (size_t l = 0; l < blocks_.size(); ++l) {
    const std::string why = blocks_[l]->mixer()->step_unsupported();
    if (!why.empty()) return "layer " + std::to_string(l) + ": " + why;
  }
  return "";
}

at::Tensor SequenceModelImpl::step(const at::Tensor& tokens, ModelDecodeState& state) {
  const std::string why = step_unsupported();
  TORCH_CHECK(why.empty(), "model: step() is not available: ", why);
  TORCH_CHECK(!shard_, "model: step() runs in one process (not sequence parallel)");
  if (state.layers.empty()) state.layers.resize(blocks_.size());
  TORCH_CHECK(state.layers.size() == blocks_.size(), "model: decode state has ",
              state.layers.size(), " layers, the model ", blocks_.size());
  auto h = embed(tokens, state.position, &state.last_embedding);  // [B, n, C]
  if (config_.reversible) {
    at::Tensor y1 = h, y2 = h;
    for (size_t l = 0; l < blocks_.size(); ++l) {
      y1 = y1 + blocks_[l]->mix_step(y2, state.layers[l]);  // [B, n, C]
      y2 = y2 + blocks_[l]->feed(y1);                       // [B, n, C]
    }
    h = (y1 + y2) * 0.5;
  } else {
    for (size_t l = 0; l < blocks_.size(); ++l) h = blocks_[l]->step(h, state.layers[l]);
  }
  state.position += tokens.size(1);
  return out_->forward(final_norm_.forward(h));  // [B, n, V]
}

}  // namespace longseq
