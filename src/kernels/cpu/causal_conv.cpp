// Fused causal depthwise 1-D convolution on CPU, channels last: the short convolution before
// Mamba's selective scan (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective
// State Spaces", Section 3.4):
//   out[b, t, e] = bias[e] + Σ_{k<K} w[e, k] · full[b, t + k, e],   full = [prefix; x] in time,
// so output t sees inputs t − K + 1 .. t (prefix [B, K − 1, E]: the inputs before x, zeros if
// absent). The composite path (ops/causal_conv.cpp) concatenates the prefix, transposes to
// [B, E, T] for at::conv1d and back, and its backward does the same: about 1.5 GB of copies per
// fwd+bwd at B = 8, T = 4096, E = 512. Here no copy is made.
//
// Algorithm. Forward, per work item (batch b, block of kRows output rows): each output row is K
// vector multiply-adds over the E contiguous channels, with the weights transposed once to [K, E].
// Backward: grad_full[b, f, e] = Σ_k w[e, k] · dout[b, f − k, e] over 0 <= f − k < T, per item
// (b, block of kRows rows of full), split into grad_prefix (f < K − 1) and grad_x; then
// grad_w[e, k] = Σ_{b, t} dout[b, t, e] · full[b, t + k, e] and grad_bias[e] = Σ_{b, t} dout[b, t, e]
// as one partial [K + 1, E] per item (b, block of kRows output rows), summed in item order at the
// end: the items follow the shapes, not the thread count, so the bits do not either.
//
// Time O(B·T·E·K) forward and about twice that backward; memory-bound (x in, out out; backward
// x, dout in, dx out). Extra memory: the transposed weights [K, E], a zero row [E], and backward
// the partials [items, K + 1, E] (items = B·⌈T / kRows⌉, so (K + 1)/kRows of x's size).
// Layout: row-major, contiguous: x, out, grad_out, grad_x [B, T, E]; w [E, K]; bias [E];
// prefix [B, K − 1, E].
// Threads: at::parallel_for over the work items; this file is compiled with -fopenmp (see
// flash_attention.cpp). The row loops are row_ops.h's target_clones.
#include "kernels/cpu/causal_conv.h"
#include "kernels/cpu/row_ops.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

namespace longseq::cpu {
namespace {

constexpr int64_t kRows = 256;  // rows per work item

// Row f of full = [prefix; x] for batch b: a prefix row (or the zero row) for f < K − 1.
template <typename scalar_t>
const scalar_t* full_row(const scalar_t* x, const scalar_t* prefix, const scalar_t* zeros,
                         const CausalConvParams& p, int64_t b, int64_t f) {
  const int64_t P = p.width - 1, E = p.channels;
  if (f >= P) return x + (b * p.t + f - P) * E;
  return prefix ? prefix + (b * P + f) * E : zeros;
}

// Runs f(b, r0, r1, item) on each item: batch row b and its rows [r0, r1), kRows at a time, the
// items spread over the threads.
template <typename F>
void for_each_item(int64_t batch, int64_t rows, const F& f) {
  const int64_t blocks = (rows + kRows - 1) / kRows;
  at::parallel_for(0, batch * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / blocks, r0 = (item % blocks) * kRows;
      f(b, r0, std::min(rows, r0 + kRows), item);
    }
  });
}

// w [E, K] -> [K, E]
template <typename scalar_t>
std::vector<scalar_t> taps_by_row(const scalar_t* w, const CausalConvParams& p) {
  const int64_t E = p.channels, K = p.width;
  std::vector<scalar_t> wt(K * E);
  for (int64_t e = 0; e < E; ++e)
    for (int64_t k = 0; k < K; ++k) wt[k * E + e] = w[e * K + k];
  return wt;
}

}  // namespace

template <typename scalar_t>
void causal_conv_forward(const scalar_t* x, const scalar_t* w, const scalar_t* bias,
                         const scalar_t* prefix, scalar_t* out, const CausalConvParams& p) {
  const int64_t B = p.batch, T = p.t, E = p.channels, K = p.width;
  const auto wt = taps_by_row(w, p);
  const std::vector<scalar_t> zeros(E, scalar_t(0));
  for_each_item(B, T, [&](int64_t b, int64_t t0, int64_t t1, int64_t) {
    for (int64_t t = t0; t < t1; ++t) {
      scalar_t* o = out + (b * T + t) * E;
      if (bias) {
        std::copy(bias, bias + E, o);
      } else {
        std::fill(o, o + E, scalar_t(0));
      }
      for (int64_t k = 0; k < K; ++k)
        mul_add_row(o, wt.data() + k * E, full_row(x, prefix, zeros.data(), p, b, t + k), E);
    }
  });
}

template <typename scalar_t>
void causal_conv_backward(const scalar_t* x, const scalar_t* w, const scalar_t* prefix,
                          const scalar_t* grad_out, scalar_t* grad_x, scalar_t* grad_w,
                          scalar_t* grad_bias, scalar_t* grad_prefix, const CausalConvParams& p) {
  const int64_t B = p.batch, T = p.t, E = p.channels, K = p.width, P = K - 1, F = P + T;
  const auto wt = taps_by_row(w, p);
  const std::vector<scalar_t> zeros(E, scalar_t(0));
  // grad_full row f = Σ_k w_k ⊙ dout_{f − k}
  for_each_item(B, F, [&](int64_t b, int64_t f0, int64_t f1, int64_t) {
    for (int64_t f = f0; f < f1; ++f) {
      scalar_t* g = f >= P ? grad_x + (b * T + f - P) * E
                           : (grad_prefix ? grad_prefix + (b * P + f) * E : nullptr);
      if (!g) continue;
      std::fill(g, g + E, scalar_t(0));
      for (int64_t k = std::max<int64_t>(0, f - T + 1); k < K && k <= f; ++k)
        mul_add_row(g, wt.data() + k * E, grad_out + (b * T + f - k) * E, E);
    }
  });
  // Partials of grad_w (as [K, E]) and grad_bias per item (b, block of output rows).
  const int64_t blocks = (T + kRows - 1) / kRows, items = B * blocks;
  std::vector<scalar_t> part(items * (K + 1) * E);
  for_each_item(B, T, [&](int64_t b, int64_t t0, int64_t t1, int64_t item) {
    scalar_t* pw = part.data() + item * (K + 1) * E;  // [K, E], then the bias row
    std::fill(pw, pw + (K + 1) * E, scalar_t(0));
    for (int64_t t = t0; t < t1; ++t) {
      const scalar_t* d = grad_out + (b * T + t) * E;
      for (int64_t k = 0; k < K; ++k)
        mul_add_row(pw + k * E, d, full_row(x, prefix, zeros.data(), p, b, t + k), E);
      axpy_row(pw + K * E, d, scalar_t(1), E);
    }
  });
  // Summed in item order, over blocks of channels in parallel (each channel's sums are one
  // thread's, in the same order on any thread count).
  at::parallel_for(0, E, 64, [&](int64_t e0, int64_t e1) {
    const int64_t n = e1 - e0;
    std::vector<scalar_t> acc((K + 1) * n, scalar_t(0));
    for (int64_t item = 0; item < items; ++item)
      for (int64_t k = 0; k <= K; ++k)
        axpy_row(acc.data() + k * n, part.data() + (item * (K + 1) + k) * E + e0, scalar_t(1), n);
    for (int64_t e = e0; e < e1; ++e) {
      for (int64_t k = 0; k < K; ++k) grad_w[e * K + k] = acc[k * n + e - e0];
      if (grad_bias) grad_bias[e] = acc[K * n + e - e0];
    }
  });
}

#define LONGSEQ_INSTANTIATE_CAUSAL_CONV(T_)                                                    \
  template void causal_conv_forward<T_>(const T_*, const T_*, const T_*, const T_*, T_*,       \
                                        const CausalConvParams&);                              \
  template void causal_conv_backward<T_>(const T_*, const T_*, const T_*, const T_*, T_*, T_*, \
                                         T_*, T_*, const CausalConvParams&);
LONGSEQ_INSTANTIATE_CAUSAL_CONV(float)
LONGSEQ_INSTANTIATE_CAUSAL_CONV(double)
#undef LONGSEQ_INSTANTIATE_CAUSAL_CONV

}  // namespace longseq::cpu
