#pragma once
/// Which implementation the attention cores run: the fused CPU kernels or the composite LibTorch
/// path (the reference, and what runs on devices without a fused kernel).

#include <string>

namespace longseq {

enum class Impl {
  kAuto,       ///< fused where a fused kernel covers the call (CPU, float/double), else composite
  kFused,      ///< the fused kernel or an error naming the op and why it does not cover the call
  kComposite,  ///< always the composite LibTorch path
};

/// Process-wide choice. Starts from the environment variable LONGSEQ_IMPL (auto, fused or
/// composite; unset means auto); an unknown value is an error at first use naming the variable.
Impl default_impl();
void set_default_impl(Impl impl);
/// "auto" | "fused" | "composite"; anything else throws naming `what` and the valid values.
Impl parse_impl(const std::string& name, const char* what = "impl");
const char* impl_name(Impl impl);

/// Sets the default for a scope and restores the previous one (tests, benchmarks).
class ImplGuard {
 public:
  explicit ImplGuard(Impl impl) : prev_(default_impl()) { set_default_impl(impl); }
  ~ImplGuard() { set_default_impl(prev_); }
  ImplGuard(const ImplGuard&) = delete;
  ImplGuard& operator=(const ImplGuard&) = delete;

 private:
  Impl prev_;
};

}  // namespace longseq
