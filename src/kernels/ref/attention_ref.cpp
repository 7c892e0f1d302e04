// Naive attention loop (see attention_ref.h). Time O(B·H·T·S·D), memory O(S) per row.
#include "kernels/ref/attention_ref.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <vector>

namespace longseq::ref {

at::Tensor attention_naive(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                           const at::Tensor& allowed_in, double scale) {
  const auto q = q_in.to(at::kDouble).contiguous();
  const auto k = k_in.to(at::kDouble).contiguous();
  const auto v = v_in.to(at::kDouble).contiguous();
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
  const int64_t S = k.size(2), Dv = v.size(3);
  at::Tensor allowed;
  if (allowed_in.defined()) {
    allowed = allowed_in.to(at::kBool).expand({B, H, T, S}).contiguous();
  }
  auto out = at::zeros({B, H, T, Dv}, q.options());
  auto qa = q.accessor<double, 4>();
  auto ka = k.accessor<double, 4>();
  auto va = v.accessor<double, 4>();
  auto oa = out.accessor<double, 4>();
  const bool* mask = allowed.defined() ? allowed.data_ptr<bool>() : nullptr;
  std::vector<double> s(S);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < T; ++i) {
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < S; ++j) {
          if (mask && !mask[((b * H + h) * T + i) * S + j]) {
            s[j] = -std::numeric_limits<double>::infinity();
            continue;
          }
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += qa[b][h][i][d] * ka[b][h][j][d];
          s[j] = dot * scale;
          m = std::max(m, s[j]);
        }
        if (m == -std::numeric_limits<double>::infinity()) continue;  // no key: zero row
        double z = 0;
        for (int64_t j = 0; j < S; ++j) z += std::exp(s[j] - m);
        for (int64_t j = 0; j < S; ++j) {
          const double p = std::exp(s[j] - m) / z;
          if (p == 0) continue;
          for (int64_t d = 0; d < Dv; ++d) oa[b][h][i][d] += p * va[b][h][j][d];
        }
      }
    }
  }
  return out;
}

at::Tensor performer_causal_naive(const at::Tensor& fq_in, const at::Tensor& fk_in,
                                  const at::Tensor& v_in, const at::Tensor& m_in) {
  const auto fq = fq_in.to(at::kDouble).contiguous();
  const auto fk = fk_in.to(at::kDouble).contiguous();
  const auto v = v_in.to(at::kDouble).contiguous();
  const int64_t B = fq.size(0), H = fq.size(1), T = fq.size(2), R = fq.size(3), Dv = v.size(3);
  const auto m =
      m_in.defined() ? m_in.to(at::kDouble).contiguous() : at::zeros({B, H, T}, fq.options());
  auto out = at::zeros({B, H, T, Dv}, fq.options());
  auto qa = fq.accessor<double, 4>();
  auto ka = fk.accessor<double, 4>();
  auto va = v.accessor<double, 4>();
  auto ma = m.accessor<double, 3>();
  auto oa = out.accessor<double, 4>();
  std::vector<double> num(Dv);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t t = 0; t < T; ++t) {
        double den = 0;
        std::fill(num.begin(), num.end(), 0.0);
        for (int64_t j = 0; j <= t; ++j) {
          double dot = 0;
          for (int64_t r = 0; r < R; ++r) dot += qa[b][h][t][r] * ka[b][h][j][r];
          const double w = dot * std::exp(ma[b][h][j] - ma[b][h][t]);
          den += w;
          for (int64_t e = 0; e < Dv; ++e) num[e] += w * va[b][h][j][e];
        }
        if (den == 0) continue;
        for (int64_t e = 0; e < Dv; ++e) oa[b][h][t][e] = num[e] / den;
      }
    }
  }
  return out;
}

}  // namespace longseq::ref
