#pragma once
// Shared by the ops that pair a fused CPU kernel with a composite LibTorch path: the dispatch test
// and the poisoned outputs of the kernels.

#include <longseq/impl.h>
#include <longseq/machine.h>
#include <longseq/roofline.h>

#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <torch/autograd.h>

#include <limits>
#include <string>

/// Around a fused kernel call: a scope named "longseq::<name>" for LibTorch's profiler (so the
/// kernel's time is its own row, not its caller's self time) and the kernel's counted work
/// (longseq/roofline.h) for the profile's rates. Costs nothing measurable when no profile runs.
#define LONGSEQ_KERNEL_SCOPE(name, work)                            \
  RECORD_FUNCTION("longseq::" name, std::vector<c10::IValue>()); \
  ::longseq::record_kernel_work("longseq::" name, (work))

namespace longseq {

/// Whether the fused CPU kernel of `op` runs on `x`: the composite switch is off, `x` is on the CPU
/// and float or double, and the op's own conditions hold (`why_not` null; else it says which
/// failed: dropout, shapes). Under Impl::kFused a call the kernel does not cover is an error naming
/// the op and the reason, so a benchmark or test that asks for the fused kernel gets it or stops.
inline bool use_fused_kernel(const char* op, const at::Tensor& x, const char* why_not = nullptr) {
  // Every op's dispatch passes here before any kernel: the thread count is LibTorch's from the
  // first call on, and a BLAS core below the CPU is reported once (longseq/machine.h).
  pin_thread_count();
  warn_once_if_blas_below_cpu();
  const Impl impl = default_impl();
  if (impl == Impl::kComposite) return false;
  if (!x.device().is_cpu()) {
    why_not = "no fused kernel for this device";
  } else if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble) {
    why_not = "the fused kernels take float and double only";
  }
  TORCH_CHECK(why_not == nullptr || impl != Impl::kFused, op,
              ": the fused kernel was required (LONGSEQ_IMPL=fused or --impl fused) but does not "
              "cover this call: ",
              why_not, " (", x.scalar_type(), " on ", x.device(), ")");
  return why_not == nullptr;
}

/// Outputs a kernel writes are filled with NaN first, always: an element the kernel fails to write
/// then shows up as NaN in any test or run instead of stale memory. One pass over the output
/// against the kernel's far larger work.
inline at::Tensor empty_poisoned(at::IntArrayRef sizes, const at::TensorOptions& opts) {
  return at::empty(sizes, opts).fill_(std::numeric_limits<double>::quiet_NaN());
}

/// Keeps an optional tensor (undefined allowed) in an autograd context's saved_data under `name`.
inline void save_optional(torch::autograd::AutogradContext* ctx, const std::string& name,
                          const at::Tensor& t) {
  ctx->saved_data["has_" + name] = t.defined();
  if (t.defined()) ctx->saved_data[name] = t;
}

/// What save_optional kept: the tensor, or an undefined one.
inline at::Tensor load_optional(torch::autograd::AutogradContext* ctx, const std::string& name) {
  return ctx->saved_data["has_" + name].toBool() ? ctx->saved_data[name].toTensor() : at::Tensor();
}

/// A backward's incoming gradient as a contiguous tensor: zeros like `out` where autograd passed
/// none (the output was not used).
inline at::Tensor incoming_grad(const at::Tensor& grad, const at::Tensor& out) {
  return grad.defined() ? grad.contiguous() : at::zeros_like(out);
}

}  // namespace longseq
