// The fused/composite switch (longseq/impl.h).
#include <longseq/impl.h>

#include <c10/util/Exception.h>

#include <atomic>
#include <cstdlib>

namespace longseq {
namespace {

Impl from_environment() {
  const char* env = std::getenv("LONGSEQ_IMPL");
  return env && *env ? parse_impl(env, "environment variable LONGSEQ_IMPL") : Impl::kAuto;
}

std::atomic<Impl>& current() {
  static std::atomic<Impl> impl{from_environment()};
  return impl;
}

}  // namespace

Impl default_impl() { return current().load(); }
void set_default_impl(Impl impl) { current().store(impl); }

Impl parse_impl(const std::string& name, const char* what) {
  if (name == "auto") return Impl::kAuto;
  if (name == "fused") return Impl::kFused;
  if (name == "composite") return Impl::kComposite;
  TORCH_CHECK(false, what, ": expected one of auto, fused, composite, got '", name, "'");
}

const char* impl_name(Impl impl) {
  switch (impl) {
    case Impl::kAuto: return "auto";
    case Impl::kFused: return "fused";
    case Impl::kComposite: return "composite";
  }
  return "?";
}

}  // namespace longseq
