// Causal depthwise 1-D convolution over time, channels last (see longseq/conv.h). Composite path:
// [prefix; x] concatenated, transposed to [B, E, K − 1 + T] for at::conv1d (groups = E) and the
// result transposed back (autograd by LibTorch). Fused CPU kernel (kernels/cpu/causal_conv.h):
// reads x and the prefix in place, channels last, forward and backward.
#include <longseq/conv.h>
#include <longseq/op_work.h>

#include "kernels/cpu/causal_conv.h"
#include "ops/checks.h"
#include "ops/fused.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

namespace longseq {

Work causal_conv1d_work(int64_t batch, int64_t t, int64_t channels, int64_t width, bool backward,
                        double elem) {
  const double n = double(batch) * t * channels;
  return backward ? Work{4.0 * width * n, elem * 3 * n} : Work{2.0 * width * n, elem * 2 * n};
}

namespace {

constexpr const char* kOp = "causal_conv1d";

void check_inputs(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                  const at::Tensor& prefix) {
  TORCH_CHECK(x.defined() && x.dim() == 3, kOp, ": expected 3-D `x` [B, T, E], got ",
              x.defined() ? x.dim() : 0, "-D");
  ops_checks::check_floating(kOp, "x", x);
  const int64_t B = x.size(0), E = x.size(2);
  TORCH_CHECK(weight.defined() && weight.dim() == 2 && weight.size(0) == E && weight.size(1) >= 1,
              kOp, ": expected `weight` of shape [E, K] = [", E, ", K >= 1], got ",
              weight.defined() ? weight.sizes() : at::IntArrayRef{});
  const int64_t K = weight.size(1);
  ops_checks::check_like(kOp, "weight", weight, "x", x);
  if (bias.defined()) {
    ops_checks::check_shape(kOp, "bias", bias, {"E"}, {E});
    ops_checks::check_like(kOp, "bias", bias, "x", x);
  }
  if (prefix.defined()) {
    ops_checks::check_shape(kOp, "prefix", prefix, {"B", "K − 1", "E"}, {B, K - 1, E});
    ops_checks::check_like(kOp, "prefix", prefix, "x", x);
  }
}

cpu::CausalConvParams params(const at::Tensor& x, const at::Tensor& weight) {
  cpu::CausalConvParams p;
  p.batch = x.size(0);
  p.t = x.size(1);
  p.channels = x.size(2);
  p.width = weight.size(1);
  return p;
}

// Inputs x, weight, bias, prefix (bias and prefix zeros when the caller gave none, as
// autograd::Function takes no undefined tensors) and whether they were given. Saves x, weight,
// prefix.
struct CausalConvFunction : public torch::autograd::Function<CausalConvFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x_in,
                            const at::Tensor& w_in, const at::Tensor& bias_in,
                            const at::Tensor& prefix_in, bool has_bias, bool has_prefix) {
    auto x = x_in.contiguous(), w = w_in.contiguous();                  // [B, T, E], [E, K]
    auto bias = bias_in.contiguous(), prefix = prefix_in.contiguous();  // [E], [B, K − 1, E]
    const auto p = params(x, w);
    auto out = empty_poisoned({p.batch, p.t, p.channels}, x.options());  // [B, T, E]
    LONGSEQ_KERNEL_SCOPE(
        "causal_conv1d_forward",
        causal_conv1d_work(p.batch, p.t, p.channels, p.width, false, x.element_size()));
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "causal_conv1d_forward", [&] {
      cpu::causal_conv_forward<scalar_t>(x.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
                                         has_bias ? bias.data_ptr<scalar_t>() : nullptr,
                                         has_prefix ? prefix.data_ptr<scalar_t>() : nullptr,
                                         out.data_ptr<scalar_t>(), p);
    });
    ctx->save_for_backward({x, w, prefix});
    ctx->saved_data["has_bias"] = has_bias;
    ctx->saved_data["has_prefix"] = has_prefix;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w = saved[1], &prefix = saved[2];
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    const bool has_prefix = ctx->saved_data["has_prefix"].toBool();
    const auto p = params(x, w);
    auto grad_out = incoming_grad(grads[0], x);                                         // [B, T, E]
    auto grad_x = empty_poisoned(x.sizes(), x.options());                               // [B, T, E]
    auto grad_w = empty_poisoned(w.sizes(), w.options());                               // [E, K]
    auto grad_b = has_bias ? empty_poisoned({p.channels}, x.options()) : at::Tensor();  // [E]
    auto grad_prefix =
        has_prefix ? empty_poisoned(prefix.sizes(), x.options()) : at::Tensor();  // [B, K − 1, E]
    LONGSEQ_KERNEL_SCOPE(
        "causal_conv1d_backward",
        causal_conv1d_work(p.batch, p.t, p.channels, p.width, true, x.element_size()));
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "causal_conv1d_backward", [&] {
      cpu::causal_conv_backward<scalar_t>(
          x.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
          has_prefix ? prefix.data_ptr<scalar_t>() : nullptr, grad_out.data_ptr<scalar_t>(),
          grad_x.data_ptr<scalar_t>(), grad_w.data_ptr<scalar_t>(),
          has_bias ? grad_b.data_ptr<scalar_t>() : nullptr,
          has_prefix ? grad_prefix.data_ptr<scalar_t>() : nullptr, p);
    });
    return {grad_x, grad_w, grad_b, grad_prefix, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor causal_conv1d_composite(const at::Tensor& x, const at::Tensor& weight,
                                   const at::Tensor& bias, const at::Tensor& prefix) {
  check_inputs(x, weight, bias, prefix);
  const int64_t B = x.size(0), E = x.size(2), K = weight.size(1);
  auto pre = prefix.defined() ? prefix : x.new_zeros({B, K - 1, E});
  auto full = at::cat({pre, x}, 1);  // [B, K − 1 + T, E]
  auto out = at::conv1d(full.transpose(1, 2), weight.unsqueeze(1), bias, at::IntArrayRef{1},
                        at::IntArrayRef{0}, at::IntArrayRef{1}, E);  // [B, E, T]
  return out.transpose(1, 2);                                        // [B, T, E]
}

at::Tensor causal_conv1d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                         const at::Tensor& prefix) {
  check_inputs(x, weight, bias, prefix);
  if (!use_fused_kernel(kOp, x)) return causal_conv1d_composite(x, weight, bias, prefix);
  const int64_t B = x.size(0), E = x.size(2), K = weight.size(1);
  if (x.numel() == 0) {
    // Nothing to convolve; keep the graph (grad 0 for every input) with an empty result.
    auto out = x.new_zeros({B, x.size(1), E});
    return out + (weight.sum() * 0) + (bias.defined() ? bias.sum() * 0 : out.new_zeros({}));
  }
  return CausalConvFunction::apply(x, weight, bias.defined() ? bias : x.new_zeros({E}),
                                   prefix.defined() ? prefix : x.new_zeros({B, K - 1, E}),
                                   bias.defined(), prefix.defined());
}

}  // namespace longseq
