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

}  // namespace longseq::ref
