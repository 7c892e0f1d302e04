#pragma once
// Fused linear-recurrence scans on CPU (see scan.cpp for the algorithms): the diagonal linear scan
// and Mamba's selective scan (S6). Raw pointers, contiguous row-major layouts; no autograd. The
// plain twins are ref::linear_scan_naive and ref::selective_scan_naive (forward); the backward's
// reference is autograd through the composite paths.

#include <cstdint>

namespace longseq::cpu {

struct LinearScanParams {
  int64_t batch = 0;     ///< B
  int64_t t = 0;         ///< T, steps
  int64_t channels = 0;  ///< C
};

/// h_t = a_t ⊙ h_{t-1} + b_t. a, b [B, T, C]; h0 [B, C] or nullptr (zeros). Writes every element
/// of h [B, T, C].
template <typename scalar_t>
void linear_scan_forward(const scalar_t* a, const scalar_t* b, const scalar_t* h0, scalar_t* h,
                         const LinearScanParams& p);

/// Gradients of sum(h ⊙ grad_h) from a, the forward's output h, h0 (nullptr = zeros) and grad_h.
/// Writes every element of grad_a, grad_b [B, T, C] and, unless nullptr, grad_h0 [B, C].
template <typename scalar_t>
void linear_scan_backward(const scalar_t* a, const scalar_t* h, const scalar_t* h0,
                          const scalar_t* grad_h, scalar_t* grad_a, scalar_t* grad_b,
                          scalar_t* grad_h0, const LinearScanParams& p);

struct SelectiveScanParams {
  int64_t batch = 0;     ///< B
  int64_t t = 0;         ///< T, steps
  int64_t channels = 0;  ///< E
  int64_t state = 0;     ///< N
};

/// u, delta [B, T, E]; A [E, N]; Bm, Cm [B, T, N]; D [E] or nullptr (0); h0 [B, E, N] or nullptr
/// (zeros). Writes every element of y [B, T, E] and h_last [B, E, N] (the state after step T).
template <typename scalar_t>
void selective_scan_forward(const scalar_t* u, const scalar_t* delta, const scalar_t* A,
                            const scalar_t* Bm, const scalar_t* Cm, const scalar_t* D,
                            const scalar_t* h0, scalar_t* y, scalar_t* h_last,
                            const SelectiveScanParams& p);

/// Gradients of sum(y ⊙ grad_y) + sum(h_last ⊙ grad_h_last) w.r.t. every input, from the
/// forward's inputs (the states are recomputed). grad_h_last may be nullptr (zero). Writes every
/// element of grad_u, grad_delta [B, T, E], grad_A [E, N], grad_Bm, grad_Cm [B, T, N] and, unless
/// nullptr, grad_D [E] and grad_h0 [B, E, N]. Deterministic: reductions run in a fixed order that
/// does not depend on the thread count.
template <typename scalar_t>
void selective_scan_backward(const scalar_t* u, const scalar_t* delta, const scalar_t* A,
                             const scalar_t* Bm, const scalar_t* Cm, const scalar_t* D,
                             const scalar_t* h0, const scalar_t* grad_y,
                             const scalar_t* grad_h_last, scalar_t* grad_u, scalar_t* grad_delta,
                             scalar_t* grad_A, scalar_t* grad_Bm, scalar_t* grad_Cm,
                             scalar_t* grad_D, scalar_t* grad_h0, const SelectiveScanParams& p);

}  // namespace longseq::cpu
