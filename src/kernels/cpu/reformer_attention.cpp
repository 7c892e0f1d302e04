// Fused Reformer LSH attention with shared QK on CPU (Kitaev, Kaiser & Levskaya 2020, "Reformer:
// The Efficient Transformer"; the semantics of ops/reformer_attention.cpp, which follows trax).
//   For each round r, the tokens sorted by (bucket, position) are cut into chunks of c slots; a
//   chunk's queries see the keys of their own and the previous chunk (causal: the c most recent
//   tokens of their own bucket up to themselves), with
//   s_ij = scale·q_i·k_j − log c_ij,
//   c_ij = the number of rounds in which j is in i's window. Rounds combine by their
//   log-sum-exp, which with the duplicate correction is softmax attention over the union of the
//   keys i sees in any round: out_i = Σ_r Σ_j exp(s_ij − L_i) v_j, L_i = log Σ_r Σ_j exp(s_ij).
// The self rule (trax scores a token against itself −1e5, so it attends to itself only when it
// sees nothing else) is applied exactly rather than through the constant: self pairs are left out
// of the softmax, and a real token that sees no other key in any round outputs its own value
// (marked by lse = +inf for backward, where dV_i += dO_i and no score gets a gradient). In
// float32 an lse near −1e5 has a resolution of 0.008, which would mis-weight such rows by ~1%.
//
// Algorithm. Forward, round by round; in a round, every (head, chunk) in parallel: read the
// chunk's c query rows and 2c key/value rows through the sort permutation into block buffers
// (no per-round sorted copies of q, k, v), S = scale·Q Kᵀ (one GEMM), mask and correct, softmax
// per row, O_r = P V (one GEMM), and fold (O_r, lse_r) into the running (out, L) of each query
// position: L' = logaddexp(L, lse_r), out ← out·e^(L − L') + O_r·e^(lse_r − L'). A position is in
// one chunk per round, so writes never race. Backward, with the final L and D_i = dO_i·O_i:
// recompute S, P = exp(S − L_i), dV += Pᵀ dO, dP = dO Vᵀ, dS = P ⊙ (dP − D_i),
// dQ += scale·dS K, dK += scale·dSᵀ Q, the block results
// added into the gradients through the permutation. A chunk's keys are its own and the previous
// chunk's, so even and odd chunks run as two parallel phases (no two chunks of a phase share a
// key).
//
// Time O(B·H·n·T·c·(D + Dv + n)) (the n term counts duplicates). Extra memory: lse [B·H, T] and
// per-thread block buffers O(c·(c + D + Dv)); never T×T, and no [n, T, D] sorted copies.
// Layout: row-major, contiguous qk, kn [B·H, T, D], v, out [B·H, T, Dv], lse [B·H, T],
// perm/inv/bucket [B·H, n, T] int64, key_padding bool [B, T].
// Threads: at::parallel_for over (head, chunk) per round (and per phase in backward). BLAS on
// one thread inside (blas.h).
#include "kernels/cpu/reformer_attention.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/row_ops.h"
#include "kernels/cpu/vec_math.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace longseq::cpu {
namespace {

// One (head, round, chunk): query slots [q0, q0 + nq), key slots [k0, k0 + nk) (the previous
// chunk, if any, then this one).
struct ChunkView {
  int64_t bh, r, q0, nq, k0, nk;
};

ChunkView chunk_view(const ReformerParams& p, int64_t bh, int64_t r, int64_t ci) {
  const int64_t q0 = ci * p.chunk, nq = std::min(p.chunk, p.t - q0);
  const int64_t k0 = ci > 0 ? q0 - p.chunk : q0;
  return {bh, r, q0, nq, k0, q0 + nq - k0};
}

template <typename scalar_t>
void gather_rows(const scalar_t* src, const int64_t* pos, int64_t n, int64_t e, scalar_t* dst) {
  for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * e, src + pos[i] * e, e * sizeof(scalar_t));
}

template <typename scalar_t>
void scatter_add_rows(const scalar_t* src, const int64_t* pos, int64_t n, int64_t e,
                      scalar_t* dst) {
  for (int64_t i = 0; i < n; ++i) axpy_row(dst + pos[i] * e, src + i * e, scalar_t(1), e);
}

// What the mask of one score row needs about its keys, gathered once per chunk so the pair loop
// reads small contiguous int32 arrays (one width, so it vectorises): positions, real-or-padded,
// this round's bucket, and per round r2 the key's chunk (non-causal) or slot (causal) and
// bucket, laid out [r2][j]. Positions, slots and buckets fit in int32 (the op checks T).
struct KeyInfo {
  std::vector<int32_t> pos, real, bucket, where, bucket_of;  // [2c] ×3, [n·2c] ×2
  std::vector<int32_t> count;                                // [2c] scratch
};

// One query row's view: its position and slot, this round's bucket, and per round r2 its chunk
// (non-causal) or slot (causal) and bucket.
struct QueryInfo {
  int32_t pos, slot, bucket;
  const int32_t* where;      // [n]
  const int32_t* bucket_of;  // [n]
};

// row[j] ← −inf where key j is not visible to the query (padded, itself, and when causal outside
// its own bucket's c most recent tokens), else row[j] − log c_ij with c_ij counted over the rounds
// (−log of the count from `neg_log`). Branch-free loops over int32 and scalar_t, so the target
// clones vectorise them.
template <typename scalar_t>
LONGSEQ_INLINE void mask_row_impl(scalar_t* row, int64_t nk, int32_t k0, const QueryInfo& q,
                                  KeyInfo& k, int64_t n, int32_t c, bool causal,
                                  const scalar_t* neg_log) {
  constexpr scalar_t kNegInf = -std::numeric_limits<scalar_t>::infinity();
  const int32_t* kpos = k.pos.data();
  const int32_t* real = k.real.data();
  const int32_t* kb = k.bucket.data();
  int32_t* count = k.count.data();
  if (n > 1) {
    for (int64_t j = 0; j < nk; ++j) count[j] = 0;
    for (int64_t r2 = 0; r2 < n; ++r2) {
      const int32_t* kw = k.where.data() + r2 * nk;
      const int32_t* kbo = k.bucket_of.data() + r2 * nk;
      const int32_t qw = q.where[r2], qb = q.bucket_of[r2];
      if (causal) {  // same bucket in round r2 and 0 <= slot gap < c
        for (int64_t j = 0; j < nk; ++j) {
          const int32_t gap = qw - kw[j];
          count[j] += (kbo[j] == qb) & (gap >= 0) & (gap < c);
        }
      } else {  // chunk gap 0 or 1 in round r2
        for (int64_t j = 0; j < nk; ++j) {
          const int32_t gap = qw - kw[j];
          count[j] += (gap >= 0) & (gap <= 1);
        }
      }
    }
  }
  if (causal) {
    for (int64_t j = 0; j < nk; ++j) {
      const int32_t gap = q.slot - (k0 + static_cast<int32_t>(j));
      const bool ok =
          real[j] & (kpos[j] != q.pos) & (kpos[j] <= q.pos) & (kb[j] == q.bucket) & (gap < c);
      const scalar_t corr = n > 1 ? neg_log[count[j]] : scalar_t(0);
      row[j] = ok ? row[j] + corr : kNegInf;
    }
  } else {
    for (int64_t j = 0; j < nk; ++j) {
      const bool ok = real[j] & (kpos[j] != q.pos);
      const scalar_t corr = n > 1 ? neg_log[count[j]] : scalar_t(0);
      row[j] = ok ? row[j] + corr : kNegInf;
    }
  }
}

void mask_row(double* row, int64_t nk, int32_t k0, const QueryInfo& q, KeyInfo& k, int64_t n,
              int32_t c, bool causal, const double* neg_log) {
  mask_row_impl(row, nk, k0, q, k, n, c, causal, neg_log);
}
LONGSEQ_ISA_CLONES void mask_row(float* row, int64_t nk, int32_t k0, const QueryInfo& q, KeyInfo& k,
                                 int64_t n, int32_t c, bool causal, const float* neg_log) {
  mask_row_impl(row, nk, k0, q, k, n, c, causal, neg_log);
}

// Per-thread block buffers.
template <typename scalar_t>
struct Buffers {
  std::vector<scalar_t> q, k, v, s, o, d;  // [c, D], [2c, D], [2c, Dv], [c, 2c], [2c, ·] ×2
  std::vector<int64_t> qpos, kpos;
  std::vector<int32_t> query_where;
  KeyInfo keys;
  std::vector<scalar_t> neg_log;  // [n + 1]: −log of a duplicate count
  explicit Buffers(const ReformerParams& p)
      : q(p.chunk * p.d),
        k(2 * p.chunk * p.d),
        v(2 * p.chunk * p.dv),
        s(2 * p.chunk * p.chunk),
        o(2 * p.chunk * std::max(p.d, p.dv)),
        d(2 * p.chunk * std::max(p.d, p.dv)),
        qpos(p.chunk),
        kpos(2 * p.chunk),
        query_where(2 * p.n_hashes),
        neg_log(p.n_hashes + 1) {
    const int64_t nk = 2 * p.chunk;
    keys.pos.resize(nk);
    keys.bucket.resize(nk);
    keys.real.resize(nk);
    keys.count.resize(nk);
    keys.where.resize(p.n_hashes * nk);
    keys.bucket_of.resize(p.n_hashes * nk);
    for (int64_t m = 1; m <= p.n_hashes; ++m) neg_log[m] = -std::log(static_cast<scalar_t>(m));
  }
};

// Reads the chunk's rows through the permutation and fills s [nq, nk] (row stride nk) with the
// scores s_ij of the header, −inf where j is not visible to i or is i itself.
template <typename scalar_t>
void chunk_scores(const ReformerParams& p, const ChunkView& cv, const scalar_t* qk,
                  const scalar_t* kn, const int64_t* perm, const int64_t* inv,
                  const int64_t* bucket, const bool* key_padding, Buffers<scalar_t>& buf) {
  const int64_t T = p.t, D = p.d, n = p.n_hashes, c = p.chunk, nk = cv.nk;
  const int64_t* perm_r = perm + (cv.bh * n + cv.r) * T;
  const int64_t* inv_h = inv + cv.bh * n * T;  // [n, T] of this head
  const int64_t* bucket_h = bucket + cv.bh * n * T;
  const int64_t* bucket_r = bucket_h + cv.r * T;
  const bool* pad = key_padding ? key_padding + (cv.bh / p.heads) * T : nullptr;
  for (int64_t i = 0; i < cv.nq; ++i) buf.qpos[i] = perm_r[cv.q0 + i];
  for (int64_t j = 0; j < nk; ++j) buf.kpos[j] = perm_r[cv.k0 + j];
  gather_rows(qk + cv.bh * T * D, buf.qpos.data(), cv.nq, D, buf.q.data());
  gather_rows(kn + cv.bh * T * D, buf.kpos.data(), nk, D, buf.k.data());
  scalar_t* s = buf.s.data();
  gemm(false, true, cv.nq, nk, D, static_cast<scalar_t>(p.scale), buf.q.data(), D, buf.k.data(), D,
       scalar_t(0), s, nk);
  // Per-round chunk (non-causal) or slot (causal) of a position.
  auto where = [&](int64_t r2, int64_t pos) {
    const int64_t slot = inv_h[r2 * T + pos];
    return static_cast<int32_t>(p.causal ? slot : slot / c);
  };
  KeyInfo& k = buf.keys;
  for (int64_t j = 0; j < nk; ++j) {
    const int64_t pj = buf.kpos[j];
    k.pos[j] = static_cast<int32_t>(pj);
    k.real[j] = !pad || pad[pj];
    k.bucket[j] = static_cast<int32_t>(bucket_r[pj]);
    if (n == 1) continue;
    for (int64_t r2 = 0; r2 < n; ++r2) {
      k.where[r2 * nk + j] = where(r2, pj);
      k.bucket_of[r2 * nk + j] = static_cast<int32_t>(bucket_h[r2 * T + pj]);
    }
  }
  std::vector<int32_t>& qw = buf.query_where;  // [n] then [n] buckets
  for (int64_t i = 0; i < cv.nq; ++i) {
    const int64_t pi = buf.qpos[i];
    for (int64_t r2 = 0; n > 1 && r2 < n; ++r2) {
      qw[r2] = where(r2, pi);
      qw[n + r2] = static_cast<int32_t>(bucket_h[r2 * T + pi]);
    }
    const QueryInfo q{static_cast<int32_t>(pi), static_cast<int32_t>(cv.q0 + i),
                      static_cast<int32_t>(bucket_r[pi]), qw.data(), qw.data() + n};
    mask_row(s + i * nk, nk, static_cast<int32_t>(cv.k0), q, k, n, static_cast<int32_t>(c),
             p.causal, buf.neg_log.data());
  }
}

}  // namespace

template <typename scalar_t>
void reformer_attention_forward(const scalar_t* qk, const scalar_t* kn, const scalar_t* v,
                                const int64_t* perm, const int64_t* inv, const int64_t* bucket,
                                const bool* key_padding, scalar_t* out, scalar_t* lse,
                                const ReformerParams& p) {
  constexpr scalar_t kNegInf = -std::numeric_limits<scalar_t>::infinity();
  const int64_t BH = p.batch * p.heads, T = p.t, Dv = p.dv;
  const int64_t nc = (T + p.chunk - 1) / p.chunk;
  std::fill(out, out + BH * T * Dv, scalar_t(0));
  std::fill(lse, lse + BH * T, kNegInf);
  BlasSingleThread blas_guard;
  for (int64_t r = 0; r < p.n_hashes; ++r) {
    at::parallel_for(0, BH * nc, 1, [&](int64_t begin, int64_t end) {
      Buffers<scalar_t> buf(p);
      for (int64_t item = begin; item < end; ++item) {
        const auto cv = chunk_view(p, item / nc, r, item % nc);
        chunk_scores(p, cv, qk, kn, perm, inv, bucket, key_padding, buf);
        gather_rows(v + cv.bh * T * Dv, buf.kpos.data(), cv.nk, Dv, buf.v.data());
        scalar_t* s = buf.s.data();
        for (int64_t i = 0; i < cv.nq; ++i) {  // softmax of the round, lse_r in buf.d[i]
          scalar_t* row = s + i * cv.nk;
          const scalar_t mx = row_max(row, cv.nk);
          if (mx == kNegInf) {
            std::fill(row, row + cv.nk, scalar_t(0));
            buf.d[i] = kNegInf;
            continue;
          }
          const scalar_t l = exp_row(row, cv.nk, mx);
          scale_row(row, cv.nk, scalar_t(1) / l);
          buf.d[i] = mx + std::log(l);
        }
        // O_r = P V   [nq, Dv]
        gemm(false, false, cv.nq, Dv, cv.nk, scalar_t(1), s, cv.nk, buf.v.data(), Dv, scalar_t(0),
             buf.o.data(), Dv);
        for (int64_t i = 0; i < cv.nq; ++i) {  // fold into the running (out, L) of position i
          const scalar_t l_r = buf.d[i];
          if (l_r == kNegInf) continue;
          const int64_t row = cv.bh * T + buf.qpos[i];
          scalar_t* orow = out + row * Dv;
          const scalar_t L = lse[row];
          if (L == kNegInf) {
            std::memcpy(orow, buf.o.data() + i * Dv, Dv * sizeof(scalar_t));
            lse[row] = l_r;
            continue;
          }
          // Weights w_old + w_new = 1 from the difference alone; L' = max + log1p(e^−|δ|).
          const scalar_t delta = l_r - L, e = std::exp(-std::abs(delta));
          const scalar_t w_big = scalar_t(1) / (scalar_t(1) + e), w_small = e * w_big;
          scale_row(orow, Dv, delta > 0 ? w_small : w_big);
          axpy_row(orow, buf.o.data() + i * Dv, delta > 0 ? w_big : w_small, Dv);
          lse[row] = std::max(L, l_r) + std::log1p(e);
        }
      }
    });
  }
  // Real tokens that saw no other key: their own value (lse +inf marks them for backward).
  const scalar_t kInf = std::numeric_limits<scalar_t>::infinity();
  at::parallel_for(0, BH * T, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t bh = row / T, pos = row % T;
      const bool real = !key_padding || key_padding[(bh / p.heads) * T + pos];
      if (lse[row] != kNegInf || !real) continue;
      std::memcpy(out + row * Dv, v + row * Dv, Dv * sizeof(scalar_t));
      lse[row] = kInf;
    }
  });
}

template <typename scalar_t>
void reformer_attention_backward(const scalar_t* qk, const scalar_t* kn, const scalar_t* v,
                                 const int64_t* perm, const int64_t* inv, const int64_t* bucket,
                                 const bool* key_padding, const scalar_t* out, const scalar_t* lse,
                                 const scalar_t* grad_out, scalar_t* grad_qk, scalar_t* grad_kn,
                                 scalar_t* grad_v, const ReformerParams& p) {
  constexpr scalar_t kNegInf = -std::numeric_limits<scalar_t>::infinity();
  const int64_t BH = p.batch * p.heads, T = p.t, D = p.d, Dv = p.dv;
  const int64_t nc = (T + p.chunk - 1) / p.chunk, half = (nc + 1) / 2;
  const scalar_t scale = static_cast<scalar_t>(p.scale);
  std::fill(grad_qk, grad_qk + BH * T * D, scalar_t(0));
  std::fill(grad_kn, grad_kn + BH * T * D, scalar_t(0));
  // Rows that output their own value (lse +inf): dV_i = dO_i, and every P of theirs is 0 below.
  for (int64_t row = 0; row < BH * T; ++row) {
    if (lse[row] == std::numeric_limits<scalar_t>::infinity()) {
      std::memcpy(grad_v + row * Dv, grad_out + row * Dv, Dv * sizeof(scalar_t));
    } else {
      std::fill(grad_v + row * Dv, grad_v + (row + 1) * Dv, scalar_t(0));
    }
  }
  // D_i = dO_i · O_i
  std::vector<scalar_t> di(BH * T);
  at::parallel_for(0, BH * T, 256, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) di[i] = dot_row(grad_out + i * Dv, out + i * Dv, Dv);
  });
  BlasSingleThread blas_guard;
  for (int64_t r = 0; r < p.n_hashes; ++r) {
    for (int64_t phase = 0; phase < 2; ++phase) {
      at::parallel_for(0, BH * half, 1, [&](int64_t begin, int64_t end) {
        Buffers<scalar_t> buf(p);
        std::vector<scalar_t> ds(2 * p.chunk * p.chunk), dout(p.chunk * Dv);
        for (int64_t item = begin; item < end; ++item) {
          const int64_t ci = 2 * (item % half) + phase;
          if (ci >= nc) continue;
          const auto cv = chunk_view(p, item / half, r, ci);
          chunk_scores(p, cv, qk, kn, perm, inv, bucket, key_padding, buf);
          gather_rows(v + cv.bh * T * Dv, buf.kpos.data(), cv.nk, Dv, buf.v.data());
          gather_rows(grad_out + cv.bh * T * Dv, buf.qpos.data(), cv.nq, Dv, dout.data());
          scalar_t* pr = buf.s.data();
          for (int64_t i = 0; i < cv.nq; ++i) {  // P = exp(S − L_i)
            scalar_t* row = pr + i * cv.nk;
            const scalar_t L = lse[cv.bh * T + buf.qpos[i]];
            if (L == kNegInf) {
              std::fill(row, row + cv.nk, scalar_t(0));
            } else {
              exp_shift_row(row, cv.nk, L);
            }
          }
          // dV_j += Σ_i P_ij dO_i   [nk, Dv]
          gemm(true, false, cv.nk, Dv, cv.nq, scalar_t(1), pr, cv.nk, dout.data(), Dv, scalar_t(0),
               buf.o.data(), Dv);
          scatter_add_rows(buf.o.data(), buf.kpos.data(), cv.nk, Dv, grad_v + cv.bh * T * Dv);
          // dP = dO Vᵀ; dS = P ⊙ (dP − D_i)
          gemm(false, true, cv.nq, cv.nk, Dv, scalar_t(1), dout.data(), Dv, buf.v.data(), Dv,
               scalar_t(0), ds.data(), cv.nk);
          for (int64_t i = 0; i < cv.nq; ++i) {
            ds_row(pr + i * cv.nk, ds.data() + i * cv.nk, cv.nk, di[cv.bh * T + buf.qpos[i]]);
          }
          // dQ += scale·dS K   [nq, D];  dK += scale·dSᵀ Q   [nk, D]
          gemm(false, false, cv.nq, D, cv.nk, scale, ds.data(), cv.nk, buf.k.data(), D, scalar_t(0),
               buf.o.data(), D);
          scatter_add_rows(buf.o.data(), buf.qpos.data(), cv.nq, D, grad_qk + cv.bh * T * D);
          gemm(true, false, cv.nk, D, cv.nq, scale, ds.data(), cv.nk, buf.q.data(), D, scalar_t(0),
               buf.d.data(), D);
          scatter_add_rows(buf.d.data(), buf.kpos.data(), cv.nk, D, grad_kn + cv.bh * T * D);
        }
      });
    }
  }
}

// One pass per row instead of at::argmax over cat([x, −x]), which the reformer layer's profile
// put at 9.9 ms of 143 (9% of memory bandwidth) at B = 1, H = 4, T = 4096, n = 4, 64 buckets; the
// layer went from 86.1 / 84.7 to 81.9 / 81.0 ms fwd+bwd (Zen 5, A/B alternating). The first half
// wins ties, as in argmax.
template <typename scalar_t>
void reformer_buckets(const scalar_t* xr, int64_t bh, int64_t t, int64_t n, int64_t half,
                      int64_t* out) {
  at::parallel_for(0, bh * t, 256, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t head = row / t, pos = row % t;
      for (int64_t r = 0; r < n; ++r) {
        const scalar_t* x = xr + (row * n + r) * half;
        int64_t best = 0;
        scalar_t best_value = x[0];
        bool nan = std::isnan(best_value);
        for (int64_t j = 1; j < half && !nan; ++j) {
          if (std::isnan(x[j])) {
            best = j;
            nan = true;
          } else if (x[j] > best_value) {
            best = j;
            best_value = x[j];
          }
        }
        for (int64_t j = 0; j < half && !nan; ++j) {
          if (-x[j] > best_value) {
            best = half + j;
            best_value = -x[j];
          }
        }
        out[(head * n + r) * t + pos] = best;
      }
    }
  });
}

#define LONGSEQ_INSTANTIATE_REFORMER(T_)                                                         \
  template void reformer_attention_forward<T_>(const T_*, const T_*, const T_*, const int64_t*,  \
                                               const int64_t*, const int64_t*, const bool*, T_*, \
                                               T_*, const ReformerParams&);                      \
  template void reformer_attention_backward<T_>(                                                 \
      const T_*, const T_*, const T_*, const int64_t*, const int64_t*, const int64_t*,           \
      const bool*, const T_*, const T_*, const T_*, T_*, T_*, T_*, const ReformerParams&);     \
  template void reformer_buckets<T_>(const T_*, int64_t, int64_t, int64_t, int64_t, int64_t*);
LONGSEQ_INSTANTIATE_REFORMER(float)
LONGSEQ_INSTANTIATE_REFORMER(double)
#undef LONGSEQ_INSTANTIATE_REFORMER

}  // namespace longseq::cpu
