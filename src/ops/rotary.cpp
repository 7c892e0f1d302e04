// Rotary position embedding (Su et al. 2021, RoFormer), composite path. Time and memory O(T·D).
#include <longseq/attention.h>

#include <ATen/ATen.h>

namespace longseq {

at::Tensor rotary_embedding(const at::Tensor& x, const at::Tensor& positions) {
  TORCH_CHECK(x.dim() == 4, "rotary_embedding: expected 4-D `x` [B, H, T, D], got ", x.dim(), "-D");
  TORCH_CHECK(x.size(3) % 2 == 0, "rotary_embedding: expected an even head dim D, got ", x.size(3));
  TORCH_CHECK(positions.dim() == 1 && positions.size(0) == x.size(2),
              "rotary_embedding: expected `positions` [T] with T = ", x.size(2), ", got shape ",
              positions.sizes());
  const int64_t D = x.size(3), half = D / 2;
  auto opts = x.options();
  auto inv = at::pow(10000.0, at::arange(0, half, opts) * (-2.0 / D));     // [D/2]
  auto ang = positions.to(opts).unsqueeze(1) * inv.unsqueeze(0);           // [T, D/2]
  auto cos = ang.cos(), sin = ang.sin();                                   // [T, D/2]
  auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);          // [B, H, T, D/2]
  return at::cat({x1 * cos - x2 * sin, x1 * sin + x2 * cos}, -1);          // [B, H, T, D]
}

at::Tensor rotary_embedding(const at::Tensor& x, int64_t offset) {
  TORCH_CHECK(offset >= 0, "rotary_embedding: expected `offset` >= 0, got ", offset);
  TORCH_CHECK(x.dim() == 4, "rotary_embedding: expected 4-D `x` [B, H, T, D], got ", x.dim(), "-D");
  return rotary_embedding(x, at::arange(offset, offset + x.size(2), x.options().dtype(at::kLong)));
}

}  // namespace longseq
