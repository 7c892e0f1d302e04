#pragma once
// Fused FAVOR+ random-feature maps on CPU (see performer_features.cpp). Raw pointers, contiguous
// row-major layouts; no autograd. The reference is the composite feature map of
// ops/performer_attention.cpp (autograd through it for the backward).

#include <cstdint>

namespace longseq::cpu {

enum class FeatureMap {
  kSoftmaxQuery,  ///< exp(a·ωx − max_r a·ωx) / √R
  kSoftmaxKey,  ///< exp(a·ωx − a²|x|²/2 − m) / √R, m the (running, if causal) max; 0 if padded
  kReluQuery,  ///< relu(a·ωx) / √R + floor
  kReluKey,    ///< (relu(a·ωx) / √R + floor) · valid
};

struct PerformerFeatureParams {
  int64_t batch = 0;      ///< B (key_padding is [B, T])
  int64_t heads = 0;      ///< H
  int64_t t = 0;          ///< positions per head
  int64_t d = 0;          ///< D
  int64_t r = 0;          ///< R features
  double in_scale = 1.0;  ///< a = D^(-1/4)
  double relu_floor = 0;  ///< the relu maps' floor (the op's kReluFloor)
  bool causal = false;    ///< kSoftmaxKey: running max (causal) or one max per head
  FeatureMap map = FeatureMap::kSoftmaxQuery;
};

/// x [B·H, T, D], omega [R, D], key_padding bool [B, T] (keys; nullptr = all real).
/// Writes f [B·H, T, R] and, for kSoftmaxKey, m [B·H, T] (the stabiliser of each position's
/// features; constant for autograd). m may be nullptr for the other maps.
template <typename scalar_t>
void performer_features_forward(const scalar_t* x, const scalar_t* omega, const bool* key_padding,
                                scalar_t* f, scalar_t* m, const PerformerFeatureParams& p);

/// grad_x [B·H, T, D] of sum(f ⊙ grad_f), the stabilisers held constant. Writes every element.
template <typename scalar_t>
void performer_features_backward(const scalar_t* x, const scalar_t* omega, const bool* key_padding,
                                 const scalar_t* f, const scalar_t* grad_f, scalar_t* grad_x,
                                 const PerformerFeatureParams& p);

}  // namespace longseq::cpu
