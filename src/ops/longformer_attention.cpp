// Longformer attention (Beltagy et al. 2020, "Longformer: The Long-Document Transformer").
// Two implementations of the banded rows behind one signature: the fused CPU kernel
// (kernels/cpu/longformer_attention.h: dilation as strides, block GEMMs, O(T) extra memory, chosen
// by use_fused below) and the composite LibTorch path described here, the reference and the path
// for other devices and for dropout.
//   Query i sees: the band keys i + d·m, m ∈ [-W/2, W/2] (causal: i - d·m, m ∈ [0, W]), d = the
//   head's dilation; every global key; and, when i itself is global, every key. Causal and key
//   padding masks apply on top. A global key inside the band is counted once.
// Computed for all query blocks at once: block [t0, t0 + c) scores against the contiguous key span
// that covers its band ([t0 - back, t0 + c - 1 + ahead], an unfolded view of the padded keys) plus
// the G global keys, masked to the pattern.
// Time O(B·H·T·(c + W·d + G)·D), memory O(B·H·T·(c + W·d + G)) saved for backward, never T×T.
// Global query rows are recomputed afterwards with full attention (optionally through their own
// projections q_g, k_g, v_g) in O(B·H·G·T) and overwrite the banded result.
#include <longseq/op_work.h>
#include <longseq/attention.h>
#include <longseq/impl.h>

#include "kernels/cpu/longformer_attention.h"
#include "ops/fused.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace longseq {
namespace {

void check_pattern(const LongformerPattern& p, bool causal, int64_t heads, int64_t t) {
  TORCH_CHECK(p.window > 0, "longformer_attention: expected `window` > 0, got ", p.window);
  TORCH_CHECK(causal || p.window % 2 == 0,
              "longformer_attention: non-causal `window` must be even (W/2 keys each side), got ",
              p.window);
  TORCH_CHECK(p.dilation.size() == 1 || static_cast<int64_t>(p.dilation.size()) == heads,
              "longformer_attention: expected `dilation` with 1 or H = ", heads, " entries, got ",
              p.dilation.size());
  for (int64_t d : p.dilation) {
    TORCH_CHECK(d > 0, "longformer_attention: expected every `dilation` > 0, got ", d);
  }
  TORCH_CHECK(p.block >= 0, "longformer_attention: expected `block` >= 0, got ", p.block);
  for (size_t i = 0; i < p.global_positions.size(); ++i) {
    const int64_t g = p.global_positions[i];
    TORCH_CHECK(g >= 0 && g < t, "longformer_attention: global position ", g,
                " is outside the sequence [0, ", t, ")");
    TORCH_CHECK(i == 0 || g > p.global_positions[i - 1],
                "longformer_attention: `global_positions` must be sorted and unique, got ", g,
                " after ", p.global_positions[i - 1]);
  }
}

// Bool [H, Tq, Tk]: is key j in the band of query i for each head (no globals, no padding).
at::Tensor band_allowed(const LongformerPattern& p, bool causal, int64_t heads,
                        const at::Tensor& qpos, const at::Tensor& kpos) {
  auto dil = at::tensor(p.dilation, qpos.options());         // [1|H]
  dil = dil.expand({heads}).view({heads, 1, 1});             // [H, 1, 1]
  auto rel = kpos.view({1, 1, -1}) - qpos.view({1, -1, 1});  // [1, Tq, Tk]
  auto on_grid = rel.remainder(dil) == 0;                    // [H, Tq, Tk]
  auto steps = rel.div(dil, "floor");                        // [H, Tq, Tk]
  auto in_reach =
      causal ? (steps <= 0).logical_and(steps >= -p.window) : steps.abs() <= p.window / 2;
  return on_grid.logical_and(in_reach);
}

}  // namespace

at::Tensor longformer_allowed(const LongformerPattern& p, bool causal, int64_t heads,
                              const at::Tensor& qpos, const at::Tensor& kpos) {
  check_pattern(p, causal, heads, std::numeric_limits<int64_t>::max());
  auto allowed = band_allowed(p, causal, heads, qpos, kpos);  // [H, Tq, Tk]
  if (!p.global_positions.empty()) {
    auto g = at::tensor(p.global_positions, qpos.options()).view({1, -1});  // [1, G]
    auto q_global = (qpos.view({-1, 1}) == g).any(1);                       // [Tq]
    auto k_global = (kpos.view({-1, 1}) == g).any(1);                       // [Tk]
    allowed = allowed.logical_or(q_global.view({1, -1, 1})).logical_or(k_global.view({1, 1, -1}));
  }
  if (causal) allowed = allowed.logical_and(kpos.view({1, 1, -1}) <= qpos.view({1, -1, 1}));
  return allowed;  // [H, Tq, Tk]
}

at::Tensor longformer_dense_allowed(const LongformerPattern& p, bool causal, int64_t heads,
                                    int64_t t) {
  check_pattern(p, causal, heads, t);
  auto pos = at::arange(t, at::kLong);
  return longformer_allowed(p, causal, heads, pos, pos);  // [H, T, T]
}

namespace {

// The banded rows (every row; global query rows are overwritten by global_rows), composite path.
at::Tensor banded_composite(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const LongformerPattern& p, bool causal, const at::Tensor& key_padding,
                            double dropout_p, bool train) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  const int64_t dmax = *std::max_element(p.dilation.begin(), p.dilation.end());
  const int64_t back = causal ? p.window * dmax : (p.window / 2) * dmax;  // keys before i
  const int64_t ahead = causal ? 0 : (p.window / 2) * dmax;               // keys after i
  const int64_t c =
      std::min<int64_t>(T, p.block > 0 ? p.block : std::max<int64_t>(64, p.window / 2));
  const int64_t G = static_cast<int64_t>(p.global_positions.size());
  const auto lopts = at::TensorOptions().dtype(at::kLong).device(q.device());

  at::Tensor gpos, is_global, kg_cols, vg_cols, g_padding;
  if (G > 0) {
    gpos = at::tensor(p.global_positions, lopts);                                   // [G]
    is_global = at::zeros({T}, lopts.dtype(at::kBool)).index_fill_(0, gpos, true);  // [T]
    kg_cols = k.index_select(2, gpos);                                              // [B, H, G, D]
    vg_cols = v.index_select(2, gpos);                                              // [B, H, G, Dv]
    if (key_padding.defined()) g_padding = key_padding.index_select(1, gpos).view({B, 1, 1, G});
  }

  // All query blocks at once: q padded to NB·c rows and viewed as [NB, c]; keys padded by `back`
  // in front and `ahead` (+ the row padding) behind, then unfolded into overlapping spans of
  // c + back + ahead keys with step c, so block b's span starts at key b·c − back. unfold is a
  // view and its backward one scatter-add, unlike per-block narrow()s, whose backward each
  // writes a full-length zero gradient (O(T²/c) in all).
  const int64_t nb = (T + c - 1) / c, tp = nb * c, span = c + back + ahead;
  auto pad_seq = [&](const at::Tensor& x, int64_t front, int64_t end) {  // pads dim 2
    return at::constant_pad_nd(x, {0, 0, front, end});
  };
  auto qb = pad_seq(q, 0, tp - T).view({B, H, nb, c, D});  // [B, H, NB, c, D]
  auto unfold_keys = [&](const at::Tensor& x) {            // [B, H, T, E]
    return pad_seq(x, back, tp - T + ahead)
        .unfold(2, span, c)
        .transpose(-1, -2);  // [B, H, NB, span, E]
  };
  auto kb = unfold_keys(k);  // [B, H, NB, span, D]
  auto vb = unfold_keys(v);  // [B, H, NB, span, Dv]
  // Key position of span slot j in block b: b·c − back + j; query position b·c + i. The band test
  // depends only on their difference j − back − i, so one [H, c, span] pattern serves all blocks.
  auto slot = at::arange(span, lopts), row = at::arange(c, lopts);
  auto band =
      band_allowed(p, causal, H, row + back, slot).view({1, H, 1, c, span});  // [1, H, 1, c, span]
  auto kpos = at::arange(nb, lopts).view({nb, 1}) * c - back + slot.view({1, span});  // [NB, span]
  auto key_ok = kpos.ge(0).logical_and(kpos.lt(T));                                   // [NB, span]
  auto kpos_safe = kpos.clamp(0, T - 1);
  if (G > 0)
    key_ok = key_ok.logical_and(
        is_global.index_select(0, kpos_safe.view(-1)).view({nb, span}).logical_not());
  auto allowed = band.logical_and(key_ok.view({1, 1, nb, 1, span}));  // [1, H, NB, c, span]
  if (key_padding.defined()) {
    auto kp = key_padding.index_select(1, kpos_safe.view(-1)).view({B, 1, nb, 1, span});
    allowed = allowed.logical_and(kp);  // [B, H, NB, c, span]
  }
  auto scores = at::matmul(qb, kb.transpose(-2, -1)) * scale;  // [B, H, NB, c, span]
  if (G > 0) {
    auto gs = at::matmul(qb, kg_cols.transpose(-2, -1).unsqueeze(2)) * scale;  // [B, H, NB, c, G]
    auto qpos = at::arange(tp, lopts).view({1, 1, nb, c, 1});
    auto gallowed = at::ones({1, 1, nb, c, G}, lopts.dtype(at::kBool));  // [1, 1, NB, c, G]
    if (causal) gallowed = gpos.view({1, 1, 1, 1, G}) <= qpos;
    if (g_padding.defined()) gallowed = gallowed.logical_and(g_padding.view({B, 1, 1, 1, G}));
    scores = at::cat({scores, gs}, -1);  // [B, H, NB, c, span + G]
    const int64_t bm = key_padding.defined() ? B : 1;
    allowed = at::cat({allowed.expand({bm, H, nb, c, span}), gallowed.expand({bm, H, nb, c, G})},
                      -1);  // [B|1, H, NB, c, span + G]
  }
  auto probs =
      masked_softmax(scores, allowed, /*with_lse=*/false).first;  // [B, H, NB, c, span (+G)]
  if (train && dropout_p > 0) probs = at::dropout(probs, dropout_p, /*train=*/true);
  auto ob = at::matmul(G > 0 ? probs.narrow(-1, 0, span) : probs, vb);  // [B, H, NB, c, Dv]
  if (G > 0) ob = ob + at::matmul(probs.narrow(-1, span, G), vg_cols.unsqueeze(2));
  auto out = ob.reshape({B, H, tp, v.size(3)}).narrow(2, 0, T);  // [B, H, T, Dv]

  return out;  // [B, H, T, Dv]
}

}  // namespace

Work longformer_attention_work(int64_t batch, int64_t heads, int64_t t, int64_t d, int64_t dv,
                               const LongformerPattern& pattern, bool causal, bool backward,
                               double elem) {
  const int64_t W = pattern.window;
  double pairs = 0;  // over all heads
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t dil = pattern.dilation.size() == 1 ? pattern.dilation[0] : pattern.dilation[h];
    const int64_t lo = causal ? 0 : -(W / 2), hi = causal ? W : W / 2;
    for (int64_t m = lo; m <= hi; ++m) pairs += double(std::max<int64_t>(0, t - std::abs(m) * dil));
    for (int64_t g : pattern.global_positions) pairs += causal ? double(t - g) : double(t);
  }
  return softmax_attention_work(double(batch), pairs, double(t) * heads, double(t) * heads, d, dv,
                                backward, elem);
}

namespace {

// Pairs the fused banded kernel's forward and backward. Saves q, k, v, out, lse (no [T, W]
// tensor); the pattern travels as plain values.
struct LongformerBandFunction : public torch::autograd::Function<LongformerBandFunction> {
  static cpu::LongformerParams params(const at::Tensor& q, const at::Tensor& v,
                                      const LongformerPattern& p, bool causal,
                                      const std::vector<int64_t>& dilation) {
    cpu::LongformerParams kp;
    kp.batch = q.size(0);
    kp.heads = q.size(1);
    kp.t = q.size(2);
    kp.d = q.size(3);
    kp.dv = v.size(3);
    kp.window = p.window;
    kp.causal = causal;
    kp.dilation = dilation.data();
    kp.global_pos = p.global_positions.data();
    kp.n_global = static_cast<int64_t>(p.global_positions.size());
    kp.block = p.block > 0 ? p.block : cpu::longformer_default_block(kp);
    kp.scale = 1.0 / std::sqrt(static_cast<double>(kp.d));
    return kp;
  }

  static std::vector<int64_t> per_head(const LongformerPattern& p, int64_t heads) {
    return p.dilation.size() == 1 ? std::vector<int64_t>(heads, p.dilation[0]) : p.dilation;
  }

  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q_in,
                            const at::Tensor& k_in, const at::Tensor& v_in,
                            const LongformerPattern& p, const AttentionMask& mask) {
    // The padding travels in a struct: autograd::Function rejects undefined tensor arguments.
    auto q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();  // [B, H, T, D]
    const auto& key_padding = mask.key_padding;
    auto kp =
        key_padding.defined() ? key_padding.to(at::kCPU).contiguous() : at::Tensor();  // [B, T]
    const auto dilation = per_head(p, q.size(1));
    const auto params = LongformerBandFunction::params(q, v, p, mask.causal, dilation);
    auto out = empty_poisoned({params.batch, params.heads, params.t, params.dv}, q.options());
    auto lse = empty_poisoned({params.batch, params.heads, params.t}, q.options());  // [B, H, T]
    LONGSEQ_KERNEL_SCOPE("longformer_attention_forward",
                         longformer_attention_work(params.batch, params.heads, params.t, params.d,
                                                   params.dv, p, mask.causal, false,
                                                   q.element_size()));
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "longformer_attention_forward", [&] {
      cpu::longformer_attention_forward<scalar_t>(
          q.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
          kp.defined() ? kp.data_ptr<bool>() : nullptr, out.data_ptr<scalar_t>(),
          lse.data_ptr<scalar_t>(), params);
    });
    ctx->save_for_backward({q, k, v, out, lse});
    save_optional(ctx, "key_padding", kp);
    ctx->saved_data["window"] = p.window;
    ctx->saved_data["causal"] = mask.causal;
    ctx->saved_data["block"] = p.block;
    ctx->saved_data["dilation"] = p.dilation;
    ctx->saved_data["global_positions"] = p.global_positions;
    return out;  // [B, H, T, Dv]
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4];
    const auto kp = load_optional(ctx, "key_padding");
    LongformerPattern p;
    p.window = ctx->saved_data["window"].toInt();
    p.block = ctx->saved_data["block"].toInt();
    p.dilation = ctx->saved_data["dilation"].toIntVector();
    p.global_positions = ctx->saved_data["global_positions"].toIntVector();
    const auto dilation = per_head(p, q.size(1));
    const auto params =
        LongformerBandFunction::params(q, v, p, ctx->saved_data["causal"].toBool(), dilation);
    auto grad_out = incoming_grad(grads[0], out);          // [B, H, T, Dv]
    auto grad_q = empty_poisoned(q.sizes(), q.options());  // [B, H, T, D]
    auto grad_k = empty_poisoned(k.sizes(), k.options());  // [B, H, T, D]
    auto grad_v = empty_poisoned(v.sizes(), v.options());  // [B, H, T, Dv]
    LONGSEQ_KERNEL_SCOPE("longformer_attention_backward",
                         longformer_attention_work(params.batch, params.heads, params.t, params.d,
                                                   params.dv, p, params.causal, true,
                                                   q.element_size()));
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "longformer_attention_backward", [&] {
      cpu::longformer_attention_backward<scalar_t>(
          q.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
          kp.defined() ? kp.data_ptr<bool>() : nullptr, out.data_ptr<scalar_t>(),
          lse.data_ptr<scalar_t>(), grad_out.data_ptr<scalar_t>(), grad_q.data_ptr<scalar_t>(),
          grad_k.data_ptr<scalar_t>(), grad_v.data_ptr<scalar_t>(), params);
    });
    return {grad_q, grad_k, grad_v, at::Tensor(), at::Tensor()};
  }
};

// Global query rows: full attention over every key (causal: keys up to the row's position),
// through the global projections where given. O(B·H·G·T) time and memory.
at::Tensor global_rows(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                       const LongformerPattern& p, bool causal, const at::Tensor& key_padding,
                       const at::Tensor& q_global, const at::Tensor& k_global,
                       const at::Tensor& v_global, double dropout_p, bool train) {
  const int64_t B = q.size(0), T = q.size(2), D = q.size(3);
  const int64_t G = static_cast<int64_t>(p.global_positions.size());
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  const auto lopts = at::TensorOptions().dtype(at::kLong).device(q.device());
  auto gpos = at::tensor(p.global_positions, lopts);  // [G]
  const auto& qg_src = q_global.defined() ? q_global : q;
  const auto& kg_src = k_global.defined() ? k_global : k;
  const auto& vg_src = v_global.defined() ? v_global : v;
  auto qg = qg_src.index_select(2, gpos);  // [B, H, G, D]
  AttentionMask m;
  m.key_padding = key_padding;
  auto allowed = dense_allowed(m, B, G, T, q.device());  // [B, 1, 1, T] or undef
  if (causal) {
    auto cm = at::arange(T, lopts).view({1, 1, 1, T}) <= gpos.view({1, 1, G, 1});  // [1, 1, G, T]
    allowed = allowed.defined() ? allowed.logical_and(cm) : cm;
  }
  auto scores = at::matmul(qg, kg_src.transpose(-2, -1)) * scale;          // [B, H, G, T]
  auto probs = masked_softmax(scores, allowed, /*with_lse=*/false).first;  // [B, H, G, T]
  if (train && dropout_p > 0) probs = at::dropout(probs, dropout_p, /*train=*/true);
  return at::matmul(probs, vg_src);  // [B, H, G, Dv]
}

// The fused banded kernel covers CPU float/double calls without active dropout.
bool use_fused(const at::Tensor& q, double dropout_p, bool train) {
  if (q.numel() == 0) return false;
  return use_fused_kernel("longformer_attention", q,
                          dropout_p != 0 && train ? "dropout while training" : nullptr);
}

// Checks the inputs; returns the key padding on q's device (or undefined).
at::Tensor check_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        const LongformerPattern& p, const AttentionMask& mask,
                        const at::Tensor& q_global, const at::Tensor& k_global,
                        const at::Tensor& v_global) {
  constexpr const char* op = "longformer_attention";
  check_qkv(op, q, k, v);
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2);
  TORCH_CHECK(k.size(2) == T, op, ": self-attention only, expected S == T = ", T,
              ", got S = ", k.size(2));
  check_mask(op, mask, B, H, T, T, /*causal_ok=*/true, /*pattern_ok=*/false);
  check_pattern(p, mask.causal, H, T);
  for (const auto* g : {&q_global, &k_global, &v_global}) {
    TORCH_CHECK(!g->defined() || g->sizes() == (g == &v_global ? v.sizes() : q.sizes()), op,
                ": global projections must match q/k/v shapes, got ", g->sizes());
  }
  return mask.key_padding.defined() ? mask.key_padding.to(q.device()) : at::Tensor();  // [B, T]
}

// Band rows from `band` [B, H, T, Dv], then the global rows written over them.
at::Tensor with_global_rows(const at::Tensor& band, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, const LongformerPattern& p, bool causal,
                            const at::Tensor& kp, const at::Tensor& q_global,
                            const at::Tensor& k_global, const at::Tensor& v_global,
                            double dropout_p, bool train) {
  if (p.global_positions.empty()) return band;
  auto og = global_rows(q, k, v, p, causal, kp, q_global, k_global, v_global, dropout_p, train);
  auto gpos =
      at::tensor(p.global_positions, at::TensorOptions().dtype(at::kLong).device(q.device()));
  return band.index_copy(2, gpos, og);  // [B, H, T, Dv]
}

}  // namespace

at::Tensor longformer_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const LongformerPattern& p, const AttentionMask& mask,
                                const at::Tensor& q_global, const at::Tensor& k_global,
                                const at::Tensor& v_global, double dropout_p, bool train) {
  const auto kp = check_inputs(q, k, v, p, mask, q_global, k_global, v_global);  // [B, T]
  AttentionMask band_mask;
  band_mask.causal = mask.causal;
  band_mask.key_padding = kp;
  auto band = use_fused(q, dropout_p, train) ? LongformerBandFunction::apply(q, k, v, p, band_mask)
                                             : banded_composite(q, k, v, p, mask.causal, kp,
                                                                dropout_p, train);  // [B, H, T, Dv]
  return with_global_rows(band, q, k, v, p, mask.causal, kp, q_global, k_global, v_global,
                          dropout_p, train);
}

at::Tensor longformer_attention_composite(const at::Tensor& q, const at::Tensor& k,
                                          const at::Tensor& v, const LongformerPattern& p,
                                          const AttentionMask& mask, const at::Tensor& q_global,
                                          const at::Tensor& k_global, const at::Tensor& v_global,
                                          double dropout_p, bool train) {
  const auto kp = check_inputs(q, k, v, p, mask, q_global, k_global, v_global);  // [B, T]
  auto band = banded_composite(q, k, v, p, mask.causal, kp, dropout_p, train);   // [B, H, T, Dv]
  return with_global_rows(band, q, k, v, p, mask.causal, kp, q_global, k_global, v_global,
                          dropout_p, train);
}

}  // namespace longseq
