// Exact softmax attention: out = softmax(q kᵀ · scale + mask) v          (Vaswani et al. 2017)
// Two implementations behind one signature:
// - composite LibTorch path (exact_attention_composite): time O(B·H·T·S·D), memory O(B·H·T·S):
//   the [B, H, T, S] score matrix is materialised and saved by autograd for backward. Runs on every
//   device, with dropout, and is the reference of the fused kernel.
// - fused CPU kernel (kernels/cpu/flash_attention.h), FlashAttention-style: same time, O(T) extra
//   memory per head (only the row log-sum-exp is saved; backward recomputes the blocks).
// exact_attention picks the fused kernel when it covers the call (see use_fused below).
#include <longseq/attention.h>
#include <longseq/impl.h>
#include <longseq/op_work.h>

#include "kernels/cpu/flash_attention.h"
#include "ops/flash.h"
#include "ops/fused.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace longseq {
namespace {

cpu::FlashAttentionParams flash_params(const at::Tensor& q, const at::Tensor& k,
                                       const at::Tensor& v, bool causal, double scale) {
  cpu::FlashAttentionParams p;
  p.batch = q.size(0);
  p.heads = q.size(1);
  p.t = q.size(2);
  p.s = k.size(2);
  p.d = q.size(3);
  p.dv = v.size(3);
  p.scale = scale;
  p.causal = causal;
  return p;
}

// Pairs the fused forward and backward. Inputs: q, k, v (differentiable), the mask (passed as a
// struct: autograd::Function rejects undefined tensor arguments, and key_padding is optional), the
// scale. Saves q, k, v, out, lse; no T×S tensor.
struct FlashAttentionFunction : public torch::autograd::Function<FlashAttentionFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q_in,
                            const at::Tensor& k_in, const at::Tensor& v_in,
                            const AttentionMask& mask, double scale) {
    auto q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();  // [B, H, T|S, D]
    auto kp =
        mask.key_padding.defined() ? mask.key_padding.to(at::kCPU).contiguous() : at::Tensor();
    auto [out, lse] = flash_forward(q, k, v, kp, mask.causal, scale);  // [B, H, T, Dv], [B, H, T]
    ctx->save_for_backward({q, k, v, out, lse});
    save_optional(ctx, "key_padding", kp);
    ctx->saved_data["causal"] = mask.causal;
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4];
    const auto kp = load_optional(ctx, "key_padding");
    auto grad_out = incoming_grad(grads[0], out);  // [B, H, T, Dv]
    auto [grad_q, grad_k, grad_v] =
        flash_backward(q, k, v, kp, out, lse, grad_out, ctx->saved_data["causal"].toBool(),
                       ctx->saved_data["scale"].toDouble());  // [B, H, T|S, D|Dv]
    return {grad_q, grad_k, grad_v, at::Tensor(), at::Tensor()};
  }
};

// The fused kernel covers CPU float/double calls without active dropout or an explicit pattern.
// Empty calls and causal S < T (which the composite path rejects with its error) run composite.
bool use_fused(const at::Tensor& q, const at::Tensor& k, const AttentionMask& mask,
               double dropout_p, bool train) {
  if (q.numel() == 0 || k.numel() == 0 || (mask.causal && k.size(2) < q.size(2))) return false;
  const char* why_not = nullptr;
  if (dropout_p != 0 && train) why_not = "dropout while training";
  if (mask.allowed.defined()) why_not = "an explicit pattern (AttentionMask::allowed)";
  return use_fused_kernel("exact_attention", q, why_not);
}

}  // namespace

Work softmax_attention_work(double bh, double pairs, double t, double s, int64_t d, int64_t dv,
                            bool backward, double elem) {
  const double qkv = t * d + s * d + s * dv;  // per head
  if (!backward) return {2 * bh * pairs * (d + dv), elem * bh * (qkv + t * dv + t)};
  return {2 * bh * pairs * (3.0 * d + 2.0 * dv), elem * bh * (2 * qkv + 2 * t * dv + t)};
}

Work exact_attention_work(int64_t batch, int64_t heads, int64_t t, int64_t s, int64_t d, int64_t dv,
                          bool causal, bool backward, double elem) {
  const double T = double(t), S = double(s);
  // Causal: query i sees keys 0 .. i + S - T.
  const double pairs = causal ? T * (S - T) + T * (T + 1) / 2 : T * S;
  return softmax_attention_work(double(batch) * heads, pairs, T, S, d, dv, backward, elem);
}

namespace {

// The kernel's counted work: with key padding, only the (query, real key) pairs a query may see
// (the kernel skips key blocks past a row's last real key, so T·S would overstate the work of a
// batch padded to its longest sequence).
Work flash_work(const cpu::FlashAttentionParams& p, const at::Tensor& key_padding, bool causal,
                bool backward, double elem) {
  if (!key_padding.defined()) {
    return exact_attention_work(p.batch, p.heads, p.t, p.s, p.d, p.dv, causal, backward, elem);
  }
  const int64_t T = p.t, S = p.s, off = S - T;
  const bool* kp = key_padding.data_ptr<bool>();  // [B, S], contiguous on the CPU
  double pairs = 0;
  std::vector<int64_t> real_upto(S);  // real keys at or before j
  for (int64_t b = 0; b < p.batch; ++b) {
    int64_t n = 0;
    for (int64_t j = 0; j < S; ++j) real_upto[j] = n += kp[b * S + j] ? 1 : 0;
    if (!causal) {
      pairs += double(T) * double(n);
      continue;
    }
    for (int64_t i = 0; i < T; ++i) {
      const int64_t last = std::min(S - 1, i + off);
      if (last >= 0) pairs += double(real_upto[last]);
    }
  }
  return softmax_attention_work(double(p.batch) * p.heads,
                                pairs / double(std::max<int64_t>(p.batch, 1)), T, S, p.d, p.dv,
                                backward, elem);
}

}  // namespace

std::pair<at::Tensor, at::Tensor> flash_forward(const at::Tensor& q, const at::Tensor& k,
                                                const at::Tensor& v, const at::Tensor& key_padding,
                                                bool causal, double scale) {
  const auto p = flash_params(q, k, v, causal, scale);
  LONGSEQ_KERNEL_SCOPE("flash_attention_forward",
                       flash_work(p, key_padding, causal, false, q.element_size()));
  auto out = empty_poisoned({p.batch, p.heads, p.t, p.dv}, q.options());  // [B, H, T, Dv]
  auto lse = empty_poisoned({p.batch, p.heads, p.t}, q.options());        // [B, H, T]
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "flash_attention_forward", [&] {
    cpu::flash_attention_forward<scalar_t>(
        q.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
        key_padding.defined() ? key_padding.data_ptr<bool>() : nullptr, out.data_ptr<scalar_t>(),
        lse.data_ptr<scalar_t>(), p);
  });
  return {out, lse};
}

std::array<at::Tensor, 3> flash_backward(const at::Tensor& q, const at::Tensor& k,
                                         const at::Tensor& v, const at::Tensor& key_padding,
                                         const at::Tensor& out, const at::Tensor& lse,
                                         const at::Tensor& grad_out, bool causal, double scale) {
  const auto p = flash_params(q, k, v, causal, scale);
  LONGSEQ_KERNEL_SCOPE("flash_attention_backward",
                       flash_work(p, key_padding, causal, true, q.element_size()));
  auto grad_q = empty_poisoned(q.sizes(), q.options());  // [B, H, T, D]
  auto grad_k = empty_poisoned(k.sizes(), k.options());  // [B, H, S, D]
  auto grad_v = empty_poisoned(v.sizes(), v.options());  // [B, H, S, Dv]
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "flash_attention_backward", [&] {
    cpu::flash_attention_backward<scalar_t>(
        q.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
        key_padding.defined() ? key_padding.data_ptr<bool>() : nullptr, out.data_ptr<scalar_t>(),
        lse.data_ptr<scalar_t>(), grad_out.data_ptr<scalar_t>(), grad_q.data_ptr<scalar_t>(),
        grad_k.data_ptr<scalar_t>(), grad_v.data_ptr<scalar_t>(), p);
  });
  return {grad_q, grad_k, grad_v};
}

at::Tensor exact_attention_composite(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const AttentionMask& mask, double dropout_p, bool train,
                                     std::optional<double> scale) {
  check_qkv("exact_attention", q, k, v);
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), S = k.size(2), D = q.size(3);
  check_mask("exact_attention", mask, B, H, T, S, /*causal_ok=*/true, /*pattern_ok=*/true);
  TORCH_CHECK(!mask.causal || S >= T, "exact_attention: causal attention needs S >= T, got T = ", T,
              ", S = ", S);
  TORCH_CHECK(dropout_p >= 0 && dropout_p < 1,
              "exact_attention: expected `dropout_p` in [0, 1), got ", dropout_p);
  const double sc = scale.value_or(1.0 / std::sqrt(static_cast<double>(D)));
  auto scores = at::matmul(q, k.transpose(-2, -1)) * sc;                   // [B, H, T, S]
  auto allowed = dense_allowed(mask, B, T, S, q.device());                 // [B|1, H|1, T, S]
  auto probs = masked_softmax(scores, allowed, /*with_lse=*/false).first;  // [B, H, T, S]
  if (train && dropout_p > 0) probs = at::dropout(probs, dropout_p, /*train=*/true);
  return at::matmul(probs, v);  // [B, H, T, Dv]
}

at::Tensor exact_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const AttentionMask& mask, double dropout_p, bool train,
                           std::optional<double> scale) {
  check_qkv("exact_attention", q, k, v);
  if (!use_fused(q, k, mask, dropout_p, train)) {
    return exact_attention_composite(q, k, v, mask, dropout_p, train, scale);
  }
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), S = k.size(2), D = q.size(3);
  check_mask("exact_attention", mask, B, H, T, S, /*causal_ok=*/true, /*pattern_ok=*/true);
  TORCH_CHECK(dropout_p >= 0 && dropout_p < 1,
              "exact_attention: expected `dropout_p` in [0, 1), got ", dropout_p);
  const double sc = scale.value_or(1.0 / std::sqrt(static_cast<double>(D)));
  return FlashAttentionFunction::apply(q, k, v, mask, sc);  // [B,H,T,Dv]
}

}  // namespace longseq
