#pragma once
// Internal to the FAVOR+ ops: what performer_features.cpp, linear_attention.cpp and
// performer_attention.cpp share.

#include <longseq/attention.h>

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace longseq::detail {

/// Keeps every relu feature > 0, so normalisers stay > 0.
constexpr double kReluFloor = 1e-3;

/// Checks the inputs shared by the feature maps and performer_attention (q [B, H, T, D],
/// k [B, H, S, D], omega [R, D], the mask; errors name `op`); returns omega in q's dtype and
/// device.
at::Tensor check_performer_inputs(const char* op, const at::Tensor& q, const at::Tensor& k,
                                  const at::Tensor& omega, const AttentionMask& mask);

/// Normalised linear attention (linear_attention's contract, features already masked) where the
/// causal key features carry the running stabiliser m [B, H, S] (undefined: none): query t weighs
/// key j <= t by fq_t·fk_j·exp(m_j − m_t). `composite` forces the composite path.
at::Tensor stabilised_linear_attention(const at::Tensor& fq, const at::Tensor& fk,
                                       const at::Tensor& v, const at::Tensor& m, bool causal,
                                       int64_t chunk, bool composite);

}  // namespace longseq::detail
