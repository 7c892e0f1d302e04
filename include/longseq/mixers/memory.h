#pragma once
#include <longseq/mixer.h>

#include <torch/nn/modules/linear.h>

namespace longseq {

struct MemoryOptions {
  explicit MemoryOptions(MixerConfig common) : common_(common) {}
  TORCH_ARG(MixerConfig, common);
  TORCH_ARG(int64_t, slots) = 4;       ///< initial capacity (allocated slots)
  TORCH_ARG(int64_t, max_slots) = 64;  ///< capacity never grows past this
  TORCH_ARG(int64_t, key_dim) = 32;    ///< width of keys and values
  TORCH_ARG(double, threshold) = 0.5;  ///< allocate when max cosine(key, slot keys) < threshold
};

/// Memory-augmented recurrent mixer with an external memory that grows as needed.
/// Step t writes key k_t = normalise(W_k x_{t−1}) (the previous token: a shift that binds each
/// token to its predecessor, as H3's shift SSM does) with value v_t = W_v x_t, then reads with
/// q_t = W_q x_t by content attention over the used slots: r_t = softmax(β q_t · K) V.
/// Allocation rule, per sequence: if no slot is used yet, or the largest cosine similarity between
/// k_t and the used slots' keys is below `threshold`, the write goes to a new slot (if every slot
/// of the current capacity is used, the capacity doubles, up to `max_slots`; at `max_slots` the
/// write falls back to the nearest slot). Otherwise it updates the nearest slot j in place:
/// K_j ← normalise((1 − α) K_j + α k_t), V_j ← (1 − α) V_j + α v_t, α = σ(W_α x_t).
/// Output W_o [r_t; x_t]. The decisions are discrete (no gradient); reads and updates are
/// differentiable. Sequential in T (O(T · slots · key_dim)). Padded steps neither write nor read.
class MemoryImpl : public SequenceMixerImpl {
 public:
  explicit MemoryImpl(const MemoryOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& key_padding = {}) override;
  std::string step_unsupported() const override { return ""; }
  at::Tensor step(const at::Tensor& x, DecodeState& state) override;
  /// Slots in use per sequence [B] and the capacity after the last forward/step call.
  const at::Tensor& last_used_slots() const { return last_used_; }
  int64_t last_capacity() const { return last_capacity_; }

 private:
  at::Tensor run(const at::Tensor& x, const at::Tensor& key_padding, DecodeState& state);
  MemoryOptions options_;
  torch::nn::Linear wk_{nullptr}, wv_{nullptr}, wq_{nullptr}, wa_{nullptr}, wo_{nullptr};
  at::Tensor beta_;
  at::Tensor last_used_;
  int64_t last_capacity_ = 0;
};
TORCH_MODULE(Memory);

}  // namespace longseq
