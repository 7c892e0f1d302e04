// The LMU memory (see longseq/lmu.h): the LTI system, its FFT convolution and its recurrence.
// Time O(B·U·d·T log T) for the convolution (plus O(T·d²) once for the impulse response),
// O(B·U·d²·T) for the recurrence; memory O(B·U·d·T) either way (the output). No fused kernel: the
// FFT path runs on any device, differentiated by autograd.
#include <longseq/lmu.h>

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

namespace longseq {
namespace {

void check_memory_inputs(const char* op, const at::Tensor& u, const at::Tensor& a_bar,
                         const at::Tensor& b_bar) {
  TORCH_CHECK(u.defined() && u.dim() == 3, op, ": expected 3-D `u` [B, T, U], got ",
              u.defined() ? u.dim() : 0, "-D");
  TORCH_CHECK(at::isFloatingType(u.scalar_type()), op, ": expected floating `u`, got ",
              u.scalar_type());
  TORCH_CHECK(a_bar.defined() && a_bar.dim() == 2 && a_bar.size(0) == a_bar.size(1), op,
              ": expected square `a_bar` [d, d], got ",
              a_bar.defined() ? a_bar.sizes() : at::IntArrayRef{});
  TORCH_CHECK(b_bar.defined() && b_bar.dim() == 1 && b_bar.size(0) == a_bar.size(0), op,
              ": expected `b_bar` [d] with d = ", a_bar.size(0), ", got ",
              b_bar.defined() ? b_bar.sizes() : at::IntArrayRef{});
}

}  // namespace

LmuSystem lmu_system(int64_t order, double window) {
  TORCH_CHECK(order > 0, "lmu_system: expected `order` > 0, got ", order);
  TORCH_CHECK(window > 0, "lmu_system: expected `window` > 0, got ", window);
  const int64_t d = order;
  auto A = at::zeros({d, d}, at::kDouble), B = at::zeros({d}, at::kDouble);
  for (int64_t i = 0; i < d; ++i) {
    B[i] = (2.0 * i + 1) * (i % 2 == 0 ? 1.0 : -1.0);
    for (int64_t j = 0; j < d; ++j) {
      A[i][j] = (2.0 * i + 1) * (i < j ? -1.0 : ((i - j + 1) % 2 == 0 ? 1.0 : -1.0));
    }
  }
  A = A / window;
  B = B / window;
  // Zero-order hold with step 1: Ā = e^A, B̄ = A⁻¹ (Ā − I) B.
  auto a_bar = at::linalg_matrix_exp(A);  // [d, d]
  auto b_bar = at::linalg_solve(A, at::matmul(a_bar - at::eye(d, at::kDouble), B.unsqueeze(1)))
                   .squeeze(1);  // [d]
  return {a_bar, b_bar};
}

at::Tensor lmu_memory(const at::Tensor& u, const at::Tensor& a_bar, const at::Tensor& b_bar) {
  check_memory_inputs("lmu_memory", u, a_bar, b_bar);
  const int64_t B = u.size(0), T = u.size(1), U = u.size(2), d = a_bar.size(0);
  if (T == 0) return u.new_zeros({B, 0, U, d});
  // Impulse response H_k = Āᵏ B̄, k < T, in float64 (it is fixed; rounding would accumulate).
  auto resp = at::empty({T, d}, at::kDouble);  // [T, d]
  auto cur = b_bar.detach().to(at::kCPU, at::kDouble);
  auto at_t = a_bar.detach().to(at::kCPU, at::kDouble).t();
  for (int64_t k = 0; k < T; ++k) {
    resp[k] = cur;
    cur = at::matmul(cur, at_t);  // Āᵏ⁺¹ B̄ as a row
  }
  int64_t n = 1;
  while (n < 2 * T) n *= 2;
  auto uf = at::fft_rfft(u.transpose(1, 2).to(at::kDouble), n, -1);               // [B, U, n/2+1]
  auto hf = at::fft_rfft(resp.t().to(u.device()), n, -1);                         // [d, n/2+1]
  auto m = at::fft_irfft(uf.unsqueeze(2) * hf.unsqueeze(0).unsqueeze(0), n, -1);  // [B, U, d, n]
  return m.narrow(3, 0, T).permute({0, 3, 1, 2}).to(u.scalar_type());             // [B, T, U, d]
}

at::Tensor lmu_memory_recurrent(const at::Tensor& u, const at::Tensor& a_bar,
                                const at::Tensor& b_bar, const at::Tensor& m0) {
  check_memory_inputs("lmu_memory_recurrent", u, a_bar, b_bar);
  const int64_t B = u.size(0), T = u.size(1), U = u.size(2), d = a_bar.size(0);
  TORCH_CHECK(!m0.defined() || m0.sizes() == at::IntArrayRef({B, U, d}),
              "lmu_memory_recurrent: expected `m0` of shape [B, U, d] = [", B, ", ", U, ", ", d,
              "], got ", m0.sizes());
  auto a_t = a_bar.to(u.options()).t(), b = b_bar.to(u.options());
  auto m = m0.defined() ? m0 : u.new_zeros({B, U, d});  // [B, U, d]
  if (T == 0) return u.new_zeros({B, 0, U, d});
  std::vector<at::Tensor> ms;
  ms.reserve(T);
  for (int64_t t = 0; t < T; ++t) {
    m = at::matmul(m, a_t) + u.select(1, t).unsqueeze(-1) * b;  // [B, U, d]
    ms.push_back(m);
  }
  return at::stack(ms, 1);  // [B, T, U, d]
}

at::Tensor lmu_legendre_decoder(int64_t order, double r) {
  // P̃_i(r) = (−1)^i Σ_j C(i, j) C(i + j, j) (−r)^j  (Voelker et al. 2019, eq. 3)
  auto out = at::zeros({order}, at::kDouble);
  for (int64_t i = 0; i < order; ++i) {
    double sum = 0, binom_ij = 1, binom_i_plus_j = 1;  // C(i, 0), C(i, 0)
    for (int64_t j = 0; j <= i; ++j) {
      if (j > 0) {
        binom_ij *= static_cast<double>(i - j + 1) / j;
        binom_i_plus_j *= static_cast<double>(i + j) / j;
      }
      sum += binom_ij * binom_i_plus_j * std::pow(-r, static_cast<double>(j));
    }
    out[i] = (i % 2 == 0 ? 1.0 : -1.0) * sum;
  }
  return out;
}

}  // namespace longseq
