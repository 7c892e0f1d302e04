#pragma once
#include <longseq/lmu.h>
#include <longseq/mixer.h>

#include <torch/nn/modules/linear.h>

namespace longseq {

struct LmuOptions {
  explicit LmuOptions(MixerConfig common) : common_(common) {}
  TORCH_ARG(MixerConfig, common);
  TORCH_ARG(int64_t, order) = 32;     ///< d, Legendre coefficients kept per memory channel
  TORCH_ARG(double, window) = 256.0;  ///< θ, the length of history (in steps) the memory spans
  TORCH_ARG(int64_t, channels) = 8;   ///< U, scalar signals memorised (each gets d coefficients)
};

/// Legendre Memory Unit in its parallel form (Voelker et al. 2019; Chilkuri & Eliasmith 2021).
/// u_t = W_u x_t [U]; each channel's memory m_t [d] holds the coefficients of u over the sliding
/// window [t − θ, t] on the shifted Legendre polynomials: m_t = Ā m_{t−1} + B̄ u_t with the fixed
/// LTI system θ ṁ = A m + B u, A_ij = (2i + 1)(−1 if i < j else (−1)^(i−j+1)), B_i = (2i +
/// 1)(−1)^i,
/// discretised by zero-order hold (Ā = e^{A/θ}, B̄ = A⁻¹(Ā − I)B/θ·θ). Because the memory is linear
/// and time-invariant, training computes it for all t at once as a causal convolution with the
/// impulse response H_k = Āᵏ B̄ (FFT, O(T log T)); step() applies the recurrence. The output is
/// W_o tanh(W_h [x_t; m_t]). u(t − θ') ≈ Σ_i m_i(t) P̃_i(θ'/θ) (lmu_legendre_decoder).
class LmuImpl : public SequenceMixerImpl {
 public:
  explicit LmuImpl(const LmuOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& key_padding = {}) override;
  std::string step_unsupported() const override { return ""; }
  at::Tensor step(const at::Tensor& x, DecodeState& state) override;
  /// The memory m [B, T, U, d] of the projected inputs u [B, T, U] (FFT convolution).
  at::Tensor memory(const at::Tensor& u) const;
  /// The memory by the recurrence m_t = Ā m_{t−1} + B̄ u_t from m0 [B, U, d] (zeros if undefined).
  at::Tensor memory_recurrent(const at::Tensor& u, const at::Tensor& m0 = {}) const;
  const at::Tensor& a_bar() const { return a_bar_; }  ///< Ā [d, d] (float64 buffer)
  const at::Tensor& b_bar() const { return b_bar_; }  ///< B̄ [d]

 private:
  at::Tensor output(const at::Tensor& x, const at::Tensor& m);
  LmuOptions options_;
  at::Tensor a_bar_, b_bar_;
  torch::nn::Linear in_{nullptr}, hidden_{nullptr}, out_{nullptr};
};
TORCH_MODULE(Lmu);

}  // namespace longseq
