#pragma once
/// Classic recurrent layers as ops: Elman (tanh), LSTM and GRU recurrences over [B, T, I], with
/// PyTorch's weight layout and gate order, so weights copy to and from torch::nn::RNN/LSTM/GRU.

#include <ATen/core/Tensor.h>

namespace longseq {

enum class RnnCell {
  kElman,  ///< h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
  kLstm,   ///< gates i, f, g, o (torch::nn::LSTM order)
  kGru,    ///< gates r, z, n (torch::nn::GRU order; b_hn inside r ⊙ (W_hn h + b_hn))
};
/// Gate blocks G of a cell (1, 4, 3): weights are [G·H, ·].
int64_t rnn_gates(RnnCell cell);
const char* rnn_cell_name(RnnCell cell);

struct RnnWeights {
  at::Tensor w_ih;  ///< [G·H, I]
  at::Tensor w_hh;  ///< [G·H, H]
  at::Tensor b_ih;  ///< [G·H] or undefined
  at::Tensor b_hh;  ///< [G·H] or undefined
};

struct RnnOutput {
  at::Tensor out;  ///< [B, T, H]; 0 where `valid` is false
  at::Tensor h;    ///< [B, H], the state after the last processed step
  at::Tensor c;    ///< [B, H], LSTM cell state (undefined for the other cells)
};

/// One direction of a recurrent layer on x [B, T, I]. h0, c0 [B, H] (zeros when undefined);
/// valid bool [B, T] (false: the state passes through unchanged and the output is 0, so with right
/// padding each sequence ends in its own final state); reverse runs t = T-1 .. 0 (the backward
/// direction of a bidirectional layer). CPU float/double runs the fused kernel (one GEMM for all
/// input projections, then one small GEMM and a fused cell per step, hand-written BPTT); the
/// composite switch runs LibTorch's built-in at::lstm/gru/rnn_tanh (what torch::nn::LSTM runs)
/// where no mask is given, else rnn_layer_composite.
RnnOutput rnn_layer(RnnCell cell, const at::Tensor& x, const RnnWeights& w,
                    const at::Tensor& h0 = {}, const at::Tensor& c0 = {},
                    const at::Tensor& valid = {}, bool reverse = false);

/// The same contract with ATen ops per step and autograd: the fused kernel's reference (the
/// composite twin every op has; rnn_layer's own composite path runs LibTorch's built-in
/// recurrence where that covers the call, which is faster than a loop of small ops).
RnnOutput rnn_layer_composite(RnnCell cell, const at::Tensor& x, const RnnWeights& w,
                              const at::Tensor& h0 = {}, const at::Tensor& c0 = {},
                              const at::Tensor& valid = {}, bool reverse = false);

}  // namespace longseq
