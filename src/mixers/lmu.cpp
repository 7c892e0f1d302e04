// Legendre Memory Unit, parallel form (see include/longseq/mixers/lmu.h).
#include <longseq/mixers/lmu.h>
#include <longseq/registry.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <cmath>

namespace longseq {
namespace {

const OptionSet<LmuOptions>& lmu_options() {
  using O = LmuOptions;
  static const auto set =
      OptionSet<O>(O(MixerConfig{}))
          .add(option("order", &O::order, "d, Legendre coefficients per memory channel")
                   .positive()
                   .tests({"6"}))
          .add(option("window", &O::window, "theta, history length in steps")
                   .positive()
                   .tests({"8"}))
          .add(option("channels", &O::channels, "U, memorised input signals")
                   .positive()
                   .tests({"2"}));
  return set;
}

}  // namespace

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

LmuImpl::LmuImpl(const LmuOptions& options) : SequenceMixerImpl("lmu", options.common()), options_(options) {
  const auto& o = options_;
  lmu_options().check(o, name_);
  const int64_t d = o.order();
  auto A = at::zeros({d, d}, at::kDouble), B = at::zeros({d}, at::kDouble);
  for (int64_t i = 0; i < d; ++i) {
    B[i] = (2.0 * i + 1) * (i % 2 == 0 ? 1.0 : -1.0);
    for (int64_t j = 0; j < d; ++j) {
      A[i][j] = (2.0 * i + 1) * (i < j ? -1.0 : ((i - j + 1) % 2 == 0 ? 1.0 : -1.0));
    }
  }
  A = A / o.window();
  B = B / o.window();
  // Zero-order hold with step 1: Ā = e^A, B̄ = A⁻¹ (Ā − I) B.
  auto a_bar = at::linalg_matrix_exp(A);                                          // [d, d]
  auto b_bar = at::linalg_solve(A, at::matmul(a_bar - at::eye(d, at::kDouble), B.unsqueeze(1)))
                   .squeeze(1);                                                   // [d]
  a_bar_ = register_buffer("a_bar", a_bar);
  b_bar_ = register_buffer("b_bar", b_bar);
  const int64_t C = config_.dim, U = o.channels();
  in_ = register_module("in", torch::nn::Linear(C, U));
  hidden_ = register_module("hidden", torch::nn::Linear(C + U * d, C));
  out_ = register_module("out", torch::nn::Linear(torch::nn::LinearOptions(C, C).bias(config_.bias)));
}

at::Tensor LmuImpl::memory(const at::Tensor& u) const {
  const int64_t T = u.size(1), d = options_.order();
  // Impulse response H_k = Āᵏ B̄, k < T, in float64 (it is fixed; rounding would accumulate).
  auto resp = at::empty({T, d}, at::kDouble);                                     // [T, d]
  auto cur = b_bar_.to(at::kDouble);
  auto at_t = a_bar_.to(at::kDouble).t();
  for (int64_t k = 0; k < T; ++k) {
    resp[k] = cur;
    cur = at::matmul(cur, at_t);  // Āᵏ⁺¹ B̄ as a row
  }
  int64_t n = 1;
  while (n < 2 * T) n *= 2;
  auto uf = at::fft_rfft(u.transpose(1, 2).to(at::kDouble), n, -1);               // [B, U, n/2+1]
  auto hf = at::fft_rfft(resp.t(), n, -1);                                        // [d, n/2+1]
  auto m = at::fft_irfft(uf.unsqueeze(2) * hf.unsqueeze(0).unsqueeze(0), n, -1);  // [B, U, d, n]
  return m.narrow(3, 0, T).permute({0, 3, 1, 2}).to(u.scalar_type());             // [B, T, U, d]
}

at::Tensor LmuImpl::memory_recurrent(const at::Tensor& u, const at::Tensor& m0) const {
  const int64_t B = u.size(0), T = u.size(1), U = u.size(2), d = options_.order();
  auto a_t = a_bar_.to(u.scalar_type()).t(), b = b_bar_.to(u.scalar_type());
  auto m = m0.defined() ? m0 : u.new_zeros({B, U, d});                            // [B, U, d]
  std::vector<at::Tensor> ms;
  for (int64_t t = 0; t < T; ++t) {
    m = at::matmul(m, a_t) + u.select(1, t).unsqueeze(-1) * b;                    // [B, U, d]
    ms.push_back(m);
  }
  return at::stack(ms, 1);                                                        // [B, T, U, d]
}

at::Tensor LmuImpl::output(const at::Tensor& x, const at::Tensor& m) {
  auto feats = at::cat({x, m.flatten(2)}, 2);                                     // [B, T, C + U·d]
  return out_->forward(at::tanh(hidden_->forward(feats)));                        // [B, T, C]
}

at::Tensor LmuImpl::forward(const at::Tensor& x, const at::Tensor& key_padding) {
  check_input(x, key_padding);
  auto u = in_->forward(x);                                                        // [B, T, U]
  // Padded steps write nothing; with right padding real positions never see them.
  if (key_padding.defined()) u = u.masked_fill(key_padding.logical_not().unsqueeze(-1), 0.0);
  return output(x, memory(u));
}

at::Tensor LmuImpl::step(const at::Tensor& x, DecodeState& state) {
  check_input(x, {});
  auto& m0 = state.tensors["m"];  // [B, U, d]
  auto m = memory_recurrent(in_->forward(x), m0);                                  // [B, n, U, d]
  m0 = m.select(1, m.size(1) - 1);
  state.position += x.size(1);
  return output(x, m);
}


MixerSpec lmu_mixer_spec() {
  return mixer_spec<Lmu>(
      "lmu",
      "Legendre Memory Unit: the input history over a window held as Legendre coefficients by a "
      "fixed LTI system; FFT convolution, O(T log T)",
      lmu_options());
}

}  // namespace longseq
