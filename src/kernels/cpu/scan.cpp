// Fused linear-recurrence scans on CPU.
//
// 1. Diagonal linear scan:  h_t = a_t ⊙ h_{t-1} + b_t   (h_{-1} = h0)
//    The recurrence of linear RNNs, minGRU / minLSTM (Feng et al. 2024, "Were RNNs All We
//    Needed?") and of S6 below per state. Forward, per batch row and block of kChunkC channels:
//    sequential in T, a vector loop over the contiguous channels of each row. Backward, reverse in
//    T: dh_t = dout_t + a_{t+1} ⊙ dh_{t+1}; db_t = dh_t; da_t = dh_t ⊙ h_{t-1}; dh0 = a_0 ⊙ dh_0
//    (db doubles as the dh buffer).
//    Time O(B·T·C), memory-bound (3 streams forward, 5 backward). Extra memory: none.
//    Forward saves for backward: its output h (the op keeps a and h0).
//
// 2. Selective scan, S6 (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective
//    State Spaces", Algorithm 2 and its hardware-aware scan). Per batch b, channel e, state n:
//      a_tn = exp(delta_t · A_en),  h_tn = a_tn · h_{t-1,n} + delta_t · Bm_tn · u_t,
//      y_t  = Σ_n Cm_tn · h_tn + D_e · u_t.
//    Forward, per work item (b, block of kLanes = 16 channels): the [N, 16] state lives in a
//    per-thread buffer (L1), sequential in T; every inner loop runs over the 16 channel lanes
//    (fixed trip count, so it vectorises fully; a short last block is padded with zero lanes,
//    which stay exactly zero). Bm_t and Cm_t rows are read once per block of channels.
//    Backward, per work item (b, group of channel blocks), per block: recompute the forward states
//    into a per-thread [T, N, 16] buffer, then the reverse pass with the carried gradient
//    G_tn = a_{t+1,n} · g_{t+1,n} (G_T = dL/dh_T):
//      g_tn = dy_t · Cm_tn + G_tn                  (total gradient of h_tn)
//      dA_en += g_tn · h_{t-1,n} · a_tn · delta_t
//      ddelta_t = Σ_n g_tn · (h_{t-1,n} · a_tn · A_en + Bm_tn · u_t)
//      du_t = dy_t · D_e + Σ_n g_tn · delta_t · Bm_tn,     dD_e += dy_t · u_t
//      dBm_tn += Σ_e g_tn · delta_t · u_t,  dCm_tn += Σ_e dy_t · h_tn   (reductions over e)
//      dh0_n = a_0n · g_0n.
//    Reductions over channels (dBm, dCm) and batches (dA, dD) go to per-group / per-batch partial
//    buffers summed afterwards in a fixed order: deterministic, independent of the thread count.
//    Time O(B·T·E·N) forward, about 2× that backward (recompute + reverse; one exp per element
//    each). Extra memory: forward O(N·16) per thread, never [B, T, E, N]; backward the per-thread
//    [T, N, 16] state buffer plus partials of O(B·G·T·N + B·E·N) (G = channel groups per batch).
//    Forward saves for backward: nothing (the op keeps the inputs; backward recomputes states).
//
// Layout: row-major, contiguous: a, b, h, u, delta, y [B, T, C|E]; A [E, N]; Bm, Cm [B, T, N];
// D [E]; h0 [B, C] (linear) or [B, E, N] (selective).
// Threads: at::parallel_for over the work items above; this file is compiled with -fopenmp (see
// flash_attention.cpp for why that matters). Float loops are target_clones (AVX-512F, AVX2,
// baseline) chosen at load time; they vectorise only with -fno-trapping-math (set for this
// folder). float64 is the tests' precision and runs the baseline build only.
#include "kernels/cpu/scan.h"
#include "kernels/cpu/vec_math.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

namespace longseq::cpu {
namespace {

constexpr int64_t kChunkC = 64;    // linear scan: channels per work item
constexpr int64_t kLanes = 16;     // selective scan: channels per block (vector lanes)
constexpr int64_t kMinItems = 16;  // selective scan backward: aim for at least this many items

// Sixteen lane sums at once: out[i] += Σ_l x[i·kLanes + l] for i < 16, x a [16, kLanes] float tile.
// Adjacent pairs of two vectors are summed into one (an even/odd shuffle and an add), four times:
// 15 such steps instead of 16 separate reductions (which the compiler emits as scalar adds through
// the stack), and the lane order comes out as the row order. Fixed order, so fixed bits.
using Lanes16 = Float16;

// out = the adjacent-pair sums of a (lanes 0..7) then of b (lanes 8..15). By reference: a vector
// argument or result by value would warn of AVX-512 ABI changes outside the AVX-512F clone.
LONGSEQ_INLINE void pair_sums(const Lanes16& a, const Lanes16& b, Lanes16& out) {
  out = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
        __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}

LONGSEQ_INLINE void add_row_sums16(const float* x, float* out) {
  Lanes16 v[16];
  for (int i = 0; i < 16; ++i) std::memcpy(&v[i], x + i * kLanes, sizeof(Lanes16));
  for (int width = 16; width > 1; width /= 2)
    for (int i = 0; i < width / 2; ++i) pair_sums(v[2 * i], v[2 * i + 1], v[i]);
  for (int i = 0; i < 16; ++i) out[i] += v[0][i];
}

// Loads w <= kLanes values from src into dst, zero-filling the rest.
template <typename scalar_t>
LONGSEQ_INLINE void load_lanes(scalar_t* dst, const scalar_t* src, int64_t w) {
  if (w == kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) dst[l] = src[l];
  } else {
    for (int64_t l = 0; l < kLanes; ++l) dst[l] = l < w ? src[l] : scalar_t(0);
  }
}

// The 16 channel lanes of a block as one vector (LaneVec): Float16 for float, and for double (the
// tests' precision, baseline build) a generic 16-double vector whose exp runs lane by lane.
typedef double Double16 __attribute__((vector_size(128)));
template <typename scalar_t>
struct LaneVecOf {
  using type = Float16;
};
template <>
struct LaneVecOf<double> {
  using type = Double16;
};
template <typename scalar_t>
using LaneVec = typename LaneVecOf<scalar_t>::type;

using cpu::exp_fast;  // the float overloads, beside this one
LONGSEQ_INLINE void exp_fast(const Double16& x, Double16& out) {
  for (int l = 0; l < 16; ++l) out[l] = std::exp(x[l]);
}

template <typename V, typename scalar_t>
LONGSEQ_INLINE void load_vec(V& v, const scalar_t* src) {
  std::memcpy(&v, src, sizeof(V));
}
template <typename V, typename scalar_t>
LONGSEQ_INLINE void store_vec(scalar_t* dst, const V& v) {
  std::memcpy(dst, &v, sizeof(V));
}
// w <= kLanes values of src, the other lanes zero.
template <typename V, typename scalar_t>
LONGSEQ_INLINE void load_vec_lanes(V& v, const scalar_t* src, int64_t w) {
  alignas(64) scalar_t tmp[kLanes];
  load_lanes(tmp, src, w);
  load_vec(v, tmp);
}
// The first w lanes of v to dst.
template <typename V, typename scalar_t>
LONGSEQ_INLINE void store_vec_lanes(scalar_t* dst, const V& v, int64_t w) {
  if (w == kLanes) {
    store_vec(dst, v);
  } else {
    for (int64_t l = 0; l < w; ++l) dst[l] = v[l];
  }
}

// ---- linear scan: row loops --------------------------------------------------------------------

// h_t[c] = a_t[c] · h_{t-1}[c] + b_t[c] for the cw channels of one batch row; rows strided by C.
template <typename scalar_t>
LONGSEQ_INLINE void linear_fwd_rows_impl(const scalar_t* __restrict__ a,
                                         const scalar_t* __restrict__ b,
                                         const scalar_t* __restrict__ h0, scalar_t* __restrict__ h,
                                         int64_t T, int64_t C, int64_t cw) {
  if (h0) {
    for (int64_t c = 0; c < cw; ++c) h[c] = a[c] * h0[c] + b[c];
  } else {
    for (int64_t c = 0; c < cw; ++c) h[c] = b[c];
  }
  for (int64_t t = 1; t < T; ++t) {
    const scalar_t* at = a + t * C;
    const scalar_t* bt = b + t * C;
    const scalar_t* hp = h + (t - 1) * C;
    scalar_t* ht = h + t * C;
    for (int64_t c = 0; c < cw; ++c) ht[c] = at[c] * hp[c] + bt[c];
  }
}

// Reverse pass for the cw channels of one batch row:
//   db_t = dh_t = dout_t + a_{t+1} ⊙ dh_{t+1};  da_t = dh_t ⊙ h_{t-1};  dh0 = a_0 ⊙ dh_0.
template <typename scalar_t>
LONGSEQ_INLINE void linear_bwd_rows_impl(
    const scalar_t* __restrict__ a, const scalar_t* __restrict__ h, const scalar_t* __restrict__ h0,
    const scalar_t* __restrict__ dout, scalar_t* __restrict__ da, scalar_t* __restrict__ db,
    scalar_t* __restrict__ dh0, int64_t T, int64_t C, int64_t cw) {
  for (int64_t t = T - 1; t >= 0; --t) {
    const scalar_t* dot = dout + t * C;
    scalar_t* dbt = db + t * C;
    scalar_t* dat = da + t * C;
    if (t == T - 1) {
      for (int64_t c = 0; c < cw; ++c) dbt[c] = dot[c];
    } else {
      const scalar_t* an = a + (t + 1) * C;
      const scalar_t* dbn = db + (t + 1) * C;
      for (int64_t c = 0; c < cw; ++c) dbt[c] = dot[c] + an[c] * dbn[c];
    }
    if (t > 0) {
      const scalar_t* hp = h + (t - 1) * C;
      for (int64_t c = 0; c < cw; ++c) dat[c] = dbt[c] * hp[c];
    } else if (h0) {
      for (int64_t c = 0; c < cw; ++c) dat[c] = dbt[c] * h0[c];
    } else {
      for (int64_t c = 0; c < cw; ++c) dat[c] = scalar_t(0);
    }
  }
  if (dh0) {
    for (int64_t c = 0; c < cw; ++c) dh0[c] = a[c] * db[c];
  }
}

void linear_fwd_rows(const double* a, const double* b, const double* h0, double* h, int64_t T,
                     int64_t C, int64_t cw) {
  linear_fwd_rows_impl(a, b, h0, h, T, C, cw);
}
LONGSEQ_ISA_CLONES void linear_fwd_rows(const float* a, const float* b, const float* h0, float* h,
                                        int64_t T, int64_t C, int64_t cw) {
  linear_fwd_rows_impl(a, b, h0, h, T, C, cw);
}
void linear_bwd_rows(const double* a, const double* h, const double* h0, const double* dout,
                     double* da, double* db, double* dh0, int64_t T, int64_t C, int64_t cw) {
  linear_bwd_rows_impl(a, h, h0, dout, da, db, dh0, T, C, cw);
}
LONGSEQ_ISA_CLONES void linear_bwd_rows(const float* a, const float* h, const float* h0,
                                        const float* dout, float* da, float* db, float* dh0,
                                        int64_t T, int64_t C, int64_t cw) {
  linear_bwd_rows_impl(a, h, h0, dout, da, db, dh0, T, C, cw);
}

// ---- selective scan: one block of kLanes channels ----------------------------------------------

// Pointers into one batch row b and one block of channels [e0, e0 + w).
template <typename scalar_t>
struct SsBlock {
  const scalar_t* u;      // u[b, 0, e0], rows strided by E
  const scalar_t* delta;  // delta[b, 0, e0]
  const scalar_t* A;      // A[e0, 0], rows strided by N
  const scalar_t* Bm;     // Bm[b, 0, 0], rows strided by N
  const scalar_t* Cm;     // Cm[b, 0, 0]
  const scalar_t* D;      // D[e0] or nullptr
  const scalar_t* h0;     // h0[b, e0, 0] or nullptr, rows strided by N
  int64_t T, E, N, w;
};

// Fills at [N, kLanes] with A transposed (at[n][l] = A[e0 + l, n]) and h [N, kLanes] with h0
// (zeros without h0); d [kLanes] with D. Pad lanes are zero.
template <typename scalar_t>
LONGSEQ_INLINE void ss_load_block(const SsBlock<scalar_t>& s, scalar_t* at, scalar_t* h,
                                  scalar_t* d) {
  std::fill(at, at + s.N * kLanes, scalar_t(0));
  std::fill(h, h + s.N * kLanes, scalar_t(0));
  for (int64_t l = 0; l < s.w; ++l) {
    for (int64_t n = 0; n < s.N; ++n) {
      at[n * kLanes + l] = s.A[l * s.N + n];
      if (s.h0) h[n * kLanes + l] = s.h0[l * s.N + n];
    }
  }
  for (int64_t l = 0; l < kLanes; ++l) d[l] = (s.D && l < s.w) ? s.D[l] : scalar_t(0);
}

// Forward over all T for one block. h [N, kLanes] holds h_{-1} on entry and h_{T-1} on exit.
// With kStore, the state after each step t goes to states[t] ([T, N, kLanes]) instead of h, and
// y is not written (the backward's recompute); otherwise y [B, T, E] rows get y_t.
//   h_tn = exp(delta_t · A_n) · h_{t-1,n} + (delta_t · u_t) · Bm_tn;  y_t = D · u_t + Σ_n Cm_tn
//   h_tn
// The lanes are one vector (LaneVec), so y's running sum stays in registers; it is two sums (even
// and odd n) added at the end, halving the chain of dependent adds.
template <bool kStore, typename scalar_t>
LONGSEQ_INLINE void ss_forward_block_impl(const SsBlock<scalar_t>& s, const scalar_t* at,
                                          scalar_t* h, const scalar_t* d, scalar_t* y,
                                          scalar_t* states) {
  using V = LaneVec<scalar_t>;
  const int64_t N = s.N, E = s.E;
  V dv;
  load_vec(dv, d);
  const scalar_t* hprev = h;
  for (int64_t t = 0; t < s.T; ++t) {
    V dt, uu;
    load_vec_lanes(dt, s.delta + t * E, s.w);
    load_vec_lanes(uu, s.u + t * E, s.w);
    const V dtu = dt * uu;
    V y_even = dv * uu, y_odd = V{};
    const scalar_t* bt = s.Bm + t * N;
    const scalar_t* ct = s.Cm + t * N;
    scalar_t* hcur = kStore ? states + t * N * kLanes : h;
    for (int64_t n = 0; n < N; ++n) {
      V an, hp, a;
      load_vec(an, at + n * kLanes);
      load_vec(hp, hprev + n * kLanes);
      exp_fast(dt * an, a);
      const V hv = a * hp + dtu * bt[n];
      store_vec(hcur + n * kLanes, hv);
      if (n % 2 == 0) {
        y_even += hv * ct[n];
      } else {
        y_odd += hv * ct[n];
      }
    }
    hprev = hcur;
    if (!kStore) store_vec_lanes(y + t * E, y_even + y_odd, s.w);
  }
}

// Reverse pass over one block given the recomputed states [T, N, kLanes] and h_{-1} in h0l
// [N, kLanes]. g [N, kLanes] holds G_T = dL/dh_T on entry and dh0 = a_0 ⊙ g_0 on exit. Writes
// du, ddelta rows (strided by E); accumulates into dA_acc [N, kLanes], dD_acc [kLanes] and the
// block's batch row of dBm, dCm ([T, N], shared by the blocks of a group, so +=).
// The lanes are one vector (LaneVec): the per-step sums over n stay in registers (as arrays they
// were stored and reloaded at every n, a chain that took a third of the backward's time). The
// terms of ddelta and du that share Σ_n g_tn · Bm_tn are added once per step from that sum.
template <typename scalar_t>
LONGSEQ_INLINE void ss_backward_block_impl(const SsBlock<scalar_t>& s, const scalar_t* at,
                                           const scalar_t* h0l, const scalar_t* d,
                                           const scalar_t* states, const scalar_t* dy_row,
                                           scalar_t* g, scalar_t* dA_acc, scalar_t* dD_acc,
                                           scalar_t* du_row, scalar_t* ddelta_row,
                                           scalar_t* dBm_row, scalar_t* dCm_row) {
  using V = LaneVec<scalar_t>;
  const int64_t N = s.N, E = s.E;
  // The dBm and dCm terms of 16 states at a time, [16, kLanes], reduced over the lanes together.
  alignas(64) scalar_t xb_tile[16 * kLanes], xc_tile[16 * kLanes];
  constexpr bool kTiles = std::is_same_v<scalar_t, float>;
  V dv, dd_acc;
  load_vec(dv, d);
  load_vec(dd_acc, dD_acc);
  for (int64_t t = s.T - 1; t >= 0; --t) {
    V dt, uu, dy;
    load_vec_lanes(dt, s.delta + t * E, s.w);
    load_vec_lanes(uu, s.u + t * E, s.w);
    load_vec_lanes(dy, dy_row + t * E, s.w);
    const V dtu = dt * uu;
    dd_acc += dy * uu;
    V ddt = V{}, gb = V{};  // Σ_n g·h_{t-1}·a·A_n and Σ_n g·Bm_n
    const scalar_t* bt = s.Bm + t * N;
    const scalar_t* ct = s.Cm + t * N;
    const scalar_t* hcur = states + t * N * kLanes;
    const scalar_t* hprev = t > 0 ? states + (t - 1) * N * kLanes : h0l;
    scalar_t* dbt = dBm_row + t * N;
    scalar_t* dct = dCm_row + t * N;
    for (int64_t n = 0; n < N; ++n) {
      V an, hp, hc, gn, dan, a;
      load_vec(an, at + n * kLanes);
      load_vec(hp, hprev + n * kLanes);
      load_vec(hc, hcur + n * kLanes);
      load_vec(gn, g + n * kLanes);
      load_vec(dan, dA_acc + n * kLanes);
      const V gv = dy * ct[n] + gn;  // g_tn
      exp_fast(dt * an, a);          // a_tn
      const V ha = gv * hp * a;      // g · h_{t-1} · a
      store_vec(dA_acc + n * kLanes, dan + ha * dt);
      ddt += ha * an;
      gb += gv * bt[n];
      store_vec(g + n * kLanes, a * gv);  // G_{t-1} = a_t · g_t
      scalar_t* xb = xb_tile + (n % 16) * kLanes;
      scalar_t* xc = xc_tile + (n % 16) * kLanes;
      store_vec(xb, gv * dtu);  // dBm terms of the lanes
      store_vec(xc, dy * hc);   // dCm terms of the lanes
      if constexpr (kTiles) {
        if (n % 16 == 15) {  // a full tile: rows n − 15 .. n
          add_row_sums16(xb_tile, dbt + n - 15);
          add_row_sums16(xc_tile, dct + n - 15);
        } else if (n >= N - N % 16) {  // the last states, fewer than 16
          dbt[n] += sum_lanes(xb);
          dct[n] += sum_lanes(xc);
        }
      } else {
        dbt[n] += sum_lanes(xb);
        dct[n] += sum_lanes(xc);
      }
    }
    store_vec_lanes(du_row + t * E, dy * dv + gb * dt, s.w);
    store_vec_lanes(ddelta_row + t * E, ddt + gb * uu, s.w);
  }
  store_vec(dD_acc, dd_acc);
}

void ss_forward_block(const SsBlock<double>& s, const double* at, double* h, const double* d,
                      double* y) {
  ss_forward_block_impl<false, double>(s, at, h, d, y, nullptr);
}
LONGSEQ_ISA_CLONES void ss_forward_block(const SsBlock<float>& s, const float* at, float* h,
                                         const float* d, float* y) {
  ss_forward_block_impl<false, float>(s, at, h, d, y, nullptr);
}
void ss_recompute_block(const SsBlock<double>& s, const double* at, double* h, const double* d,
                        double* states) {
  ss_forward_block_impl<true, double>(s, at, h, d, nullptr, states);
}
LONGSEQ_ISA_CLONES void ss_recompute_block(const SsBlock<float>& s, const float* at, float* h,
                                           const float* d, float* states) {
  ss_forward_block_impl<true, float>(s, at, h, d, nullptr, states);
}
void ss_backward_block(const SsBlock<double>& s, const double* at, const double* h0l,
                       const double* d, const double* states, const double* dy_row, double* g,
                       double* dA_acc, double* dD_acc, double* du_row, double* ddelta_row,
                       double* dBm_row, double* dCm_row) {
  ss_backward_block_impl(s, at, h0l, d, states, dy_row, g, dA_acc, dD_acc, du_row, ddelta_row,
                         dBm_row, dCm_row);
}
LONGSEQ_ISA_CLONES void ss_backward_block(const SsBlock<float>& s, const float* at,
                                          const float* h0l, const float* d, const float* states,
                                          const float* dy_row, float* g, float* dA_acc,
                                          float* dD_acc, float* du_row, float* ddelta_row,
                                          float* dBm_row, float* dCm_row) {
  ss_backward_block_impl(s, at, h0l, d, states, dy_row, g, dA_acc, dD_acc, du_row, ddelta_row,
                         dBm_row, dCm_row);
}

template <typename scalar_t>
SsBlock<scalar_t> ss_block(const scalar_t* u, const scalar_t* delta, const scalar_t* A,
                           const scalar_t* Bm, const scalar_t* Cm, const scalar_t* D,
                           const scalar_t* h0, const SelectiveScanParams& p, int64_t b,
                           int64_t e0) {
  const int64_t T = p.t, E = p.channels, N = p.state;
  SsBlock<scalar_t> s;
  s.u = u + b * T * E + e0;
  s.delta = delta + b * T * E + e0;
  s.A = A + e0 * N;
  s.Bm = Bm + b * T * N;
  s.Cm = Cm + b * T * N;
  s.D = D ? D + e0 : nullptr;
  s.h0 = h0 ? h0 + (b * E + e0) * N : nullptr;
  s.T = T;
  s.E = E;
  s.N = N;
  s.w = std::min(kLanes, E - e0);
  return s;
}

}  // namespace

template <typename scalar_t>
void linear_scan_forward(const scalar_t* a, const scalar_t* b, const scalar_t* h0, scalar_t* h,
                         const LinearScanParams& p) {
  const int64_t B = p.batch, T = p.t, C = p.channels;
  if (B == 0 || T == 0 || C == 0) return;
  const int64_t nc = (C + kChunkC - 1) / kChunkC;
  at::parallel_for(0, B * nc, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bi = item / nc, c0 = (item % nc) * kChunkC, cw = std::min(kChunkC, C - c0);
      const int64_t off = bi * T * C + c0;
      linear_fwd_rows(a + off, b + off, h0 ? h0 + bi * C + c0 : nullptr, h + off, T, C, cw);
    }
  });
}

template <typename scalar_t>
void linear_scan_backward(const scalar_t* a, const scalar_t* h, const scalar_t* h0,
                          const scalar_t* grad_h, scalar_t* grad_a, scalar_t* grad_b,
                          scalar_t* grad_h0, const LinearScanParams& p) {
  const int64_t B = p.batch, T = p.t, C = p.channels;
  if (B == 0 || C == 0) return;
  if (T == 0) {  // h0 passes through to nothing
    if (grad_h0) std::fill(grad_h0, grad_h0 + B * C, scalar_t(0));
    return;
  }
  const int64_t nc = (C + kChunkC - 1) / kChunkC;
  at::parallel_for(0, B * nc, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bi = item / nc, c0 = (item % nc) * kChunkC, cw = std::min(kChunkC, C - c0);
      const int64_t off = bi * T * C + c0;
      linear_bwd_rows(a + off, h + off, h0 ? h0 + bi * C + c0 : nullptr, grad_h + off, grad_a + off,
                      grad_b + off, grad_h0 ? grad_h0 + bi * C + c0 : nullptr, T, C, cw);
    }
  });
}

template <typename scalar_t>
void selective_scan_forward(const scalar_t* u, const scalar_t* delta, const scalar_t* A,
                            const scalar_t* Bm, const scalar_t* Cm, const scalar_t* D,
                            const scalar_t* h0, scalar_t* y, scalar_t* h_last,
                            const SelectiveScanParams& p) {
  const int64_t B = p.batch, T = p.t, E = p.channels, N = p.state;
  if (B == 0 || E == 0) return;
  const int64_t nblk = (E + kLanes - 1) / kLanes;
  at::parallel_for(0, B * nblk, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> atr(N * kLanes), h(N * kLanes);
    alignas(64) scalar_t d[kLanes];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bi = item / nblk, e0 = (item % nblk) * kLanes;
      const auto s = ss_block(u, delta, A, Bm, Cm, D, h0, p, bi, e0);
      ss_load_block(s, atr.data(), h.data(), d);
      ss_forward_block(s, atr.data(), h.data(), d, y + bi * T * E + e0);
      scalar_t* hl = h_last + (bi * E + e0) * N;
      for (int64_t l = 0; l < s.w; ++l)
        for (int64_t n = 0; n < N; ++n) hl[l * N + n] = h[n * kLanes + l];
    }
  });
}

template <typename scalar_t>
void selective_scan_backward(const scalar_t* u, const scalar_t* delta, const scalar_t* A,
                             const scalar_t* Bm, const scalar_t* Cm, const scalar_t* D,
                             const scalar_t* h0, const scalar_t* grad_y,
                             const scalar_t* grad_h_last, scalar_t* grad_u, scalar_t* grad_delta,
                             scalar_t* grad_A, scalar_t* grad_Bm, scalar_t* grad_Cm,
                             scalar_t* grad_D, scalar_t* grad_h0, const SelectiveScanParams& p) {
  const int64_t B = p.batch, T = p.t, E = p.channels, N = p.state;
  if (B == 0 || E == 0) {
    std::fill(grad_Bm, grad_Bm + B * T * N, scalar_t(0));
    std::fill(grad_Cm, grad_Cm + B * T * N, scalar_t(0));
    std::fill(grad_A, grad_A + E * N, scalar_t(0));
    if (grad_D) std::fill(grad_D, grad_D + E, scalar_t(0));
    return;
  }
  const int64_t nblk = (E + kLanes - 1) / kLanes;
  // Channel groups per batch row: enough items to keep threads busy when B is small; a function
  // of the shape only, so the summation order never depends on the thread count.
  const int64_t groups_wanted = std::min(nblk, (kMinItems + B - 1) / B);
  const int64_t per_group = (nblk + groups_wanted - 1) / groups_wanted;
  const int64_t G = (nblk + per_group - 1) / per_group;
  // Partials: dBm/dCm per (b, group) [T, N] unless one group (then straight into the output);
  // dA/dD per batch row unless B == 1.
  std::vector<scalar_t> dbm_part(G > 1 ? B * G * T * N : 0), dcm_part(G > 1 ? B * G * T * N : 0);
  std::vector<scalar_t> da_part(B > 1 ? B * E * N : 0), dd_part(B > 1 ? B * E : 0);
  if (G == 1) {
    std::fill(grad_Bm, grad_Bm + B * T * N, scalar_t(0));
    std::fill(grad_Cm, grad_Cm + B * T * N, scalar_t(0));
  }
  scalar_t* da_base = B > 1 ? da_part.data() : grad_A;
  std::vector<scalar_t> dd_one(B > 1 ? 0 : E);
  scalar_t* dd_base = B > 1 ? dd_part.data() : dd_one.data();

  at::parallel_for(0, B * G, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> atr(N * kLanes), h(N * kLanes), h0l(N * kLanes), g(N * kLanes),
        dA_acc(N * kLanes), states(std::max<int64_t>(T, 1) * N * kLanes);
    alignas(64) scalar_t d[kLanes], dD_acc[kLanes];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bi = item / G, grp = item % G;
      scalar_t* dbm_row = G > 1 ? dbm_part.data() + item * T * N : grad_Bm + bi * T * N;
      scalar_t* dcm_row = G > 1 ? dcm_part.data() + item * T * N : grad_Cm + bi * T * N;
      const int64_t blk_end = std::min(nblk, (grp + 1) * per_group);
      for (int64_t blk = grp * per_group; blk < blk_end; ++blk) {
        const int64_t e0 = blk * kLanes;
        const auto s = ss_block(u, delta, A, Bm, Cm, D, h0, p, bi, e0);
        ss_load_block(s, atr.data(), h.data(), d);
        std::copy(h.begin(), h.end(), h0l.begin());
        ss_recompute_block(s, atr.data(), h.data(), d, states.data());
        // g starts as dL/dh_T.
        std::fill(g.begin(), g.end(), scalar_t(0));
        if (grad_h_last) {
          const scalar_t* ghl = grad_h_last + (bi * E + e0) * N;
          for (int64_t l = 0; l < s.w; ++l)
            for (int64_t n = 0; n < N; ++n) g[n * kLanes + l] = ghl[l * N + n];
        }
        std::fill(dA_acc.begin(), dA_acc.end(), scalar_t(0));
        std::fill(dD_acc, dD_acc + kLanes, scalar_t(0));
        const int64_t off = bi * T * E + e0;
        ss_backward_block(s, atr.data(), h0l.data(), d, states.data(), grad_y + off, g.data(),
                          dA_acc.data(), dD_acc, grad_u + off, grad_delta + off, dbm_row, dcm_row);
        scalar_t* da = da_base + (B > 1 ? bi * E * N : 0) + e0 * N;
        scalar_t* dd = dd_base + (B > 1 ? bi * E : 0) + e0;
        for (int64_t l = 0; l < s.w; ++l) {
          for (int64_t n = 0; n < N; ++n) da[l * N + n] = dA_acc[n * kLanes + l];
          dd[l] = dD_acc[l];
        }
        if (grad_h0) {
          scalar_t* gh0 = grad_h0 + (bi * E + e0) * N;
          for (int64_t l = 0; l < s.w; ++l)
            for (int64_t n = 0; n < N; ++n) gh0[l * N + n] = g[n * kLanes + l];
        }
      }
    }
  });

  // Fixed-order reductions of the partials.
  if (G > 1) {
    at::parallel_for(0, B * T, 64, [&](int64_t begin, int64_t end) {
      for (int64_t bt = begin; bt < end; ++bt) {
        const int64_t bi = bt / T, t = bt % T;
        scalar_t* ob = grad_Bm + bt * N;
        scalar_t* oc = grad_Cm + bt * N;
        for (int64_t n = 0; n < N; ++n) {
          ob[n] = 0;
          oc[n] = 0;
        }
        for (int64_t grp = 0; grp < G; ++grp) {
          const scalar_t* pb = dbm_part.data() + ((bi * G + grp) * T + t) * N;
          const scalar_t* pc = dcm_part.data() + ((bi * G + grp) * T + t) * N;
          for (int64_t n = 0; n < N; ++n) {
            ob[n] += pb[n];
            oc[n] += pc[n];
          }
        }
      }
    });
  }
  if (B > 1) {
    for (int64_t i = 0; i < E * N; ++i) grad_A[i] = 0;
    for (int64_t bi = 0; bi < B; ++bi)
      for (int64_t i = 0; i < E * N; ++i) grad_A[i] += da_part[bi * E * N + i];
  }
  if (grad_D) {
    for (int64_t e = 0; e < E; ++e) grad_D[e] = 0;
    for (int64_t bi = 0; bi < B; ++bi)
      for (int64_t e = 0; e < E; ++e) grad_D[e] += dd_base[(B > 1 ? bi * E : 0) + e];
  }
}

#define LONGSEQ_INSTANTIATE_SCAN(T_)                                                               \
  template void linear_scan_forward<T_>(const T_*, const T_*, const T_*, T_*,                      \
                                        const LinearScanParams&);                                  \
  template void linear_scan_backward<T_>(const T_*, const T_*, const T_*, const T_*, T_*, T_*,     \
                                         T_*, const LinearScanParams&);                            \
  template void selective_scan_forward<T_>(const T_*, const T_*, const T_*, const T_*, const T_*,  \
                                           const T_*, const T_*, T_*, T_*,                         \
                                           const SelectiveScanParams&);                            \
  template void selective_scan_backward<T_>(const T_*, const T_*, const T_*, const T_*, const T_*, \
                                            const T_*, const T_*, const T_*, const T_*, T_*, T_*,  \
                                            T_*, T_*, T_*, T_*, T_*, const SelectiveScanParams&);
LONGSEQ_INSTANTIATE_SCAN(float)
LONGSEQ_INSTANTIATE_SCAN(double)
#undef LONGSEQ_INSTANTIATE_SCAN

}  // namespace longseq::cpu
