#pragma once
/// The Legendre Memory Unit's memory as ops (Voelker et al. 2019; Chilkuri & Eliasmith 2021):
/// the fixed LTI system θ ṁ = A m + B u whose state holds the coefficients of u over the sliding
/// window [t − θ, t] on the shifted Legendre polynomials, discretised by zero-order hold with
/// step 1. The mixer (longseq/mixers/lmu.h) projects its input to u and reads its output from m.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace longseq {

/// Ā = e^{A/θ} [d, d] and B̄ = A⁻¹(Ā − I)B/θ·θ [d], float64, for order d and window θ:
/// A_ij = (2i + 1)(−1 if i < j else (−1)^(i−j+1)), B_i = (2i + 1)(−1)^i.
struct LmuSystem {
  at::Tensor a_bar, b_bar;
};
LmuSystem lmu_system(int64_t order, double window);

/// The memory m [B, T, U, d] of u [B, T, U] for all t at once, m_t = Σ_{k≤t} Āᵏ B̄ u_{t−k}: a
/// causal convolution with the impulse response (float64 FFT, O(T log T)); differentiable in u.
at::Tensor lmu_memory(const at::Tensor& u, const at::Tensor& a_bar, const at::Tensor& b_bar);
/// The same memory by the recurrence m_t = Ā m_{t−1} + B̄ u_t from m0 [B, U, d] (zeros if
/// undefined): lmu_memory's step-by-step reference, and what decoding runs.
at::Tensor lmu_memory_recurrent(const at::Tensor& u, const at::Tensor& a_bar,
                                const at::Tensor& b_bar, const at::Tensor& m0 = {});

/// Decoder row P̃_i(r), i < d, for reading u(t − r·θ) from the memory: [d] float64.
at::Tensor lmu_legendre_decoder(int64_t order, double r);

}  // namespace longseq
