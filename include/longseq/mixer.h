#pragma once
/// The sequence-mixer interface: a module mapping x [B, T, C] to [B, T, C].

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include <cstdint>
#include <memory>
#include <string>

namespace longseq {

/// Options every mixer shares. Mechanism options sit beside these in each mixer's own Options.
struct MixerConfig {
  int64_t dim = 512;       ///< C, model width
  int64_t heads = 8;       ///< H
  int64_t head_dim = 0;    ///< D; 0 means C / H (then H must divide C)
  bool causal = false;     ///< query t sees only keys <= t
  double dropout = 0.0;    ///< attention-probability dropout while training (see docs/mixers.md)
  int64_t max_len = 4096;  ///< longest sequence accepted (sizes Linformer's projections)
  uint64_t seed = 0;       ///< seeds the mixer's own random draws (features, hash rotations)
  bool bias = false;       ///< bias in the Q/K/V/output projections

  /// Resolved head dim (D) after validation.
  int64_t resolved_head_dim() const;
  /// Throws a c10::Error naming `mixer` and the bad option.
  void validate(const std::string& mixer) const;
};

/// Base of every mixer. `key_padding` is an optional bool [B, T] (true = real token); see
/// padding_mask_from_lengths() to build it from lengths.
class SequenceMixerImpl : public torch::nn::Module {
 public:
  explicit SequenceMixerImpl(std::string name, MixerConfig config);
  virtual at::Tensor forward(const at::Tensor& x, const at::Tensor& key_padding = {}) = 0;

  const MixerConfig& config() const { return config_; }
  const std::string& mixer_name() const { return name_; }

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

 protected:
  /// q, k, v [B, H, T, D] -> [B, H, T, D]. `x` [B, T, C] for mixers with extra projections.
  virtual at::Tensor attend(const at::Tensor& x, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, const at::Tensor& key_padding) = 0;
  /// [B, T, H·D] -> [B, H, T, D]
  at::Tensor split_heads(const at::Tensor& x) const;
  /// [B, H, T, D] -> [B, T, H·D]
  static at::Tensor merge_heads(const at::Tensor& x);

  torch::nn::Linear wq_{nullptr}, wk_{nullptr}, wv_{nullptr}, wo_{nullptr};
};

}  // namespace longseq
