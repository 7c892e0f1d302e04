#pragma once
// Fused minGRU / minLSTM recurrences on CPU: the gates computed inside the linear scan (see
// min_rnn.cpp). Raw pointers, contiguous row-major layouts; no autograd. The references are the
// composite gates + ref::linear_scan_naive (forward) and autograd through the composite path.

#include <cstdint>

namespace longseq::cpu {

enum class MinRnnKind { kGru, kLstm };

struct MinRnnParams {
  int64_t batch = 0;   ///< B
  int64_t t = 0;       ///< T
  int64_t hidden = 0;  ///< H
  MinRnnKind kind = MinRnnKind::kGru;
};

/// Number of H-wide parts of the projection: 2 (z, h̃) for minGRU, 3 (f, i, h̃) for minLSTM.
inline int64_t min_rnn_parts(MinRnnKind kind) { return kind == MinRnnKind::kLstm ? 3 : 2; }

/// xp [B, T, P·H] the input projection (parts side by side), valid bool [B, T] or nullptr,
/// h0 [B, H] or nullptr (zeros). Writes every element of h [B, T, H].
template <typename scalar_t>
void min_rnn_forward(const scalar_t* xp, const bool* valid, const scalar_t* h0, scalar_t* h,
                     const MinRnnParams& p);

/// Gradients of sum(h ⊙ grad_h) w.r.t. xp and, unless nullptr, h0, from the forward's inputs and
/// output h. Writes every element of grad_xp [B, T, P·H] (and grad_h0 [B, H]).
template <typename scalar_t>
void min_rnn_backward(const scalar_t* xp, const bool* valid, const scalar_t* h0, const scalar_t* h,
                      const scalar_t* grad_h, scalar_t* grad_xp, scalar_t* grad_h0,
                      const MinRnnParams& p);

}  // namespace longseq::cpu
