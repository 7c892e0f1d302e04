// Fused Longformer banded attention on CPU (Beltagy et al. 2020, "Longformer: The Long-Document
// Transformer"): sliding window, per-head dilation and global keys, block by block.
//   Query i (head h, dilation d) sees: band keys i + d·m, m ∈ [−W/2, W/2] (causal: i − d·m,
//   m ∈ [0, W]) that are not global; every global key g (causal: g ≤ i); padded keys never.
//   out_i = Σ_j p_ij v_j,  p_ij = exp(scale·q_i·k_j − lse_i).
//
// Algorithm. Dilation as strides: the queries and keys at positions r, r + d, r + 2d, … (one
// "residue" r < d of a head) only ever see each other in the band, and among them the dilated band
// is an ordinary band of sub-positions u − W/2 … u + W/2 (causal u − W … u). So each residue is an
// undilated banded problem on rows read with stride d·D from the contiguous q, k, v: no gathers.
// Forward, per (residue, block of c sub-queries): S = scale·Q_blk K_spanᵀ over the contiguous span
// of sub-keys the block's bands cover (c + W of them, one GEMM) and S_g = scale·Q_blk K_gᵀ over the
// G global keys (one GEMM, K_g gathered once per block, G·D), mask, softmax over the row
// (span + G entries: a block row fits, so no online rescaling is needed), out = P V_span + P_g V_g
// (two GEMMs). Backward, per residue (its blocks in order, since neighbouring spans overlap):
// recompute P = exp(S − lse), dV += Pᵀ dO, dP = dO Vᵀ, dS = P ⊙ (dP − D_i) with
// D_i = rowsum(dO ⊙ O), dQ = scale·dS K, dK += scale·dSᵀ Q; the global keys' dK_g, dV_g go to a
// per-residue scratch [G, D + Dv] summed into grad_k, grad_v afterwards.
//
// Time O(B·H·T·(c + W + G)·D) (the span's c extra columns per row are the price of one GEMM per
// block). Extra memory: lse [B·H, T], per-thread block buffers O(c·(c + W + G)), the backward's
// scratch O(B·H·max d·G·(D + Dv)); never a [T, W] gather.
// Layout: row-major, contiguous q, k [B·H, T, D], v [B·H, T, Dv], out [B·H, T, Dv], lse [B·H, T],
// key_padding bool [B, T]. Forward saves for backward: lse (the op keeps q, k, v and out).
// Threads: at::parallel_for over (residue, block) forward and over residues backward (a residue's
// dQ, dK, dV rows are written by one thread only). BLAS on one thread inside (blas.h).
// Known limit: backward parallelism is over B·H·d residues, so B·H = 1, d = 1 runs on one thread.
#include "kernels/cpu/longformer_attention.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/row_ops.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace longseq::cpu {
namespace {

// Positions r, r + dil, … of head-batch bh: `len` sub-positions, the first of `first_block` in
// the forward's flattened block list.
struct Residue {
  int64_t bh, r, dil, len, first_block;
};

// Everything a block needs that is fixed for the call.
struct Geometry {
  const LongformerParams& p;
  int64_t back, ahead, c, ncol_max;
  std::vector<Residue> residues;
  // Transposed residues (transposed_residues): residue i's columns start at offset[i]·e, with row
  // stride ld[i] = padded_stride(len) (blas.h).
  std::vector<int64_t> offset, ld;
  int64_t n_blocks = 0;
  // key_ok[b·T + j]: key j of batch b is a real, non-global key (the band's keys); empty when
  // every key is (no padding, no globals).
  std::vector<char> key_ok;

  Geometry(const LongformerParams& params, const bool* key_padding) : p(params) {
    back = p.causal ? p.window : p.window / 2;
    ahead = p.causal ? 0 : p.window / 2;
    c = p.block;
    ncol_max = c + back + ahead + p.n_global;
    for (int64_t bh = 0; bh < p.batch * p.heads; ++bh) {
      const int64_t dil = p.dilation[bh % p.heads];
      for (int64_t r = 0; r < std::min(dil, p.t); ++r) {
        const int64_t len = (p.t - r + dil - 1) / dil;
        offset.push_back(residues.empty() ? 0 : offset.back() + ld.back());
        ld.push_back(padded_stride(len));
        residues.push_back({bh, r, dil, len, n_blocks});
        n_blocks += (len + c - 1) / c;
      }
    }
    if (key_padding || p.n_global > 0) {
      key_ok.assign(p.batch * p.t, 1);
      for (int64_t b = 0; b < p.batch; ++b) {
        char* ok = key_ok.data() + b * p.t;
        if (key_padding) {
          for (int64_t j = 0; j < p.t; ++j) ok[j] = key_padding[b * p.t + j];
        }
        for (int64_t g = 0; g < p.n_global; ++g) ok[p.global_pos[g]] = 0;
      }
    }
  }
};

// One block of one residue: sub-queries [u0, u0 + br), sub-keys [ws, ws + bc) of the span.
struct Block {
  int64_t u0, br, ws, bc;
};

Block block_at(const Geometry& g, const Residue& rs, int64_t u0) {
  const int64_t br = std::min(g.c, rs.len - u0);
  const int64_t ws = std::max<int64_t>(0, u0 - g.back);
  const int64_t we = std::min(rs.len, u0 + br + g.ahead);
  return {u0, br, ws, we - ws};
}

// x transposed per residue: residue i's rows r, r + d, … as the columns of an [e, len] matrix at
// xt + offset[i]·e, row stride ld[i]. The span GEMMs then take keys (and values) as a plain operand, and every block
// GEMM is a plain or Aᵀ product that OpenBLAS's small-matrix kernels take unpacked (blas.h).
template <typename scalar_t>
std::vector<scalar_t> transposed_residues(const Geometry& geo, const scalar_t* x, int64_t e) {
  const auto& rs_all = geo.residues;
  const int64_t n = static_cast<int64_t>(rs_all.size());
  std::vector<scalar_t> xt(n == 0 ? 0 : (geo.offset.back() + geo.ld.back()) * e);
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const Residue& rs = rs_all[i];
      transpose_rows(x + (rs.bh * geo.p.t + rs.r) * e, rs.len, e, rs.dil * e,
                     xt.data() + geo.offset[i] * e, geo.ld[i]);
    }
  });
  return xt;
}

// kg [G, D] ← k rows at the global positions of head-batch bh (and the same for v).
template <typename scalar_t>
void gather_globals(const LongformerParams& p, int64_t bh, const scalar_t* x, int64_t e,
                    scalar_t* out) {
  for (int64_t g = 0; g < p.n_global; ++g) {
    std::memcpy(out + g * e, x + (bh * p.t + p.global_pos[g]) * e, e * sizeof(scalar_t));
  }
}

// s [br, bc + G] (row stride ncol) ← scale·Q_blk [K_span; K_g]ᵀ, with −inf where the query may not
// see the key: outside its band, band keys that are padded or global, global keys in the causal
// future or padded.
template <typename scalar_t>
void block_scores(const Geometry& geo, const Residue& rs, const Block& blk, const scalar_t* q,
                  const scalar_t* kt, int64_t ldk, const scalar_t* kg, const bool* key_padding,
                  scalar_t* s, int64_t ncol) {
  constexpr scalar_t kNegInf = -std::numeric_limits<scalar_t>::infinity();
  const auto& p = geo.p;
  const int64_t D = p.d, T = p.t, G = p.n_global, dil = rs.dil, b = rs.bh / p.heads;
  const scalar_t scale = static_cast<scalar_t>(p.scale);
  const scalar_t* qb = q + (rs.bh * T + rs.r + blk.u0 * dil) * D;
  gemm(false, false, blk.br, blk.bc, D, scale, qb, dil * D, kt + blk.ws, ldk, scalar_t(0), s, ncol);
  if (G > 0)
    gemm(false, true, blk.br, G, D, scale, qb, dil * D, kg, D, scalar_t(0), s + blk.bc, ncol);
  const char* ok = geo.key_ok.empty() ? nullptr : geo.key_ok.data() + b * T;
  const bool* pad = key_padding ? key_padding + b * T : nullptr;
  for (int64_t rr = 0; rr < blk.br; ++rr) {
    scalar_t* row = s + rr * ncol;
    const int64_t u = blk.u0 + rr, i = rs.r + u * dil;
    // Band of sub-query u: sub-keys [u − back, u + ahead], columns [lo, hi) of the span.
    const int64_t lo = std::max<int64_t>(0, u - geo.back - blk.ws);
    const int64_t hi = std::min<int64_t>(blk.bc, u + geo.ahead - blk.ws + 1);
    for (int64_t col = 0; col < lo; ++col) row[col] = kNegInf;
    for (int64_t col = hi; col < blk.bc; ++col) row[col] = kNegInf;
    if (ok) {
      for (int64_t col = lo; col < hi; ++col) {
        if (!ok[rs.r + (blk.ws + col) * dil]) row[col] = kNegInf;
      }
    }
    for (int64_t g = 0; g < G; ++g) {
      const int64_t gp = p.global_pos[g];
      if ((p.causal && gp > i) || (pad && !pad[gp])) row[blk.bc + g] = kNegInf;
    }
  }
}

}  // namespace

int64_t longformer_default_block(const LongformerParams& p) {
  const int64_t band = p.causal ? p.window : p.window / 2 * 2, e = std::max(p.d, p.dv);
  int64_t c = 32;
  while (c > 8 && c * (c + band) * e > kSmallGemmVolume) c /= 2;
  return c;
}

template <typename scalar_t>
void longformer_attention_forward(const scalar_t* q, const scalar_t* k, const scalar_t* v,
                                  const bool* key_padding, scalar_t* out, scalar_t* lse,
                                  const LongformerParams& p) {
  constexpr scalar_t kNegInf = -std::numeric_limits<scalar_t>::infinity();
  TORCH_INTERNAL_ASSERT(p.block > 0 && p.window > 0);
  const Geometry geo(p, key_padding);
  const int64_t T = p.t, D = p.d, Dv = p.dv, G = p.n_global;
  const std::vector<scalar_t> kt = transposed_residues(geo, k, D);
  BlasSingleThread blas_guard;
  at::parallel_for(0, geo.n_blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> sbuf(geo.c * geo.ncol_max), kg(G * D), vg(G * Dv);
    // The residue holding block `begin`, then walk forward.
    auto it = std::upper_bound(geo.residues.begin(), geo.residues.end(), begin,
                               [](int64_t x, const Residue& r) { return x < r.first_block; });
    size_t ri = static_cast<size_t>(it - geo.residues.begin()) - 1;
    int64_t gathered_bh = -1;
    for (int64_t item = begin; item < end; ++item) {
      while (ri + 1 < geo.residues.size() && geo.residues[ri + 1].first_block <= item) ++ri;
      const Residue& rs = geo.residues[ri];
      const Block blk = block_at(geo, rs, (item - rs.first_block) * geo.c);
      const int64_t ncol = blk.bc + G, dil = rs.dil;
      if (G > 0 && gathered_bh != rs.bh) {
        gather_globals(p, rs.bh, k, D, kg.data());
        gather_globals(p, rs.bh, v, Dv, vg.data());
        gathered_bh = rs.bh;
      }
      block_scores(geo, rs, blk, q, kt.data() + geo.offset[ri] * D, geo.ld[ri], kg.data(),
                   key_padding, sbuf.data(), ncol);
      // P = softmax(S) row by row; lse = m + log l.
      for (int64_t rr = 0; rr < blk.br; ++rr) {
        scalar_t* row = sbuf.data() + rr * ncol;
        scalar_t* l_out = lse + rs.bh * T + rs.r + (blk.u0 + rr) * dil;
        const scalar_t m = row_max(row, ncol);
        if (m == kNegInf) {  // sees no key: zero row
          std::fill(row, row + ncol, scalar_t(0));
          *l_out = kNegInf;
          continue;
        }
        const scalar_t l = exp_row(row, ncol, m);
        scale_row(row, ncol, scalar_t(1) / l);
        *l_out = m + std::log(l);
      }
      // out = P_span V_span + P_g V_g   [br, Dv]
      scalar_t* ob = out + (rs.bh * T + rs.r + blk.u0 * dil) * Dv;
      const scalar_t* vb = v + (rs.bh * T + rs.r + blk.ws * dil) * Dv;
      gemm(false, false, blk.br, Dv, blk.bc, scalar_t(1), sbuf.data(), ncol, vb, dil * Dv,
           scalar_t(0), ob, dil * Dv);
      if (G > 0) {
        gemm(false, false, blk.br, Dv, G, scalar_t(1), sbuf.data() + blk.bc, ncol, vg.data(), Dv,
             scalar_t(1), ob, dil * Dv);
      }
    }
  });
}

template <typename scalar_t>
void longformer_attention_backward(const scalar_t* q, const scalar_t* k, const scalar_t* v,
                                   const bool* key_padding, const scalar_t* out,
                                   const scalar_t* lse, const scalar_t* grad_out, scalar_t* grad_q,
                                   scalar_t* grad_k, scalar_t* grad_v, const LongformerParams& p) {
  constexpr scalar_t kNegInf = -std::numeric_limits<scalar_t>::infinity();
  TORCH_INTERNAL_ASSERT(p.block > 0 && p.window > 0);
  const Geometry geo(p, key_padding);
  const int64_t T = p.t, D = p.d, Dv = p.dv, G = p.n_global;
  const scalar_t scale = static_cast<scalar_t>(p.scale);
  const int64_t n_res = static_cast<int64_t>(geo.residues.size());
  // Per-residue gradients of the global keys and values: [residue, G, D + Dv].
  std::vector<scalar_t> global_grads(n_res * G * (D + Dv), scalar_t(0));
  const std::vector<scalar_t> kt = transposed_residues(geo, k, D);
  const std::vector<scalar_t> vt = transposed_residues(geo, v, Dv);
  BlasSingleThread blas_guard;
  at::parallel_for(0, n_res, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> pbuf(geo.c * geo.ncol_max), dsbuf(geo.c * geo.ncol_max), kg(G * D),
        vg(G * Dv), di(geo.c);
    for (int64_t ri = begin; ri < end; ++ri) {
      const Residue& rs = geo.residues[ri];
      const int64_t dil = rs.dil, base = rs.bh * T + rs.r;  // row of sub-position 0
      for (int64_t u = 0; u < rs.len; ++u) {
        std::fill(grad_k + (base + u * dil) * D, grad_k + (base + u * dil + 1) * D, scalar_t(0));
        std::fill(grad_v + (base + u * dil) * Dv, grad_v + (base + u * dil + 1) * Dv, scalar_t(0));
      }
      scalar_t* dkg = global_grads.data() + ri * G * (D + Dv);
      scalar_t* dvg = dkg + G * D;
      if (G > 0) {
        gather_globals(p, rs.bh, k, D, kg.data());
        gather_globals(p, rs.bh, v, Dv, vg.data());
      }
      for (int64_t u0 = 0; u0 < rs.len; u0 += geo.c) {
        const Block blk = block_at(geo, rs, u0);
        const int64_t ncol = blk.bc + G;
        const int64_t qrow = base + u0 * dil, krow = base + blk.ws * dil;
        const scalar_t* qb = q + qrow * D;
        const scalar_t* kb = k + krow * D;
        const scalar_t* dob = grad_out + qrow * Dv;
        // P = exp(S − lse)   [br, bc + G]
        block_scores(geo, rs, blk, q, kt.data() + geo.offset[ri] * D, geo.ld[ri], kg.data(),
                     key_padding, pbuf.data(), ncol);
        for (int64_t rr = 0; rr < blk.br; ++rr) {
          scalar_t* row = pbuf.data() + rr * ncol;
          const scalar_t L = lse[qrow + rr * dil];
          if (L == kNegInf) {
            std::fill(row, row + ncol, scalar_t(0));
          } else {
            exp_shift_row(row, ncol, L);
          }
          // D_i = Σ_c dO_ic · O_ic
          di[rr] = dot_row(dob + rr * dil * Dv, out + (qrow + rr * dil) * Dv, Dv);
        }
        // dP = dO [V_span; V_g]ᵀ   [br, bc + G]
        gemm(false, false, blk.br, blk.bc, Dv, scalar_t(1), dob, dil * Dv,
             vt.data() + geo.offset[ri] * Dv + blk.ws, geo.ld[ri], scalar_t(0), dsbuf.data(), ncol);
        if (G > 0) {
          gemm(false, true, blk.br, G, Dv, scalar_t(1), dob, dil * Dv, vg.data(), Dv, scalar_t(0),
               dsbuf.data() + blk.bc, ncol);
        }
        // dS = P ⊙ (dP − D_i)
        for (int64_t rr = 0; rr < blk.br; ++rr) {
          ds_row(pbuf.data() + rr * ncol, dsbuf.data() + rr * ncol, ncol, di[rr]);
        }
        // dV_span += P_spanᵀ dO; dV_g += P_gᵀ dO
        gemm(true, false, blk.bc, Dv, blk.br, scalar_t(1), pbuf.data(), ncol, dob, dil * Dv,
             scalar_t(1), grad_v + krow * Dv, dil * Dv);
        // dQ = scale·(dS_span K_span + dS_g K_g)
        gemm(false, false, blk.br, D, blk.bc, scale, dsbuf.data(), ncol, kb, dil * D, scalar_t(0),
             grad_q + qrow * D, dil * D);
        // dK_span += scale·dS_spanᵀ Q
        gemm(true, false, blk.bc, D, blk.br, scale, dsbuf.data(), ncol, qb, dil * D, scalar_t(1),
             grad_k + krow * D, dil * D);
        if (G > 0) {
          gemm(true, false, G, Dv, blk.br, scalar_t(1), pbuf.data() + blk.bc, ncol, dob, dil * Dv,
               scalar_t(1), dvg, Dv);
          gemm(false, false, blk.br, D, G, scale, dsbuf.data() + blk.bc, ncol, kg.data(), D,
               scalar_t(1), grad_q + qrow * D, dil * D);
          gemm(true, false, G, D, blk.br, scale, dsbuf.data() + blk.bc, ncol, qb, dil * D,
               scalar_t(1), dkg, D);
        }
      }
    }
  });
  if (G == 0) return;
  // Global keys: their band gradient is 0 (masked everywhere), so the residues' sums are theirs.
  const int64_t BH = p.batch * p.heads;
  at::parallel_for(0, BH, 1, [&](int64_t begin, int64_t end) {
    for (int64_t ri = 0; ri < n_res; ++ri) {
      const Residue& rs = geo.residues[ri];
      if (rs.bh < begin || rs.bh >= end) continue;
      const scalar_t* dkg = global_grads.data() + ri * G * (D + Dv);
      const scalar_t* dvg = dkg + G * D;
      for (int64_t g = 0; g < G; ++g) {
        scalar_t* dk = grad_k + (rs.bh * T + p.global_pos[g]) * D;
        scalar_t* dv = grad_v + (rs.bh * T + p.global_pos[g]) * Dv;
        for (int64_t e = 0; e < D; ++e) dk[e] += dkg[g * D + e];
        for (int64_t e = 0; e < Dv; ++e) dv[e] += dvg[g * Dv + e];
      }
    }
  });
}

#define LONGSEQ_INSTANTIATE_LONGFORMER(T_)                                                        \
  template void longformer_attention_forward<T_>(const T_*, const T_*, const T_*, const bool*,    \
                                                 T_*, T_*, const LongformerParams&);              \
  template void longformer_attention_backward<T_>(const T_*, const T_*, const T_*, const bool*,   \
                                                  const T_*, const T_*, const T_*, T_*, T_*, T_*, \
                                                  const LongformerParams&);
LONGSEQ_INSTANTIATE_LONGFORMER(float)
LONGSEQ_INSTANTIATE_LONGFORMER(double)
#undef LONGSEQ_INSTANTIATE_LONGFORMER

}  // namespace longseq::cpu
