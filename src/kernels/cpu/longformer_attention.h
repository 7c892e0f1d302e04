#pragma once
// Fused Longformer banded attention on CPU (see longformer_attention.cpp for the algorithm).
// Raw pointers, contiguous row-major layouts; no autograd. The plain twin is ref::attention_naive
// under longformer_dense_allowed (forward); the backward's reference is autograd through the
// composite path.

#include <cstdint>

namespace longseq::cpu {

struct LongformerParams {
  int64_t batch = 0;   ///< B
  int64_t heads = 0;   ///< H
  int64_t t = 0;       ///< T (= S: self-attention)
  int64_t d = 0;       ///< D, head dim of q and k
  int64_t dv = 0;      ///< head dim of v and of the output
  int64_t window = 0;  ///< W: non-causal ±W/2 band steps, causal the W previous steps
  bool causal = false;
  const int64_t* dilation = nullptr;    ///< [H] per-head dilation, each > 0
  const int64_t* global_pos = nullptr;  ///< [G] sorted, unique global positions
  int64_t n_global = 0;                 ///< G
  int64_t block = 0;                    ///< queries per block (of one dilation residue), > 0
  double scale = 1.0;
};

/// q, k [B·H, T, D], v [B·H, T, Dv], key_padding bool [B, T] (true = real key) or nullptr.
/// Writes out [B·H, T, Dv] and lse [B·H, T]: every row attends to its band keys (non-global) and to
/// the global keys; global query rows get the same banded result (the op overwrites them with
/// their full-attention rows). A row that sees no key: out 0, lse −inf.
/// Queries per block when the caller leaves it to the kernel: the most, up to 32 (at least 8), whose
/// span GEMM (c × (c + W) × max(D, Dv)) OpenBLAS runs unpacked (blas.h, kSmallGemmVolume).
/// Measured at T = 4096, D = 64: W = 256 gives 32 (the best of 16…128); W = 512 gives 16, 84–88 ms
/// fwd+bwd against 95–102 ms at 32.
int64_t longformer_default_block(const LongformerParams& p);

template <typename scalar_t>
void longformer_attention_forward(const scalar_t* q, const scalar_t* k, const scalar_t* v,
                                  const bool* key_padding, scalar_t* out, scalar_t* lse,
                                  const LongformerParams& p);

/// Gradients of sum(out ⊙ grad_out) w.r.t. q, k, v; writes every element of grad_q, grad_k, grad_v.
template <typename scalar_t>
void longformer_attention_backward(const scalar_t* q, const scalar_t* k, const scalar_t* v,
                                   const bool* key_padding, const scalar_t* out,
                                   const scalar_t* lse, const scalar_t* grad_out, scalar_t* grad_q,
                                   scalar_t* grad_k, scalar_t* grad_v, const LongformerParams& p);

}  // namespace longseq::cpu
