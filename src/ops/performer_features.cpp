// FAVOR+ feature maps (Choromanski et al. 2021, "Rethinking Attention with Performers", ICLR):
// the first half of performer_attention, apart so that users (and the Python ops) can run it
// alone. The second half is linear_attention (src/ops/linear_attention.cpp).
//   inputs scaled x = D^{-1/4}·q, D^{-1/4}·k, so that φ(q)·φ(k) ≈ exp(q·k / √D)
//   softmax kernel:  φ(x) = exp(ωx − |x|²/2 − stabiliser) / √R     (positive random features)
//   relu kernel:     φ(x) = relu(ωx) / √R + 1e-3                    (no stabiliser needed)
// ω [R, D] are orthogonal random features (performer_draw_features).
//
// Stabilisers. Every stabiliser is a constant that cancels exactly between numerator and
// normaliser, so outputs and gradients equal those of the unstabilised formula; they are detached.
//   query t:         subtract max_r(ω x_t) (the row's own max; |x_t|²/2 is a row constant too, so
//                    it is dropped), so the largest query feature is exactly 1/√R.
//   key, non-causal: subtract m = max over valid keys j and features r of s_jr = ω x_j − |x_j|²/2,
//                    one constant per (b, h).
//   key, causal:     strictly causal: m_j = max over valid keys i ≤ j of max_r s_ir (running),
//                    key feature exp(s_j − m_j) ≤ 1, and query t weighs key j ≤ t by
//                    exp(m_j − m_t) ≤ 1 (returned as m for linear_attention). Output t therefore
//                    depends on keys ≤ t only, even in floating point (a single max over all keys
//                    would let a huge future key underflow the features of earlier ones).
// The key stabilisers take the max of s (with the −|x|²/2 term), not of ω·x: s ≤ |ω_r|²/2 for
// every key, and the largest feature under each stabiliser is exactly 1/√R, so a large-norm key
// does not underflow every feature (exp(ω·x − max ω·x − |x|²/2) ≤ exp(−|x|²/2) would).
// Padded keys (key_padding false) get zero features: they drop out of numerator and normaliser.
//
// Time O(B·H·(T + S)·R·D), memory O(B·H·(T + S)·R). Two paths: the fused CPU kernel
// (kernels/cpu/performer_features.h, which saves x and f only and treats ω as a constant) and the
// composite ATen path (the reference; also differentiates ω).
#include <longseq/attention.h>
#include <longseq/op_work.h>

#include "kernels/cpu/performer_features.h"
#include "ops/fused.h"
#include "ops/performer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/autograd.h>

#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

namespace longseq {

using detail::kReluFloor;

Work performer_features_work(double bh, int64_t t, int64_t d, int64_t r, bool relu, bool backward,
                             double elem) {
  const double p = 2 * bh * double(t) * d * r;  // p = x ωᵀ, or grad_x = h ω
  const double x = bh * t * d, f = bh * t * r, w = double(r) * d;
  if (!backward) return {p, elem * (x + w + f)};
  return {relu ? 2 * p : p, elem * (2 * x + w + 2 * f)};  // x, ω, f, grad_f in; grad_x out
}

namespace {

// Feature maps φ(q) [B, H, T, R], φ(k) [B, H, S, R] and, for the causal softmax map, the running
// stabiliser m [B, H, S], composite path.
PerformerFeatures composite_features(const at::Tensor& q, const at::Tensor& k, const at::Tensor& w,
                                     PerformerKernel kernel, bool causal,
                                     const at::Tensor& key_padding) {
  const int64_t B = q.size(0), S = k.size(2), D = q.size(3), R = w.size(0);
  const double in_scale = std::pow(static_cast<double>(D), -0.25);
  const double inv_sqrt_r = 1.0 / std::sqrt(static_cast<double>(R));
  auto qs = q * in_scale;               // [B, H, T, D]
  auto ks = k * in_scale;               // [B, H, S, D]
  auto q_proj = at::matmul(qs, w.t());  // [B, H, T, R]
  auto k_proj = at::matmul(ks, w.t());  // [B, H, S, R]
  at::Tensor valid;                     // [B, 1, S, 1]
  if (key_padding.defined()) valid = key_padding.to(q.device()).view({B, 1, S, 1});

  at::Tensor fq, fk, m;
  if (kernel == PerformerKernel::kRelu) {
    fq = at::relu(q_proj) * inv_sqrt_r + kReluFloor;            // [B, H, T, R]
    fk = at::relu(k_proj) * inv_sqrt_r + kReluFloor;            // [B, H, S, R]
    if (valid.defined()) fk = fk * valid.to(fk.scalar_type());  // [B, H, S, R]
  } else {
    fq = (q_proj - q_proj.detach().amax(-1, /*keepdim=*/true)).exp() * inv_sqrt_r;  // [B, H, T, R]
    auto s = k_proj - ks.pow(2).sum(-1, /*keepdim=*/true) * 0.5;                    // [B, H, S, R]
    auto sd = s.detach();
    if (valid.defined()) {
      // Padded keys take the (b, h) minimum: they never raise a max, and it is finite, so a
      // prefix with no valid key still has a finite m (its features are zero anyway).
      sd = at::where(valid, sd, sd.amin({2, 3}, /*keepdim=*/true));  // [B, H, S, R]
    }
    at::Tensor e;  // [B, H, S, R]
    if (causal) {
      m = std::get<0>(at::cummax(sd.amax(-1), 2));  // [B, H, S]
      e = s - m.unsqueeze(-1);
    } else {
      e = s - sd.amax({2, 3}, /*keepdim=*/true);
    }
    // −inf before exp, not a zero after it: a padded key's exponent may be > 0 and overflow.
    if (valid.defined()) {
      e = e.masked_fill(valid.logical_not(), -std::numeric_limits<double>::infinity());
    }
    fk = e.exp() * inv_sqrt_r;  // [B, H, S, R]
  }

  return {fq, fk, m};
}

// Pairs the fused feature map's forward and backward (kernels/cpu/performer_features).
// x [B, H, T, D] -> {f [B, H, T, R], m [B, H, T]}; m (the key stabiliser) is not
// differentiable. Saves x and f only.
struct FeatureSpec {
  cpu::FeatureMap map;
  bool causal;
  at::Tensor key_padding;  // [B, T] bool on the CPU, or undefined
};

struct PerformerFeatureFunction : public torch::autograd::Function<PerformerFeatureFunction> {
  static cpu::PerformerFeatureParams params(const at::Tensor& x, const at::Tensor& w,
                                            cpu::FeatureMap map, bool causal) {
    cpu::PerformerFeatureParams p;
    p.batch = x.size(0);
    p.heads = x.size(1);
    p.t = x.size(2);
    p.d = x.size(3);
    p.r = w.size(0);
    p.in_scale = std::pow(static_cast<double>(p.d), -0.25);
    p.relu_floor = kReluFloor;
    p.causal = causal;
    p.map = map;
    return p;
  }

  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                const at::Tensor& x_in, const at::Tensor& w_in,
                                                const FeatureSpec& spec) {
    auto x = x_in.contiguous(), w = w_in.detach().contiguous();
    const auto& kp = spec.key_padding;
    const auto p = params(x, w, spec.map, spec.causal);
    auto f = empty_poisoned({p.batch, p.heads, p.t, p.r}, x.options());  // [B, H, T, R]
    auto m = spec.map == cpu::FeatureMap::kSoftmaxKey
                 ? empty_poisoned({p.batch, p.heads, p.t}, x.options())  // [B, H, T]
                 : at::zeros({p.batch, p.heads, p.t}, x.options());
    const bool relu = p.map == cpu::FeatureMap::kReluQuery || p.map == cpu::FeatureMap::kReluKey;
    LONGSEQ_KERNEL_SCOPE("performer_features_forward",
                         performer_features_work(double(p.batch) * p.heads, p.t, p.d, p.r, relu,
                                                 false, x.element_size()));
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "performer_features_forward", [&] {
      cpu::performer_features_forward<scalar_t>(x.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
                                                kp.defined() ? kp.data_ptr<bool>() : nullptr,
                                                f.data_ptr<scalar_t>(), m.data_ptr<scalar_t>(), p);
    });
    ctx->save_for_backward({x, w, f});
    ctx->saved_data["map"] = static_cast<int64_t>(spec.map);
    ctx->saved_data["causal"] = spec.causal;
    save_optional(ctx, "key_padding", kp);
    ctx->mark_non_differentiable({m});
    return {f, m};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w = saved[1], &f = saved[2];
    const auto kp = load_optional(ctx, "key_padding");
    const auto map = static_cast<cpu::FeatureMap>(ctx->saved_data["map"].toInt());
    const auto p = params(x, w, map, ctx->saved_data["causal"].toBool());
    if (!grads[0].defined()) return {at::zeros_like(x), at::Tensor(), at::Tensor()};
    auto grad_f = grads[0].contiguous();                   // [B, H, T, R]
    auto grad_x = empty_poisoned(x.sizes(), x.options());  // [B, H, T, D]
    const bool relu = map == cpu::FeatureMap::kReluQuery || map == cpu::FeatureMap::kReluKey;
    LONGSEQ_KERNEL_SCOPE("performer_features_backward",
                         performer_features_work(double(p.batch) * p.heads, p.t, p.d, p.r, relu,
                                                 true, x.element_size()));
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "performer_features_backward", [&] {
      cpu::performer_features_backward<scalar_t>(
          x.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
          kp.defined() ? kp.data_ptr<bool>() : nullptr, f.data_ptr<scalar_t>(),
          grad_f.data_ptr<scalar_t>(), grad_x.data_ptr<scalar_t>(), p);
    });
    return {grad_x, at::Tensor(), at::Tensor()};
  }
};

PerformerFeatures fused_features(const at::Tensor& q, const at::Tensor& k, const at::Tensor& w,
                                 PerformerKernel kernel, bool causal,
                                 const at::Tensor& key_padding) {
  const bool relu = kernel == PerformerKernel::kRelu;
  at::Tensor kp;  // [B, S]
  if (key_padding.defined()) kp = key_padding.to(at::kCPU).contiguous();
  using cpu::FeatureMap;
  auto fq = PerformerFeatureFunction::apply(
      q, w, FeatureSpec{relu ? FeatureMap::kReluQuery : FeatureMap::kSoftmaxQuery, false, {}})[0];
  auto key = PerformerFeatureFunction::apply(
      k, w, FeatureSpec{relu ? FeatureMap::kReluKey : FeatureMap::kSoftmaxKey, causal, kp});
  // Only the causal softmax map hands its stabiliser on (query t weighs key j by exp(m_j − m_t)).
  return {fq, key[0], !relu && causal ? key[1] : at::Tensor()};
}

// Features of empty inputs (no max to take): zeros of the right shapes.
PerformerFeatures empty_features(const at::Tensor& q, const at::Tensor& k, const at::Tensor& w,
                                 PerformerKernel kernel, bool causal) {
  const int64_t B = q.size(0), H = q.size(1), R = w.size(0);
  at::Tensor m;
  if (causal && kernel == PerformerKernel::kSoftmax) m = k.new_zeros({B, H, k.size(2)});
  return {q.new_zeros({B, H, q.size(2), R}), k.new_zeros({B, H, k.size(2), R}), m};
}

}  // namespace

namespace detail {

// Checks the inputs of the feature maps; returns omega in q's dtype and device.
at::Tensor check_performer_inputs(const char* op, const at::Tensor& q, const at::Tensor& k,
                                  const at::Tensor& omega, const AttentionMask& mask) {
  check_qkv(op, q, k, k);
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), S = k.size(2), D = q.size(3);
  check_mask(op, mask, B, H, T, S, /*causal_ok=*/true, /*pattern_ok=*/false);
  TORCH_CHECK(omega.defined() && omega.dim() == 2 && omega.size(0) > 0 && omega.size(1) == D, op,
              ": expected `omega` [R, D] with R > 0 and D = ", D, ", got ",
              omega.defined() ? omega.sizes() : at::IntArrayRef{});
  TORCH_CHECK(at::isFloatingType(omega.scalar_type()), op, ": expected floating `omega`, got ",
              omega.scalar_type());
  TORCH_CHECK(!mask.causal || T == S, op,
              ": causal attention needs T == S (self-attention), got T = ", T, ", S = ", S);
  return omega.to(q.options());  // [R, D]
}

}  // namespace detail

PerformerFeatures performer_features(const at::Tensor& q, const at::Tensor& k,
                                     const at::Tensor& omega, PerformerKernel kernel,
                                     const AttentionMask& mask) {
  constexpr const char* op = "performer_features";
  const auto w = detail::check_performer_inputs(op, q, k, omega, mask);  // [R, D]
  if (q.numel() == 0 || k.numel() == 0) return empty_features(q, k, w, kernel, mask.causal);
  // The fused feature maps treat ω as a constant (the mixers' features are buffers).
  const bool fused = use_fused_kernel(op, q, w.requires_grad() ? "omega requires grad" : nullptr);
  return fused ? fused_features(q, k, w, kernel, mask.causal, mask.key_padding)
               : composite_features(q, k, w, kernel, mask.causal, mask.key_padding);
}

PerformerFeatures performer_features_composite(const at::Tensor& q, const at::Tensor& k,
                                               const at::Tensor& omega, PerformerKernel kernel,
                                               const AttentionMask& mask) {
  const auto w = detail::check_performer_inputs("performer_features", q, k, omega, mask);  // [R, D]
  if (q.numel() == 0 || k.numel() == 0) return empty_features(q, k, w, kernel, mask.causal);
  return composite_features(q, k, w, kernel, mask.causal, mask.key_padding);
}

at::Tensor performer_draw_features(int64_t features, int64_t head_dim, uint64_t seed,
                                   at::ScalarType dtype) {
  TORCH_CHECK(features > 0, "performer_draw_features: expected `features` (R) > 0, got ", features);
  TORCH_CHECK(head_dim > 0, "performer_draw_features: expected `head_dim` (D) > 0, got ", head_dim);
  TORCH_CHECK(at::isFloatingType(dtype),
              "performer_draw_features: expected a floating `dtype`, got ", dtype);
  // A local generator: the same seed gives the same features whatever the global RNG state.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  const int64_t blocks = (features + head_dim - 1) / head_dim;
  std::vector<at::Tensor> rows;
  rows.reserve(blocks);
  for (int64_t b = 0; b < blocks; ++b) {
    auto g = at::randn({head_dim, head_dim}, gen, opts);  // [D, D]
    at::Tensor qm, rm;
    std::tie(qm, rm) = at::linalg_qr(g);  // [D, D], [D, D]
    // Signs of diag(R) make Q Haar-distributed; Qᵀ has orthonormal rows.
    auto diag = rm.diagonal();                          // [D]
    auto sign = diag.sign().masked_fill(diag == 0, 1);  // [D]
    rows.push_back((qm * sign).t());                    // [D, D]
  }
  auto omega = at::cat(rows, 0).narrow(0, 0, features);  // [R, D]
  // Row norms of independent Gaussian vectors (chi with D degrees of freedom): each row is then
  // marginally N(0, I_D), as the unbiased softmax estimator needs.
  auto norms = at::linalg_vector_norm(at::randn({features, head_dim}, gen, opts), 2, {1},
                                      /*keepdim=*/true);  // [R, 1]
  return (omega * norms).to(dtype).contiguous();          // [R, D]
}

}  // namespace longseq
