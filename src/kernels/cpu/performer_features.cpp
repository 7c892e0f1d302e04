// Fused FAVOR+ positive / relu random-feature maps on CPU (Choromanski et al. 2021, "Rethinking
// Attention with Performers"), the stabilisers of ops/performer_attention.cpp:
//   p = a·x ωᵀ (a = D^(-1/4)), one GEMM per block of rows, then in place:
//   softmax query: f = exp(p − max_r p) / √R
//   softmax key:   s = p − a²|x|²/2; f = exp(s − m_t) / √R, 0 for padded keys, with m_t the running
//                  max over keys j ≤ t of max_r s_jr (causal) or one max over the head's keys; a
//                  padded key counts as the head's minimum of s (it never raises the max)
//   relu:          f = relu(p) / √R + floor (keys: times valid)
// Backward (the stabilisers are constants): with h = grad_f ⊙ f (softmax) or
// grad_f ⊙ 1[p > 0] / √R (relu, p recomputed by one GEMM),
//   grad_x = a·h ω − a²·x·Σ_r h_r (the second term for softmax keys only), one GEMM per block.
// The composite path builds p, its max, the norm term, the exponent and f as separate [T, R]
// tensors and keeps several for autograd; this keeps f only.
//
// Time O(B·H·T·R·D). Extra memory: per-thread [rows, R] buffers; the key map's per-row maxima and
// minima [B·H, T].
// Layout: row-major, contiguous x [B·H, T, D], omega [R, D], f [B·H, T, R], m [B·H, T],
// key_padding bool [B, T].
// Threads: at::parallel_for over (head, block of rows); the key stabiliser's running max is a
// sequential pass per head over T scalars. BLAS on one thread inside (blas.h).
#include "kernels/cpu/performer_features.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/row_ops.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace longseq::cpu {
namespace {

// Rows per GEMM block: within OpenBLAS's small-matrix limit (32 at R = 256, D = 64), with ω
// transposed so that p = a·x ωᵀ is a plain product too (blas.h, small_gemm_rows).
int64_t block_rows(const PerformerFeatureParams& p) { return small_gemm_rows(p.r, p.d, 256); }

// ωᵀ [D, R]
template <typename scalar_t>
std::vector<scalar_t> transposed(const scalar_t* omega, int64_t r, int64_t d) {
  std::vector<scalar_t> t(r * d);
  transpose_rows(omega, r, d, d, t.data(), r);
  return t;
}

bool is_relu(FeatureMap map) {
  return map == FeatureMap::kReluQuery || map == FeatureMap::kReluKey;
}
bool is_key(FeatureMap map) {
  return map == FeatureMap::kSoftmaxKey || map == FeatureMap::kReluKey;
}

// Calls fn(bh, t0, n) for every block of rows, in parallel.
template <typename F>
void for_each_block(const PerformerFeatureParams& p, const F& fn) {
  const int64_t rows = block_rows(p), per_head = (p.t + rows - 1) / rows;
  at::parallel_for(0, p.batch * p.heads * per_head, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bh = item / per_head, t0 = (item % per_head) * rows;
      fn(bh, t0, std::min(rows, p.t - t0));
    }
  });
}

}  // namespace

template <typename scalar_t>
void performer_features_forward(const scalar_t* x, const scalar_t* omega, const bool* key_padding,
                                scalar_t* f, scalar_t* m, const PerformerFeatureParams& p) {
  const int64_t T = p.t, D = p.d, R = p.r;
  const scalar_t a = static_cast<scalar_t>(p.in_scale);
  const scalar_t inv_sqrt_r = static_cast<scalar_t>(1.0 / std::sqrt(static_cast<double>(R)));
  const scalar_t floor = static_cast<scalar_t>(p.relu_floor);
  const bool key = is_key(p.map);
  auto valid = [&](int64_t bh, int64_t t) {
    return !key || !key_padding || key_padding[(bh / p.heads) * T + t];
  };
  // Softmax keys: per-row max and min of s, then the stabiliser, then the exponent.
  std::vector<scalar_t> row_min;
  if (p.map == FeatureMap::kSoftmaxKey) row_min.resize(p.batch * p.heads * T);
  const std::vector<scalar_t> omega_t = transposed(omega, R, D);
  BlasSingleThread blas_guard;
  for_each_block(p, [&](int64_t bh, int64_t t0, int64_t n) {
    const scalar_t* xb = x + (bh * T + t0) * D;
    scalar_t* fb = f + (bh * T + t0) * R;
    gemm(false, false, n, R, D, a, xb, D, omega_t.data(), R, scalar_t(0), fb, R);  // p = a·x ωᵀ
    for (int64_t i = 0; i < n; ++i) {
      scalar_t* row = fb + i * R;
      switch (p.map) {
        case FeatureMap::kSoftmaxQuery:
          exp_shift_row(row, R, row_max(row, R));
          scale_row(row, R, inv_sqrt_r);
          break;
        case FeatureMap::kSoftmaxKey: {
          const scalar_t half_norm = a * a * dot_row(xb + i * D, xb + i * D, D) / 2;
          row_min[bh * T + t0 + i] = shift_row_min(row, R, half_norm);  // s = p − a²|x|²/2
          m[bh * T + t0 + i] = row_max(row, R);
          break;
        }
        case FeatureMap::kReluQuery:
        case FeatureMap::kReluKey: {
          if (!valid(bh, t0 + i)) {
            std::fill(row, row + R, scalar_t(0));
            break;
          }
          relu_affine_row(row, R, inv_sqrt_r, floor);
          break;
        }
      }
    }
  });
  if (p.map != FeatureMap::kSoftmaxKey) return;
  at::parallel_for(0, p.batch * p.heads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bh = begin; bh < end; ++bh) {
      scalar_t* mh = m + bh * T;
      const scalar_t* mn = row_min.data() + bh * T;
      const scalar_t lowest = *std::min_element(mn, mn + T);
      for (int64_t t = 0; t < T; ++t) {
        if (!valid(bh, t)) mh[t] = lowest;
      }
      if (p.causal) {
        for (int64_t t = 1; t < T; ++t) mh[t] = std::max(mh[t], mh[t - 1]);
      } else {
        std::fill(mh, mh + T, *std::max_element(mh, mh + T));
      }
    }
  });
  for_each_block(p, [&](int64_t bh, int64_t t0, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      scalar_t* row = f + (bh * T + t0 + i) * R;
      if (!valid(bh, t0 + i)) {
        std::fill(row, row + R, scalar_t(0));
        continue;
      }
      exp_shift_row(row, R, m[bh * T + t0 + i]);
      scale_row(row, R, inv_sqrt_r);
    }
  });
}

template <typename scalar_t>
void performer_features_backward(const scalar_t* x, const scalar_t* omega, const bool* key_padding,
                                 const scalar_t* f, const scalar_t* grad_f, scalar_t* grad_x,
                                 const PerformerFeatureParams& p) {
  const int64_t T = p.t, D = p.d, R = p.r;
  const scalar_t a = static_cast<scalar_t>(p.in_scale);
  const scalar_t inv_sqrt_r = static_cast<scalar_t>(1.0 / std::sqrt(static_cast<double>(R)));
  const bool key = is_key(p.map), relu = is_relu(p.map);
  const std::vector<scalar_t> omega_t = relu ? transposed(omega, R, D) : std::vector<scalar_t>();
  BlasSingleThread blas_guard;
  const int64_t rows = block_rows(p), per_head = (T + rows - 1) / rows;
  at::parallel_for(0, p.batch * p.heads * per_head, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> h(rows * R), hsum(rows);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bh = item / per_head, t0 = (item % per_head) * rows;
      const int64_t n = std::min(rows, T - t0);
      const scalar_t* xb = x + (bh * T + t0) * D;
      const scalar_t* fb = f + (bh * T + t0) * R;
      const scalar_t* gb = grad_f + (bh * T + t0) * R;
      scalar_t* gx = grad_x + (bh * T + t0) * D;
      if (relu) gemm(false, false, n, R, D, a, xb, D, omega_t.data(), R, scalar_t(0), h.data(), R);
      for (int64_t i = 0; i < n; ++i) {
        scalar_t* hr = h.data() + i * R;
        const scalar_t* fr = fb + i * R;
        const scalar_t* gr = gb + i * R;
        const bool ok = !key || !key_padding || key_padding[(bh / p.heads) * T + t0 + i];
        if (!ok) {
          std::fill(hr, hr + R, scalar_t(0));
          hsum[i] = 0;
        } else if (relu) {
          relu_grad_row(hr, gr, R, inv_sqrt_r);
        } else {
          hsum[i] = mul_row_sum(hr, gr, fr, R);
        }
      }
      gemm(false, false, n, D, R, a, h.data(), R, omega, D, scalar_t(0), gx, D);  // a·h ω
      if (p.map == FeatureMap::kSoftmaxKey) {
        for (int64_t i = 0; i < n; ++i)
          axpy_row(gx + i * D, xb + i * D, -a * a * hsum[i], D);  // − a²·x·Σ_r h_r
      }
    }
  });
}

#define LONGSEQ_INSTANTIATE_FEATURES(T_)                                                      \
  template void performer_features_forward<T_>(const T_*, const T_*, const bool*, T_*, T_*,   \
                                               const PerformerFeatureParams&);                \
  template void performer_features_backward<T_>(const T_*, const T_*, const bool*, const T_*, \
                                                const T_*, T_*, const PerformerFeatureParams&);
LONGSEQ_INSTANTIATE_FEATURES(float)
LONGSEQ_INSTANTIATE_FEATURES(double)
#undef LONGSEQ_INSTANTIATE_FEATURES

}  // namespace longseq::cpu
