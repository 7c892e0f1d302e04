#pragma once
/// Normalised linear attention over given features: the second half of FAVOR+ (the Performer's
/// GEMM and prefix-sum paths) for any non-negative feature map (the linear transformer's
/// elu(x) + 1, a learned map, ...). The masking contract is attention.h's.

#include <longseq/attention.h>

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace longseq {

/// Normalised linear attention over non-negative features (Katharopoulos et al. 2020):
/// out_t = Σ_j (fq_t·fk_j) v_j / Σ_j fq_t·fk_j over the keys j that query t sees under `mask`
/// (j ≤ t when causal, padded keys left out); a query that sees no key gets a zero row.
/// fq [B, H, T, R], fk [B, H, S, R] (entries ≥ 0), v [B, H, S, Dv] -> [B, H, T, Dv].
/// Non-causal: two GEMMs (fkᵀ v [R, Dv], then fq by it). Causal (T == S): the chunked prefix sums
/// of the Performer (`chunk` positions per chunk, an O(R·Dv) running state, never [T, R, Dv]).
/// Both run the Performer's fused kernels where they cover the call.
at::Tensor linear_attention(const at::Tensor& fq, const at::Tensor& fk, const at::Tensor& v,
                            const AttentionMask& mask, int64_t chunk);
/// The composite LibTorch path of linear_attention (same contract): its reference.
at::Tensor linear_attention_composite(const at::Tensor& fq, const at::Tensor& fk,
                                      const at::Tensor& v, const AttentionMask& mask,
                                      int64_t chunk);

}  // namespace longseq
