// Fused exact attention on CPU, FlashAttention-style.
//   out_i = Σ_j p_ij v_j,  p_ij = exp(scale·q_i·k_j − lse_i) over the keys j query i may see
// Dao et al. 2022, "FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness";
// Dao 2023, "FlashAttention-2" (loop order and the D_i = rowsum(dO ⊙ O) trick of the backward).
//
// Algorithm. Forward: for each (head, block of block_q queries), stream over blocks of block_k
// keys:
// S = scale·Q_i K_jᵀ (one GEMM), mask, online softmax (running row max m and normaliser l, the
// accumulator rescaled by exp(m_old − m_new)), O += P V_j (one GEMM). Key blocks entirely in the
// causal future, or past a batch row's last real key (padding), are never visited. Backward, per head: D_i = rowsum(dO_i ⊙ O_i); for each key block
// j and each query block i that can see it, recompute P = exp(S − lse) from q, k and the saved lse,
// then dV_j += Pᵀ dO_i, dP = dO_i V_jᵀ, dS = P ⊙ (dP − D_i), dQ_i += scale·dS K_j,
// dK_j += scale·dSᵀ Q_i (five GEMMs per block pair).
//
// Time O(B·H·T·S·D) (about half when causal). Extra memory: the saved lse [B·H, T], per-thread
// workspaces of O(block_q·(block_k + Dv)) (forward) and O(block_q·block_k) (backward), K
// transposed [B·H, D, S + 16..31] (and V in the backward), D_i [B·H, T],
// and with B·H < 4 up to 3 dQ partials [T, D] per head (backward); never a T×S buffer.
// Layout: row-major, contiguous: q [B·H, T, D], k [B·H, S, D], v [B·H, S, Dv], out [B·H, T, Dv],
// lse [B·H, T], key_padding bool [B, S] (true = real key).
// Forward saves for backward: only lse (plus the op keeps q, k, v and out).
// Masking: query i sees key j iff (!causal or j <= i + (S − T)) and key_padding[b, j]. A query that
// sees no key gets out = 0, lse = −inf, and zero gradient (its P row is exactly 0).
//
// Threads: at::parallel_for over (head, query block) forward and over (head, key-block group)
// backward: a group's dK and dV rows are written by one thread only; with B·H < 4 a head's key
// blocks form several groups, each with a dQ partial [T, D], summed in group order at the end
// (backward_key_groups: the same groups, and bits, on any thread count). This file must be
// compiled with -fopenmp: ATen's parallel_for is an inline template whose `#pragma omp parallel`
// is silently dropped otherwise, and the loop runs on one thread.
// The block GEMMs are OpenBLAS cblas_?gemm calls, each of which runs on the calling thread
// (kernels/cpu/blas.h: where parallel_for runs inline, OpenBLAS would otherwise fork an OpenMP
// team per 64×128 block GEMM, measured ~400× slower than one thread on this loaded machine).
// No ISA flags: OpenBLAS dispatches its GEMM kernels at run time, and the float row loops
// (exp, max, dS) are target_clones (AVX-512F, AVX2, baseline) picked at load time; they vectorise
// only with -fno-trapping-math (set for this folder in CMakeLists.txt).
#include "kernels/cpu/flash_attention.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/row_ops.h"
#include "kernels/cpu/vec_math.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace longseq::cpu {
namespace {

// Block sizes, by head dim (measured on the AMD Zen 4 machine, 2 threads, T = 4096, B = 1, H = 4,
// `longseq bench --mode fwd` and fwd+bwd, against the blocks before, in one session). The score
// GEMMs take K (and in the backward V) pre-transposed, so every block GEMM is a plain or Aᵀ
// product, and the blocks are sized so that M·N·K ≤ 10⁶: OpenBLAS's AVX-512 cores then run their
// small-matrix kernels, which skip packing (kernels/cpu/blas.h, gemm_rows). In isolation, one
// thread: 64 × 128 × 64 score GEMM 114 GFLOP/s, against 85 for the Kᵀ form and 93–97 for
// 256 × 256 × 64; at D = 16, 128 × 256 105 against 75. Forward: D = 64 124–127 ms → 114–118 ms
// (64 × 192 and 32 × 256 the best of 64–128 × 64–256), causal 80 → 65 ms; D = 32 79 → 66 ms
// (128 × 192); D = 16 46.5 → 43 ms (128 × 256 kept). At D = 128 no small-kernel block beat
// 256 × 256 (119 ms; 32 × 192 124 ms). Backward: D = 32 222 → 192 ms fwd+bwd with 64 × 256; at
// D = 64 the blocks from 32 × 256 to 128 × 64 were within 2% of each other (64 × 128 kept).
struct Blocks {
  int64_t q, k;  // queries and keys per block
};
Blocks forward_blocks(int64_t d) {
  if (d <= 16) return {128, 256};
  if (d <= 32) return {128, 192};
  if (d <= 64) return {64, 192};
  return {256, 256};
}
Blocks backward_blocks(int64_t d) {
  if (d <= 16) return {128, 256};
  if (d <= 32) return {64, 256};
  return {64, 128};
}

// xt [n, d, ld] ← x [n, s, d] transposed per head (ld = padded_stride(s), blas.h), so that the
// score GEMMs take K (and V) as a plain [D, S] operand.
template <typename scalar_t>
std::vector<scalar_t> transposed_heads(const scalar_t* x, int64_t n, int64_t s, int64_t d) {
  const int64_t ld = padded_stride(s);
  std::vector<scalar_t> xt(n * ld * d);
  constexpr int64_t kTile = 64;
  const int64_t tiles = (s + kTile - 1) / kTile;
  at::parallel_for(0, n * tiles, 16, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t h = item / tiles, j0 = (item % tiles) * kTile, j1 = std::min(s, j0 + kTile);
      transpose_rows(x + (h * s + j0) * d, j1 - j0, d, d, xt.data() + h * ld * d + j0, ld);
    }
  });
  return xt;
}

// Sets the scores of row r (query i = i0 + r) of a block starting at key j0 that the query may not
// see to −inf: keys past the causal limit j <= i + off, and padded keys.
template <typename scalar_t>
void mask_row(scalar_t* srow, int64_t bc, int64_t i, int64_t j0, int64_t off, bool causal,
              const bool* pad) {
  constexpr scalar_t kNegInf = -std::numeric_limits<scalar_t>::infinity();
  int64_t lim = bc;
  if (causal) lim = std::max<int64_t>(0, std::min<int64_t>(bc, i + off - j0 + 1));
  for (int64_t c = lim; c < bc; ++c) srow[c] = kNegInf;
  if (pad) {
    for (int64_t c = 0; c < lim; ++c) srow[c] = pad[j0 + c] ? srow[c] : kNegInf;
  }
}

// Where the real keys are, per batch row: key blocks from one past the last real key on are
// padding for every query and are skipped (a batch of sequences padded to its longest one has
// many), and a block with no padded key needs no padding mask.
struct RealKeys {
  std::vector<int64_t> end;     // [B]: one past the last real key (0 if none)
  std::vector<int64_t> before;  // [B, S + 1]: real keys before j (empty without padding)
  int64_t s = 0;

  RealKeys(const bool* key_padding, int64_t batch, int64_t s_) : end(batch, s_), s(s_) {
    if (!key_padding) return;
    before.resize(batch * (s + 1));
    for (int64_t b = 0; b < batch; ++b) {
      int64_t* row = before.data() + b * (s + 1);
      row[0] = 0;
      for (int64_t j = 0; j < s; ++j) row[j + 1] = row[j] + (key_padding[b * s + j] ? 1 : 0);
      int64_t e = s;
      while (e > 0 && !key_padding[b * s + e - 1]) --e;
      end[b] = e;
    }
  }
  // The padding row to mask keys [j0, j0 + bc) with, or nullptr when they are all real.
  const bool* block_mask(const bool* pad, int64_t b, int64_t j0, int64_t bc) const {
    if (!pad) return nullptr;
    const int64_t* row = before.data() + b * (s + 1);
    return row[j0 + bc] - row[j0] == bc ? nullptr : pad;
  }
};

// Backward work items per head. With fewer than kMinBackwardItems heads (B·H), each head's key
// blocks are split into groups that threads take whole: a group writes its blocks' dK and dV rows
// and its own dQ partial. The count depends on the shapes only, never on the thread count, so the
// gradients (dQ summed in group order) have the same bits on any number of threads.
constexpr int64_t kMinBackwardItems = 4;

int64_t backward_key_groups(int64_t bh, int64_t key_blocks) {
  return std::max<int64_t>(1, std::min(key_blocks, (kMinBackwardItems + bh - 1) / bh));
}

}  // namespace

template <typename scalar_t>
void flash_attention_forward(const scalar_t* q, const scalar_t* k, const scalar_t* v,
                             const bool* key_padding, scalar_t* out, scalar_t* lse,
                             const FlashAttentionParams& p) {
  constexpr scalar_t kNegInf = -std::numeric_limits<scalar_t>::infinity();
  const int64_t BH = p.batch * p.heads, T = p.t, S = p.s, D = p.d, Dv = p.dv, off = S - T;
  const scalar_t scale = static_cast<scalar_t>(p.scale);
  const Blocks blk = forward_blocks(D);
  const int64_t block_q = blk.q, block_k = blk.k;
  const int64_t nqb = (T + block_q - 1) / block_q;
  const RealKeys keys(key_padding, p.batch, S);
  const std::vector<scalar_t> kt = transposed_heads(k, BH, S, D);  // [B·H, D, ldt]
  const int64_t ldt = padded_stride(S);
  BlasSingleThread blas_guard;
  at::parallel_for(0, BH * nqb, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> sbuf(block_q * block_k), acc(block_q * Dv), m(block_q), l(block_q);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bh = item / nqb, i0 = (item % nqb) * block_q, br = std::min(block_q, T - i0);
      const scalar_t* qb = q + (bh * T + i0) * D;
      const scalar_t* ktb = kt.data() + bh * D * ldt;
      const scalar_t* vb = v + bh * S * Dv;
      const bool* pad = key_padding ? key_padding + (bh / p.heads) * S : nullptr;
      std::fill(acc.begin(), acc.begin() + br * Dv, scalar_t(0));
      std::fill(m.begin(), m.end(), kNegInf);
      std::fill(l.begin(), l.end(), scalar_t(0));
      // Keys at or past j_end are in the causal future of every query of the block, or padding:
      // skipped.
      const int64_t j_end = std::min(
          keys.end[bh / p.heads], p.causal ? std::max<int64_t>(0, std::min(S, i0 + br + off)) : S);
      for (int64_t j0 = 0; j0 < j_end; j0 += block_k) {
        const int64_t bc = std::min(block_k, j_end - j0);
        // S = scale · Q_i K_jᵀ   [br, bc]
        gemm(false, false, br, bc, D, scale, qb, D, ktb + j0, ldt, scalar_t(0), sbuf.data(), bc);
        const bool* block_pad = keys.block_mask(pad, bh / p.heads, j0, bc);
        for (int64_t r = 0; r < br; ++r) {
          scalar_t* srow = sbuf.data() + r * bc;
          mask_row(srow, bc, i0 + r, j0, off, p.causal, block_pad);
          const scalar_t m_new = std::max(m[r], row_max(srow, bc));
          if (m_new == kNegInf) {  // nothing visible so far: P row 0, state unchanged
            std::fill(srow, srow + bc, scalar_t(0));
            continue;
          }
          // Online softmax: l ← l·e^(m−m_new) + Σ e^(s−m_new); O ← O·e^(m−m_new).
          const scalar_t alpha = exp_fast(m[r] - m_new);
          const scalar_t sum = exp_row(srow, bc, m_new);
          l[r] = l[r] * alpha + sum;
          m[r] = m_new;
          if (alpha != scalar_t(1)) scale_row(acc.data() + r * Dv, Dv, alpha);
        }
        // O += P V_j   [br, Dv]
        gemm(false, false, br, Dv, bc, scalar_t(1), sbuf.data(), bc, vb + j0 * Dv, Dv, scalar_t(1),
             acc.data(), Dv);
      }
      // out = O / l, lse = m + log l; rows that saw no key: 0 and −inf.
      for (int64_t r = 0; r < br; ++r) {
        scalar_t* orow = out + (bh * T + i0 + r) * Dv;
        const scalar_t* arow = acc.data() + r * Dv;
        if (l[r] > 0) {
          const scalar_t inv = scalar_t(1) / l[r];
          for (int64_t c = 0; c < Dv; ++c) orow[c] = arow[c] * inv;
          lse[bh * T + i0 + r] = m[r] + std::log(l[r]);
        } else {
          std::fill(orow, orow + Dv, scalar_t(0));
          lse[bh * T + i0 + r] = kNegInf;
        }
      }
    }
  });
}

template <typename scalar_t>
void flash_attention_backward(const scalar_t* q, const scalar_t* k, const scalar_t* v,
                              const bool* key_padding, const scalar_t* out, const scalar_t* lse,
                              const scalar_t* grad_out, scalar_t* grad_q, scalar_t* grad_k,
                              scalar_t* grad_v, const FlashAttentionParams& p) {
  constexpr scalar_t kNegInf = -std::numeric_limits<scalar_t>::infinity();
  const int64_t BH = p.batch * p.heads, T = p.t, S = p.s, D = p.d, Dv = p.dv, off = S - T;
  const scalar_t scale = static_cast<scalar_t>(p.scale);
  const Blocks blk = backward_blocks(D);
  const int64_t block_q = blk.q, block_k = blk.k;
  const int64_t G = backward_key_groups(BH, (S + block_k - 1) / block_k);
  // Group g > 0 of head bh accumulates its dQ in dq_part[((g − 1)·BH + bh)·T·D ...]; group 0
  // writes grad_q itself.
  const RealKeys keys(key_padding, p.batch, S);
  std::vector<scalar_t> di(BH * T), dq_part(G > 1 ? (G - 1) * BH * T * D : 0);
  const std::vector<scalar_t> kt = transposed_heads(k, BH, S, D);   // [B·H, D, ldt]
  const std::vector<scalar_t> vt = transposed_heads(v, BH, S, Dv);  // [B·H, Dv, ldt]
  const int64_t ldt = padded_stride(S);
  BlasSingleThread blas_guard;
  // D_i = Σ_c dO_ic · O_ic  (= Σ_j P_ij dP_ij, the softmax Jacobian's correction term)
  at::parallel_for(0, BH * T, 512, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) di[r] = dot_row(grad_out + r * Dv, out + r * Dv, Dv);
  });
  at::parallel_for(0, BH * G, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> pbuf(block_q * block_k), dsbuf(block_q * block_k);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bh = item / G, g = item % G;
      const scalar_t* qh = q + bh * T * D;
      const scalar_t* kh = k + bh * S * D;
      const scalar_t* kth = kt.data() + bh * D * ldt;
      const scalar_t* vth = vt.data() + bh * Dv * ldt;
      const scalar_t* doh = grad_out + bh * T * Dv;
      const scalar_t* lh = lse + bh * T;
      const scalar_t* dih = di.data() + bh * T;
      scalar_t* dq = g == 0 ? grad_q + bh * T * D : dq_part.data() + ((g - 1) * BH + bh) * T * D;
      scalar_t* dk = grad_k + bh * S * D;
      scalar_t* dv = grad_v + bh * S * Dv;
      const bool* pad = key_padding ? key_padding + (bh / p.heads) * S : nullptr;
      if (g == 0) std::fill(dq, dq + T * D, scalar_t(0));  // the partials start as zeros
      // The group's key blocks: g, g + G, g + 2G, ... (interleaved, so that causal groups carry
      // about the same work).
      for (int64_t j0 = g * block_k; j0 < S; j0 += G * block_k) {
        const int64_t bc = std::min(block_k, S - j0);
        std::fill(dk + j0 * D, dk + (j0 + bc) * D, scalar_t(0));
        std::fill(dv + j0 * Dv, dv + (j0 + bc) * Dv, scalar_t(0));
        if (j0 >= keys.end[bh / p.heads]) continue;  // padding keys only: zero gradients
        const bool* block_pad = keys.block_mask(pad, bh / p.heads, j0, bc);
        // Queries i < j0 − off see no key of this block (j0 > i + off): skipped.
        const int64_t i_first = p.causal ? std::max<int64_t>(0, j0 - off) : 0;
        for (int64_t i0 = (i_first / block_q) * block_q; i0 < T; i0 += block_q) {
          const int64_t br = std::min(block_q, T - i0);
          // P = exp(scale · Q_i K_jᵀ − lse_i)   [br, bc]
          gemm(false, false, br, bc, D, scale, qh + i0 * D, D, kth + j0, ldt, scalar_t(0),
               pbuf.data(), bc);
          for (int64_t r = 0; r < br; ++r) {
            scalar_t* prow = pbuf.data() + r * bc;
            const scalar_t L = lh[i0 + r];
            if (L == kNegInf) {  // query sees no key: zero probabilities, zero gradient
              std::fill(prow, prow + bc, scalar_t(0));
              continue;
            }
            mask_row(prow, bc, i0 + r, j0, off, p.causal, block_pad);
            exp_shift_row(prow, bc, L);
          }
          // dV_j += Pᵀ dO_i   [bc, Dv]
          gemm(true, false, bc, Dv, br, scalar_t(1), pbuf.data(), bc, doh + i0 * Dv, Dv,
               scalar_t(1), dv + j0 * Dv, Dv);
          // dP = dO_i V_jᵀ   [br, bc]
          gemm(false, false, br, bc, Dv, scalar_t(1), doh + i0 * Dv, Dv, vth + j0, ldt, scalar_t(0),
               dsbuf.data(), bc);
          // dS = P ⊙ (dP − D_i)
          for (int64_t r = 0; r < br; ++r) {
            ds_row(pbuf.data() + r * bc, dsbuf.data() + r * bc, bc, dih[i0 + r]);
          }
          // dQ_i += scale · dS K_j   [br, D]
          gemm(false, false, br, D, bc, scale, dsbuf.data(), bc, kh + j0 * D, D, scalar_t(1),
               dq + i0 * D, D);
          // dK_j += scale · dSᵀ Q_i   [bc, D]
          gemm(true, false, bc, D, br, scale, dsbuf.data(), bc, qh + i0 * D, D, scalar_t(1),
               dk + j0 * D, D);
        }
      }
    }
  });
  // dQ = group 0's sum + the other groups' partials, added in group order.
  if (G > 1) {
    at::parallel_for(0, BH * T, 256, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t bh = r / T, i = r % T;
        scalar_t* row = grad_q + r * D;
        for (int64_t g = 1; g < G; ++g) {
          const scalar_t* part = dq_part.data() + (((g - 1) * BH + bh) * T + i) * D;
          for (int64_t c = 0; c < D; ++c) row[c] += part[c];
        }
      }
    });
  }
}

#define LONGSEQ_INSTANTIATE_FLASH(T_)                                                          \
  template void flash_attention_forward<T_>(const T_*, const T_*, const T_*, const bool*, T_*, \
                                            T_*, const FlashAttentionParams&);                 \
  template void flash_attention_backward<T_>(const T_*, const T_*, const T_*, const bool*,     \
                                             const T_*, const T_*, const T_*, T_*, T_*, T_*,   \
                                             const FlashAttentionParams&);
LONGSEQ_INSTANTIATE_FLASH(float)
LONGSEQ_INSTANTIATE_FLASH(double)
#undef LONGSEQ_INSTANTIATE_FLASH

}  // namespace longseq::cpu
