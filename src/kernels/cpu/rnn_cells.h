#pragma once
// Fused recurrences of the classic cells (see rnn_cells.cpp). Raw pointers, contiguous row-major
// layouts; no autograd. The plain twin is rnn_layer_composite (src/ops/rnn.cpp, ATen ops per step),
// and the cells are checked against torch::nn::RNN / LSTM / GRU.

#include <cstdint>

namespace longseq::cpu {

enum class RnnCellKind { kElman, kLstm, kGru };

/// Gate blocks per cell: elman 1, lstm 4 (i, f, g, o), gru 3 (r, z, n), as in PyTorch.
inline int64_t rnn_gate_count(RnnCellKind kind) {
  return kind == RnnCellKind::kLstm ? 4 : kind == RnnCellKind::kGru ? 3 : 1;
}

struct RnnParams {
  RnnCellKind kind = RnnCellKind::kLstm;
  int64_t batch = 0;     ///< B
  int64_t t = 0;         ///< T
  int64_t hidden = 0;    ///< H
  bool reverse = false;  ///< run t = T-1 .. 0
};

/// xproj [B, T, G·H] = x W_ihᵀ + b_ih (+ b_hh for elman and lstm); w_hh [G·H, H]; b_hh [3H] (gru
/// only, it sits inside r ⊙ (W_hn h + b_hn)); h0, c0 [B, H] (c0 lstm only); valid [B, T] or
/// nullptr (false: the state is carried unchanged and the output is 0).
/// Writes out [B, T, H]; hs [T + 1, B, H] (the state before step s is hs[s], in processing order);
/// cs [T + 1, B, H] (lstm); acts [T, B, G·H] post-activation gates (lstm i f g o, gru r z n);
/// hn [T, B, H] (gru: W_hn h + b_hn).
template <typename scalar_t>
void rnn_forward(const scalar_t* xproj, const scalar_t* w_hh, const scalar_t* b_hh,
                 const scalar_t* h0, const scalar_t* c0, const bool* valid, scalar_t* out,
                 scalar_t* hs, scalar_t* cs, scalar_t* acts, scalar_t* hn, const RnnParams& p);

/// Gradients from the forward's saved buffers and dout [B, T, H] (or nullptr), dh_last, dc_last
/// [B, H] (or nullptr): dxproj [B, T, G·H], dw_hh [G·H, H], db_hh [3H] (gru; else nullptr),
/// dh0, dc0 [B, H] (dc0 lstm only). Every element of the outputs is written.
template <typename scalar_t>
void rnn_backward(const scalar_t* w_hh, const bool* valid, const scalar_t* hs, const scalar_t* cs,
                  const scalar_t* acts, const scalar_t* hn, const scalar_t* dout,
                  const scalar_t* dh_last, const scalar_t* dc_last, scalar_t* dxproj,
                  scalar_t* dw_hh, scalar_t* db_hh, scalar_t* dh0, scalar_t* dc0,
                  const RnnParams& p);

}  // namespace longseq::cpu
