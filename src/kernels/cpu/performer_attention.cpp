// Fused FAVOR+ attention from features on CPU (Choromanski et al. 2021, "Rethinking Attention with
// Performers"; Katharopoulos et al. 2020 for the chunked linear-attention recurrence).
//
// Non-causal: kv = fkᵀ v [R, Dv], z = fkᵀ 1 [R], out_t = fq_t kv / fq_t·z. Backward with
// g_t = dO_t / den_t and gd_t = −(dO_t·out_t) / den_t: dkv = fqᵀ g, dz = fqᵀ gd,
// dfq = g kvᵀ + gd zᵀ, dfk = v dkvᵀ + 1 dzᵀ, dv = fk dkv. Six GEMMs per head in all (in blocks
// of rows, RowSplit below) and nothing [T, R]-sized but the gradients themselves (the composite path also materialises the
// transposed and broadcast [T, R] gradients of its matmuls and sums).
//
// Causal (the unidirectional form):
//   num_t = Σ_{j≤t} w_tj v_j,  den_t = Σ_{j≤t} w_tj,  w_tj = (fq_t·fk_j)·exp(m_j − m_t),
//   out_t = num_t / den_t (0 where den_t = 0: then every w_tj is 0 and so is num_t).
// m (non-decreasing) is the running stabiliser of the key features; every exponent is ≤ 0.
//
// Algorithm, per (b, h), chunks of c positions in order. Forward: in-chunk quadratic form
// A = (fq_c fk_cᵀ) ⊙ exp(m_j − m_t) ⊙ tril (one GEMM), num = A v_c (one GEMM), den = rowsums; the
// earlier chunks through the carried state S = Σ_{j<t0} fk_j exp(m_j − m_ref) v_jᵀ [R, Dv] and
// z = Σ fk_j exp(m_j − m_ref) [R], referenced to m_ref = m at the end of the previous chunk:
// num_t += exp(m_ref − m_t)·fq_t S, den_t += exp(m_ref − m_t)·fq_t·z; then S, z move to the end
// of this chunk (decay exp(m_ref − m_end) ≤ 1, plus the chunk's (fk ⊙ exp(m − m_end))ᵀ v).
// Backward: with ṽ_j = [v_j, 1] and g̃_t = [dO_t / den_t, −(dO_t·out_t) / den_t] (num and den are
// one linear attention over the augmented values),
//   dfq_t = Σ_{j≤t} exp(m_j − m_t) (g̃_t·ṽ_j) fk_j          — a forward pass with state [R, Dv + 1]
//   dfk_j = Σ_{t≥j} exp(m_j − m_t) (g̃_t·ṽ_j) fq_t,
//   dṽ_j  = Σ_{t≥j} w_tj g̃_t                                — a reverse pass with state
//   U = Σ_{t≥t1} exp(m_u − m_t) fq_t g̃_tᵀ [R, Dv + 1], m_u = m at the start of the later chunk.
// Each pass is the forward's chunk structure (in-chunk [c, c] forms and state GEMMs).
//
// Time O(B·H·T·(c·(R + Dv) + R·Dv)), sequential over chunks within a head. Extra memory: den
// [B·H, T] saved for backward and per-thread buffers O(c·(c + R + Dv) + R·Dv); never the
// [T, R, Dv] per-position states.
// Layout: row-major, contiguous fq, fk [B·H, T, R], v, out [B·H, T, Dv], m, den [B·H, T].
// Threads: causal, at::parallel_for over B·H (each head's chunks are a sequential scan; known
// limit: B·H = 1 runs on one thread); non-causal, over blocks of rows, with the sums over rows in
// fixed groups (RowSplit below). BLAS on one thread inside (blas.h).
#include "kernels/cpu/performer_attention.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/row_ops.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace longseq::cpu {
namespace {

// a [n, n] (row stride n) ← a ⊙ exp(m_j − m_t) for j ≤ t, 0 for j > t (t row, j column);
// m = nullptr means no stabiliser (weights 1).
template <typename scalar_t>
void causal_weights(scalar_t* a, int64_t n, const scalar_t* m) {
  for (int64_t t = 0; t < n; ++t) {
    scalar_t* row = a + t * n;
    if (m) mul_exp_row(row, m, m[t], t + 1);
    std::fill(row + t + 1, row + n, scalar_t(0));
  }
}

// dst [n, e] ← src rows scaled by exp(m_j − ref) (m = nullptr: copied).
template <typename scalar_t>
void scaled_rows(const scalar_t* src, int64_t n, int64_t e, const scalar_t* m, scalar_t ref,
                 scalar_t* dst) {
  std::copy(src, src + n * e, dst);
  if (!m) return;
  for (int64_t j = 0; j < n; ++j) scale_row(dst + j * e, e, std::exp(m[j] - ref));
}

}  // namespace

template <typename scalar_t>
void performer_causal_forward(const scalar_t* fq, const scalar_t* fk, const scalar_t* v,
                              const scalar_t* m, scalar_t* out, scalar_t* den,
                              const PerformerCausalParams& p) {
  const int64_t T = p.t, R = p.r, Dv = p.dv, c = p.chunk;
  BlasSingleThread blas_guard;
  at::parallel_for(0, p.bh, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> a(c * c), s(R * Dv), z(R), kw(c * R), u(c * Dv);
    for (int64_t bh = begin; bh < end; ++bh) {
      const scalar_t* mh = m ? m + bh * T : nullptr;
      std::fill(s.begin(), s.end(), scalar_t(0));
      std::fill(z.begin(), z.end(), scalar_t(0));
      scalar_t m_ref = 0;
      for (int64_t t0 = 0; t0 < T; t0 += c) {
        const int64_t n = std::min(c, T - t0);
        const scalar_t* fqc = fq + (bh * T + t0) * R;
        const scalar_t* fkc = fk + (bh * T + t0) * R;
        const scalar_t* vc = v + (bh * T + t0) * Dv;
        const scalar_t* mc = mh ? mh + t0 : nullptr;
        scalar_t* oc = out + (bh * T + t0) * Dv;
        scalar_t* dc = den + bh * T + t0;
        // A = (fq_c fk_cᵀ) ⊙ exp(m_j − m_t) ⊙ tril   [n, n]
        gemm(false, true, n, n, R, scalar_t(1), fqc, R, fkc, R, scalar_t(0), a.data(), n);
        causal_weights(a.data(), n, mc);
        // num = A v_c   [n, Dv]; den = rowsum(A)
        gemm(false, false, n, Dv, n, scalar_t(1), a.data(), n, vc, Dv, scalar_t(0), oc, Dv);
        for (int64_t t = 0; t < n; ++t) dc[t] = sum_row(a.data() + t * n, t + 1);
        if (t0 > 0) {
          // Earlier chunks: exp(m_ref − m_t)·fq_t [S | z]
          gemm(false, false, n, Dv, R, scalar_t(1), fqc, R, s.data(), Dv, scalar_t(0), u.data(),
               Dv);
          for (int64_t t = 0; t < n; ++t) {
            const scalar_t w = mc ? std::exp(m_ref - mc[t]) : scalar_t(1);
            axpy_row(oc + t * Dv, u.data() + t * Dv, w, Dv);
            dc[t] += w * dot_row(fqc + t * R, z.data(), R);
          }
        }
        for (int64_t t = 0; t < n; ++t) {
          if (dc[t] > 0) {
            scale_row(oc + t * Dv, Dv, scalar_t(1) / dc[t]);
          } else {  // no visible key: num is exactly 0 too
            std::fill(oc + t * Dv, oc + (t + 1) * Dv, scalar_t(0));
          }
        }
        // State to the end of this chunk: S ← S·exp(m_ref − m_end) + (fk ⊙ exp(m − m_end))ᵀ v.
        const scalar_t m_end = mc ? mc[n - 1] : scalar_t(0);
        const scalar_t decay = mc && t0 > 0 ? std::exp(m_ref - m_end) : scalar_t(1);
        scaled_rows(fkc, n, R, mc, m_end, kw.data());
        gemm(true, false, R, Dv, n, scalar_t(1), kw.data(), R, vc, Dv, decay, s.data(), Dv);
        scale_row(z.data(), R, decay);
        for (int64_t j = 0; j < n; ++j) axpy_row(z.data(), kw.data() + j * R, scalar_t(1), R);
        m_ref = m_end;
      }
    }
  });
}

template <typename scalar_t>
void performer_causal_backward(const scalar_t* fq, const scalar_t* fk, const scalar_t* v,
                               const scalar_t* m, const scalar_t* out, const scalar_t* den,
                               const scalar_t* grad_out, scalar_t* grad_fq, scalar_t* grad_fk,
                               scalar_t* grad_v, const PerformerCausalParams& p) {
  const int64_t T = p.t, R = p.r, Dv = p.dv, E = p.dv + 1, c = p.chunk;
  const int64_t n_chunks = (T + c - 1) / c;
  BlasSingleThread blas_guard;
  at::parallel_for(0, p.bh, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> a(c * c), bm(c * c), st(R * E), vt(c * E), gt(c * E), kw(c * R),
        tmp(c * std::max(R, E)), dvt(c * E);
    for (int64_t bh = begin; bh < end; ++bh) {
      const scalar_t* mh = m ? m + bh * T : nullptr;
      // Chunk views, ṽ = [v, 1] and g̃ = [dO / den, −(dO·out) / den]. Where den = 0 the row is
      // num / 1 (num = out = 0), as in the composite path: g̃ = [dO, 0].
      auto load = [&](int64_t t0, int64_t n) {
        for (int64_t t = 0; t < n; ++t) {
          const int64_t row = bh * T + t0 + t;
          std::copy(v + row * Dv, v + (row + 1) * Dv, vt.data() + t * E);
          vt[t * E + Dv] = 1;
          const scalar_t inv = den[row] > 0 ? scalar_t(1) / den[row] : scalar_t(1);
          scalar_t* g = gt.data() + t * E;
          for (int64_t e = 0; e < Dv; ++e) g[e] = grad_out[row * Dv + e] * inv;
          g[Dv] = -dot_row(grad_out + row * Dv, out + row * Dv, Dv) * inv;
        }
      };

      // Pass 1, forward in time: dfq_t = Σ_{j≤t} exp(m_j − m_t)(g̃_t·ṽ_j) fk_j.
      std::fill(st.begin(), st.end(), scalar_t(0));
      scalar_t m_ref = 0;
      for (int64_t t0 = 0; t0 < T; t0 += c) {
        const int64_t n = std::min(c, T - t0);
        const scalar_t* fkc = fk + (bh * T + t0) * R;
        const scalar_t* mc = mh ? mh + t0 : nullptr;
        scalar_t* dfq = grad_fq + (bh * T + t0) * R;
        load(t0, n);
        // Bm = (g̃ ṽᵀ) ⊙ exp(m_j − m_t) ⊙ tril; dfq = Bm fk_c
        gemm(false, true, n, n, E, scalar_t(1), gt.data(), E, vt.data(), E, scalar_t(0), bm.data(),
             n);
        causal_weights(bm.data(), n, mc);
        gemm(false, false, n, R, n, scalar_t(1), bm.data(), n, fkc, R, scalar_t(0), dfq, R);
        if (t0 > 0) {  // earlier chunks: exp(m_ref − m_t)·g̃_t S̃ᵀ
          gemm(false, true, n, R, E, scalar_t(1), gt.data(), E, st.data(), E, scalar_t(0),
               tmp.data(), R);
          for (int64_t t = 0; t < n; ++t) {
            const scalar_t w = mc ? std::exp(m_ref - mc[t]) : scalar_t(1);
            axpy_row(dfq + t * R, tmp.data() + t * R, w, R);
          }
        }
        const scalar_t m_end = mc ? mc[n - 1] : scalar_t(0);
        const scalar_t decay = mc && t0 > 0 ? std::exp(m_ref - m_end) : scalar_t(1);
        scaled_rows(fkc, n, R, mc, m_end, kw.data());
        gemm(true, false, R, E, n, scalar_t(1), kw.data(), R, vt.data(), E, decay, st.data(), E);
        m_ref = m_end;
      }

      // Pass 2, reverse in time: dfk_j, dṽ_j from U = Σ_{t≥t1} exp(m_u − m_t) fq_t g̃_tᵀ.
      std::fill(st.begin(), st.end(), scalar_t(0));  // now U [R, E]
      scalar_t m_u = 0;
      for (int64_t ci = n_chunks - 1; ci >= 0; --ci) {
        const int64_t t0 = ci * c, n = std::min(c, T - t0);
        const scalar_t* fqc = fq + (bh * T + t0) * R;
        const scalar_t* fkc = fk + (bh * T + t0) * R;
        const scalar_t* mc = mh ? mh + t0 : nullptr;
        scalar_t* dfk = grad_fk + (bh * T + t0) * R;
        load(t0, n);
        // In-chunk: A = (fq fkᵀ) ⊙ weights, Bm = (g̃ ṽᵀ) ⊙ weights; dṽ = Aᵀ g̃, dfk = Bmᵀ fq.
        gemm(false, true, n, n, R, scalar_t(1), fqc, R, fkc, R, scalar_t(0), a.data(), n);
        causal_weights(a.data(), n, mc);
        gemm(false, true, n, n, E, scalar_t(1), gt.data(), E, vt.data(), E, scalar_t(0), bm.data(),
             n);
        causal_weights(bm.data(), n, mc);
        gemm(true, false, n, E, n, scalar_t(1), a.data(), n, gt.data(), E, scalar_t(0), dvt.data(),
             E);
        gemm(true, false, n, R, n, scalar_t(1), bm.data(), n, fqc, R, scalar_t(0), dfk, R);
        if (ci + 1 < n_chunks) {
          // Later chunks: exp(m_j − m_u)·(ṽ_j Uᵀ) into dfk_j and exp(m_j − m_u)·(fk_j U) into dṽ_j.
          gemm(false, true, n, R, E, scalar_t(1), vt.data(), E, st.data(), E, scalar_t(0),
               tmp.data(), R);
          for (int64_t j = 0; j < n; ++j) {
            const scalar_t x = mc ? std::exp(mc[j] - m_u) : scalar_t(1);
            axpy_row(dfk + j * R, tmp.data() + j * R, x, R);
          }
          gemm(false, false, n, E, R, scalar_t(1), fkc, R, st.data(), E, scalar_t(0), tmp.data(),
               E);
          for (int64_t j = 0; j < n; ++j) {
            const scalar_t x = mc ? std::exp(mc[j] - m_u) : scalar_t(1);
            axpy_row(dvt.data() + j * E, tmp.data() + j * E, x, E);
          }
        }
        for (int64_t j = 0; j < n; ++j) {
          std::copy(dvt.data() + j * E, dvt.data() + j * E + Dv, grad_v + (bh * T + t0 + j) * Dv);
        }
        // U to the start of this chunk: U·exp(m_new − m_u) + (fq ⊙ exp(m_new − m))ᵀ g̃.
        const scalar_t m_new = mc ? mc[0] : scalar_t(0);
        const scalar_t decay = mc && ci + 1 < n_chunks ? std::exp(m_new - m_u) : scalar_t(1);
        std::copy(fqc, fqc + n * R, kw.data());
        if (mc) {
          for (int64_t t = 0; t < n; ++t) scale_row(kw.data() + t * R, R, std::exp(m_new - mc[t]));
        }
        gemm(true, false, R, E, n, scalar_t(1), kw.data(), R, gt.data(), E, decay, st.data(), E);
        m_u = m_new;
      }
    }
  });
}

namespace {

// Non-causal work split. Rows (queries or keys) run in blocks within OpenBLAS's small-matrix limit
// (32 at R = 256, Dv = 64: every block GEMM is then unpacked, blas.h small_gemm_rows). The sums
// over rows (kv, z; dkv, dz) are taken per group of consecutive blocks and then added in group
// order; a head has several groups only when B·H is below kMinItems, so that two threads have work
// with one head. The split follows the shapes alone, so the bits do not depend on the thread count.
constexpr int64_t kMinItems = 4;

struct RowSplit {
  // Rows of a head, rows per block; blocks, groups and blocks per group of a head.
  int64_t len, rows, blocks, groups, per_group;
  RowSplit(int64_t bh, int64_t n, int64_t r, int64_t dv)
      : len(n),
        rows(small_gemm_rows(dv, r, 256)),
        blocks((n + rows - 1) / rows),
        groups(std::max<int64_t>(
            1, std::min(blocks, (kMinItems + bh - 1) / std::max<int64_t>(bh, 1)))),
        per_group((blocks + groups - 1) / groups) {}
};

// Sums the heads' group partials part [B·H, G, n] in group order into out [B·H, n].
template <typename scalar_t>
void sum_groups(const std::vector<scalar_t>& part, int64_t bh, int64_t groups, int64_t n,
                scalar_t* out) {
  for (int64_t h = 0; h < bh; ++h) {
    scalar_t* o = out + h * n;
    const scalar_t* p = part.data() + h * groups * n;
    std::copy(p, p + n, o);
    for (int64_t g = 1; g < groups; ++g) axpy_row(o, p + g * n, scalar_t(1), n);
  }
}

// The sums over a head's split.len rows: in parallel over (head, group), fn(bh, r0, n, s, z) adds the
// rows [r0, r0 + n) of each of the group's blocks, in order, into the group's zeroed partials
// s [R·Dv] and z [R]; then the groups are added in group order into sum [B·H, R·Dv] and
// zsum [B·H, R].
template <typename scalar_t, typename F>
void sum_over_row_groups(const RowSplit& split, int64_t bh_count, int64_t r, int64_t dv,
                         scalar_t* sum, scalar_t* zsum, const F& fn) {
  const int64_t len = split.len;
  const int64_t G = split.groups;
  std::vector<scalar_t> part(bh_count * G * r * dv, scalar_t(0)),
      zpart(bh_count * G * r, scalar_t(0));
  at::parallel_for(0, bh_count * G, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bh = item / G, g = item % G;
      const int64_t r_end = std::min(len, (g + 1) * split.per_group * split.rows);
      for (int64_t r0 = g * split.per_group * split.rows; r0 < r_end; r0 += split.rows) {
        fn(bh, r0, std::min(split.rows, len - r0), part.data() + item * r * dv,
           zpart.data() + item * r);
      }
    }
  });
  sum_groups(part, bh_count, G, r * dv, sum);
  sum_groups(zpart, bh_count, G, r, zsum);
}

}  // namespace

template <typename scalar_t>
void performer_forward(const scalar_t* fq, const scalar_t* fk, const scalar_t* v, scalar_t* kv,
                       scalar_t* z, scalar_t* den, scalar_t* out, const PerformerParams& p) {
  const int64_t BH = p.bh, T = p.t, S = p.s, R = p.r, Dv = p.dv;
  const RowSplit keys(BH, S, R, Dv), queries(BH, T, R, Dv);
  BlasSingleThread blas_guard;
  // kv = fkᵀ v, z = fkᵀ 1, per group of key blocks.
  sum_over_row_groups(keys, BH, R, Dv, kv, z,
                      [&](int64_t bh, int64_t j0, int64_t n, scalar_t* kvg, scalar_t* zg) {
                        const scalar_t* fkb = fk + (bh * S + j0) * R;
                        gemm(true, false, R, Dv, n, scalar_t(1), fkb, R, v + (bh * S + j0) * Dv, Dv,
                             scalar_t(1), kvg, Dv);
                        for (int64_t j = 0; j < n; ++j) axpy_row(zg, fkb + j * R, scalar_t(1), R);
                      });
  // out = fq kv / fq z, per block of queries.
  at::parallel_for(0, BH * queries.blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bh = item / queries.blocks, t0 = (item % queries.blocks) * queries.rows;
      const int64_t n = std::min(queries.rows, T - t0);
      const scalar_t* fqb = fq + (bh * T + t0) * R;
      scalar_t* ob = out + (bh * T + t0) * Dv;
      scalar_t* db = den + bh * T + t0;
      gemm(false, false, n, Dv, R, scalar_t(1), fqb, R, kv + bh * R * Dv, Dv, scalar_t(0), ob, Dv);
      for (int64_t t = 0; t < n; ++t) {
        db[t] = dot_row(fqb + t * R, z + bh * R, R);
        if (db[t] > 0) {
          scale_row(ob + t * Dv, Dv, scalar_t(1) / db[t]);
        } else {  // no visible key: num is exactly 0 too
          std::fill(ob + t * Dv, ob + (t + 1) * Dv, scalar_t(0));
        }
      }
    }
  });
}

template <typename scalar_t>
void performer_backward(const scalar_t* fq, const scalar_t* fk, const scalar_t* v,
                        const scalar_t* kv, const scalar_t* z, const scalar_t* den,
                        const scalar_t* out, const scalar_t* grad_out, scalar_t* grad_fq,
                        scalar_t* grad_fk, scalar_t* grad_v, const PerformerParams& p) {
  const int64_t BH = p.bh, T = p.t, S = p.s, R = p.r, Dv = p.dv;
  const RowSplit keys(BH, S, R, Dv), queries(BH, T, R, Dv);
  // kvᵀ [B·H, Dv, R], so that dfq = g kvᵀ is a plain product; later dkv and dkvᵀ the same way.
  std::vector<scalar_t> kv_t(BH * R * Dv), dkv(BH * R * Dv), dkv_t(BH * R * Dv), dz(BH * R);
  for (int64_t bh = 0; bh < BH; ++bh)
    transpose_rows(kv + bh * R * Dv, R, Dv, Dv, kv_t.data() + bh * R * Dv, R);
  BlasSingleThread blas_guard;
  // Per block of queries: g = dO / den, gd = −(dO·out) / den (den 0 -> 1); dfq = g kvᵀ + gd zᵀ;
  // dkv += fqᵀ g and dz += fqᵀ gd per group.
  sum_over_row_groups(queries, BH, R, Dv, dkv.data(), dz.data(),
                      [&](int64_t bh, int64_t t0, int64_t n, scalar_t* dkvg, scalar_t* dzg) {
                        std::vector<scalar_t> g(n * Dv), gd(n);
                        for (int64_t i = 0; i < n; ++i) {
                          const int64_t row = bh * T + t0 + i;
                          const scalar_t inv = den[row] > 0 ? scalar_t(1) / den[row] : scalar_t(1);
                          const scalar_t* go = grad_out + row * Dv;
                          for (int64_t e = 0; e < Dv; ++e) g[i * Dv + e] = go[e] * inv;
                          gd[i] = -dot_row(go, out + row * Dv, Dv) * inv;
                        }
                        const scalar_t* fqb = fq + (bh * T + t0) * R;
                        scalar_t* dfq = grad_fq + (bh * T + t0) * R;
                        gemm(true, false, R, Dv, n, scalar_t(1), fqb, R, g.data(), Dv, scalar_t(1),
                             dkvg, Dv);
                        gemm(false, false, n, R, Dv, scalar_t(1), g.data(), Dv,
                             kv_t.data() + bh * R * Dv, R, scalar_t(0), dfq, R);
                        for (int64_t i = 0; i < n; ++i) {
                          axpy_row(dzg, fqb + i * R, gd[i], R);
                          axpy_row(dfq + i * R, z + bh * R, gd[i], R);
                        }
                      });
  for (int64_t bh = 0; bh < BH; ++bh) {
    transpose_rows(dkv.data() + bh * R * Dv, R, Dv, Dv, dkv_t.data() + bh * R * Dv, R);
  }
  // Per block of keys: dfk = v dkvᵀ + 1 dzᵀ, dv = fk dkv.
  at::parallel_for(0, BH * keys.blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bh = item / keys.blocks, j0 = (item % keys.blocks) * keys.rows;
      const int64_t n = std::min(keys.rows, S - j0);
      scalar_t* dfk = grad_fk + (bh * S + j0) * R;
      gemm(false, false, n, R, Dv, scalar_t(1), v + (bh * S + j0) * Dv, Dv,
           dkv_t.data() + bh * R * Dv, R, scalar_t(0), dfk, R);
      for (int64_t j = 0; j < n; ++j) axpy_row(dfk + j * R, dz.data() + bh * R, scalar_t(1), R);
      gemm(false, false, n, Dv, R, scalar_t(1), fk + (bh * S + j0) * R, R, dkv.data() + bh * R * Dv,
           Dv, scalar_t(0), grad_v + (bh * S + j0) * Dv, Dv);
    }
  });
}

#define LONGSEQ_INSTANTIATE_PERFORMER(T_)                                                          \
  template void performer_causal_forward<T_>(const T_*, const T_*, const T_*, const T_*, T_*, T_*, \
                                             const PerformerCausalParams&);                        \
  template void performer_causal_backward<T_>(const T_*, const T_*, const T_*, const T_*,          \
                                              const T_*, const T_*, const T_*, T_*, T_*, T_*,      \
                                              const PerformerCausalParams&);                       \
  template void performer_forward<T_>(const T_*, const T_*, const T_*, T_*, T_*, T_*, T_*,         \
                                      const PerformerParams&);                                     \
  template void performer_backward<T_>(const T_*, const T_*, const T_*, const T_*, const T_*,      \
                                       const T_*, const T_*, const T_*, T_*, T_*, T_*,             \
                                       const PerformerParams&);
LONGSEQ_INSTANTIATE_PERFORMER(float)
LONGSEQ_INSTANTIATE_PERFORMER(double)
#undef LONGSEQ_INSTANTIATE_PERFORMER

}  // namespace longseq::cpu
