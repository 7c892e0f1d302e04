#pragma once
// Argument checks shared by the ops, each failing with "<op>: expected `<name>` ..., got ...".

#include <ATen/ATen.h>

#include <sstream>
#include <string>
#include <vector>

namespace longseq::ops_checks {

// "[2, 5, 7]"
inline std::string shape_str(at::IntArrayRef sizes) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < sizes.size(); ++i) os << (i ? ", " : "") << sizes[i];
  os << ']';
  return os.str();
}

// Checks x has the shape named by `dims` ("B", "T", ...) with the known sizes `want` (-1: any),
// e.g. "selective_scan: expected `A` of shape [E, N] = [7, N], got [8, 4]".
inline void check_shape(const char* op, const char* name, const at::Tensor& x,
                        const std::vector<const char*>& dims, const std::vector<int64_t>& want) {
  bool ok = x.dim() == static_cast<int64_t>(dims.size());
  for (size_t i = 0; ok && i < dims.size(); ++i) ok = want[i] < 0 || x.size(i) == want[i];
  if (ok) return;
  std::ostringstream sym, val;
  for (size_t i = 0; i < dims.size(); ++i) {
    sym << (i ? ", " : "") << dims[i];
    val << (i ? ", " : "");
    if (want[i] < 0) {
      val << dims[i];
    } else {
      val << want[i];
    }
  }
  TORCH_CHECK(false, op, ": expected `", name, "` of shape [", sym.str(), "] = [", val.str(),
              "], got ", shape_str(x.sizes()));
}

// Same dtype and device as the reference argument `ref` (named ref_name).
inline void check_like(const char* op, const char* name, const at::Tensor& x, const char* ref_name,
                       const at::Tensor& ref) {
  TORCH_CHECK(x.scalar_type() == ref.scalar_type(), op, ": expected `", name, "` of dtype ",
              ref.scalar_type(), " (as `", ref_name, "`), got ", x.scalar_type());
  TORCH_CHECK(x.device() == ref.device(), op, ": expected `", name, "` on ", ref.device(), " (as `",
              ref_name, "`), got ", x.device());
}

inline void check_floating(const char* op, const char* name, const at::Tensor& x) {
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), op, ": expected a floating-point `", name,
              "`, got ", x.scalar_type());
}

}  // namespace longseq::ops_checks
