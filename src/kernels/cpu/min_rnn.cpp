// Fused minGRU / minLSTM (Feng et al. 2024, "Were RNNs All We Needed?") on CPU: the gates are
// computed inside the diagonal linear scan h_t = a_t ⊙ h_{t−1} + b_t, forward and backward, so
// the [B, T, H] gate tensors of the composite path (and their gradients) never exist.
//   minGRU:  z = σ(x_z), a = 1 − z, b = z ⊙ g(x_h)
//   minLSTM: f = σ(x_f), i = σ(x_i), a = f / (f + i), b = i / (f + i) ⊙ g(x_h)
//   g(x) = x + ½ for x ≥ 0, σ(x) for x < 0 (positive, continuous, as in the paper)
// A padded step (valid false) keeps the state: a = 1, b = 0, and its projection gets no gradient.
// Backward, reverse in T with the carried gradient c (c = 0 after the last step):
//   dh_t = dy_t + c;  da = dh_t ⊙ h_{t−1};  db = dh_t;  c ← a_t ⊙ dh_t;  dh0 = c at the end
//   minGRU:  dx_z = (db ⊙ g − da) ⊙ z(1 − z),  dx_h = db ⊙ z ⊙ g'(x_h)
//   minLSTM: with s = f + i: dx_f = (da − db ⊙ g) ⊙ i/s² ⊙ f(1 − f),
//            dx_i = (db ⊙ g − da) ⊙ f/s² ⊙ i(1 − i),  dx_h = db ⊙ (i/s) ⊙ g'(x_h)
//   g'(x) = 1 for x ≥ 0, σ(x)(1 − σ(x)) for x < 0.
// Time O(B·T·H) with 2–3 exps per element per pass; memory-bound otherwise. Extra memory: none.
// Forward saves for backward: its output h (the op keeps xp, valid and h0); gates are recomputed.
// Layout: row-major, contiguous xp [B, T, P·H], h [B, T, H], valid [B, T], h0 [B, H].
// Threads: at::parallel_for over (batch row, block of kChunk channels), sequential in T.
// Float loops are target_clones (vec_math.h), branch-free so they vectorise over channels.
#include "kernels/cpu/min_rnn.h"
#include "kernels/cpu/vec_math.h"

#include <ATen/Parallel.h>

#include <algorithm>

namespace longseq::cpu {
namespace {

constexpr int64_t kChunk = 64;  // channels per work item

// The gates of one channel: a, and b = w·g(x_h) split into its factors.
template <typename scalar_t>
struct Gates {
  scalar_t a, w, g;     // a_t, the weight on h̃ (z or i'), g(x_h)
  scalar_t s1, s2, dg;  // σ(x_z) or σ(x_f); σ(x_i) (minLSTM); g'(x_h)
};

template <bool kLstm, typename scalar_t>
LONGSEQ_INLINE Gates<scalar_t> gates(const scalar_t* xt, int64_t H, int64_t c) {
  Gates<scalar_t> q;
  const scalar_t xh = xt[(kLstm ? 2 : 1) * H + c];
  const scalar_t sh = sigmoid_fast(xh);
  const bool pos = xh >= 0;
  q.g = pos ? xh + scalar_t(0.5) : sh;
  q.dg = pos ? scalar_t(1) : sh * (scalar_t(1) - sh);
  q.s1 = sigmoid_fast(xt[c]);
  if (kLstm) {
    q.s2 = sigmoid_fast(xt[H + c]);
    const scalar_t inv = scalar_t(1) / (q.s1 + q.s2);
    q.a = q.s1 * inv;
    q.w = q.s2 * inv;
  } else {
    q.s2 = 0;
    q.a = scalar_t(1) - q.s1;
    q.w = q.s1;
  }
  return q;
}

// Forward over T for the cw channels [c0, c0 + cw) of one batch row.
template <bool kLstm, typename scalar_t>
LONGSEQ_INLINE void forward_rows_impl(const scalar_t* __restrict__ xp, const bool* valid,
                                      const scalar_t* __restrict__ h0, scalar_t* __restrict__ h,
                                      int64_t T, int64_t H, int64_t c0, int64_t cw) {
  constexpr int64_t P = kLstm ? 3 : 2;
  for (int64_t t = 0; t < T; ++t) {
    const scalar_t* xt = xp + t * P * H;
    const scalar_t* hp = t > 0 ? h + (t - 1) * H : h0;
    scalar_t* ht = h + t * H;
    if (valid && !valid[t]) {
      for (int64_t c = c0; c < c0 + cw; ++c) ht[c] = hp ? hp[c] : scalar_t(0);
      continue;
    }
    for (int64_t c = c0; c < c0 + cw; ++c) {
      const auto q = gates<kLstm>(xt, H, c);
      ht[c] = q.a * (hp ? hp[c] : scalar_t(0)) + q.w * q.g;
    }
  }
}

template <bool kLstm, typename scalar_t>
LONGSEQ_INLINE void backward_rows_impl(const scalar_t* __restrict__ xp, const bool* valid,
                                       const scalar_t* __restrict__ h0,
                                       const scalar_t* __restrict__ h,
                                       const scalar_t* __restrict__ dy, scalar_t* __restrict__ dxp,
                                       scalar_t* __restrict__ dh0, scalar_t* __restrict__ carry,
                                       int64_t T, int64_t H, int64_t c0, int64_t cw) {
  constexpr int64_t P = kLstm ? 3 : 2;
  std::fill(carry, carry + cw, scalar_t(0));
  for (int64_t t = T - 1; t >= 0; --t) {
    const scalar_t* xt = xp + t * P * H;
    const scalar_t* dyt = dy + t * H;
    const scalar_t* hp = t > 0 ? h + (t - 1) * H : h0;
    scalar_t* dxt = dxp + t * P * H;
    if (valid && !valid[t]) {  // a = 1, b = 0: the gradient passes through
      for (int64_t c = c0; c < c0 + cw; ++c) {
        carry[c - c0] += dyt[c];
        for (int64_t k = 0; k < P; ++k) dxt[k * H + c] = 0;
      }
      continue;
    }
    for (int64_t c = c0; c < c0 + cw; ++c) {
      const auto q = gates<kLstm>(xt, H, c);
      const scalar_t dh = dyt[c] + carry[c - c0];
      const scalar_t da = dh * (hp ? hp[c] : scalar_t(0));
      const scalar_t dbg = dh * q.g;  // db ⊙ g
      if (kLstm) {
        const scalar_t s = q.s1 + q.s2, inv2 = scalar_t(1) / (s * s);
        dxt[c] = (da - dbg) * q.s2 * inv2 * q.s1 * (scalar_t(1) - q.s1);
        dxt[H + c] = (dbg - da) * q.s1 * inv2 * q.s2 * (scalar_t(1) - q.s2);
        dxt[2 * H + c] = dh * q.w * q.dg;
      } else {
        dxt[c] = (dbg - da) * q.s1 * (scalar_t(1) - q.s1);
        dxt[H + c] = dh * q.w * q.dg;
      }
      carry[c - c0] = q.a * dh;
    }
  }
  if (dh0) {
    for (int64_t c = c0; c < c0 + cw; ++c) dh0[c] = carry[c - c0];
  }
}

template <typename scalar_t>
LONGSEQ_INLINE void forward_rows_any(bool lstm, const scalar_t* xp, const bool* valid,
                                     const scalar_t* h0, scalar_t* h, int64_t T, int64_t H,
                                     int64_t c0, int64_t cw) {
  if (lstm) {
    forward_rows_impl<true>(xp, valid, h0, h, T, H, c0, cw);
  } else {
    forward_rows_impl<false>(xp, valid, h0, h, T, H, c0, cw);
  }
}

template <typename scalar_t>
LONGSEQ_INLINE void backward_rows_any(bool lstm, const scalar_t* xp, const bool* valid,
                                      const scalar_t* h0, const scalar_t* h, const scalar_t* dy,
                                      scalar_t* dxp, scalar_t* dh0, scalar_t* carry, int64_t T,
                                      int64_t H, int64_t c0, int64_t cw) {
  if (lstm) {
    backward_rows_impl<true>(xp, valid, h0, h, dy, dxp, dh0, carry, T, H, c0, cw);
  } else {
    backward_rows_impl<false>(xp, valid, h0, h, dy, dxp, dh0, carry, T, H, c0, cw);
  }
}

void forward_rows(bool lstm, const double* xp, const bool* valid, const double* h0, double* h,
                  int64_t T, int64_t H, int64_t c0, int64_t cw) {
  forward_rows_any(lstm, xp, valid, h0, h, T, H, c0, cw);
}
LONGSEQ_ISA_CLONES void forward_rows(bool lstm, const float* xp, const bool* valid, const float* h0,
                                     float* h, int64_t T, int64_t H, int64_t c0, int64_t cw) {
  forward_rows_any(lstm, xp, valid, h0, h, T, H, c0, cw);
}
void backward_rows(bool lstm, const double* xp, const bool* valid, const double* h0,
                   const double* h, const double* dy, double* dxp, double* dh0, double* carry,
                   int64_t T, int64_t H, int64_t c0, int64_t cw) {
  backward_rows_any(lstm, xp, valid, h0, h, dy, dxp, dh0, carry, T, H, c0, cw);
}
LONGSEQ_ISA_CLONES void backward_rows(bool lstm, const float* xp, const bool* valid,
                                      const float* h0, const float* h, const float* dy, float* dxp,
                                      float* dh0, float* carry, int64_t T, int64_t H, int64_t c0,
                                      int64_t cw) {
  backward_rows_any(lstm, xp, valid, h0, h, dy, dxp, dh0, carry, T, H, c0, cw);
}

}  // namespace

template <typename scalar_t>
void min_rnn_forward(const scalar_t* xp, const bool* valid, const scalar_t* h0, scalar_t* h,
                     const MinRnnParams& p) {
  const int64_t B = p.batch, T = p.t, H = p.hidden, P = min_rnn_parts(p.kind);
  const int64_t nc = (H + kChunk - 1) / kChunk;
  const bool lstm = p.kind == MinRnnKind::kLstm;
  at::parallel_for(0, B * nc, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / nc, c0 = (item % nc) * kChunk, cw = std::min(kChunk, H - c0);
      forward_rows(lstm, xp + b * T * P * H, valid ? valid + b * T : nullptr,
                   h0 ? h0 + b * H : nullptr, h + b * T * H, T, H, c0, cw);
    }
  });
}

template <typename scalar_t>
void min_rnn_backward(const scalar_t* xp, const bool* valid, const scalar_t* h0, const scalar_t* h,
                      const scalar_t* grad_h, scalar_t* grad_xp, scalar_t* grad_h0,
                      const MinRnnParams& p) {
  const int64_t B = p.batch, T = p.t, H = p.hidden, P = min_rnn_parts(p.kind);
  const int64_t nc = (H + kChunk - 1) / kChunk;
  const bool lstm = p.kind == MinRnnKind::kLstm;
  at::parallel_for(0, B * nc, 1, [&](int64_t begin, int64_t end) {
    scalar_t carry[kChunk];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / nc, c0 = (item % nc) * kChunk, cw = std::min(kChunk, H - c0);
      backward_rows(lstm, xp + b * T * P * H, valid ? valid + b * T : nullptr,
                    h0 ? h0 + b * H : nullptr, h + b * T * H, grad_h + b * T * H,
                    grad_xp + b * T * P * H, grad_h0 ? grad_h0 + b * H : nullptr, carry, T, H, c0,
                    cw);
    }
  });
}

#define LONGSEQ_INSTANTIATE_MIN_RNN(T_)                                                            \
  template void min_rnn_forward<T_>(const T_*, const bool*, const T_*, T_*, const MinRnnParams&);  \
  template void min_rnn_backward<T_>(const T_*, const bool*, const T_*, const T_*, const T_*, T_*, \
                                     T_*, const MinRnnParams&);
LONGSEQ_INSTANTIATE_MIN_RNN(float)
LONGSEQ_INSTANTIATE_MIN_RNN(double)
#undef LONGSEQ_INSTANTIATE_MIN_RNN

}  // namespace longseq::cpu
