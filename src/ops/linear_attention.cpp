// Normalised linear attention over non-negative features (Katharopoulos et al. 2020, "Transformers
// are RNNs"), the second half of FAVOR+ (Choromanski et al. 2021):
//   non-causal:  out = φ(q) (φ(k)ᵀ v) / (φ(q) φ(k)ᵀ 1)
//   causal:      out_t = Σ_{j≤t} φ(q_t)·φ(k_j) v_j / Σ_{j≤t} φ(q_t)·φ(k_j)  (prefix sums)
// With the Performer's causal softmax features, key j carries a running stabiliser m_j (see
// performer_features.cpp) and query t weighs it by exp(m_j − m_t) ≤ 1.
// Chunked causal form (chunk c, N = ⌈T/c⌉ chunks): inside a chunk the quadratic form
// (φ(q) φ(k)ᵀ ⊙ exp(m_j − m_t) ⊙ tril) [c, c]; across chunks a state S [R, Dv] and normaliser
// z [R] referenced to the running max at the end of the previous chunk, decayed by
// exp(m_prev − m_new) on update and by exp(m_prev − m_t) for queries. Every exponent is ≤ 0.
// A row whose normaliser is 0 (no visible valid key) outputs 0; its numerator is exactly 0 too,
// since every feature is ≥ 0. No eps anywhere.
//
// Time:   O(B·H·T·R·Dv) non-causal, O(B·H·T·(c·(R + Dv) + R·Dv)) causal (in-chunk quadratic form
//         + chunk states).
// Memory: non-causal O(B·H·R·Dv) for φ(k)ᵀ v; causal O(B·H·T·c) for the in-chunk weights and
//         O(B·H·(T/c)·R·Dv) for the carried states. Per-position states [T, R, Dv] are never
//         formed.
// Layout: fq [B, H, T, R], fk [B, H, S, R], v [B, H, S, Dv].
// Two paths: the fused CPU kernels (kernels/cpu/performer_attention.h and performer_causal.h,
// which save no per-chunk state) and the composite ATen path, differentiated by autograd, which
// saves φ(q), φ(k), v; non-causal also φ(k)ᵀ v [B, H, R, Dv]; causal the chunk weights
// [B, H, N, c, c] and the N − 1 carried states [B, H, N − 1, R, Dv].
#include <longseq/linear_attention.h>
#include <longseq/op_work.h>

#include "kernels/cpu/performer_attention.h"
#include "ops/fused.h"
#include "ops/performer.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

namespace longseq {

Work linear_attention_work(double bh, int64_t t, int64_t s, int64_t r, int64_t dv, bool causal,
                           int64_t chunk, bool backward, double elem) {
  const double T = double(t), S = double(s), R = double(r), Dv = double(dv);
  const double cols = Dv + 1;  // v's columns and the normaliser's
  double flops = 0;
  if (!causal) {
    flops = 2 * R * cols * (S + T);  // kv = fkᵀ [v 1], out = fq kv
  } else {
    // In-chunk (query, key) pairs: a triangle per chunk of c = min(chunk, T), the last partial.
    const int64_t c = std::max<int64_t>(1, std::min(chunk, t));
    const double full = double(t / c), rem = double(t % c);
    const double pairs = full * c * (c + 1) / 2 + rem * (rem + 1) / 2;
    // Each pair: its score (R) and its weighted value and normaliser (Dv + 1); each position
    // reads the carried state and adds to it (R × (Dv + 1) each).
    flops = 2 * pairs * (R + cols) + 4 * T * R * cols;
  }
  const double in = T * R + S * R + S * Dv, out = T * Dv;
  if (!backward) return {bh * flops, elem * bh * (in + out)};
  // dfq, dfk and dv: two passes of the forward's structure; reads the inputs, out and dOut.
  return {2 * bh * flops, elem * bh * (in + 2 * out + in)};
}

namespace {

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
  auto q5 = pad_time(fq).reshape({B, H, N, c, R});  // [B, H, N, c, R]
  auto k5 = pad_time(fk).reshape({B, H, N, c, R});  // [B, H, N, c, R]
  auto v5 = pad_time(v).reshape({B, H, N, c, Dv});  // [B, H, N, c, Dv]
  at::Tensor m4;                                    // [B, H, N, c]
  if (m.defined()) {
    // Repeat the last value: m stays non-decreasing, so every exponent below stays ≤ 0.
    auto mp = pad ? at::cat({m, m.narrow(2, T - 1, 1).expand({B, H, pad})}, 2) : m;  // [B, H, N·c]
    m4 = mp.reshape({B, H, N, c});
  }

  // In-chunk quadratic form, all chunks at once.
  auto tril = at::ones({c, c}, fq.options().dtype(at::kBool)).tril();  // [c, c]
  auto w = at::matmul(q5, k5.transpose(-2, -1));                       // [B, H, N, c, c]
  if (m4.defined()) {
    // exp(m_j − m_t) for j ≤ t; −inf above the diagonal gives exact zeros (w is finite there).
    auto rel = m4.unsqueeze(-2) - m4.unsqueeze(-1);  // [B, H, N, c, c]
    w = w * rel.masked_fill(tril.logical_not(), -std::numeric_limits<double>::infinity()).exp();
  } else {
    w = w.masked_fill(tril.logical_not(), 0);  // [B, H, N, c, c]
  }
  auto num = at::matmul(w, v5);  // [B, H, N, c, Dv]
  auto den = w.sum(-1);          // [B, H, N, c]

  if (N > 1) {
    // Chunk summaries referenced to each chunk's last position e: Σ_j fk_j exp(m_j − m_e) v_j.
    at::Tensor kw = k5, m_end;  // [B, H, N, c, R]
    if (m4.defined()) {
      m_end = m4.select(3, c - 1);                               // [B, H, N]
      kw = k5 * (m4 - m_end.unsqueeze(-1)).exp().unsqueeze(-1);  // [B, H, N, c, R]
    }
    auto sum_kv = at::matmul(kw.transpose(-2, -1), v5);  // [B, H, N, R, Dv]
    auto sum_k = kw.sum(3);                              // [B, H, N, R]
    // State before chunk n (n ≥ 1) covers chunks < n and is referenced to m_end[n − 1].
    // unbind, not select per chunk: the backward of each select would write a full-size zero
    // gradient, O(N²·R·Dv) in all.
    const auto chunk_kv = sum_kv.unbind(2);  // N × [B, H, R, Dv]
    const auto chunk_k = sum_k.unbind(2);    // N × [B, H, R]
    at::Tensor decay;                        // [B, H, N − 1]
    if (m_end.defined()) {
      decay = (m_end.narrow(2, 0, N - 1) - m_end.narrow(2, 1, N - 1)).exp();  // ≤ 1
    }
    std::vector<at::Tensor> states{chunk_kv[0]}, norms{chunk_k[0]};
    states.reserve(N - 1);
    norms.reserve(N - 1);
    for (int64_t n = 1; n + 1 < N; ++n) {
      at::Tensor s = states.back(), z = norms.back();
      if (decay.defined()) {
        auto d = decay.select(2, n - 1);  // [B, H]
        s = s * d.view({B, H, 1, 1});     // [B, H, R, Dv]
        z = z * d.view({B, H, 1});        // [B, H, R]
      }
      states.push_back(s + chunk_kv[n]);  // [B, H, R, Dv]
      norms.push_back(z + chunk_k[n]);    // [B, H, R]
    }
    auto state = at::stack(states, 2);                                // [B, H, N−1, R, Dv]
    auto norm = at::stack(norms, 2);                                  // [B, H, N−1, R]
    auto qn = q5.narrow(2, 1, N - 1);                                 // [B, H, N−1, c, R]
    auto inter_num = at::matmul(qn, state);                           // [B, H, N−1, c, Dv]
    auto inter_den = at::matmul(qn, norm.unsqueeze(-1)).squeeze(-1);  // [B, H, N−1, c]
    if (m4.defined()) {
      // exp(m_end[n − 1] − m_t) ≤ 1 moves the state to query t's reference.
      auto m_prev = m_end.narrow(2, 0, N - 1).unsqueeze(-1);    // [B, H, N−1, 1]
      auto to_query = (m_prev - m4.narrow(2, 1, N - 1)).exp();  // [B, H, N−1, c]
      inter_num = inter_num * to_query.unsqueeze(-1);
      inter_den = inter_den * to_query;
    }
    // Chunk 0 has no earlier state: pad the chunk dim in front with zeros.
    num = num + at::constant_pad_nd(inter_num, {0, 0, 0, 0, 1, 0});  // [B, H, N, c, Dv]
    den = den + at::constant_pad_nd(inter_den, {0, 0, 1, 0});        // [B, H, N, c]
  }
  num = num.reshape({B, H, N * c, Dv}).narrow(2, 0, T);  // [B, H, T, Dv]
  den = den.reshape({B, H, N * c}).narrow(2, 0, T);      // [B, H, T]
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
                            const at::Tensor& fk_in, const at::Tensor& v_in, const Stabiliser& stab,
                            int64_t chunk) {
    auto fq = fq_in.contiguous(), fk = fk_in.contiguous(), v = v_in.contiguous();
    auto m = stab.m.defined() ? stab.m.detach().contiguous() : at::Tensor();  // [B, H, T]
    const auto p = params(fq, v, chunk);
    auto out = empty_poisoned({fq.size(0), fq.size(1), p.t, p.dv}, fq.options());  // [B, H, T, Dv]
    auto den = empty_poisoned({fq.size(0), fq.size(1), p.t}, fq.options());        // [B, H, T]
    LONGSEQ_KERNEL_SCOPE("performer_causal_forward",
                         linear_attention_work(double(p.bh), p.t, p.t, p.r, p.dv, true, p.chunk,
                                               false, fq.element_size()));
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
    auto grad_out = incoming_grad(grads[0], out);             // [B, H, T, Dv]
    auto grad_fq = empty_poisoned(fq.sizes(), fq.options());  // [B, H, T, R]
    auto grad_fk = empty_poisoned(fk.sizes(), fk.options());  // [B, H, T, R]
    auto grad_v = empty_poisoned(v.sizes(), v.options());     // [B, H, T, Dv]
    LONGSEQ_KERNEL_SCOPE("performer_causal_backward",
                         linear_attention_work(double(p.bh), p.t, p.t, p.r, p.dv, true, p.chunk,
                                               true, fq.element_size()));
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
    auto kv = empty_poisoned({B, H, p.r, p.dv}, fq.options());   // [B, H, R, Dv]
    auto z = empty_poisoned({B, H, p.r}, fq.options());          // [B, H, R]
    auto den = empty_poisoned({B, H, p.t}, fq.options());        // [B, H, T]
    auto out = empty_poisoned({B, H, p.t, p.dv}, fq.options());  // [B, H, T, Dv]
    LONGSEQ_KERNEL_SCOPE("performer_forward",
                         linear_attention_work(double(p.bh), p.t, p.s, p.r, p.dv, false, 0, false,
                                               fq.element_size()));
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
    auto grad_out = incoming_grad(grads[0], out);             // [B, H, T, Dv]
    auto grad_fq = empty_poisoned(fq.sizes(), fq.options());  // [B, H, T, R]
    auto grad_fk = empty_poisoned(fk.sizes(), fk.options());  // [B, H, S, R]
    auto grad_v = empty_poisoned(v.sizes(), v.options());     // [B, H, S, Dv]
    LONGSEQ_KERNEL_SCOPE("performer_backward",
                         linear_attention_work(double(p.bh), p.t, p.s, p.r, p.dv, false, 0, true,
                                               fq.element_size()));
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

// Checks the inputs of linear_attention and returns fk with the padded keys' rows zeroed.
at::Tensor linear_attention_keys(const char* op, const at::Tensor& fq, const at::Tensor& fk,
                                 const at::Tensor& v, const AttentionMask& mask, int64_t chunk) {
  check_qkv(op, fq, fk, v);
  const int64_t B = fq.size(0), T = fq.size(2), S = fk.size(2);
  check_mask(op, mask, B, fq.size(1), T, S, /*causal_ok=*/true, /*pattern_ok=*/false);
  TORCH_CHECK(chunk > 0, op, ": expected `chunk` > 0, got ", chunk);
  TORCH_CHECK(!mask.causal || T == S, op,
              ": causal attention needs T == S (self-attention), got T = ", T, ", S = ", S);
  if (!mask.key_padding.defined()) return fk;
  auto valid = mask.key_padding.to(fk.device()).view({B, 1, S, 1});  // [B, 1, S, 1]
  return fk * valid.to(fk.scalar_type());                            // [B, H, S, R]
}

// num / den with the zero row of the masking contract where den == 0 (num is 0 there too).
at::Tensor normalise(const at::Tensor& num, const at::Tensor& den) {
  return num / den.masked_fill(den == 0, 1).unsqueeze(-1);  // [B, H, T, Dv]
}

at::Tensor composite_path(const at::Tensor& fq, const at::Tensor& fk, const at::Tensor& v,
                          const at::Tensor& m, bool causal, int64_t chunk) {
  if (causal) {
    auto [num, den] = causal_prefix(fq, fk, v, m, chunk);  // [B, H, T, Dv], [B, H, T]
    return normalise(num, den);
  }
  auto kv = at::matmul(fk.transpose(-2, -1), v);                   // [B, H, R, Dv]
  auto num = at::matmul(fq, kv);                                   // [B, H, T, Dv]
  auto den = at::matmul(fq, fk.sum(2).unsqueeze(-1)).squeeze(-1);  // [B, H, T]
  return normalise(num, den);
}

}  // namespace

namespace detail {

at::Tensor stabilised_linear_attention(const at::Tensor& fq, const at::Tensor& fk,
                                       const at::Tensor& v, const at::Tensor& m, bool causal,
                                       int64_t chunk, bool composite) {
  const int64_t B = fq.size(0), H = fq.size(1), T = fq.size(2), S = fk.size(2), Dv = v.size(3);
  if (T == 0 || S == 0) return fq.new_zeros({B, H, T, Dv});  // [B, H, T, Dv]
  if (composite || !use_fused_kernel("linear_attention", fq)) {
    return composite_path(fq, fk, v, m, causal, chunk);
  }
  return causal ? PerformerCausalFunction::apply(fq, fk, v, Stabiliser{m}, chunk)
                : PerformerFunction::apply(fq, fk, v);  // [B, H, T, Dv]
}

}  // namespace detail

at::Tensor linear_attention(const at::Tensor& fq, const at::Tensor& fk_in, const at::Tensor& v,
                            const AttentionMask& mask, int64_t chunk) {
  const auto fk = linear_attention_keys("linear_attention", fq, fk_in, v, mask, chunk);
  return detail::stabilised_linear_attention(fq, fk, v, at::Tensor(), mask.causal, chunk,
                                             /*composite=*/false);
}

at::Tensor linear_attention_composite(const at::Tensor& fq, const at::Tensor& fk_in,
                                      const at::Tensor& v, const AttentionMask& mask,
                                      int64_t chunk) {
  const auto fk = linear_attention_keys("linear_attention", fq, fk_in, v, mask, chunk);
  return detail::stabilised_linear_attention(fq, fk, v, at::Tensor(), mask.causal, chunk,
                                             /*composite=*/true);
}

}  // namespace longseq
