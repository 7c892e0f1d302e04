#pragma once
/// Counted work (FLOPs, bytes: longseq/roofline.h) of longseq's ops, one function each, defined
/// beside the op in src/ops/. The fused kernels report it to the profiler (LONGSEQ_KERNEL_SCOPE)
/// and the mixers' roofline functions (MixerSpec::work) add their projections to it.
///
/// The counts are the work the algorithm needs, not what an implementation happens to do: the
/// pairs a query actually sees (the causal triangle, a band clipped at the sequence's ends), each
/// input read and each output written once. `backward` gives the backward pass alone. `elem` is
/// the element size in bytes (4 for float).

#include <longseq/attention.h>
#include <longseq/roofline.h>

#include <cstdint>

namespace longseq {

/// Softmax attention over `pairs` (query, key) pairs per head, bh = B·H heads, t query rows, s key
/// rows: forward 2·pairs·(D + Dv) FLOPs, q, k, v read, out and the row log-sum-exp written.
/// Backward recomputes the scores and forms dV, dP, dQ, dK: 2·pairs·(3D + 2Dv) FLOPs (2.5× the
/// forward at D = Dv), q, k, v, out, lse, dOut read, dQ, dK, dV written.
Work softmax_attention_work(double bh, double pairs, double t, double s, int64_t d, int64_t dv,
                            bool backward, double elem = 4);

/// Exact attention [B, H, T|S, D|Dv]: pairs T·S, causal T·(S − T) + T·(T + 1)/2.
Work exact_attention_work(int64_t batch, int64_t heads, int64_t t, int64_t s, int64_t d, int64_t dv,
                          bool causal, bool backward, double elem = 4);

/// Longformer's band and global keys (the global query rows are ordinary exact attention, counted
/// by the mixer): per head of dilation d, the band offsets m ∈ [−W/2, W/2] (causal [0, W]) whose
/// key i + d·m lies in [0, T), plus each global key a query may see.
Work longformer_attention_work(int64_t batch, int64_t heads, int64_t t, int64_t d, int64_t dv,
                               const LongformerPattern& pattern, bool causal, bool backward,
                               double elem = 4);

/// Reformer's LSH attention: per round, each query against the 2c keys of its own and the previous
/// chunk (causal: the c most recent), n_hashes rounds; c = min(chunk, T).
Work reformer_attention_work(int64_t batch, int64_t heads, int64_t t, int64_t d, int64_t dv,
                             int64_t n_hashes, int64_t chunk, bool causal, bool backward,
                             double elem = 4);

/// FAVOR+ feature map of x [B·H, T, D] by ω [R, D]: p = x ωᵀ (2·T·D·R per head) and the map;
/// backward grad_x = h ω (the same GEMM; relu also recomputes p).
Work performer_features_work(double bh, int64_t t, int64_t d, int64_t r, bool relu, bool backward,
                             double elem = 4);

/// Normalised linear attention on features fq [B·H, T, R], fk [B·H, S, R], v [B·H, S, Dv]; the
/// normaliser counts as one more column of v. Non-causal: kv = fkᵀ [v 1] and out = fq kv,
/// 2·R·(Dv + 1)·(S + T) FLOPs per head. Causal (chunks of c): each in-chunk (query, key) pair of
/// the triangles 2·(R + Dv + 1), and per position the carried state's read and update,
/// 4·R·(Dv + 1). Backward twice the forward (dfq, dfk and dv are two passes of the forward's
/// structure).
Work linear_attention_work(double bh, int64_t t, int64_t s, int64_t r, int64_t dv, bool causal,
                           int64_t chunk, bool backward, double elem = 4);

/// One recurrent layer's sequential part (the input projection is the caller's GEMM): per step
/// h W_hhᵀ, 2·B·G·H² FLOPs; W_hh read from memory once per call when it fits in half of this
/// machine's last-level cache (cpu_info()), else once per step; gates in, states out. Backward:
/// dh W_hh and dW_hh, twice the FLOPs, W_hh read as in the forward.
Work rnn_work(int64_t batch, int64_t t, int64_t hidden, int64_t gates, bool backward,
              double elem = 4);

/// The minGRU/minLSTM scan over xp [B, T, P·H] (P = 2 or 3 parts): elementwise per (b, t, h),
/// xp read and h written; backward reads xp, h and dh, writes dxp.
Work min_rnn_work(int64_t batch, int64_t t, int64_t hidden, int64_t parts, bool backward,
                  double elem = 4);

/// The selective scan (S6) over u, delta [B, T, E], A [E, N], B, C [B, T, N]: per (b, t, e, n)
/// h = exp(δA) h + δ B u and y += C h; backward twice the FLOPs, reading the inputs and dy.
Work selective_scan_work(int64_t batch, int64_t t, int64_t channels, int64_t state, bool backward,
                         double elem = 4);

/// The causal depthwise convolution over x [B, T, E] with K taps: 2·K FLOPs per (b, t, e), x read
/// and out written; backward twice the FLOPs (dx, dw), x and dout read, dx written.
Work causal_conv1d_work(int64_t batch, int64_t t, int64_t channels, int64_t width, bool backward,
                        double elem = 4);

/// The linear recurrence h_t = a_t h_{t-1} + b_t over [B, T, C].
Work linear_scan_work(int64_t batch, int64_t t, int64_t channels, bool backward, double elem = 4);

}  // namespace longseq
