#pragma once
// Plain, obviously correct scan loops in float64: the ground truth the scan tests hold the fused
// kernels and the composite paths to. Slow on purpose; never used on a hot path.

#include <ATen/core/Tensor.h>

#include <tuple>

namespace longseq::ref {

/// h_t = a_t ⊙ h_{t-1} + b_t over dim 1 of a, b [B, T, C]; h0 [B, C] or undefined (zeros).
/// Inputs of any float dtype; computes and returns float64 h [B, T, C].
at::Tensor linear_scan_naive(const at::Tensor& a, const at::Tensor& b, const at::Tensor& h0);

/// Mamba's S6 scan: h_tn = exp(delta_t·A_en)·h_{t-1,n} + delta_t·Bm_tn·u_t,
/// y_t = Σ_n Cm_tn·h_tn + D_e·u_t, per batch b and channel e. u, delta [B, T, E]; A [E, N];
/// Bm, Cm [B, T, N]; D [E] or undefined (0); h0 [B, E, N] or undefined (zeros).
/// Returns float64 (y [B, T, E], h_T [B, E, N]).
std::tuple<at::Tensor, at::Tensor> selective_scan_naive(const at::Tensor& u,
                                                        const at::Tensor& delta,
                                                        const at::Tensor& A, const at::Tensor& Bm,
                                                        const at::Tensor& Cm, const at::Tensor& D,
                                                        const at::Tensor& h0);

}  // namespace longseq::ref
