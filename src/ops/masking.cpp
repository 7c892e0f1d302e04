// Masking helpers shared by every attention core: input checks, the dense allowed-pairs mask
// (causal + key padding + explicit pattern) and a softmax that turns rows with no visible key into
// zeros.
#include <longseq/attention.h>

#include <ATen/ATen.h>

#include <limits>

namespace longseq {

void check_qkv(const char* op, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  TORCH_CHECK(q.defined() && k.defined() && v.defined(), op, ": q, k and v must all be given");
  TORCH_CHECK(q.dim() == 4, op, ": expected 4-D `q` [B, H, T, D], got ", q.dim(), "-D");
  TORCH_CHECK(k.dim() == 4, op, ": expected 4-D `k` [B, H, S, D], got ", k.dim(), "-D");
  TORCH_CHECK(v.dim() == 4, op, ": expected 4-D `v` [B, H, S, D], got ", v.dim(), "-D");
  TORCH_CHECK(q.size(0) == k.size(0) && q.size(0) == v.size(0), op, ": batch sizes differ: q ",
              q.size(0), ", k ", k.size(0), ", v ", v.size(0));
  TORCH_CHECK(q.size(1) == k.size(1) && q.size(1) == v.size(1), op, ": head counts differ: q ",
              q.size(1), ", k ", k.size(1), ", v ", v.size(1));
  TORCH_CHECK(q.size(3) == k.size(3), op, ": head dims of `q` (", q.size(3), ") and `k` (",
              k.size(3), ") differ");
  TORCH_CHECK(k.size(2) == v.size(2), op, ": `k` has ", k.size(2), " keys but `v` has ", v.size(2));
  TORCH_CHECK(q.scalar_type() == k.scalar_type() && q.scalar_type() == v.scalar_type(), op,
              ": q, k, v dtypes differ (", q.scalar_type(), ", ", k.scalar_type(), ", ",
              v.scalar_type(), ")");
  TORCH_CHECK(at::isFloatingType(q.scalar_type()), op, ": expected floating q, k, v, got ",
              q.scalar_type());
  TORCH_CHECK(q.device() == k.device() && q.device() == v.device(), op,
              ": q, k, v are on different devices");
}

void check_key_padding(const char* op, const at::Tensor& key_padding, int64_t batch, int64_t s) {
  if (!key_padding.defined()) return;
  TORCH_CHECK(key_padding.scalar_type() == at::kBool, op,
              ": expected bool `key_padding` [B, S] (true = real token), got ",
              key_padding.scalar_type());
  TORCH_CHECK(key_padding.dim() == 2 && key_padding.size(0) == batch && key_padding.size(1) == s,
              op, ": expected `key_padding` of shape [", batch, ", ", s, "], got ",
              key_padding.sizes());
}

void check_mask(const char* op, const AttentionMask& mask, int64_t batch, int64_t heads, int64_t t,
                int64_t s, bool causal_ok, bool pattern_ok) {
  TORCH_CHECK(causal_ok || !mask.causal, op,
              ": a causal mask is not supported (the core mixes all positions), got "
              "AttentionMask::causal = true");
  check_key_padding(op, mask.key_padding, batch, s);
  const auto& a = mask.allowed;
  if (!a.defined()) return;
  TORCH_CHECK(pattern_ok, op,
              ": an explicit pattern (AttentionMask::allowed) is not supported; "
              "only exact_attention scores every pair");
  TORCH_CHECK(a.scalar_type() == at::kBool, op, ": expected bool `allowed` (true = visible), got ",
              a.scalar_type());
  const int64_t full[4] = {batch, heads, t, s};
  bool ok = a.dim() >= 2 && a.dim() <= 4;
  for (int64_t i = 0; ok && i < a.dim(); ++i) {
    const int64_t want = full[4 - a.dim() + i];
    ok = a.size(i) == 1 || a.size(i) == want;
  }
  TORCH_CHECK(ok, op, ": expected `allowed` broadcastable to [B, H, T, S] = [", batch, ", ", heads,
              ", ", t, ", ", s, "] (2-4 dims, each 1 or full), got ", a.sizes());
}

at::Tensor padding_mask_from_lengths(const at::Tensor& lengths, int64_t max_len) {
  TORCH_CHECK(lengths.dim() == 1, "padding_mask_from_lengths: expected 1-D `lengths` [B], got ",
              lengths.dim(), "-D");
  TORCH_CHECK(max_len >= 0, "padding_mask_from_lengths: expected `max_len` >= 0, got ", max_len);
  const auto len = lengths.to(at::kLong);
  if (len.numel() > 0) {
    const int64_t lo = len.min().item<int64_t>(), hi = len.max().item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi <= max_len, "padding_mask_from_lengths: expected lengths in [0, ",
                max_len, "], got values in [", lo, ", ", hi, "]");
  }
  auto pos = at::arange(max_len, len.options());  // [S]
  return pos.unsqueeze(0) < len.unsqueeze(1);     // [B, S]
}

std::pair<at::Tensor, at::Tensor> masked_softmax(const at::Tensor& scores,
                                                 const at::Tensor& allowed, bool with_lse) {
  const double neg_inf = -std::numeric_limits<double>::infinity();
  if (!allowed.defined()) {
    return {at::softmax(scores, -1), with_lse ? at::logsumexp(scores, {-1}) : at::Tensor()};
  }
  // Fill with the dtype's lowest finite value rather than -inf: a row with nothing allowed then
  // gives a finite (uniform) softmax, which is zeroed below, so neither forward nor backward sees
  // NaN. In a row with any allowed entry, exp(lowest - max) underflows to exactly 0.
  double lowest = std::numeric_limits<float>::lowest();
  if (scores.scalar_type() == at::kDouble) lowest = std::numeric_limits<double>::lowest();
  if (scores.scalar_type() == at::kHalf) lowest = -65504.0;
  auto filled = scores.masked_fill(allowed.logical_not(), lowest);
  auto probs = at::softmax(filled, -1);
  auto any = allowed.any(-1, /*keepdim=*/true);  // [..., 1]
  const bool all_rows_nonempty = any.all().item<bool>();
  if (!all_rows_nonempty) probs = probs * any.to(probs.scalar_type());
  at::Tensor lse;
  if (with_lse) {
    lse = at::logsumexp(filled, {-1});
    if (!all_rows_nonempty) lse = lse.masked_fill(any.squeeze(-1).logical_not(), neg_inf);
  }
  return {probs, lse};
}

at::Tensor dense_allowed(const AttentionMask& mask, int64_t batch, int64_t t, int64_t s,
                         const at::Device& device) {
  at::Tensor allowed;
  if (mask.causal) {
    auto opts = at::TensorOptions().dtype(at::kLong).device(device);
    auto qi = at::arange(t, opts).unsqueeze(1) + (s - t);  // [T, 1]
    auto kj = at::arange(s, opts).unsqueeze(0);            // [1, S]
    allowed = (kj <= qi).view({1, 1, t, s});               // [1, 1, T, S]
  }
  if (mask.key_padding.defined()) {
    auto kp = mask.key_padding.to(device).view({batch, 1, 1, s});  // [B, 1, 1, S]
    allowed = allowed.defined() ? allowed.logical_and(kp) : kp;
  }
  if (mask.allowed.defined()) {
    auto a = mask.allowed.to(device);        // [.., T, S], up to 4-D
    while (a.dim() < 4) a = a.unsqueeze(0);  // [B|1, H|1, T|1, S|1]
    allowed = allowed.defined() ? allowed.logical_and(a) : a;
  }
  return allowed;
}

}  // namespace longseq
