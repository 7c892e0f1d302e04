#pragma once
/// The sequence-mixer interface: a module mapping x [B, T, C] to [B, T, C].

#include <longseq/attention.h>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace longseq {

struct SequenceShard;

/// Options every mixer shares. Mechanism options sit beside these in each mixer's own Options.
struct MixerConfig {
  int64_t dim = 512;          ///< C, model width
  int64_t heads = 8;          ///< H
  int64_t head_dim = 0;       ///< D; 0 means C / H (then H must divide C)
  bool causal = false;        ///< query t sees only keys <= t
  double attn_dropout = 0.0;  ///< attention-probability dropout while training (docs/mixers.md)
  int64_t max_len = 4096;     ///< longest sequence accepted (sizes Linformer's projections)
  uint64_t seed = 0;          ///< seeds the mixer's own random draws (features, hash rotations)
  bool bias = false;          ///< bias in the Q/K/V/output projections
  /// Rotary position embedding (Su et al. 2021) on q and k before the core. Meaningful where
  /// scores are dot products of individual positions: exact, longformer, performer (before the
  /// feature map), reformer (before hashing); refused by linformer, whose projection along the
  /// sequence mixes positions.
  bool rotary = false;

  /// Resolved head dim (D) after validation.
  int64_t resolved_head_dim() const;
  /// Throws a c10::Error naming `mixer` and the bad option.
  void validate(const std::string& mixer) const;
};

/// When a mixer with random draws (Performer features, Reformer rotations) redraws them:
/// training calls 0..every-1 use draw 0, then a new draw every `every` calls; `every` = 0 never
/// redraws; eval calls neither count nor redraw. Draw n uses seed_for(seed, n), a pure function,
/// so the same seed gives the same sequence of draws. The counters live in a tensor the owning
/// module registers as a buffer, so checkpoints carry them and a resumed run redraws on time.
class RedrawSchedule {
 public:
  explicit RedrawSchedule(int64_t every = 0);
  /// int64 [2]: (training calls, draws so far).
  at::Tensor& state() { return state_; }
  /// Counts one call; true when a new draw is due before it runs.
  bool tick(bool training);
  /// Number of the next draw (1, 2, ...); call once per redraw.
  int64_t advance();
  static uint64_t seed_for(uint64_t seed, int64_t draw) {
    return seed + 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(draw);
  }

  /// While one is alive on this thread, tick() neither counts nor redraws: a forward pass that
  /// is recomputed (reversible layers in backward) sees the draws of the pass it replays.
  class ReplayGuard {
   public:
    ReplayGuard();
    ~ReplayGuard();
    ReplayGuard(const ReplayGuard&) = delete;
    ReplayGuard& operator=(const ReplayGuard&) = delete;

   private:
    bool previous_;
  };
  static bool replaying();

 private:
  int64_t every_;
  at::Tensor state_;
};

/// What a mixer carries between incremental calls of a causal sequence (generation): how many
/// positions it has consumed and its own tensors (a KV cache, running sums, a recurrent state).
struct DecodeState {
  int64_t position = 0;
  std::map<std::string, at::Tensor> tensors;
};

/// Base of every mixer. `key_padding` is an optional bool [B, T] (true = real token); see
/// padding_mask_from_lengths() to build it from lengths.
class SequenceMixerImpl : public torch::nn::Module {
 public:
  explicit SequenceMixerImpl(std::string name, MixerConfig config);
  virtual at::Tensor forward(const at::Tensor& x, const at::Tensor& key_padding = {}) = 0;

  /// Empty when step() can continue a causal sequence from a DecodeState; otherwise why it cannot
  /// (generation then recomputes the whole prefix with forward()).
  virtual std::string step_unsupported() const;
  /// x [B, n, C] holds positions state.position .. state.position + n - 1 of a causal sequence;
  /// returns [B, n, C], the rows forward() gives for them on the whole sequence, and advances
  /// `state`. Inference only (no dropout, no redraws). Throws step_unsupported() when non-empty.
  virtual at::Tensor step(const at::Tensor& x, DecodeState& state);

  const MixerConfig& config() const { return config_; }
  const std::string& mixer_name() const { return name_; }

  /// Sequence parallelism (ModelConfig::sequence_parallel): from now on forward() gets this
  /// rank's positions of the sequence `shard` describes. Only mixers with a sequence-parallel form
  /// accept it (exact: ring attention); the others throw, naming themselves.
  virtual void set_sequence_shard(std::shared_ptr<SequenceShard> shard);

 protected:
  /// Checks x is [B, T, C] with C == dim and T <= max_len, and key_padding is bool [B, T].
  void check_input(const at::Tensor& x, const at::Tensor& key_padding) const;

  std::string name_;
  MixerConfig config_;
};
using SequenceMixer = std::shared_ptr<SequenceMixerImpl>;

/// Mixers built on multi-head attention: Q/K/V projections to [B, H, T, D], a core, an output
/// projection back to C. Subclasses implement attend().
class AttentionMixerImpl : public SequenceMixerImpl {
 public:
  /// `shared_qk`: no key projection; attend() gets k == q (Reformer).
  AttentionMixerImpl(std::string name, MixerConfig config, bool shared_qk = false);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& key_padding = {}) override;
  /// Projects x (rotary at the state's positions) and hands the new q, k, v to attend_step().
  at::Tensor step(const at::Tensor& x, DecodeState& state) override;

 protected:
  /// q, k, v [B, H, T, D] -> [B, H, T, D]. `x` [B, T, C] for mixers with extra projections.
  /// `mask` holds the model's causal flag (MixerConfig::causal, its only way in) and the padding.
  virtual at::Tensor attend(const at::Tensor& x, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, const AttentionMask& mask) = 0;
  /// Incremental core: q, k, v [B, H, n, D] of the n new positions -> [B, H, n, D]; keeps what it
  /// needs in state.tensors (state.position is advanced by the caller afterwards).
  virtual at::Tensor attend_step(const at::Tensor& x, const at::Tensor& q, const at::Tensor& k,
                                 const at::Tensor& v, DecodeState& state);
  /// [B, T, H·D] -> [B, H, T, D]
  at::Tensor split_heads(const at::Tensor& x) const;
  /// [B, H, T, D] -> [B, T, H·D]
  static at::Tensor merge_heads(const at::Tensor& x);
  /// x [B, T, C] -> q, k, v [B, H, T, D] (k == q when shared), by one GEMM over the concatenated
  /// weights (the parameters stay wq, wk, wv). Rotary at `position` (decoding), else at the
  /// shard's positions, else from 0.
  std::array<at::Tensor, 3> project_qkv(const at::Tensor& x,
                                        std::optional<int64_t> position = std::nullopt) const;

  torch::nn::Linear wq_{nullptr}, wk_{nullptr}, wv_{nullptr}, wo_{nullptr};
  /// Set by a subclass's set_sequence_shard(): rotary then uses the shard's positions.
  std::shared_ptr<SequenceShard> shard_;
};

}  // namespace longseq
