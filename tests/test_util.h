#pragma once
// Shared test helpers: tensor comparison with a useful failure message, central-difference
// gradient checks in float64.

#include <longseq/attention.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <sstream>
#include <string>

namespace longseq::test {

/// The attention mask of a test case: causal or not, with optional key padding [B, S].
inline AttentionMask mask_of(bool causal, const at::Tensor& key_padding = {}) {
  AttentionMask m;
  m.causal = causal;
  m.key_padding = key_padding;
  return m;
}

/// Compares `got` to `want` (any dtypes; compared in float64). Passes when max abs error <=
/// atol + rtol·|want| elementwise. Reports normalised error, max abs error and the first bad index.
inline ::testing::AssertionResult all_close(const at::Tensor& got, const at::Tensor& want,
                                            double rtol, double atol) {
  if (got.sizes() != want.sizes()) {
    return ::testing::AssertionFailure() << "shape " << got.sizes() << " != " << want.sizes();
  }
  auto g = got.detach().to(at::kDouble).contiguous().view(-1);
  auto w = want.detach().to(at::kDouble).contiguous().view(-1);
  if (g.numel() == 0) return ::testing::AssertionSuccess();
  auto err = (g - w).abs();
  auto bad = (err > atol + rtol * w.abs()).logical_or(g.isnan()).logical_or(w.isnan());
  if (!bad.any().item<bool>()) return ::testing::AssertionSuccess();
  const int64_t first = bad.nonzero()[0][0].item<int64_t>();
  const double norm_err = ((g - w).norm() / (w.norm() + 1e-300)).item<double>();
  std::vector<int64_t> idx(got.dim());
  int64_t rem = first;
  for (int64_t d = got.dim() - 1; d >= 0; --d) {
    idx[d] = rem % got.size(d);
    rem /= got.size(d);
  }
  std::ostringstream os;
  os << "normalised error " << norm_err << ", max abs error "
     << err.nan_to_num(1e300).max().item<double>() << ", first bad index [";
  for (size_t i = 0; i < idx.size(); ++i) os << (i ? ", " : "") << idx[i];
  os << "]: got " << g[first].item<double>() << ", want " << w[first].item<double>();
  return ::testing::AssertionFailure() << os.str();
}

/// ‖got - want‖ / ‖want‖.
inline double rel_error(const at::Tensor& got, const at::Tensor& want) {
  auto g = got.detach().to(at::kDouble), w = want.detach().to(at::kDouble);
  return ((g - w).norm() / w.norm()).item<double>();
}

/// Central-difference gradient check in float64: compares the autograd gradient of
/// sum(f(inputs) * probe) w.r.t. each input with (L(x+eps) - L(x-eps)) / 2eps.
inline ::testing::AssertionResult gradcheck(
    const std::function<at::Tensor(const std::vector<at::Tensor>&)>& f,
    std::vector<at::Tensor> inputs, double eps = 1e-6, double tol = 1e-5) {
  for (auto& x : inputs) x = x.detach().to(at::kDouble).requires_grad_(true);
  auto out = f(inputs);
  auto probe = torch::randn_like(out);
  auto loss = (out * probe).sum();
  auto grads = torch::autograd::grad({loss}, inputs, {}, false, false, true);
  torch::NoGradGuard no_grad;
  for (size_t n = 0; n < inputs.size(); ++n) {
    auto x = inputs[n].detach().clone();
    auto flat = x.view(-1);
    auto numeric = torch::zeros_like(flat);
    for (int64_t i = 0; i < flat.numel(); ++i) {
      const double orig = flat[i].item<double>();
      std::vector<at::Tensor> in = inputs;
      flat[i] = orig + eps;
      in[n] = x;
      const double lp = (f(in) * probe).sum().item<double>();
      flat[i] = orig - eps;
      const double lm = (f(in) * probe).sum().item<double>();
      flat[i] = orig;
      numeric[i] = (lp - lm) / (2 * eps);
    }
    auto analytic = grads[n].defined() ? grads[n].reshape(-1) : torch::zeros_like(flat);
    auto r = all_close(analytic, numeric, tol, tol);
    if (!r) return ::testing::AssertionFailure() << "input " << n << ": " << r.message();
  }
  return ::testing::AssertionSuccess();
}

/// Gradients of sum(f(inputs) ⊙ probe) w.r.t. each input, taken on fresh leaves (in the inputs'
/// own dtypes; `probe` is cast to the output's).
inline std::vector<at::Tensor> grads_of(
    const std::function<at::Tensor(const std::vector<at::Tensor>&)>& f,
    const std::vector<at::Tensor>& inputs, const at::Tensor& probe) {
  std::vector<at::Tensor> leaves;
  for (const auto& x : inputs) leaves.push_back(x.detach().clone().requires_grad_(true));
  auto out = f(leaves);
  auto loss = (out * probe.to(out.scalar_type())).sum();
  return torch::autograd::grad({loss}, leaves, {}, false, false, /*allow_unused=*/true);
}

/// Passes when f() throws a c10::Error whose message contains `want`.
template <typename F>
::testing::AssertionResult throws_with(F&& f, const std::string& want) {
  try {
    f();
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    if (msg.find(want) == std::string::npos) {
      return ::testing::AssertionFailure() << "message lacks \"" << want << "\": " << msg;
    }
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "no error";
}

}  // namespace longseq::test
