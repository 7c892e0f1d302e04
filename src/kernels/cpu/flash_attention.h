#pragma once
// Fused exact attention on CPU, FlashAttention-style (see flash_attention.cpp for the algorithm).
// Raw pointers, contiguous row-major layouts; no autograd. The plain twin is
// ref::attention_naive (forward); the backward's reference is autograd through the composite path.

#include <cstdint>

namespace longseq::cpu {

struct FlashAttentionParams {
  int64_t batch = 0;  ///< B
  int64_t heads = 0;  ///< H
  int64_t t = 0;      ///< T, queries per head
  int64_t s = 0;      ///< S, keys per head
  int64_t d = 0;      ///< D, head dim of q and k
  int64_t dv = 0;     ///< head dim of v (and of the output)
  double scale = 1.0;
  bool causal = false;  ///< query i sees key j iff j <= i + (S - T)
};

/// q [B·H, T, D], k [B·H, S, D], v [B·H, S, Dv], key_padding bool [B, S] (true = real key) or
/// nullptr. Writes out [B·H, T, Dv] and lse [B·H, T] (log-sum-exp of the scaled, visible scores;
/// -inf and a zero output row where a query sees no key).
template <typename scalar_t>
void flash_attention_forward(const scalar_t* q, const scalar_t* k, const scalar_t* v,
                             const bool* key_padding, scalar_t* out, scalar_t* lse,
                             const FlashAttentionParams& p);

/// Gradients of sum(out ⊙ grad_out) w.r.t. q, k, v from the forward's inputs, out and lse.
/// Writes every element of grad_q [B·H, T, D], grad_k [B·H, S, D], grad_v [B·H, S, Dv].
template <typename scalar_t>
void flash_attention_backward(const scalar_t* q, const scalar_t* k, const scalar_t* v,
                              const bool* key_padding, const scalar_t* out, const scalar_t* lse,
                              const scalar_t* grad_out, scalar_t* grad_q, scalar_t* grad_k,
                              scalar_t* grad_v, const FlashAttentionParams& p);

}  // namespace longseq::cpu
