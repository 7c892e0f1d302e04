#pragma once
/// Sequence models built from mixers: input embedding, positions, a stack of pre-norm blocks (a
/// mixer chosen by name per layer, then a feed-forward), a final norm and a task head.

#include <longseq/mixer.h>
#include <longseq/options.h>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace longseq {

class Distributed;
struct SequenceShard;

struct ModelConfig {
  int64_t vocab_size = 0;  ///< > 0: token ids [B, T] in; 0: continuous inputs [B, T, input_dim]
  int64_t input_dim = 0;   ///< width of continuous inputs (pixels, adding-problem channels)
  int64_t layers = 2;
  /// One mixer name for every layer, or one per layer (hybrids: {"lstm", "exact", ...}).
  std::vector<std::string> mixers = {"exact"};
  /// Mechanism options per mixer name: mixer_options["performer"]["features"] = "64".
  std::map<std::string, std::map<std::string, std::string>> mixer_options;
  /// dim, heads, head_dim, causal, attn_dropout, max_len, seed shared by every layer; the
  /// seed of layer l is seed + l so random features differ between layers.
  MixerConfig mixer;
  std::string norm = "layernorm";  ///< "layernorm" or "rmsnorm"
  int64_t ffn_mult = 4;            ///< hidden width of the feed-forward = ffn_mult · dim
  int64_t ffn_chunk = 0;           ///< > 0: feed-forward over T in chunks (Reformer's trick)
  double dropout = 0.0;            ///< residual and embedding dropout
  std::string positions =
      "learned";                 ///< "learned", "sinusoidal", "rotary" (in the mixers) or "none"
  std::string head = "lm";       ///< "lm", "classify" or "per_position"
  int64_t num_outputs = 0;       ///< classes / outputs; lm: defaults to vocab_size
  std::string pooling = "mean";  ///< classify: "mean" over real tokens or "first"
  /// Reversible residual stack (RevNet coupling as in Reformer): x1 = x2 = embedding,
  /// y1 = x1 + Mix(x2), y2 = x2 + FFN(y1), output (y1 + y2) / 2. Backward recomputes every
  /// block's inputs from its outputs, so activation memory does not grow with depth.
  bool reversible = false;
  /// Token shift: each position's embedding also gets W_s · (the previous position's embedding),
  /// the width-2 causal convolution of RWKV's token shift and H3's shift SSM. It hands every layer
  /// a previous-token feature, which associative recall (MQAR, induction) otherwise has to build
  /// with a whole attention layer first.
  bool token_shift = false;
  /// Sequence parallelism: when trained on N ranks, each rank holds T/N positions of every
  /// sequence (the zig-zag layout of longseq/ring_attention.h) through the whole model:
  /// embedding, positions, norms, feed-forward and head run on the local positions, attention is
  /// ring attention across the ranks. Activation memory per rank falls to about 1/N. Needs every
  /// layer `exact`, a per-position head (lm or per_position), no token_shift, no reversible
  /// stack, no attention dropout and unpadded batches. A single process runs the model as usual.
  bool sequence_parallel = false;

  /// Throws naming the bad field, what was expected and what was given.
  void validate() const;
};

/// The ModelConfig members a config file sets (its `model` section besides `mixers`,
/// `mixer_options` and the common mixer options), with their ranges and help.
const OptionSet<ModelConfig>& model_options();

/// RMSNorm (Zhang & Sennrich 2019): x / rms(x) · g.
class RMSNormImpl : public torch::nn::Module {
 public:
  explicit RMSNormImpl(int64_t dim, double eps = 1e-6);
  at::Tensor forward(const at::Tensor& x);

 private:
  at::Tensor weight_;
  double eps_;
};
TORCH_MODULE(RMSNorm);

/// x + mixer(norm(x)); x + ffn(norm(x)).
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const ModelConfig& config, int64_t layer);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& key_padding = {});
  /// The two residual branches: dropout(mixer(norm1(x))) and dropout(ffn(norm2(x))).
  at::Tensor mix(const at::Tensor& x, const at::Tensor& key_padding = {});
  at::Tensor feed(const at::Tensor& x);
  /// Incremental forms for generation (eval): the mixer branch through mixer()->step().
  at::Tensor mix_step(const at::Tensor& x, DecodeState& state);
  at::Tensor step(const at::Tensor& x, DecodeState& state);
  const SequenceMixer& mixer() const { return mixer_; }
  /// What the mixer sees of the residual stream x [B, T, C]: norm1(x).
  at::Tensor mixer_input(const at::Tensor& x);

 private:
  at::Tensor ffn(const at::Tensor& x);
  ModelConfig config_;
  torch::nn::AnyModule norm1_, norm2_;
  SequenceMixer mixer_;
  torch::nn::Linear ff1_{nullptr}, ff2_{nullptr};
  torch::nn::Dropout drop_{nullptr};
};
TORCH_MODULE(Block);

/// The reversible stack of `blocks` on h [B, T, C] (see ModelConfig::reversible). With
/// `recompute`, autograd keeps only the last (y1, y2); backward walks the blocks in reverse,
/// recovering x2 = y2 - FFN(y1) and x1 = y1 - Mix(x2) and replaying each branch under the RNG
/// state and redraw counters it first ran with, so dropout, random features and hashing repeat
/// exactly. Without `recompute` the same coupling runs through ordinary autograd (the reference
/// the recomputing path is tested against). The blocks must outlive the backward pass.
at::Tensor reversible_blocks(std::vector<Block>& blocks, const at::Tensor& h,
                             const at::Tensor& key_padding, bool recompute = true);

/// Incremental decoding state of a model: one DecodeState per layer and the next position.
struct ModelDecodeState {
  int64_t position = 0;
  std::vector<DecodeState> layers;
  at::Tensor last_embedding;  ///< [B, 1, C], for token_shift
};

class SequenceModelImpl : public torch::nn::Module {
 public:
  explicit SequenceModelImpl(ModelConfig config);
  /// tokens int64 [B, T] (vocab_size > 0) or features [B, T, input_dim]; key_padding bool [B, T].
  /// Returns lm / per_position: [B, T, num_outputs]; classify: [B, num_outputs].
  at::Tensor forward(const at::Tensor& input, const at::Tensor& key_padding = {});
  const ModelConfig& config() const { return config_; }
  const std::vector<Block>& blocks() const { return blocks_; }
  /// forward() that also records the residual stream entering each block and leaving the last
  /// one (layers + 1 tensors [B, T, C]), with retain_grad() so ∂L/∂x of every layer can be read
  /// after backward (longseq diagnose). Not for reversible stacks (their streams are recomputed).
  at::Tensor forward_recorded(const at::Tensor& input, const at::Tensor& key_padding,
                              std::vector<at::Tensor>& stream);
  /// Empty when step() works (lm or per_position head, every mixer steps); otherwise why not.
  std::string step_unsupported() const;
  /// Inputs [B, n] (or [B, n, F]) continuing `state` -> outputs [B, n, ·], equal to the last n
  /// rows of forward() on the whole sequence so far. Generation calls it in eval mode without
  /// grad; truncated BPTT in training mode (attention mixers then skip attention dropout).
  at::Tensor step(const at::Tensor& tokens, ModelDecodeState& state);
  /// Reversible models only: false runs the coupling through ordinary autograd (keeps every
  /// block's activations; for tests and debugging). Default true.
  void set_reversible_recompute(bool on) { reversible_recompute_ = on; }
  /// ModelConfig::sequence_parallel over the ranks of `dist`: forward() then takes whole
  /// sequences (the same on every rank) and returns this rank's positions only, in the order
  /// SequenceLayout(T, N).positions(rank) gives. Throws unless the config allows it.
  void shard_sequence(std::shared_ptr<Distributed> dist);
  bool sequence_sharded() const { return shard_ != nullptr; }

 private:
  /// `previous` [B, 1, C]: the embedding before position `offset` (token_shift; zeros if
  /// undefined).
  /// Throws unless `input` is what embed() takes (token ids in range, or features of input_dim).
  void check_inputs(const at::Tensor& input) const;
  /// `positions` int64 [T]: the positions of the rows of `input` (sequence parallelism);
  /// undefined means offset .. offset + T − 1.
  at::Tensor embed(const at::Tensor& input, int64_t offset = 0, at::Tensor* previous = nullptr,
                   const at::Tensor& positions = {});
  at::Tensor head_output(const at::Tensor& stream, const at::Tensor& key_padding);
  ModelConfig config_;
  torch::nn::Embedding tok_{nullptr};
  torch::nn::Linear in_proj_{nullptr};
  torch::nn::Embedding pos_{nullptr};
  torch::nn::Linear shift_{nullptr};
  at::Tensor sinusoid_;  // [max_len, C] buffer when positions == "sinusoidal"
  std::vector<Block> blocks_;
  torch::nn::AnyModule final_norm_;
  torch::nn::Linear out_{nullptr};
  torch::nn::Dropout drop_{nullptr};
  bool reversible_recompute_ = true;
  std::shared_ptr<SequenceShard> shard_;
};
TORCH_MODULE(SequenceModel);

}  // namespace longseq
