#pragma once
// Shared by the ops that pair a fused CPU kernel with a composite LibTorch path: the dispatch test
// and the poisoned outputs of the kernels.

#include <longseq/impl.h>

#include <ATen/ATen.h>

#include <limits>

namespace longseq {

/// Whether a fused CPU kernel may run on `x`: the composite switch is off, `x` is on the CPU and
/// float or double. Each op adds its own conditions (dropout, shapes).
inline bool fused_covers(const at::Tensor& x) {
  if (default_impl() == Impl::kComposite) return false;
  if (!x.device().is_cpu()) return false;
  return x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble;
}

/// Outputs a kernel writes are filled with NaN first, always: an element the kernel fails to write
/// then shows up as NaN in any test or run instead of stale memory. One pass over the output
/// against the kernel's far larger work.
inline at::Tensor empty_poisoned(at::IntArrayRef sizes, const at::TensorOptions& opts) {
  return at::empty(sizes, opts).fill_(std::numeric_limits<double>::quiet_NaN());
}

}  // namespace longseq
