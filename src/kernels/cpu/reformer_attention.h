#pragma once
// Fused Reformer LSH bucket-chunk attention on CPU (see reformer_attention.cpp). Raw pointers,
// contiguous row-major layouts; no autograd. The references are the composite path of
// ops/reformer_attention.cpp (forward and, by autograd, backward) and exact attention under the
// union-of-rounds mask.

#include <cstdint>

namespace longseq::cpu {

struct ReformerParams {
  int64_t batch = 0;     ///< B (key_padding is [B, T])
  int64_t heads = 0;     ///< H
  int64_t t = 0;         ///< T
  int64_t d = 0;         ///< D of the shared qk
  int64_t dv = 0;        ///< value head dim
  int64_t n_hashes = 0;  ///< rounds, > 0
  int64_t chunk = 0;     ///< c, slots per chunk of the sorted order (1..T)
  bool causal = false;
  double scale = 1.0;
};

/// qk [B·H, T, D] (queries), kn [B·H, T, D] (unit-length keys), v [B·H, T, Dv];
/// perm [B·H, n, T] (round r's sorted slot -> position), inv [B·H, n, T] (position -> slot),
/// bucket [B·H, n, T] (position -> bucket; padded tokens in a bucket of their own);
/// key_padding bool [B, T] or nullptr. Writes out [B·H, T, Dv] and lse [B·H, T], the log-sum-exp
/// over the union of the rounds' keys other than the query itself; a real token that sees no other
/// key outputs its own value (lse +inf), a padded one that sees none a zero row (lse −inf).
template <typename scalar_t>
void reformer_attention_forward(const scalar_t* qk, const scalar_t* kn, const scalar_t* v,
                                const int64_t* perm, const int64_t* inv, const int64_t* bucket,
                                const bool* key_padding, scalar_t* out, scalar_t* lse,
                                const ReformerParams& p);

/// Gradients of sum(out ⊙ grad_out) w.r.t. qk (as queries), kn and v; writes every element.
template <typename scalar_t>
void reformer_attention_backward(const scalar_t* qk, const scalar_t* kn, const scalar_t* v,
                                 const int64_t* perm, const int64_t* inv, const int64_t* bucket,
                                 const bool* key_padding, const scalar_t* out, const scalar_t* lse,
                                 const scalar_t* grad_out, scalar_t* grad_qk, scalar_t* grad_kn,
                                 scalar_t* grad_v, const ReformerParams& p);

/// The LSH buckets from the rotated rows: out[bh, r, t] = the index of the largest value of
/// [x ; −x] (2·half values), x = xr[bh, t, r, 0 .. half), the first such index as at::argmax gives
/// it, a NaN counting as the largest. xr [B·H, T, n, half] contiguous; out [B·H, n, T].
template <typename scalar_t>
void reformer_buckets(const scalar_t* xr, int64_t bh, int64_t t, int64_t n, int64_t half,
                      int64_t* out);

}  // namespace longseq::cpu
