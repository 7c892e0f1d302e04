#pragma once
/// Linear recurrences over the time dimension: the diagonal linear scan (minGRU / minLSTM, linear
/// RNNs), its log-space parallel form, and Mamba's selective state-space scan (S6).
/// Inputs are laid out [B, T, C] (batch, time, channels); each op scans over dim 1.
/// CPU float/double calls run fused kernels (see longseq/impl.h for the switch); everything else
/// runs the composite LibTorch path, which is also exposed as `*_composite` (the reference).

#include <ATen/core/Tensor.h>

#include <tuple>

namespace longseq {

/// Diagonal linear recurrence h_t = a_t ⊙ h_{t-1} + b_t over dim 1, from h_{-1} = h0.
/// a, b [B, T, C] (same dtype and device); h0 [B, C], optional (undefined = zeros).
/// Returns h [B, T, C]. Differentiable in a, b and h0.
at::Tensor linear_scan(const at::Tensor& a, const at::Tensor& b, const at::Tensor& h0 = {});
/// The composite LibTorch path of linear_scan (a loop over T), whatever the switch says.
at::Tensor linear_scan_composite(const at::Tensor& a, const at::Tensor& b,
                                 const at::Tensor& h0 = {});

/// linear_scan in log space for positive values (Heinsen 2023, "Efficient Parallelization of a
/// Ubiquitous Sequential Computation"; the form of Feng et al. 2024, "Were RNNs All We Needed?"):
/// returns h = exp(log_h) [B, T, C] with h_t = exp(log_a_t) ⊙ h_{t-1} + exp(log_b_t) and
/// h_{-1} = exp(log_h0) (undefined = zeros). Parallel over T: one cumsum and one logcumsumexp
/// (composite LibTorch on every device; autograd by LibTorch). Float32 precision degrades with
/// |Σ_t log_a_t| (the result is a difference of terms of that size), so prefer linear_scan, or
/// float64, for long sequences with strong decay.
at::Tensor log_space_scan(const at::Tensor& log_a, const at::Tensor& log_b,
                          const at::Tensor& log_h0 = {});

/// The minGRU / minLSTM recurrence (Feng et al. 2024) from its input projection, gates included:
/// xp [B, T, P·H] holds the parts side by side, P = 2 for minGRU ([x_z | x_h]: z = σ(x_z),
/// h_t = (1 − z) ⊙ h_{t-1} + z ⊙ g(x_h)) and P = 3 for minLSTM ([x_f | x_i | x_h]: f, i = σ(·),
/// h_t = f/(f+i) ⊙ h_{t-1} + i/(f+i) ⊙ g(x_h)), with g(x) = x + ½ (x ≥ 0), σ(x) (x < 0).
/// valid bool [B, T], optional: where false the state is kept (a padded step). h0 [B, H], optional
/// (undefined = zeros). Returns h [B, T, H]; differentiable in xp and h0. On CPU the fused kernel
/// computes the gates inside the scan (no [B, T, H] gate tensors, forward or backward).
at::Tensor min_rnn_scan(const at::Tensor& xp, bool lstm, const at::Tensor& valid = {},
                        const at::Tensor& h0 = {});
/// min_rnn_scan's composite path (its reference): the paper's log-space parallel scan
/// (log_space_scan) where h0 is undefined or positive, else the gates as LibTorch ops, then
/// linear_scan_composite.
at::Tensor min_rnn_scan_composite(const at::Tensor& xp, bool lstm, const at::Tensor& valid = {},
                                  const at::Tensor& h0 = {});

/// Mamba's selective scan, S6 (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective
/// State Spaces"). For each batch b, channel e and state n:
///   h_tn = exp(delta_t · A_en) · h_{t-1,n} + delta_t · Bm_tn · u_t,
///   y_t  = Σ_n Cm_tn · h_tn + D_e · u_t.
/// u, delta [B, T, E]; A [E, N]; Bm, Cm [B, T, N] (shared by all channels); D [E], optional skip
/// (undefined = 0); h0 [B, E, N], optional initial state (undefined = zeros).
/// Returns (y [B, T, E], h_T [B, E, N], the state after the last step). Differentiable in every
/// input, through both outputs. The fused CPU kernel never materialises a [B, T, E, N] tensor.
std::tuple<at::Tensor, at::Tensor> selective_scan(const at::Tensor& u, const at::Tensor& delta,
                                                  const at::Tensor& A, const at::Tensor& Bm,
                                                  const at::Tensor& Cm, const at::Tensor& D = {},
                                                  const at::Tensor& h0 = {});
/// The composite LibTorch path of selective_scan (materialises exp(delta ⊗ A) [B, T, E, N] and
/// loops over T), whatever the switch says.
std::tuple<at::Tensor, at::Tensor> selective_scan_composite(
    const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& Bm,
    const at::Tensor& Cm, const at::Tensor& D = {}, const at::Tensor& h0 = {});

}  // namespace longseq
