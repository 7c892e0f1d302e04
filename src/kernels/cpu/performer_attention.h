#pragma once
// Fused FAVOR+ attention from features on CPU: the causal prefix sums and the non-causal form (see
// performer_attention.cpp for the algorithms). Raw pointers, contiguous row-major layouts; no
// autograd. The plain twin of the causal form is ref::performer_causal_naive; the non-causal
// form's reference is the composite path.

#include <cstdint>

namespace longseq::cpu {

struct PerformerCausalParams {
  int64_t bh = 0;     ///< B·H
  int64_t t = 0;      ///< T
  int64_t r = 0;      ///< R random features
  int64_t dv = 0;     ///< value head dim
  int64_t chunk = 0;  ///< c, positions per chunk, > 0
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

struct PerformerParams {
  int64_t bh = 0;  ///< B·H
  int64_t t = 0;   ///< T queries
  int64_t s = 0;   ///< S keys
  int64_t r = 0;   ///< R random features
  int64_t dv = 0;  ///< value head dim
};

/// Non-causal: fq [B·H, T, R], fk [B·H, S, R], v [B·H, S, Dv]. Writes kv [B·H, R, Dv] = fkᵀ v,
/// z [B·H, R] = fkᵀ 1, den [B·H, T] = fq z and out [B·H, T, Dv] = fq kv / den (0 where den = 0).
template <typename scalar_t>
void performer_forward(const scalar_t* fq, const scalar_t* fk, const scalar_t* v, scalar_t* kv,
                       scalar_t* z, scalar_t* den, scalar_t* out, const PerformerParams& p);

/// Gradients of sum(out ⊙ grad_out) w.r.t. fq, fk, v from the forward's kv, z, den and out (a row
/// with den = 0 is differentiated as num / 1, as the composite path does).
template <typename scalar_t>
void performer_backward(const scalar_t* fq, const scalar_t* fk, const scalar_t* v,
                        const scalar_t* kv, const scalar_t* z, const scalar_t* den,
                        const scalar_t* out, const scalar_t* grad_out, scalar_t* grad_fq,
                        scalar_t* grad_fk, scalar_t* grad_v, const PerformerParams& p);

}  // namespace longseq::cpu
