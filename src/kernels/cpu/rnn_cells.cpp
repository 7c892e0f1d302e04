// Fused recurrences of the Elman (tanh), LSTM (Hochreiter & Schmidhuber 1997, with the forget
// gate of Gers et al. 2000) and GRU (Cho et al. 2014) cells, in PyTorch's gate conventions:
//   elman: h' = tanh(a),             a = xp + W_hh h                   (xp includes both biases)
//   lstm:  [i f g o] = [σ σ tanh σ](xp + W_hh h);  c' = f⊙c + i⊙g;  h' = o⊙tanh(c')
//   gru:   r = σ(xp_r + hh_r), z = σ(xp_z + hh_z), n = tanh(xp_n + r⊙hh_n), hh = W_hh h + b_hh;
//          h' = (1 − z)⊙n + z⊙h
// The input projections of all steps are one GEMM done by the caller (xp = x W_ihᵀ + b); here
// each step is one [B, H] × [H, G·H] GEMM (OpenBLAS, in column blocks small enough for its
// unpacked small-matrix kernels: gemm_rows in blas.h) plus a fused elementwise cell, forward and
// backward (BPTT). Backward computes every step's gate gradients dG [T, B, G·H] in reverse order
// (dh_{t−1} = dG_t W_hh per step) and the recurrent weight gradient once at the end as a single
// GEMM dW_hh = Σ_t dG_tᵀ h_{t−1} = dGᵀ [G·H, T·B] · Hprev [T·B, H].
// Variable lengths: where valid[b, t] is false the state passes through unchanged and the output
// is 0, so with right padding the final state is each sequence's own last state, and a reverse
// pass starts at each sequence's own end.
// Time O(T·B·H·G·(H + 1)) forward and about twice that backward; memory (saved for backward):
// hs [T + 1, B, H], acts [T, B, G·H], plus cs [T + 1, B, H] (lstm) and hn [T, B, H] (gru).
// Threads: the per-step GEMMs ([B, H] × [H, G·H], a few MFLOP) run on the calling thread
// (kernels/cpu/blas.h): a team forked per step made an LSTM forward 30× slower with 2 threads when
// another process held the second core. Threads split the batch in fixed blocks of rows: each block
// runs through every step (no synchronisation per step), and the block size does not follow the
// thread count, so neither do the results. The one large GEMM, dW_hh over all T·B rows, runs on
// every thread in fixed row blocks (gemm_fixed_blocks, for the same reason). The elementwise cell is a loop over one row's H channels
// (B·H·G per step is too small to pay for a parallel region per step), a target_clones function
// (AVX-512F, AVX2, baseline) whose σ and tanh are vec_math.h's branch-free forms, so it
// vectorises: with std::exp and std::tanh (scalar calls) the cell took about two thirds of an LSTM
// step at B = 8, H = 256.
#include "kernels/cpu/rnn_cells.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/vec_math.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace longseq::cpu {
namespace {

inline int64_t time_of(const RnnParams& p, int64_t s) { return p.reverse ? p.t - 1 - s : s; }

// Batch rows per block. Threads take whole blocks, and a block's per-step GEMM has M = kRowBlock
// rows (the last block fewer) whatever the thread count: OpenBLAS may round a row differently in
// an M = 1 GEMM than in an M = 2 one (it does on its Prescott kernels), so a split that followed
// the thread count made results depend on it.
constexpr int64_t kRowBlock = 4;

// Runs f(b0, b1) on each block of rows [b0, b1), the blocks spread over the threads.
template <typename F>
void for_each_row_block(int64_t batch, const F& f) {
  const int64_t blocks = (batch + kRowBlock - 1) / kRowBlock;
  at::parallel_for(0, blocks, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) f(k * kRowBlock, std::min(batch, (k + 1) * kRowBlock));
  });
}

// One row's cell, forward: reads its input projection xp and recurrent term r ([G·H] each),
// writes the gate activations act, the new state (and c_new for lstm, hh_n for gru) and the output.
template <typename scalar_t>
LONGSEQ_INLINE void elman_row_impl(const scalar_t* __restrict__ xp, const scalar_t* __restrict__ r,
                                   scalar_t* __restrict__ h_new, scalar_t* __restrict__ o,
                                   int64_t H) {
  for (int64_t j = 0; j < H; ++j) o[j] = h_new[j] = tanh_fast(xp[j] + r[j]);
}

template <typename scalar_t>
LONGSEQ_INLINE void lstm_row_impl(const scalar_t* __restrict__ xp, const scalar_t* __restrict__ r,
                                  const scalar_t* __restrict__ c, scalar_t* __restrict__ act,
                                  scalar_t* __restrict__ c_new, scalar_t* __restrict__ h_new,
                                  scalar_t* __restrict__ o, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    const scalar_t ig = sigmoid_fast(xp[j] + r[j]);
    const scalar_t fg = sigmoid_fast(xp[H + j] + r[H + j]);
    const scalar_t gg = tanh_fast(xp[2 * H + j] + r[2 * H + j]);
    const scalar_t og = sigmoid_fast(xp[3 * H + j] + r[3 * H + j]);
    act[j] = ig;
    act[H + j] = fg;
    act[2 * H + j] = gg;
    act[3 * H + j] = og;
    const scalar_t cn = fg * c[j] + ig * gg;
    c_new[j] = cn;
    o[j] = h_new[j] = og * tanh_fast(cn);
  }
}

template <typename scalar_t>
LONGSEQ_INLINE void gru_row_impl(const scalar_t* __restrict__ xp, const scalar_t* __restrict__ r,
                                 const scalar_t* __restrict__ b_hh, const scalar_t* __restrict__ h,
                                 scalar_t* __restrict__ act, scalar_t* __restrict__ hn,
                                 scalar_t* __restrict__ h_new, scalar_t* __restrict__ o,
                                 int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    const scalar_t hh_n = r[2 * H + j] + b_hh[2 * H + j];
    const scalar_t rg = sigmoid_fast(xp[j] + r[j] + b_hh[j]);
    const scalar_t zg = sigmoid_fast(xp[H + j] + r[H + j] + b_hh[H + j]);
    const scalar_t ng = tanh_fast(xp[2 * H + j] + rg * hh_n);
    act[j] = rg;
    act[H + j] = zg;
    act[2 * H + j] = ng;
    hn[j] = hh_n;
    o[j] = h_new[j] = (scalar_t(1) - zg) * ng + zg * h[j];
  }
}

// One row's cell, backward: from dtot = ∂L/∂h' (carried + output gradient) and, for lstm, the
// carried dc, the gate gradients dx (w.r.t. the input projection) and dg (w.r.t. W_hh h + b_hh;
// they differ only in gru's n gate), dc_{t−1} (lstm, in place) and dh's direct path (gru: z ⊙ dh).
template <typename scalar_t>
LONGSEQ_INLINE void elman_back_row_impl(const scalar_t* __restrict__ dtot,
                                        const scalar_t* __restrict__ h_new,
                                        scalar_t* __restrict__ dx, scalar_t* __restrict__ dg,
                                        scalar_t* __restrict__ dh, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    dx[j] = dg[j] = dtot[j] * (scalar_t(1) - h_new[j] * h_new[j]);
    dh[j] = 0;
  }
}

template <typename scalar_t>
LONGSEQ_INLINE void lstm_back_row_impl(
    const scalar_t* __restrict__ dtot, const scalar_t* __restrict__ act,
    const scalar_t* __restrict__ c, const scalar_t* __restrict__ c_new, scalar_t* __restrict__ dc,
    scalar_t* __restrict__ dx, scalar_t* __restrict__ dg, scalar_t* __restrict__ dh, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    const scalar_t ig = act[j], fg = act[H + j], gg = act[2 * H + j], og = act[3 * H + j];
    const scalar_t tc = tanh_fast(c_new[j]);
    const scalar_t dct = dc[j] + dtot[j] * og * (scalar_t(1) - tc * tc);
    const scalar_t di = dct * gg * ig * (scalar_t(1) - ig);
    const scalar_t df = dct * c[j] * fg * (scalar_t(1) - fg);
    const scalar_t dgg = dct * ig * (scalar_t(1) - gg * gg);
    const scalar_t dout = dtot[j] * tc * og * (scalar_t(1) - og);
    dx[j] = di;
    dx[H + j] = df;
    dx[2 * H + j] = dgg;
    dx[3 * H + j] = dout;
    dc[j] = dct * fg;  // dc_{t−1}
  }
  std::memcpy(dg, dx, 4 * H * sizeof(scalar_t));  // lstm's dg is dx
  std::memset(dh, 0, H * sizeof(scalar_t));
}

template <typename scalar_t>
LONGSEQ_INLINE void gru_back_row_impl(const scalar_t* __restrict__ dtot,
                                      const scalar_t* __restrict__ act,
                                      const scalar_t* __restrict__ h,
                                      const scalar_t* __restrict__ hn, scalar_t* __restrict__ dx,
                                      scalar_t* __restrict__ dg, scalar_t* __restrict__ dh,
                                      int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    const scalar_t rg = act[j], zg = act[H + j], ng = act[2 * H + j];
    const scalar_t dn = dtot[j] * (scalar_t(1) - zg) * (scalar_t(1) - ng * ng);  // pre-tanh
    const scalar_t dz = dtot[j] * (h[j] - ng) * zg * (scalar_t(1) - zg);
    const scalar_t dr = dn * hn[j] * rg * (scalar_t(1) - rg);
    dx[j] = dg[j] = dr;
    dx[H + j] = dg[H + j] = dz;
    dx[2 * H + j] = dn;
    dg[2 * H + j] = dn * rg;
    dh[j] = dtot[j] * zg;
  }
}

}  // namespace

// The row functions for each type: float ones are ISA clones (external linkage, as target_clones
// wants), double ones plain (the tests' precision).
namespace cell_rows {
#define LONGSEQ_CELL_ROWS(ATTR, T_)                                                                \
  ATTR void elman(const T_* xp, const T_* r, T_* h_new, T_* o, int64_t H) {                        \
    elman_row_impl(xp, r, h_new, o, H);                                                            \
  }                                                                                                \
  ATTR void lstm(const T_* xp, const T_* r, const T_* c, T_* act, T_* c_new, T_* h_new, T_* o,     \
                 int64_t H) {                                                                      \
    lstm_row_impl(xp, r, c, act, c_new, h_new, o, H);                                              \
  }                                                                                                \
  ATTR void gru(const T_* xp, const T_* r, const T_* b_hh, const T_* h, T_* act, T_* hn,           \
                T_* h_new, T_* o, int64_t H) {                                                     \
    gru_row_impl(xp, r, b_hh, h, act, hn, h_new, o, H);                                            \
  }                                                                                                \
  ATTR void elman_back(const T_* dtot, const T_* h_new, T_* dx, T_* dg, T_* dh, int64_t H) {       \
    elman_back_row_impl(dtot, h_new, dx, dg, dh, H);                                               \
  }                                                                                                \
  ATTR void lstm_back(const T_* dtot, const T_* act, const T_* c, const T_* c_new, T_* dc, T_* dx, \
                      T_* dg, T_* dh, int64_t H) {                                                 \
    lstm_back_row_impl(dtot, act, c, c_new, dc, dx, dg, dh, H);                                    \
  }                                                                                                \
  ATTR void gru_back(const T_* dtot, const T_* act, const T_* h, const T_* hn, T_* dx, T_* dg,     \
                     T_* dh, int64_t H) {                                                          \
    gru_back_row_impl(dtot, act, h, hn, dx, dg, dh, H);                                            \
  }
LONGSEQ_CELL_ROWS(LONGSEQ_ISA_CLONES, float)
LONGSEQ_CELL_ROWS(, double)
#undef LONGSEQ_CELL_ROWS
}  // namespace cell_rows

template <typename scalar_t>
void rnn_forward(const scalar_t* xproj, const scalar_t* w_hh, const scalar_t* b_hh,
                 const scalar_t* h0, const scalar_t* c0, const bool* valid, scalar_t* out,
                 scalar_t* hs, scalar_t* cs, scalar_t* acts, scalar_t* hn, const RnnParams& p) {
  const int64_t B = p.batch, T = p.t, H = p.hidden, G = rnn_gate_count(p.kind), GH = G * H;
  const bool lstm = p.kind == RnnCellKind::kLstm, gru = p.kind == RnnCellKind::kGru;
  std::copy(h0, h0 + B * H, hs);
  if (lstm) std::copy(c0, c0 + B * H, cs);
  BlasSingleThread one_blas_thread;
  // Sequences are independent: each block of rows [b0, b1) runs through every step.
  for_each_row_block(B, [&](int64_t b0, int64_t b1) {
    std::vector<scalar_t> rec((b1 - b0) * GH);  // W_hh h (+ b_hh for gru) of this step
    for (int64_t s = 0; s < T; ++s) {
      const int64_t t = time_of(p, s);
      const scalar_t* h = hs + s * B * H;
      scalar_t* h_new = hs + (s + 1) * B * H;
      gemm_rows(true, b1 - b0, GH, H, h + b0 * H, H, w_hh, H, rec.data(), GH);
      for (int64_t b = b0; b < b1; ++b) {
        const scalar_t* xp = xproj + (b * T + t) * GH;
        const scalar_t* r = rec.data() + (b - b0) * GH;
        const scalar_t* hb = h + b * H;
        scalar_t* hb_new = h_new + b * H;
        scalar_t* o = out + (b * T + t) * H;
        scalar_t* act = acts + (s * B + b) * GH;
        if (valid && !valid[b * T + t]) {
          std::copy(hb, hb + H, hb_new);
          if (lstm)
            std::copy(cs + s * B * H + b * H, cs + s * B * H + (b + 1) * H,
                      cs + (s + 1) * B * H + b * H);
          std::fill(o, o + H, scalar_t(0));
          std::fill(act, act + GH, scalar_t(0));
          if (gru) std::fill(hn + (s * B + b) * H, hn + (s * B + b + 1) * H, scalar_t(0));
          continue;
        }
        if (p.kind == RnnCellKind::kElman) {
          cell_rows::elman(xp, r, hb_new, o, H);
        } else if (lstm) {
          cell_rows::lstm(xp, r, cs + s * B * H + b * H, act, cs + (s + 1) * B * H + b * H, hb_new,
                          o, H);
        } else {
          cell_rows::gru(xp, r, b_hh, hb, act, hn + (s * B + b) * H, hb_new, o, H);
        }
      }
    }
  });
}

template <typename scalar_t>
void rnn_backward(const scalar_t* w_hh, const bool* valid, const scalar_t* hs, const scalar_t* cs,
                  const scalar_t* acts, const scalar_t* hn, const scalar_t* dout,
                  const scalar_t* dh_last, const scalar_t* dc_last, scalar_t* dxproj,
                  scalar_t* dw_hh, scalar_t* db_hh, scalar_t* dh0, scalar_t* dc0,
                  const RnnParams& p) {
  const int64_t B = p.batch, T = p.t, H = p.hidden, G = rnn_gate_count(p.kind), GH = G * H;
  const bool lstm = p.kind == RnnCellKind::kLstm, gru = p.kind == RnnCellKind::kGru;
  // dHH [T, B, G·H]: gradient w.r.t. this step's W_hh h (+ b_hh), in processing order.
  std::vector<scalar_t> dhh(T * B * GH), dh(B * H), dc(B * H);
  if (dh_last) std::copy(dh_last, dh_last + B * H, dh.begin());
  if (lstm && dc_last) std::copy(dc_last, dc_last + B * H, dc.begin());
  {
    BlasSingleThread one_blas_thread;
    // Sequences are independent: each block of rows [b0, b1) runs back through every step.
    for_each_row_block(B, [&](int64_t b0, int64_t b1) {
      std::vector<scalar_t> dh_next((b1 - b0) * H), dtot(H);
      for (int64_t s = T - 1; s >= 0; --s) {
        const int64_t t = time_of(p, s);
        scalar_t* dg_step = dhh.data() + s * B * GH;
        for (int64_t b = b0; b < b1; ++b) {
          scalar_t* dx = dxproj + (b * T + t) * GH;
          scalar_t* dg = dg_step + b * GH;
          scalar_t* dhb = dh.data() + b * H;
          if (valid && !valid[b * T + t]) {  // state passed through: gradients pass through too
            std::fill(dx, dx + GH, scalar_t(0));
            std::fill(dg, dg + GH, scalar_t(0));
            continue;
          }
          const scalar_t* go = dout ? dout + (b * T + t) * H : nullptr;
          for (int64_t j = 0; j < H; ++j) dtot[j] = dhb[j] + (go ? go[j] : scalar_t(0));
          const scalar_t* act = acts + (s * B + b) * GH;
          const scalar_t* h_new = hs + ((s + 1) * B + b) * H;
          // dh_{t−1}: the direct path (gru: z ⊙ dh) here, the W_hh path by the GEMM below.
          if (p.kind == RnnCellKind::kElman) {
            cell_rows::elman_back(dtot.data(), h_new, dx, dg, dhb, H);
          } else if (lstm) {
            cell_rows::lstm_back(dtot.data(), act, cs + (s * B + b) * H, cs + ((s + 1) * B + b) * H,
                                 dc.data() + b * H, dx, dg, dhb, H);
          } else {
            cell_rows::gru_back(dtot.data(), act, hs + (s * B + b) * H, hn + (s * B + b) * H, dx,
                                dg, dhb, H);
          }
        }
        // dh_next = dHH_s W_hh; rows of masked steps get 0 and keep their carried dh below.
        gemm_rows(false, b1 - b0, H, GH, dg_step + b0 * GH, GH, w_hh, H, dh_next.data(), H);
        for (int64_t b = b0; b < b1; ++b) {
          if (valid && !valid[b * T + time_of(p, s)]) continue;
          for (int64_t j = 0; j < H; ++j) dh[b * H + j] += dh_next[(b - b0) * H + j];
        }
      }
    });
  }  // per-step GEMMs done
  std::copy(dh.begin(), dh.end(), dh0);
  if (lstm) std::copy(dc.begin(), dc.end(), dc0);
  // dW_hh = Σ_s dHH_sᵀ h_s: one GEMM over all T·B rows; hs[0 .. T−1] are the step inputs.
  gemm_fixed_blocks(true, false, GH, H, T * B, scalar_t(1), dhh.data(), GH, hs, H, scalar_t(0),
                    dw_hh, H);
  if (gru) {
    std::fill(db_hh, db_hh + GH, scalar_t(0));
    for (int64_t r = 0; r < T * B; ++r) {
      const scalar_t* row = dhh.data() + r * GH;
      for (int64_t j = 0; j < GH; ++j) db_hh[j] += row[j];
    }
  }
}

#define LONGSEQ_INSTANTIATE_RNN(scalar_t)                                                       \
  template void rnn_forward<scalar_t>(                                                          \
      const scalar_t*, const scalar_t*, const scalar_t*, const scalar_t*, const scalar_t*,      \
      const bool*, scalar_t*, scalar_t*, scalar_t*, scalar_t*, scalar_t*, const RnnParams&);    \
  template void rnn_backward<scalar_t>(                                                         \
      const scalar_t*, const bool*, const scalar_t*, const scalar_t*, const scalar_t*,          \
      const scalar_t*, const scalar_t*, const scalar_t*, const scalar_t*, scalar_t*, scalar_t*, \
      scalar_t*, scalar_t*, scalar_t*, const RnnParams&);
LONGSEQ_INSTANTIATE_RNN(float)
LONGSEQ_INSTANTIATE_RNN(double)
#undef LONGSEQ_INSTANTIATE_RNN

}  // namespace longseq::cpu
