// Naive scan loops (see scan_ref.h). Time O(B·T·C) and O(B·T·E·N); memory O(1) and O(N) beyond
// the output.
#include "kernels/ref/scan_ref.h"

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

namespace longseq::ref {
namespace {

at::Tensor to_f64(const at::Tensor& x) { return x.to(at::kCPU).to(at::kDouble).contiguous(); }

}  // namespace

at::Tensor linear_scan_naive(const at::Tensor& a_in, const at::Tensor& b_in,
                             const at::Tensor& h0_in) {
  const auto a = to_f64(a_in), b = to_f64(b_in);
  const int64_t B = a.size(0), T = a.size(1), C = a.size(2);
  auto h = at::zeros({B, T, C}, a.options());
  auto aa = a.accessor<double, 3>(), ba = b.accessor<double, 3>(), ha = h.accessor<double, 3>();
  const auto h0 = h0_in.defined() ? to_f64(h0_in) : at::zeros({B, C}, a.options());
  auto h0a = h0.accessor<double, 2>();
  for (int64_t i = 0; i < B; ++i) {
    for (int64_t c = 0; c < C; ++c) {
      double state = h0a[i][c];
      for (int64_t t = 0; t < T; ++t) {
        state = aa[i][t][c] * state + ba[i][t][c];
        ha[i][t][c] = state;
      }
    }
  }
  return h;
}

std::tuple<at::Tensor, at::Tensor> selective_scan_naive(
    const at::Tensor& u_in, const at::Tensor& delta_in, const at::Tensor& A_in,
    const at::Tensor& Bm_in, const at::Tensor& Cm_in, const at::Tensor& D_in,
    const at::Tensor& h0_in) {
  const auto u = to_f64(u_in), delta = to_f64(delta_in), A = to_f64(A_in), Bm = to_f64(Bm_in),
             Cm = to_f64(Cm_in);
  const int64_t B = u.size(0), T = u.size(1), E = u.size(2), N = A.size(1);
  const auto D = D_in.defined() ? to_f64(D_in) : at::zeros({E}, u.options());
  const auto h0 = h0_in.defined() ? to_f64(h0_in) : at::zeros({B, E, N}, u.options());
  auto y = at::zeros({B, T, E}, u.options());
  auto h_last = at::zeros({B, E, N}, u.options());
  auto ua = u.accessor<double, 3>(), da = delta.accessor<double, 3>();
  auto Aa = A.accessor<double, 2>();
  auto Ba = Bm.accessor<double, 3>(), Ca = Cm.accessor<double, 3>();
  auto Da = D.accessor<double, 1>();
  auto h0a = h0.accessor<double, 3>();
  auto ya = y.accessor<double, 3>(), hla = h_last.accessor<double, 3>();
  std::vector<double> h(N);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t e = 0; e < E; ++e) {
      for (int64_t n = 0; n < N; ++n) h[n] = h0a[b][e][n];
      for (int64_t t = 0; t < T; ++t) {
        const double dt = da[b][t][e], ut = ua[b][t][e];
        double out = Da[e] * ut;
        for (int64_t n = 0; n < N; ++n) {
          h[n] = std::exp(dt * Aa[e][n]) * h[n] + dt * Ba[b][t][n] * ut;
          out += Ca[b][t][n] * h[n];
        }
        ya[b][t][e] = out;
      }
      for (int64_t n = 0; n < N; ++n) hla[b][e][n] = h[n];
    }
  }
  return {y, h_last};
}

}  // namespace longseq::ref
