#pragma once
#include <longseq/linear_attention.h>
#include <longseq/mixer.h>

namespace longseq {

struct LinearAttentionOptions {
  explicit LinearAttentionOptions(MixerConfig common) : common_(common) {}
  TORCH_ARG(MixerConfig, common);
  TORCH_ARG(int64_t, chunk) = 32;  ///< causal prefix-sum chunk length
};

/// Linear transformer (Katharopoulos et al. 2020, "Transformers are RNNs"): the softmax kernel
/// exp(q·k) replaced by φ(q)·φ(k) with φ(x) = elu(x) + 1 > 0, so
/// out_t = φ(q_t)ᵀ Σ_j φ(k_j) v_jᵀ / φ(q_t)ᵀ Σ_j φ(k_j), O(T·D·Dv) time and no [T, S] matrix.
/// Non-causal: two GEMMs; causal: prefix sums (linear_attention). Causal step() carries
/// S = Σ φ(k) vᵀ [B, H, D, Dv] and z = Σ φ(k) [B, H, D]: an RNN with an O(D·Dv) state.
class LinearAttentionImpl : public AttentionMixerImpl {
 public:
  explicit LinearAttentionImpl(const LinearAttentionOptions& options);
  const LinearAttentionOptions& options() const { return options_; }
  std::string step_unsupported() const override;

 protected:
  at::Tensor attend(const at::Tensor& x, const at::Tensor& q, const at::Tensor& k,
                    const at::Tensor& v, const AttentionMask& mask) override;
  at::Tensor attend_step(const at::Tensor& x, const at::Tensor& q, const at::Tensor& k,
                         const at::Tensor& v, DecodeState& state) override;

 private:
  LinearAttentionOptions options_;
};
TORCH_MODULE(LinearAttention);

}  // namespace longseq
