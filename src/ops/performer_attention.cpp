// FAVOR+ attention (Choromanski et al. 2021, "Rethinking Attention with Performers", ICLR),
// composite LibTorch path.
//   inputs scaled x = D^{-1/4}·q, D^{-1/4}·k, so that φ(q)·φ(k) ≈ exp(q·k / √D)
//   softmax kernel:  φ(x) = exp(ωx − |x|²/2 − stabiliser) / √R     (positive random features)
//   relu kernel:     φ(x) = relu(ωx) / √R + 1e-3                    (no stabiliser needed)
//   non-causal:      out = φ(q) (φ(k)ᵀ v) / (φ(q) φ(k)ᵀ 1)
//   causal:          out_t = Σ_{j≤t} φ(q_t)·φ(k_j) v_j / Σ_{j≤t} φ(q_t)·φ(k_j)  (prefix sums)
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
//                    exp(m_j − m_t) ≤ 1. Output t therefore depends on keys ≤ t only, even in
//                    floating point (a single max over all keys would let a huge future key
//                    underflow the features of earlier ones).
// The key stabilisers take the max of s (with the −|x|²/2 term), not of ω·x: s ≤ |ω_r|²/2 for
// every key, and the largest feature under each stabiliser is exactly 1/√R, so a large-norm key
// does not underflow every feature (exp(ω·x − max ω·x − |x|²/2) ≤ exp(−|x|²/2) would).
// Chunked causal form (chunk c, N = ⌈T/c⌉ chunks): inside a chunk the quadratic form
// (φ(q) φ(k)ᵀ ⊙ exp(m_j − m_t) ⊙ tril) [c, c]; across chunks a state S [R, Dv] and normaliser
// z [R] referenced to the running max at the end of the previous chunk, decayed by
// exp(m_prev − m_new) on update and by exp(m_prev − m_t) for queries. Every exponent is ≤ 0.
// Padded keys (key_padding false) get zero features: they drop out of numerator and normaliser.
// A row whose normaliser is 0 (no visible valid key) outputs 0; its numerator is exactly 0 too,
// since every feature is ≥ 0. No eps anywhere.
//
// Time:   O(B·H·(T + S)·R·D) for the features, plus O(B·H·T·R·Dv) non-causal,
//         O(B·H·T·(c·(R + Dv) + R·Dv)) causal (in-chunk quadratic form + chunk states).
// Memory: O(B·H·(T + S)·R) features, non-causal O(B·H·R·Dv) for φ(k)ᵀ v; causal O(B·H·T·c) for
//         the in-chunk weights and O(B·H·(T/c)·R·Dv) for the carried states. Per-position
//         states [T, R, Dv] are never formed.
// Layout: q [B, H, T, D], k [B, H, S, D], v [B, H, S, Dv], omega [R, D]; composite ATen ops.
// Saved for backward (by autograd): φ(q) [B, H, T, R], φ(k) [B, H, S, R], v; non-causal also
// φ(k)ᵀ v [B, H, R, Dv]; causal the chunk weights [B, H, N, c, c] and the N − 1 carried states
// [B, H, N − 1, R, Dv].
#include <longseq/attention.h>
#include <longseq/linear_attention.h>

#include "kernels/cpu/performer_attention.h"
#include "kernels/cpu/performer_features.h"
#include "ops/fused.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <utility>
#include <vector>

namespace longseq {

namespace {

constexpr double kReluFloor = 1e-3;  // keeps every relu feature > 0, so normalisers stay > 0

struct Features {
  at::Tensor fq, fk, m;  // [B, H, T, R], [B, H, S, R], [B, H, S] (causal softmax) or undefined
};

// Causal numerator [B, H, T, Dv] and normaliser [B, H, T] from query features fq [B, H, T, R],
// key features fk [B, H, T, R] (zero for padded keys), values v [B, H, T, Dv] and the running
// log-scale m [B, H, T] (non-decreasing in t) of the key features, or undefined for none (relu).
// Query t weighs key j ≤ t by fq_t·fk_j·exp(m_j − m_t).
std::pair<at::Tensor, at::Tensor> causal_prefix(const at::Tensor& fq, const at::Tensor& fk,
                                                const at::Tensor& v, const at::Tensor& m,
                                                int64_t chunk) {
  const int64_t B = fq.size(0), H = fq.size(1), T = fq.size(2), R = fq.size(3), Dv = v.size(3);
  const int64_t c = std::min(chunk, T), N = (T + c - 1) / c, pad = N * c - T;
  auto pad_time = [&](const at::Tensor& x) {  // zero rows after T: padded keys weigh nothing
    return pad ? at::constant_pad_nd(x, {0, 0, 0, pad}) : x;
  };
  auto q5 = pad_time(fq).reshape({B, H, N, c, R});   // [B, H, N, c, R]
  auto k5 = pad_time(fk).reshape({B, H, N, c, R});   // [B, H, N, c, R]
  auto v5 = pad_time(v).reshape({B, H, N, c, Dv});   // [B, H, N, c, Dv]
  at::Tensor m4;                                     // [B, H, N, c]
  if (m.defined()) {
    // Repeat the last value: m stays non-decreasing, so every exponent below stays ≤ 0.
    auto mp = pad ? at::cat({m, m.narrow(2, T - 1, 1).expand({B, H, pad})}, 2) : m;  // [B, H, N·c]
    m4 = mp.reshape({B, H, N, c});
  }

  // In-chunk quadratic form, all chunks at once.
  auto tril = at::ones({c, c}, fq.options().dtype(at::kBool)).tril();      // [c, c]
  auto w = at::matmul(q5, k5.transpose(-2, -1));                           // [B, H, N, c, c]
  if (m4.defined()) {
    // exp(m_j − m_t) for j ≤ t; −inf above the diagonal gives exact zeros (w is finite there).
    auto rel = m4.unsqueeze(-2) - m4.unsqueeze(-1);                        // [B, H, N, c, c]
    w = w * rel.masked_fill(tril.logical_not(), -std::numeric_limits<double>::infinity()).exp();
  } else {
    w = w.masked_fill(tril.logical_not(), 0);                              // [B, H, N, c, c]
  }
  auto num = at::matmul(w, v5);                                            // [B, H, N, c, Dv]
  auto den = w.sum(-1);                                                    // [B, H, N, c]

  if (N > 1) {
    // Chunk summaries referenced to each chunk's last position e: Σ_j fk_j exp(m_j − m_e) v_j.
    at::Tensor kw = k5, m_end;                                             // [B, H, N, c, R]
    if (m4.defined()) {
      m_end = m4.select(3, c - 1);                                         // [B, H, N]
      kw = k5 * (m4 - m_end.unsqueeze(-1)).exp().unsqueeze(-1);            // [B, H, N, c, R]
    }
    auto sum_kv = at::matmul(kw.transpose(-2, -1), v5);                    // [B, H, N, R, Dv]
    auto sum_k = kw.sum(3);                                                // [B, H, N, R]
    // State before chunk n (n ≥ 1) covers chunks < n and is referenced to m_end[n − 1].
    // unbind, not select per chunk: the backward of each select would write a full-size zero
    // gradient, O(N²·R·Dv) in all.
    const auto chunk_kv = sum_kv.unbind(2);                                // N × [B, H, R, Dv]
    const auto chunk_k = sum_k.unbind(2);                                  // N × [B, H, R]
    at::Tensor decay;                                                      // [B, H, N − 1]
    if (m_end.defined()) {
      decay = (m_end.narrow(2, 0, N - 1) - m_end.narrow(2, 1, N - 1)).exp();  // ≤ 1
    }
    std::vector<at::Tensor> states{chunk_kv[0]}, norms{chunk_k[0]};
    states.reserve(N - 1);
    norms.reserve(N - 1);
    for (int64_t n = 1; n + 1 < N; ++n) {
      at::Tensor s = states.back(), z = norms.back();
      if (decay.defined()) {
        auto d = decay.select(2, n - 1);                                   // [B, H]
        s = s * d.view({B, H, 1, 1});                                      // [B, H, R, Dv]
        z = z * d.view({B, H, 1});                                         // [B, H, R]
      }
      states.push_back(s + chunk_kv[n]);                                   // [B, H, R, Dv]
      norms.push_back(z + chunk_k[n]);                                     // [B, H, R]
    }
    auto state = at::stack(states, 2);                                     // [B, H, N−1, R, Dv]
    auto norm = at::stack(norms, 2);                                       // [B, H, N−1, R]
    auto qn = q5.narrow(2, 1, N - 1);                                      // [B, H, N−1, c, R]
    auto inter_num = at::matmul(qn, state);                                // [B, H, N−1, c, Dv]
    auto inter_den = at::matmul(qn, norm.unsqueeze(-1)).squeeze(-1);       // [B, H, N−1, c]
    if (m4.defined()) {
      // exp(m_end[n − 1] − m_t) ≤ 1 moves the state to query t's reference.
      auto m_prev = m_end.narrow(2, 0, N - 1).unsqueeze(-1);                // [B, H, N−1, 1]
      auto to_query = (m_prev - m4.narrow(2, 1, N - 1)).exp();              // [B, H, N−1, c]
      inter_num = inter_num * to_query.unsqueeze(-1);
      inter_den = inter_den * to_query;
    }
    // Chunk 0 has no earlier state: pad the chunk dim in front with zeros.
    num = num + at::constant_pad_nd(inter_num, {0, 0, 0, 0, 1, 0});        // [B, H, N, c, Dv]
    den = den + at::constant_pad_nd(inter_den, {0, 0, 1, 0});              // [B, H, N, c]
  }
  num = num.reshape({B, H, N * c, Dv}).narrow(2, 0, T);                    // [B, H, T, Dv]
  den = den.reshape({B, H, N * c}).narrow(2, 0, T);                        // [B, H, T]
  return {num, den};
}

// The running stabiliser travels in a struct: autograd::Function rejects undefined tensor
// arguments, and the relu kernel has none. It is a constant (detached) for autograd.
struct Stabiliser {
  at::Tensor m;  // [B, H, T] or undefined
};

// Pairs the fused causal prefix-sum kernel's forward and backward (kernels/cpu/performer_causal).
// fq, fk [B, H, T, R], v [B, H, T, Dv] -> out [B, H, T, Dv]. Saves fq, fk, v, m, out and den
// [B, H, T]; no per-chunk states, no [T, R, Dv].
struct PerformerCausalFunction : public torch::autograd::Function<PerformerCausalFunction> {
  static cpu::PerformerCausalParams params(const at::Tensor& fq, const at::Tensor& v,
                                           int64_t chunk) {
    cpu::PerformerCausalParams p;
    p.bh = fq.size(0) * fq.size(1);
    p.t = fq.size(2);
    p.r = fq.size(3);
    p.dv = v.size(3);
    p.chunk = std::min(chunk, std::max<int64_t>(p.t, 1));
    return p;
  }

  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& fq_in,
                            const at::Tensor& fk_in, const at::Tensor& v_in,
                            const Stabiliser& stab, int64_t chunk) {
    auto fq = fq_in.contiguous(), fk = fk_in.contiguous(), v = v_in.contiguous();
    auto m = stab.m.defined() ? stab.m.detach().contiguous() : at::Tensor();  // [B, H, T]
    const auto p = params(fq, v, chunk);
    auto out = empty_poisoned({fq.size(0), fq.size(1), p.t, p.dv}, fq.options());  // [B, H, T, Dv]
    auto den = empty_poisoned({fq.size(0), fq.size(1), p.t}, fq.options());        // [B, H, T]
    AT_DISPATCH_FLOATING_TYPES(fq.scalar_type(), "performer_causal_forward", [&] {
      cpu::performer_causal_forward<scalar_t>(
          fq.data_ptr<scalar_t>(), fk.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
          m.defined() ? m.data_ptr<scalar_t>() : nullptr, out.data_ptr<scalar_t>(),
          den.data_ptr<scalar_t>(), p);
    });
    ctx->save_for_backward({fq, fk, v, out, den});
    save_optional(ctx, "m", m);
    ctx->saved_data["chunk"] = chunk;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &fq = saved[0], &fk = saved[1], &v = saved[2], &out = saved[3], &den = saved[4];
    const auto m = load_optional(ctx, "m");
    const auto p = params(fq, v, ctx->saved_data["chunk"].toInt());
    auto grad_out = incoming_grad(grads[0], out);            // [B, H, T, Dv]
    auto grad_fq = empty_poisoned(fq.sizes(), fq.options());  // [B, H, T, R]
    auto grad_fk = empty_poisoned(fk.sizes(), fk.options());  // [B, H, T, R]
    auto grad_v = empty_poisoned(v.sizes(), v.options());     // [B, H, T, Dv]
    AT_DISPATCH_FLOATING_TYPES(fq.scalar_type(), "performer_causal_backward", [&] {
      cpu::performer_causal_backward<scalar_t>(
          fq.data_ptr<scalar_t>(), fk.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
          m.defined() ? m.data_ptr<scalar_t>() : nullptr, out.data_ptr<scalar_t>(),
          den.data_ptr<scalar_t>(), grad_out.data_ptr<scalar_t>(), grad_fq.data_ptr<scalar_t>(),
          grad_fk.data_ptr<scalar_t>(), grad_v.data_ptr<scalar_t>(), p);
    });
    return {grad_fq, grad_fk, grad_v, at::Tensor(), at::Tensor()};
  }
};

// Pairs the fused non-causal kernel's forward and backward (kernels/cpu/performer_attention).
// fq [B, H, T, R], fk [B, H, S, R], v [B, H, S, Dv] -> out [B, H, T, Dv]. Saves fq, fk, v, out
// and the small kv [B, H, R, Dv], z [B, H, R], den [B, H, T].
struct PerformerFunction : public torch::autograd::Function<PerformerFunction> {
  static cpu::PerformerParams params(const at::Tensor& fq, const at::Tensor& fk,
                                     const at::Tensor& v) {
    cpu::PerformerParams p;
    p.bh = fq.size(0) * fq.size(1);
    p.t = fq.size(2);
    p.s = fk.size(2);
    p.r = fq.size(3);
    p.dv = v.size(3);
    return p;
  }

  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& fq_in,
                            const at::Tensor& fk_in, const at::Tensor& v_in) {
    auto fq = fq_in.contiguous(), fk = fk_in.contiguous(), v = v_in.contiguous();
    const auto p = params(fq, fk, v);
    const int64_t B = fq.size(0), H = fq.size(1);
    auto kv = empty_poisoned({B, H, p.r, p.dv}, fq.options());  // [B, H, R, Dv]
    auto z = empty_poisoned({B, H, p.r}, fq.options());         // [B, H, R]
    auto den = empty_poisoned({B, H, p.t}, fq.options());       // [B, H, T]
    auto out = empty_poisoned({B, H, p.t, p.dv}, fq.options()); // [B, H, T, Dv]
    AT_DISPATCH_FLOATING_TYPES(fq.scalar_type(), "performer_forward", [&] {
      cpu::performer_forward<scalar_t>(fq.data_ptr<scalar_t>(), fk.data_ptr<scalar_t>(),
                                       v.data_ptr<scalar_t>(), kv.data_ptr<scalar_t>(),
                                       z.data_ptr<scalar_t>(), den.data_ptr<scalar_t>(),
                                       out.data_ptr<scalar_t>(), p);
    });
    ctx->save_for_backward({fq, fk, v, kv, z, den, out});
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &fq = saved[0], &fk = saved[1], &v = saved[2], &kv = saved[3], &z = saved[4],
               &den = saved[5], &out = saved[6];
    const auto p = params(fq, fk, v);
    auto grad_out = incoming_grad(grads[0], out);            // [B, H, T, Dv]
    auto grad_fq = empty_poisoned(fq.sizes(), fq.options());  // [B, H, T, R]
    auto grad_fk = empty_poisoned(fk.sizes(), fk.options());  // [B, H, S, R]
    auto grad_v = empty_poisoned(v.sizes(), v.options());     // [B, H, S, Dv]
    AT_DISPATCH_FLOATING_TYPES(fq.scalar_type(), "performer_backward", [&] {
      cpu::performer_backward<scalar_t>(
          fq.data_ptr<scalar_t>(), fk.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
          kv.data_ptr<scalar_t>(), z.data_ptr<scalar_t>(), den.data_ptr<scalar_t>(),
          out.data_ptr<scalar_t>(), grad_out.data_ptr<scalar_t>(), grad_fq.data_ptr<scalar_t>(),
          grad_fk.data_ptr<scalar_t>(), grad_v.data_ptr<scalar_t>(), p);
    });
    return {grad_fq, grad_fk, grad_v};
  }
};

// Feature maps φ(q) [B, H, T, R], φ(k) [B, H, S, R] and, for the causal softmax map, the running
// stabiliser m [B, H, S], composite path.
Features composite_features(const at::Tensor& q, const at::Tensor& k, const at::Tensor& w,
                            const PerformerCoreOptions& opts, const at::Tensor& key_padding) {
  const int64_t B = q.size(0), S = k.size(2), D = q.size(3), R = w.size(0);
  const double in_scale = std::pow(static_cast<double>(D), -0.25);
  const double inv_sqrt_r = 1.0 / std::sqrt(static_cast<double>(R));
  auto qs = q * in_scale;                                                   // [B, H, T, D]
  auto ks = k * in_scale;                                                   // [B, H, S, D]
  auto q_proj = at::matmul(qs, w.t());                                      // [B, H, T, R]
  auto k_proj = at::matmul(ks, w.t());                                      // [B, H, S, R]
  at::Tensor valid;                                                         // [B, 1, S, 1]
  if (key_padding.defined()) valid = key_padding.to(q.device()).view({B, 1, S, 1});

  at::Tensor fq, fk, m;
  if (opts.kernel == PerformerKernel::kRelu) {
    fq = at::relu(q_proj) * inv_sqrt_r + kReluFloor;                        // [B, H, T, R]
    fk = at::relu(k_proj) * inv_sqrt_r + kReluFloor;                        // [B, H, S, R]
    if (valid.defined()) fk = fk * valid.to(fk.scalar_type());              // [B, H, S, R]
  } else {
    fq = (q_proj - q_proj.detach().amax(-1, /*keepdim=*/true)).exp() * inv_sqrt_r;  // [B, H, T, R]
    auto s = k_proj - ks.pow(2).sum(-1, /*keepdim=*/true) * 0.5;            // [B, H, S, R]
    auto sd = s.detach();
    if (valid.defined()) {
      // Padded keys take the (b, h) minimum: they never raise a max, and it is finite, so a
      // prefix with no valid key still has a finite m (its features are zero anyway).
      sd = at::where(valid, sd, sd.amin({2, 3}, /*keepdim=*/true));         // [B, H, S, R]
    }
    at::Tensor e;                                                           // [B, H, S, R]
    if (opts.causal) {
      m = std::get<0>(at::cummax(sd.amax(-1), 2));                          // [B, H, S]
      e = s - m.unsqueeze(-1);
    } else {
      e = s - sd.amax({2, 3}, /*keepdim=*/true);
    }
    // −inf before exp, not a zero after it: a padded key's exponent may be > 0 and overflow.
    if (valid.defined()) {
      e = e.masked_fill(valid.logical_not(), -std::numeric_limits<double>::infinity());
    }
    fk = e.exp() * inv_sqrt_r;                                              // [B, H, S, R]
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
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "performer_features_forward", [&] {
      cpu::performer_features_forward<scalar_t>(
          x.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(), kp.defined() ? kp.data_ptr<bool>() : nullptr,
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
    auto grad_f = grads[0].contiguous();                    // [B, H, T, R]
    auto grad_x = empty_poisoned(x.sizes(), x.options());  // [B, H, T, D]
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "performer_features_backward", [&] {
      cpu::performer_features_backward<scalar_t>(
          x.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(), kp.defined() ? kp.data_ptr<bool>() : nullptr,
          f.data_ptr<scalar_t>(), grad_f.data_ptr<scalar_t>(), grad_x.data_ptr<scalar_t>(), p);
    });
    return {grad_x, at::Tensor(), at::Tensor()};
  }
};

Features fused_features(const at::Tensor& q, const at::Tensor& k, const at::Tensor& w,
                        const PerformerCoreOptions& opts, const at::Tensor& key_padding) {
  const bool relu = opts.kernel == PerformerKernel::kRelu;
  at::Tensor kp;  // [B, S]
  if (key_padding.defined()) kp = key_padding.to(at::kCPU).contiguous();
  using cpu::FeatureMap;
  auto fq = PerformerFeatureFunction::apply(
      q, w, FeatureSpec{relu ? FeatureMap::kReluQuery : FeatureMap::kSoftmaxQuery, false, {}})[0];
  auto key = PerformerFeatureFunction::apply(
      k, w, FeatureSpec{relu ? FeatureMap::kReluKey : FeatureMap::kSoftmaxKey, opts.causal, kp});
  // Only the causal softmax map hands its stabiliser on (query t weighs key j by exp(m_j − m_t)).
  return {fq, key[0], !relu && opts.causal ? key[1] : at::Tensor()};
}

}  // namespace

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
    std::tie(qm, rm) = at::linalg_qr(g);                  // [D, D], [D, D]
    // Signs of diag(R) make Q Haar-distributed; Qᵀ has orthonormal rows.
    auto diag = rm.diagonal();                             // [D]
    auto sign = diag.sign().masked_fill(diag == 0, 1);     // [D]
    rows.push_back((qm * sign).t());                       // [D, D]
  }
  auto omega = at::cat(rows, 0).narrow(0, 0, features);   // [R, D]
  // Row norms of independent Gaussian vectors (chi with D degrees of freedom): each row is then
  // marginally N(0, I_D), as the unbiased softmax estimator needs.
  auto norms = at::linalg_vector_norm(at::randn({features, head_dim}, gen, opts), 2, {1},
                                       /*keepdim=*/true);  // [R, 1]
  return (omega * norms).to(dtype).contiguous();         // [R, D]
}

at::Tensor performer_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& omega, const PerformerCoreOptions& opts,
                               const at::Tensor& key_padding) {
  constexpr const char* op = "performer_attention";
  check_qkv(op, q, k, v);
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), S = k.size(2), D = q.size(3),
                Dv = v.size(3);
  check_key_padding(op, key_padding, B, S);
  TORCH_CHECK(omega.defined() && omega.dim() == 2 && omega.size(0) > 0 && omega.size(1) == D, op,
              ": expected `omega` [R, D] with R > 0 and D = ", D, ", got ",
              omega.defined() ? omega.sizes() : at::IntArrayRef{});
  TORCH_CHECK(at::isFloatingType(omega.scalar_type()), op, ": expected floating `omega`, got ",
              omega.scalar_type());
  TORCH_CHECK(opts.chunk > 0, op, ": expected `chunk` > 0, got ", opts.chunk);
  TORCH_CHECK(!opts.causal || T == S, op,
              ": causal attention needs T == S (self-attention), got T = ", T, ", S = ", S);
  if (T == 0 || S == 0) return q.new_zeros({B, H, T, Dv});  // [B, H, T, Dv]

  const auto w = omega.to(q.options());                                     // [R, D]
  // The fused feature maps treat ω as a constant (the mixers' features are buffers).
  const auto [fq, fk, m] = fused_covers(q) && !w.requires_grad()
                               ? fused_features(q, k, w, opts, key_padding)
                               : composite_features(q, k, w, opts, key_padding);
  at::Tensor num, den;
  if (fused_covers(fq)) {
    return opts.causal ? PerformerCausalFunction::apply(fq, fk, v, Stabiliser{m}, opts.chunk)
                       : PerformerFunction::apply(fq, fk, v);  // [B, H, T, Dv]
  }
  if (opts.causal) {
    std::tie(num, den) = causal_prefix(fq, fk, v, m, opts.chunk);  // [B, H, T, Dv], [B, H, T]
  } else {
    auto kv = at::matmul(fk.transpose(-2, -1), v);                          // [B, H, R, Dv]
    num = at::matmul(fq, kv);                                               // [B, H, T, Dv]
    den = at::matmul(fq, fk.sum(2).unsqueeze(-1)).squeeze(-1);              // [B, H, T]
  }
  // den == 0 only when every weight is 0, and then num is exactly 0: dividing by 1 gives the
  // zero row of the masking contract, with zero (finite) gradients into den.
  auto safe_den = den.masked_fill(den == 0, 1);                             // [B, H, T]
  return num / safe_den.unsqueeze(-1);                                      // [B, H, T, Dv]
}

at::Tensor performer_causal_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& omega, PerformerKernel kernel, at::Tensor& s,
                                 at::Tensor& z, at::Tensor& m) {
  constexpr const char* op = "performer_causal_step";
  check_qkv(op, q, k, v);
  TORCH_CHECK(q.size(2) == k.size(2), op, ": expected as many new keys as queries, got ", q.size(2),
              " and ", k.size(2));
  const int64_t B = q.size(0), H = q.size(1), n = q.size(2), D = q.size(3), Dv = v.size(3);
  TORCH_CHECK(omega.defined() && omega.dim() == 2 && omega.size(1) == D, op,
              ": expected `omega` [R, D] with D = ", D);
  const int64_t R = omega.size(0);
  const double in_scale = std::pow(static_cast<double>(D), -0.25);
  const double inv_sqrt_r = 1.0 / std::sqrt(static_cast<double>(R));
  const auto w = omega.to(q.options());                                     // [R, D]
  if (!s.defined()) {
    s = q.new_zeros({B, H, R, Dv});
    z = q.new_zeros({B, H, R});
  }
  TORCH_CHECK(s.sizes() == at::IntArrayRef({B, H, R, Dv}) && z.sizes() == at::IntArrayRef({B, H, R}),
              op, ": state shapes do not match the inputs (", s.sizes(), ", ", z.sizes(), ")");
  auto q_proj = at::matmul(q * in_scale, w.t());                            // [B, H, n, R]
  auto ks = k * in_scale;                                                   // [B, H, n, D]
  auto k_proj = at::matmul(ks, w.t());                                      // [B, H, n, R]
  at::Tensor fq, key_log;
  if (kernel == PerformerKernel::kRelu) {
    fq = at::relu(q_proj) * inv_sqrt_r + kReluFloor;                        // [B, H, n, R]
  } else {
    fq = (q_proj - q_proj.amax(-1, /*keepdim=*/true)).exp() * inv_sqrt_r;   // [B, H, n, R]
    key_log = k_proj - ks.pow(2).sum(-1, /*keepdim=*/true) * 0.5;           // [B, H, n, R]
  }
  std::vector<at::Tensor> outs;
  outs.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    at::Tensor fk;                                                          // [B, H, R]
    if (kernel == PerformerKernel::kRelu) {
      fk = at::relu(k_proj.select(2, i)) * inv_sqrt_r + kReluFloor;
    } else {
      auto li = key_log.select(2, i);                                       // [B, H, R]
      auto m_new = m.defined() ? at::maximum(m, li.amax(-1)) : li.amax(-1); // [B, H]
      if (m.defined()) {
        auto decay = (m - m_new).exp();                                     // [B, H], <= 1
        s = s * decay.view({B, H, 1, 1});
        z = z * decay.view({B, H, 1});
      }
      m = m_new;
      fk = (li - m.unsqueeze(-1)).exp() * inv_sqrt_r;                       // [B, H, R]
    }
    s = s + fk.unsqueeze(-1) * v.select(2, i).unsqueeze(-2);                // [B, H, R, Dv]
    z = z + fk;                                                             // [B, H, R]
    auto fqi = fq.select(2, i);                                             // [B, H, R]
    auto num = at::matmul(fqi.unsqueeze(-2), s).squeeze(-2);                // [B, H, Dv]
    auto den = (fqi * z).sum(-1);                                           // [B, H]
    outs.push_back(num / den.masked_fill(den == 0, 1).unsqueeze(-1));       // [B, H, Dv]
  }
  return at::stack(outs, 2);                                                // [B, H, n, Dv]
}

namespace {

// Checks the inputs of linear_attention and returns fk with the padded keys' rows zeroed.
at::Tensor linear_attention_keys(const char* op, const at::Tensor& fq, const at::Tensor& fk,
                                 const at::Tensor& v, const AttentionMask& mask, int64_t chunk) {
  check_qkv(op, fq, fk, v);
  const int64_t B = fq.size(0), T = fq.size(2), S = fk.size(2);
  check_key_padding(op, mask.key_padding, B, S);
  TORCH_CHECK(chunk > 0, op, ": expected `chunk` > 0, got ", chunk);
  TORCH_CHECK(!mask.causal || T == S, op,
              ": causal attention needs T == S (self-attention), got T = ", T, ", S = ", S);
  if (!mask.key_padding.defined()) return fk;
  auto valid = mask.key_padding.to(fk.device()).view({B, 1, S, 1});  // [B, 1, S, 1]
  return fk * valid.to(fk.scalar_type());                             // [B, H, S, R]
}

// num / den with the zero row of the masking contract where den == 0 (num is 0 there too).
at::Tensor normalise(const at::Tensor& num, const at::Tensor& den) {
  return num / den.masked_fill(den == 0, 1).unsqueeze(-1);  // [B, H, T, Dv]
}

at::Tensor linear_attention_composite_path(const at::Tensor& fq, const at::Tensor& fk,
                                           const at::Tensor& v, bool causal, int64_t chunk) {
  if (causal) {
    auto [num, den] = causal_prefix(fq, fk, v, at::Tensor(), chunk);  // [B, H, T, Dv], [B, H, T]
    return normalise(num, den);
  }
  auto kv = at::matmul(fk.transpose(-2, -1), v);                     // [B, H, R, Dv]
  auto num = at::matmul(fq, kv);                                     // [B, H, T, Dv]
  auto den = at::matmul(fq, fk.sum(2).unsqueeze(-1)).squeeze(-1);    // [B, H, T]
  return normalise(num, den);
}

}  // namespace

at::Tensor linear_attention(const at::Tensor& fq, const at::Tensor& fk_in, const at::Tensor& v,
                            const AttentionMask& mask, int64_t chunk) {
  const auto fk = linear_attention_keys("linear_attention", fq, fk_in, v, mask, chunk);
  const int64_t B = fq.size(0), H = fq.size(1), T = fq.size(2), S = fk.size(2), Dv = v.size(3);
  if (T == 0 || S == 0) return fq.new_zeros({B, H, T, Dv});  // [B, H, T, Dv]
  if (fused_covers(fq)) {
    return mask.causal ? PerformerCausalFunction::apply(fq, fk, v, Stabiliser{}, chunk)
                       : PerformerFunction::apply(fq, fk, v);  // [B, H, T, Dv]
  }
  return linear_attention_composite_path(fq, fk, v, mask.causal, chunk);
}

at::Tensor linear_attention_composite(const at::Tensor& fq, const at::Tensor& fk_in,
                                      const at::Tensor& v, const AttentionMask& mask,
                                      int64_t chunk) {
  const auto fk = linear_attention_keys("linear_attention", fq, fk_in, v, mask, chunk);
  const int64_t B = fq.size(0), H = fq.size(1), T = fq.size(2), S = fk.size(2), Dv = v.size(3);
  if (T == 0 || S == 0) return fq.new_zeros({B, H, T, Dv});  // [B, H, T, Dv]
  return linear_attention_composite_path(fq, fk, v, mask.causal, chunk);
}

}  // namespace longseq
