#pragma once
#include <longseq/attention.h>
#include <longseq/mixer.h>

namespace longseq {

struct PerformerOptions {
  explicit PerformerOptions(MixerConfig common) : common_(common) {}
  TORCH_ARG(MixerConfig, common);
  TORCH_ARG(int64_t, features) = 256;          ///< R random features
  TORCH_ARG(std::string, kernel) = "softmax";  ///< "softmax" (FAVOR+) or "relu"
  TORCH_ARG(int64_t, redraw) = 0;  ///< redraw features every k training calls; 0 = never
  TORCH_ARG(int64_t, chunk) = PerformerCoreOptions{}.chunk;  ///< causal prefix-sum chunk
};

/// Performer (Choromanski et al. 2021): FAVOR+ positive orthogonal random features, O(T·R·D).
/// Features live in a buffer (saved with the weights), drawn from the config seed and redrawn
/// every `redraw` training calls; fixed in eval.
class PerformerImpl : public AttentionMixerImpl {
 public:
  explicit PerformerImpl(const PerformerOptions& options);
  const PerformerOptions& options() const { return options_; }
  /// Draws new features (draw number `draws_` + 1 of this seed).
  void redraw_features();
  const at::Tensor& features() const { return omega_; }

  /// Causal: steps with an O(R·D) running state (S = Σ φ(k)vᵀ, z = Σ φ(k), running max).
  std::string step_unsupported() const override;

 protected:
  at::Tensor attend(const at::Tensor& x, const at::Tensor& q, const at::Tensor& k,
                    const at::Tensor& v, const AttentionMask& mask) override;
  at::Tensor attend_step(const at::Tensor& x, const at::Tensor& q, const at::Tensor& k,
                         const at::Tensor& v, DecodeState& state) override;

 private:
  PerformerOptions options_;
  PerformerCoreOptions core_;
  at::Tensor omega_;  // [R, D]
  RedrawSchedule schedule_;
};
TORCH_MODULE(Performer);

}  // namespace longseq
