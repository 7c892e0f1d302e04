#pragma once
// Fused causal FAVOR+ prefix sums on CPU (see performer_causal.cpp for the algorithm). Raw
// pointers, contiguous row-major layouts; no autograd. The plain twin is ref::performer_causal_naive.

#include <cstdint>

namespace longseq::cpu {

struct PerformerCausalParams {
  int64_t bh = 0;     ///< B·H
  int64_t t = 0;      ///< T
  int64_t r = 0;      ///< R random features
  int64_t dv = 0;     ///< value head dim
  int64_t chunk = 64; ///< c, positions per chunk
};

/// fq, fk [B·H, T, R] (features, ≥ 0), v [B·H, T, Dv], m [B·H, T] the non-decreasing key
/// log-scale (query t weighs key j ≤ t by fq_t·fk_j·exp(m_j − m_t)) or nullptr for none.
/// Writes out [B·H, T, Dv] = num_t / den_t (0 where den_t = 0) and den [B·H, T].
template <typename scalar_t>
void performer_causal_forward(const scalar_t* fq, const scalar_t* fk, const scalar_t* v,
                              const scalar_t* m, scalar_t* out, scalar_t* den,
                              const PerformerCausalParams& p);

/// Gradients of sum(out ⊙ grad_out) w.r.t. fq, fk, v (m is a constant); writes every element.
/// A row with den = 0 is differentiated as num / 1, as the composite path does.
template <typename scalar_t>
void performer_causal_backward(const scalar_t* fq, const scalar_t* fk, const scalar_t* v,
                               const scalar_t* m, const scalar_t* out, const scalar_t* den,
                               const scalar_t* grad_out, scalar_t* grad_fq, scalar_t* grad_fk,
                               scalar_t* grad_v, const PerformerCausalParams& p);

}  // namespace longseq::cpu
