// Reformer LSH attention with shared QK (Kitaev, Kaiser & Levskaya 2020, "Reformer: The Efficient
// Transformer"; follows trax's LSHSelfAttention).
//
// What it computes. Keys are the queries normalised to unit length, k_j = qk_j / ‖qk_j‖. For each
// of n_hashes rounds r:
//   h_r(x) = argmax([x R_r ; -x R_r])          bucket of each token among NB (NB = 1: all in 0)
//   sort the tokens by (h_r, position), cut the sorted order into chunks of `chunk` tokens; every
//   chunk attends to itself and to the previous chunk (the first chunk only to itself), with
//   s_ij = qk_i · k_j / √D - log c_ij
//   where c_ij counts the rounds in which j lies in i's window (own or previous chunk; when causal,
//   the `chunk` most recent tokens of i's own bucket up to i, which keeps it strictly causal), so a
//   key
//   seen in several rounds weighs once; the self score is -1e5 (after the scale, as in trax), so a
//   token attends to itself only when it sees nothing else. Causal and key-padding masks are hard.
// Rounds combine by their log-sum-exp: out_i = Σ_r softmax_r(lse_r,i) · o_r,i. With the duplicate
// correction this is exactly softmax attention over the union of the keys i sees in any round.
//
// Complexity. Time O(B·H·n_hashes·T·(chunk·(D + n_hashes) + log T)); memory
// O(B·H·n_hashes·T·(chunk + D)), never T×T (the n_hashes² duplicate count is accumulated round by
// round into one [.., chunk, 2·chunk] buffer).
//
// Layout. qk [B, H, T, D], v [B, H, T, Dv], rotations [n_hashes, D, max(NB/2, 1)]. After sorting, a
// round's tensors are [B, H, n_hashes, NC, chunk, ·] with NC = ceil(T / chunk); T is padded up to
// NC·chunk with masked slots at the end of the sorted order.
//
// Two implementations after the hashing and sorting (shared): the fused CPU kernel
// (kernels/cpu/reformer_attention.h: chunks read through the permutation, rounds combined in the
// kernel, O(T) saved; chosen by use_fused below) and the composite ATen path (any device, and
// dropout), differentiated by autograd, which saves the sorted, chunked qk, k and v, the
// probabilities and per-round outputs. Bucket ids, sort permutations, masks and duplicate counts
// are integer/bool constants, so backward reuses forward's buckets.
#include <longseq/attention.h>
#include <longseq/op_work.h>

#include "kernels/cpu/reformer_attention.h"
#include "ops/fused.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace longseq {

Work reformer_attention_work(int64_t batch, int64_t heads, int64_t t, int64_t d, int64_t dv,
                             int64_t n_hashes, int64_t chunk, bool causal, bool backward,
                             double elem) {
  const double c = double(std::min(chunk, t)), T = double(t);
  const double pairs = n_hashes * T * (causal ? c : std::min(2 * c, T));  // per head
  return softmax_attention_work(double(batch) * heads, pairs, T, T, d, dv, backward, elem);
}

namespace {

int64_t rotation_cols(const ReformerCoreOptions& opts) {
  return std::max<int64_t>(opts.buckets / 2, 1);
}

void check_options(const char* op, const ReformerCoreOptions& opts) {
  TORCH_CHECK(opts.buckets == 1 || (opts.buckets >= 2 && opts.buckets % 2 == 0), op,
              ": expected `buckets` to be 1 or an even number >= 2, got ", opts.buckets);
  TORCH_CHECK(opts.n_hashes > 0, op, ": expected `n_hashes` > 0, got ", opts.n_hashes);
  TORCH_CHECK(opts.chunk > 0, op, ": expected `chunk` > 0, got ", opts.chunk);
}

void check_rotations(const char* op, const at::Tensor& rotations, const ReformerCoreOptions& opts,
                     int64_t head_dim) {
  TORCH_CHECK(rotations.defined(), op, ": `rotations` must be given (see reformer_draw_rotations)");
  TORCH_CHECK(rotations.dim() == 3 && rotations.size(0) == opts.n_hashes &&
                  rotations.size(1) == head_dim && rotations.size(2) == rotation_cols(opts),
              op, ": expected `rotations` of shape [n_hashes, D, max(NB/2, 1)] = [", opts.n_hashes,
              ", ", head_dim, ", ", rotation_cols(opts), "], got ", rotations.sizes());
  TORCH_CHECK(at::isFloatingType(rotations.scalar_type()), op,
              ": expected floating `rotations`, got ", rotations.scalar_type());
}

// Self score: finite, so a token that sees only itself still attends to itself, yet exp of it
// underflows to exactly 0 beside any ordinary score. Half tops out at 65504.
double self_score(at::ScalarType t) { return t == at::kHalf ? -5e4 : -1e5; }

// [B, H, n, NC, c, ·] -> [B, H, n, NC, 2c, ·]: each chunk followed by the previous one. The
// first chunk's look-back half (the last chunk, by the roll) is masked by the caller.
at::Tensor look_one_back(const at::Tensor& x) { return at::cat({x, x.roll(1, 3)}, 4); }

// The integer constants of one call (they travel in a struct: autograd::Function rejects
// undefined tensor arguments, and key_padding is optional).
struct LshIndex {
  at::Tensor perm, inv, buckets;  // [B, H, n, T] int64: slot -> position, position -> slot, bucket
  at::Tensor key_padding;         // [B, T] bool or undefined
  int64_t n_hashes;
  int64_t chunk;  // min(opts.chunk, T)
  bool causal;
};

// Pairs the fused kernel's forward and backward. qk (queries), kn (unit keys) [B, H, T, D],
// v [B, H, T, Dv] -> out [B, H, T, Dv]. Saves qk, kn, v, out, lse [B, H, T] and the index.
struct ReformerFunction : public torch::autograd::Function<ReformerFunction> {
  static cpu::ReformerParams params(const at::Tensor& qk, const at::Tensor& v, const LshIndex& ix) {
    cpu::ReformerParams p;
    p.batch = qk.size(0);
    p.heads = qk.size(1);
    p.t = qk.size(2);
    p.d = qk.size(3);
    p.dv = v.size(3);
    p.n_hashes = ix.n_hashes;
    p.chunk = ix.chunk;
    p.causal = ix.causal;
    p.scale = 1.0 / std::sqrt(static_cast<double>(p.d));
    return p;
  }

  template <typename scalar_t>
  static const bool* padding_ptr(const LshIndex& ix) {
    return ix.key_padding.defined() ? ix.key_padding.data_ptr<bool>() : nullptr;
  }

  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& qk_in,
                            const at::Tensor& kn_in, const at::Tensor& v_in, const LshIndex& ix) {
    auto qk = qk_in.contiguous(), kn = kn_in.contiguous(), v = v_in.contiguous();
    const auto p = params(qk, v, ix);
    auto out = empty_poisoned(v.sizes(), v.options());                 // [B, H, T, Dv]
    auto lse = empty_poisoned({p.batch, p.heads, p.t}, qk.options());  // [B, H, T]
    LONGSEQ_KERNEL_SCOPE("reformer_attention_forward",
                         reformer_attention_work(p.batch, p.heads, p.t, p.d, p.dv, p.n_hashes,
                                                 p.chunk, p.causal, false, qk.element_size()));
    AT_DISPATCH_FLOATING_TYPES(qk.scalar_type(), "reformer_attention_forward", [&] {
      cpu::reformer_attention_forward<scalar_t>(
          qk.data_ptr<scalar_t>(), kn.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
          ix.perm.data_ptr<int64_t>(), ix.inv.data_ptr<int64_t>(), ix.buckets.data_ptr<int64_t>(),
          padding_ptr<scalar_t>(ix), out.data_ptr<scalar_t>(), lse.data_ptr<scalar_t>(), p);
    });
    ctx->save_for_backward({qk, kn, v, out, lse, ix.perm, ix.inv, ix.buckets});
    save_optional(ctx, "key_padding", ix.key_padding);
    ctx->saved_data["n_hashes"] = ix.n_hashes;
    ctx->saved_data["causal"] = ix.causal;
    ctx->saved_data["chunk"] = ix.chunk;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &qk = saved[0], &kn = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4];
    const LshIndex ix{saved[5],
                      saved[6],
                      saved[7],
                      load_optional(ctx, "key_padding"),
                      ctx->saved_data["n_hashes"].toInt(),
                      ctx->saved_data["chunk"].toInt(),
                      ctx->saved_data["causal"].toBool()};
    const auto p = params(qk, v, ix);
    auto grad_out = incoming_grad(grads[0], out);             // [B, H, T, Dv]
    auto grad_qk = empty_poisoned(qk.sizes(), qk.options());  // [B, H, T, D]
    auto grad_kn = empty_poisoned(kn.sizes(), kn.options());  // [B, H, T, D]
    auto grad_v = empty_poisoned(v.sizes(), v.options());     // [B, H, T, Dv]
    LONGSEQ_KERNEL_SCOPE("reformer_attention_backward",
                         reformer_attention_work(p.batch, p.heads, p.t, p.d, p.dv, p.n_hashes,
                                                 p.chunk, p.causal, true, qk.element_size()));
    AT_DISPATCH_FLOATING_TYPES(qk.scalar_type(), "reformer_attention_backward", [&] {
      cpu::reformer_attention_backward<scalar_t>(
          qk.data_ptr<scalar_t>(), kn.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
          ix.perm.data_ptr<int64_t>(), ix.inv.data_ptr<int64_t>(), ix.buckets.data_ptr<int64_t>(),
          padding_ptr<scalar_t>(ix), out.data_ptr<scalar_t>(), lse.data_ptr<scalar_t>(),
          grad_out.data_ptr<scalar_t>(), grad_qk.data_ptr<scalar_t>(), grad_kn.data_ptr<scalar_t>(),
          grad_v.data_ptr<scalar_t>(), p);
    });
    return {grad_qk, grad_kn, grad_v, at::Tensor()};
  }
};

// The fused kernel covers CPU float/double calls without active dropout, with positions that fit
// its int32 mask tables.
bool use_fused(const at::Tensor& qk, double dropout_p, bool train) {
  const char* why_not = nullptr;
  if (qk.size(2) >= std::numeric_limits<int32_t>::max()) why_not = "T does not fit int32";
  if (train && dropout_p > 0) why_not = "dropout while training";
  return use_fused_kernel("reformer_attention", qk, why_not);
}

// Checks the inputs of reformer_attention; returns key_padding on qk's device (or undefined).
at::Tensor check_inputs(const char* op, const at::Tensor& qk, const at::Tensor& v,
                        const at::Tensor& rotations, const ReformerCoreOptions& opts,
                        const AttentionMask& mask, double dropout_p) {
  check_qkv(op, qk, qk, v);
  check_options(op, opts);
  check_rotations(op, rotations, opts, qk.size(3));
  TORCH_CHECK(dropout_p >= 0.0 && dropout_p < 1.0, op, ": expected `dropout_p` in [0, 1), got ",
              dropout_p);
  const int64_t T = qk.size(2);
  check_mask(op, mask, qk.size(0), qk.size(1), T, T, /*causal_ok=*/true, /*pattern_ok=*/false);
  return mask.key_padding.defined() ? mask.key_padding.to(qk.device()) : at::Tensor();
}

// Hashes qk and sorts each round by (bucket, position); keys are unique, so the order is
// deterministic. Padded tokens go to an extra last bucket, so whatever they hold never moves a
// real token's place in the sorted order (their keys are masked anyway).
LshIndex lsh_index(const at::Tensor& qk, const at::Tensor& rotations,
                   const ReformerCoreOptions& opts, const at::Tensor& key_padding, bool causal) {
  const int64_t B = qk.size(0), T = qk.size(2);
  auto buckets = reformer_hash(qk, rotations, opts);  // [B, H, n, T]
  if (key_padding.defined()) {
    buckets = buckets.masked_fill(key_padding.view({B, 1, 1, T}).logical_not(), opts.buckets);
  }
  auto pos = at::arange(T, qk.options().dtype(at::kLong));  // [T]
  auto perm = std::get<1>((buckets * T + pos).sort(-1));    // [B, H, n, T] slot -> pos
  auto inv = at::empty_like(perm).scatter_(-1, perm, pos.expand_as(perm));  // pos -> slot
  // With chunk >= T there is a single chunk either way; shrinking it avoids padding.
  return {perm, inv, buckets, key_padding, opts.n_hashes, std::min(opts.chunk, T), causal};
}

// Unit-length keys; the clamp keeps a zero vector finite (its key is then 0).
at::Tensor unit_keys(const at::Tensor& qk) {
  return qk / at::linalg_vector_norm(qk, 2, at::IntArrayRef{-1}, true).clamp_min(1e-12);
}

// The composite ATen path after hashing: gathers each round's sorted chunks, scores each chunk
// against itself and the previous one, and combines the rounds by their log-sum-exp.
at::Tensor composite_path(const at::Tensor& qk, const at::Tensor& v, const LshIndex& ix,
                          double dropout_p, bool train) {
  const int64_t B = qk.size(0), H = qk.size(1), T = qk.size(2), D = qk.size(3), Dv = v.size(3);
  const int64_t n = ix.n_hashes, c = ix.chunk;
  const int64_t nc = (T + c - 1) / c, tp = nc * c;
  const auto lopts = qk.options().dtype(at::kLong);
  const auto bopts = qk.options().dtype(at::kBool);
  const auto &perm = ix.perm, &inv = ix.inv, &buckets = ix.buckets, &key_padding = ix.key_padding;
  const bool causal = ix.causal;
  auto kn = unit_keys(qk);  // [B, H, T, D]
  // Padding slots sit at the end of the sorted order; they point at position 0 and are masked.
  auto slot_pos =
      tp > T ? at::cat({perm, at::zeros({B, H, n, tp - T}, lopts)}, -1) : perm;  // [B, H, n, Tp]
  auto key_ok = (at::arange(tp, lopts) < T).expand({B, H, n, tp});               // [B, H, n, Tp]
  if (key_padding.defined()) {
    auto kp = key_padding.view({B, 1, 1, T}).expand({B, H, n, T});
    key_ok = key_ok.logical_and(kp.gather(-1, slot_pos));  // [B, H, n, Tp]
  }

  auto sorted = [&](const at::Tensor& x) {  // [B, H, T, E] -> [B, H, n, NC, c, E]
    const int64_t e = x.size(3);
    auto idx = slot_pos.unsqueeze(-1).expand({B, H, n, tp, e});
    return x.unsqueeze(2).expand({B, H, n, T, e}).gather(3, idx).view({B, H, n, nc, c, e});
  };
  auto q_c = sorted(qk);                           // [B, H, n, NC, c, D]
  auto k_w = look_one_back(sorted(kn));            // [B, H, n, NC, 2c, D]
  auto v_w = look_one_back(sorted(v));             // [B, H, n, NC, 2c, Dv]
  auto qpos = slot_pos.reshape({B, H, n, nc, c});  // [B, H, n, NC, c]
  auto kpos = look_one_back(qpos);                 // [B, H, n, NC, 2c]

  // No wrap-around: chunk 0 has no previous chunk.
  auto window =
      at::cat({at::ones({nc, c}, bopts), (at::arange(nc, lopts) > 0).view({nc, 1}).expand({nc, c})},
              1);  // [NC, 2c]
  auto allowed = look_one_back(key_ok.reshape({B, H, n, nc, c}))
                     .logical_and(window)
                     .unsqueeze(-2);  // [B, H, n, NC, 1, 2c]
  auto qp = qpos.unsqueeze(-1), kp = kpos.unsqueeze(-2);
  // Causal: key j is visible to i in a round only if it shares i's bucket and is among the `c`
  // most recent tokens of that bucket up to i (0 <= slot_i - slot_j < c). Within a bucket the sort
  // keeps positional order, so this window depends on earlier tokens only: outputs up to t are
  // unchanged by anything after t. (Plain chunk windows are not: a future token hashed into an
  // earlier bucket shifts the chunk boundaries of earlier queries.)
  at::Tensor sorted_bucket;  // [B, H, n, Tp]
  if (causal) {
    sorted_bucket = buckets.gather(-1, perm);
    if (tp > T)
      sorted_bucket = at::cat({sorted_bucket, at::full({B, H, n, tp - T}, -1, lopts)}, -1);
    auto bq = sorted_bucket.reshape({B, H, n, nc, c});  // [B, H, n, NC, c]
    auto bk = look_one_back(bq);                        // [B, H, n, NC, 2c]
    auto sq = at::arange(tp, lopts).view({nc, c});      // [NC, c]
    auto gap = sq.unsqueeze(-1) - look_one_back(sq.view({1, 1, 1, nc, c})).view({nc, 1, 2 * c});
    allowed = allowed.logical_and(kp <= qp)
                  .logical_and(bk.unsqueeze(-2) == bq.unsqueeze(-1))
                  .logical_and(gap.ge(0).logical_and(gap.lt(c)));  // [B, H, n, NC, c, 2c]
  }

  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  auto scores = at::matmul(q_c, k_w.transpose(-1, -2)) * scale;  // [B, H, n, NC, c, 2c]
  scores = scores.masked_fill(kp == qp, self_score(qk.scalar_type()));
  if (n > 1) {
    // c_ij = #{r' : chunk_r'(i) - chunk_r'(j) ∈ {0, 1}}, accumulated one round r' at a time.
    auto chunk_of = inv.div(c, "trunc");  // [B, H, n, T]
    auto qflat = qpos.reshape({B, H, n * tp});
    auto kflat = kpos.reshape({B, H, n * nc * 2 * c});
    auto counts = at::zeros({B, H, n, nc, c, 2 * c}, qk.options());  // [B, H, n, NC, c, 2c]
    for (int64_t r = 0; r < n; ++r) {
      at::Tensor seen;  // [B, H, n, NC, c, 2c]
      if (causal) {
        // Same visibility rule as above, in round r: same bucket, slot gap in [0, c).
        auto sl = inv.select(2, r), bu = buckets.select(2, r);  // [B, H, T]
        auto d = sl.gather(2, qflat).view({B, H, n, nc, c, 1}) -
                 sl.gather(2, kflat).view({B, H, n, nc, 1, 2 * c});
        auto same = bu.gather(2, qflat).view({B, H, n, nc, c, 1}) ==
                    bu.gather(2, kflat).view({B, H, n, nc, 1, 2 * c});
        seen = d.ge(0).logical_and(d.lt(c)).logical_and(same);
      } else {
        auto ch = chunk_of.select(2, r);  // [B, H, T]
        auto d = ch.gather(2, qflat).view({B, H, n, nc, c, 1}) -
                 ch.gather(2, kflat).view({B, H, n, nc, 1, 2 * c});
        seen = d.ge(0).logical_and(d.le(1));
      }
      counts.add_(seen.to(counts.scalar_type()));
    }
    // Every visible pair has c_ij >= 1 (its own round); the clamp only touches masked entries.
    scores = scores - counts.clamp_min(1).log();
  }
  // probs [B, H, n, NC, c, 2c]; lse [B, H, n, NC, c], needed only to combine rounds.
  auto [probs, lse] = masked_softmax(scores, allowed, /*with_lse=*/n > 1);
  if (train && dropout_p > 0) probs = at::dropout(probs, dropout_p, /*train=*/true);
  auto o = at::matmul(probs, v_w);  // [B, H, n, NC, c, Dv]

  // Back to positional order.
  auto o_t = o.reshape({B, H, n, tp, Dv})
                 .narrow(3, 0, T)
                 .gather(3, inv.unsqueeze(-1).expand({B, H, n, T, Dv}));   // [B, H, n, T, Dv]
  if (n == 1) return o_t.squeeze(2);                                       // [B, H, T, Dv]
  auto lse_t = lse.reshape({B, H, n, tp}).narrow(3, 0, T).gather(3, inv);  // [B, H, n, T]
  // Rounds where i sees nothing have lse -inf and weight 0; all empty gives a zero row.
  auto lse_q = lse_t.transpose(2, 3);                                          // [B, H, T, n]
  auto w = masked_softmax(lse_q, lse_q.isfinite(), /*with_lse=*/false).first;  // [B, H, T, n]
  return (w.transpose(2, 3).unsqueeze(-1) * o_t).sum(2);                       // [B, H, T, Dv]
}

}  // namespace

at::Tensor reformer_draw_rotations(const ReformerCoreOptions& opts, int64_t head_dim, uint64_t seed,
                                   at::ScalarType dtype) {
  check_options("reformer_draw_rotations", opts);
  TORCH_CHECK(head_dim > 0, "reformer_draw_rotations: expected `head_dim` > 0, got ", head_dim);
  TORCH_CHECK(at::isFloatingType(dtype),
              "reformer_draw_rotations: expected a floating `dtype`, got ", dtype);
  // A local generator: the same seed gives the same rotations whatever the global RNG did. Drawn
  // in float32 and cast, so every dtype gets the same rotations (float32 -> float64 is exact).
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto r = at::randn({opts.n_hashes, head_dim, rotation_cols(opts)}, gen,
                     at::TensorOptions().dtype(at::kFloat));  // [n, D, NB/2]
  return r.to(dtype);
}

at::Tensor reformer_hash(const at::Tensor& qk, const at::Tensor& rotations,
                         const ReformerCoreOptions& opts) {
  constexpr const char* op = "reformer_hash";
  check_options(op, opts);
  TORCH_CHECK(qk.defined() && qk.dim() == 4, op, ": expected 4-D `qk` [B, H, T, D], got ",
              qk.defined() ? qk.dim() : 0, "-D");
  TORCH_CHECK(at::isFloatingType(qk.scalar_type()), op, ": expected floating `qk`, got ",
              qk.scalar_type());
  check_rotations(op, rotations, opts, qk.size(3));
  const int64_t B = qk.size(0), H = qk.size(1), T = qk.size(2);
  if (opts.buckets == 1) {
    return at::zeros({B, H, opts.n_hashes, T}, qk.options().dtype(at::kLong));  // [B, H, n, T]
  }
  // Every round's projections in one GEMM, [B·H·T, D] × [D, n·NB/2] (a batched product per round
  // ran at a seventh of the sgemm rate: its NB/2 columns are too few).
  const int64_t n = opts.n_hashes, D = qk.size(3), half = rotations.size(2);
  auto rot = rotations.detach()
                 .to(qk.device(), qk.scalar_type())
                 .permute({1, 0, 2})
                 .reshape({D, n * half});                           // [D, n·NB/2]
  auto xr = at::matmul(qk.detach(), rot).view({B, H, T, n, half});  // [B, H, T, n, NB/2]
  if (!xr.is_cpu()) {
    return at::cat({xr, xr.neg()}, -1).argmax(-1).permute({0, 1, 3, 2}).contiguous();
  }
  xr = xr.contiguous();
  auto buckets = at::empty({B, H, n, T}, qk.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(xr.scalar_type(), "reformer_hash", [&] {
    cpu::reformer_buckets<scalar_t>(xr.data_ptr<scalar_t>(), B * H, T, n, half,
                                    buckets.data_ptr<int64_t>());
  });
  return buckets;  // [B, H, n, T]
}

at::Tensor reformer_attention(const at::Tensor& qk, const at::Tensor& v,
                              const at::Tensor& rotations, const ReformerCoreOptions& opts,
                              const AttentionMask& mask, double dropout_p, bool train) {
  constexpr const char* op = "reformer_attention";
  const auto kp = check_inputs(op, qk, v, rotations, opts, mask, dropout_p);  // [B, T] or undefined
  if (qk.size(0) == 0 || qk.size(1) == 0 || qk.size(2) == 0) return at::zeros_like(v);
  if (!use_fused(qk, dropout_p, train)) {
    return composite_path(qk, v, lsh_index(qk, rotations, opts, kp, mask.causal), dropout_p, train);
  }
  auto ix = lsh_index(qk, rotations, opts, kp.defined() ? kp.contiguous() : kp, mask.causal);
  ix.perm = ix.perm.contiguous();
  ix.inv = ix.inv.contiguous();
  ix.buckets = ix.buckets.contiguous();
  return ReformerFunction::apply(qk, unit_keys(qk), v, ix);  // [B, H, T, Dv]
}

at::Tensor reformer_attention_composite(const at::Tensor& qk, const at::Tensor& v,
                                        const at::Tensor& rotations,
                                        const ReformerCoreOptions& opts, const AttentionMask& mask,
                                        double dropout_p, bool train) {
  constexpr const char* op = "reformer_attention";
  const auto kp = check_inputs(op, qk, v, rotations, opts, mask, dropout_p);  // [B, T] or undefined
  if (qk.size(0) == 0 || qk.size(1) == 0 || qk.size(2) == 0) return at::zeros_like(v);
  return composite_path(qk, v, lsh_index(qk, rotations, opts, kp, mask.causal), dropout_p, train);
}

}  // namespace longseq
