// Recurrent layers (Elman, LSTM, GRU): input checks, the fused CPU recurrence as an autograd
// Function (kernels/cpu/rnn_cells.cpp), LibTorch's built-in recurrences for the composite switch,
// and the per-step ATen reference.
#include <longseq/impl.h>
#include <longseq/machine.h>
#include <longseq/op_work.h>
#include <longseq/rnn.h>

#include "kernels/cpu/rnn_cells.h"
#include "ops/fused.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <limits>

namespace longseq {

int64_t rnn_gates(RnnCell cell) {
  return cell == RnnCell::kLstm ? 4 : cell == RnnCell::kGru ? 3 : 1;
}

const char* rnn_cell_name(RnnCell cell) {
  return cell == RnnCell::kLstm ? "lstm" : cell == RnnCell::kGru ? "gru" : "elman";
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

cpu::RnnCellKind kernel_kind(RnnCell cell) {
  return cell == RnnCell::kLstm  ? cpu::RnnCellKind::kLstm
         : cell == RnnCell::kGru ? cpu::RnnCellKind::kGru
                                 : cpu::RnnCellKind::kElman;
}

void check_inputs(RnnCell cell, const at::Tensor& x, const RnnWeights& w, const at::Tensor& h0,
                  const at::Tensor& c0, const at::Tensor& valid) {
  const char* op = rnn_cell_name(cell);
  TORCH_CHECK(x.defined() && x.dim() == 3, op, ": expected `x` of shape [B, T, I], got ",
              x.defined() ? x.sizes() : at::IntArrayRef{});
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), op, ": expected floating `x`, got ",
              x.scalar_type());
  const int64_t B = x.size(0), T = x.size(1), I = x.size(2), G = rnn_gates(cell);
  TORCH_CHECK(w.w_hh.defined() && w.w_hh.dim() == 2 && w.w_hh.size(0) == G * w.w_hh.size(1), op,
              ": expected `w_hh` of shape [", G, "·H, H], got ",
              w.w_hh.defined() ? w.w_hh.sizes() : at::IntArrayRef{});
  const int64_t H = w.w_hh.size(1);
  TORCH_CHECK(w.w_ih.defined() && w.w_ih.sizes() == at::IntArrayRef({G * H, I}), op,
              ": expected `w_ih` of shape [", G * H, ", ", I, "], got ",
              w.w_ih.defined() ? w.w_ih.sizes() : at::IntArrayRef{});
  for (const auto* b : {&w.b_ih, &w.b_hh}) {
    TORCH_CHECK(!b->defined() || b->sizes() == at::IntArrayRef({G * H}), op,
                ": expected biases of shape [", G * H, "], got ", b->sizes());
  }
  TORCH_CHECK(!h0.defined() || h0.sizes() == at::IntArrayRef({B, H}), op,
              ": expected `h0` of shape [", B, ", ", H, "], got ", h0.sizes());
  TORCH_CHECK(!c0.defined() || cell == RnnCell::kLstm, op, ": `c0` is for lstm only");
  TORCH_CHECK(!c0.defined() || c0.sizes() == at::IntArrayRef({B, H}), op,
              ": expected `c0` of shape [", B, ", ", H, "], got ", c0.sizes());
  TORCH_CHECK(!valid.defined() ||
                  (valid.scalar_type() == at::kBool && valid.sizes() == at::IntArrayRef({B, T})),
              op, ": expected bool `valid` of shape [", B, ", ", T, "], got ",
              valid.defined() ? valid.sizes() : at::IntArrayRef{});
}

}  // namespace

Work rnn_work(int64_t batch, int64_t t, int64_t hidden, int64_t gates, bool backward, double elem) {
  const double B = double(batch), T = double(t), H = double(hidden), G = double(gates);
  const double step_flops = 2 * B * G * H * H;  // h W_hhᵀ
  const double w = G * H * H;                   // W_hh
  // W_hh is read from memory once per call where it fits in half the last-level cache (it then
  // stays there between steps: charging it per step put B = 1 runs at 200% of their "limit"),
  // else once per step.
  const double cache = static_cast<double>(cpu_info().last_level_cache_bytes);
  const double w_reads = w * elem <= cache / 2 ? w : T * w;
  // Gate pre-activations in and activations saved, states out.
  const double io = B * T * G * H + B * T * G * H + 2 * B * T * H;
  if (!backward) return {T * step_flops, elem * (w_reads + io)};
  // dh W_hh and dW_hh += gatesᵀ h; reads activations, states and dOut, writes d(pre-activations).
  return {2 * T * step_flops, elem * (w_reads + w + io + B * T * H)};
}

namespace {

struct RnnFunction : public torch::autograd::Function<RnnFunction> {
  // xproj [B, T, G·H] (biases folded in except gru's b_hh), w_hh [G·H, H], b_hh [3H] (gru),
  // h0 [B, H], c0 [B, H] (lstm), valid [B, T] or undefined -> out [B, T, H], h [B, H], c [B, H].
  static variable_list forward(AutogradContext* ctx, const at::Tensor& xproj,
                               const at::Tensor& w_hh, c10::optional<at::Tensor> b_hh,
                               const at::Tensor& h0, c10::optional<at::Tensor> c0,
                               c10::optional<at::Tensor> valid, int64_t cell, bool reverse) {
    cpu::RnnParams p;
    p.kind = static_cast<cpu::RnnCellKind>(cell);
    p.batch = xproj.size(0);
    p.t = xproj.size(1);
    p.hidden = w_hh.size(1);
    p.reverse = reverse;
    const int64_t B = p.batch, T = p.t, H = p.hidden, GH = xproj.size(2);
    const bool lstm = p.kind == cpu::RnnCellKind::kLstm, gru = p.kind == cpu::RnnCellKind::kGru;
    const auto opts = xproj.options();
    auto out = empty_poisoned({B, T, H}, opts);                           // [B, T, H]
    auto hs = empty_poisoned({T + 1, B, H}, opts);                        // [T + 1, B, H]
    auto cs = lstm ? empty_poisoned({T + 1, B, H}, opts) : at::Tensor();  // [T + 1, B, H]
    auto acts = empty_poisoned({T, B, GH}, opts);                         // [T, B, G·H]
    auto hn = gru ? empty_poisoned({T, B, H}, opts) : at::Tensor();       // [T, B, H]
    const at::Tensor vb = valid.has_value() ? valid->contiguous() : at::Tensor();
    const at::Tensor bh = b_hh.has_value() ? b_hh->contiguous() : at::Tensor();
    const at::Tensor c0c = c0.has_value() ? c0->contiguous() : at::Tensor();
    LONGSEQ_KERNEL_SCOPE("rnn_forward", rnn_work(B, T, H, GH / H, false, xproj.element_size()));
    AT_DISPATCH_FLOATING_TYPES(xproj.scalar_type(), "rnn_forward", [&] {
      cpu::rnn_forward<scalar_t>(
          xproj.data_ptr<scalar_t>(), w_hh.data_ptr<scalar_t>(),
          gru ? bh.data_ptr<scalar_t>() : nullptr, h0.data_ptr<scalar_t>(),
          lstm ? c0c.data_ptr<scalar_t>() : nullptr, vb.defined() ? vb.data_ptr<bool>() : nullptr,
          out.data_ptr<scalar_t>(), hs.data_ptr<scalar_t>(),
          lstm ? cs.data_ptr<scalar_t>() : nullptr, acts.data_ptr<scalar_t>(),
          gru ? hn.data_ptr<scalar_t>() : nullptr, p);
    });
    ctx->save_for_backward({w_hh, hs, lstm ? cs : at::Tensor(), acts, gru ? hn : at::Tensor()});
    ctx->saved_data["valid"] = vb;
    ctx->saved_data["cell"] = cell;
    ctx->saved_data["reverse"] = reverse;
    auto h_last = hs.select(0, T).clone();                                // [B, H]
    auto c_last = lstm ? cs.select(0, T).clone() : xproj.new_zeros({0});  // [B, H]
    ctx->mark_non_differentiable(lstm ? variable_list{} : variable_list{c_last});
    return {out, h_last, c_last};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &w_hh = saved[0], &hs = saved[1], &cs = saved[2], &acts = saved[3],
                     &hn = saved[4];
    const at::Tensor vb = ctx->saved_data["valid"].toTensor();
    cpu::RnnParams p;
    p.kind = static_cast<cpu::RnnCellKind>(ctx->saved_data["cell"].toInt());
    p.reverse = ctx->saved_data["reverse"].toBool();
    p.t = hs.size(0) - 1;
    p.batch = hs.size(1);
    p.hidden = hs.size(2);
    const bool lstm = p.kind == cpu::RnnCellKind::kLstm, gru = p.kind == cpu::RnnCellKind::kGru;
    const int64_t B = p.batch, T = p.t, H = p.hidden, GH = acts.size(2);
    const auto opts = hs.options();
    auto dout = grads[0].defined() ? grads[0].contiguous() : at::Tensor();
    auto dh = grads[1].defined() ? grads[1].contiguous() : at::Tensor();
    auto dc = lstm && grads[2].defined() ? grads[2].contiguous() : at::Tensor();
    auto dxproj = empty_poisoned({B, T, GH}, opts);
    auto dw = empty_poisoned({GH, H}, opts);
    auto db = gru ? empty_poisoned({GH}, opts) : at::Tensor();
    auto dh0 = empty_poisoned({B, H}, opts);
    auto dc0 = lstm ? empty_poisoned({B, H}, opts) : at::Tensor();
    LONGSEQ_KERNEL_SCOPE("rnn_backward", rnn_work(B, T, H, GH / H, true, hs.element_size()));
    AT_DISPATCH_FLOATING_TYPES(hs.scalar_type(), "rnn_backward", [&] {
      auto ptr = [](const at::Tensor& t) { return t.defined() ? t.data_ptr<scalar_t>() : nullptr; };
      cpu::rnn_backward<scalar_t>(ptr(w_hh), vb.defined() ? vb.data_ptr<bool>() : nullptr, ptr(hs),
                                  ptr(cs), ptr(acts), ptr(hn), ptr(dout), ptr(dh), ptr(dc),
                                  ptr(dxproj), ptr(dw), ptr(db), ptr(dh0), ptr(dc0), p);
    });
    return {dxproj, dw, db, dh0, dc0, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

bool use_fused(const at::Tensor& x) {
  if (x.size(0) == 0 || x.size(1) == 0) return false;
  return use_fused_kernel("rnn_layer", x);
}

at::Tensor input_projection(RnnCell cell, const at::Tensor& x, const RnnWeights& w) {
  at::Tensor bias = w.b_ih;
  // Elman and LSTM add both biases before the nonlinearity: fold b_hh into the one GEMM.
  if (cell != RnnCell::kGru && w.b_hh.defined()) bias = bias.defined() ? bias + w.b_hh : w.b_hh;
  return at::linear(x, w.w_ih, bias);  // [B, T, G·H]
}

// LibTorch's built-in recurrence (what torch::nn::RNN/LSTM/GRU run), no mask.
RnnOutput builtin(RnnCell cell, const at::Tensor& x, const RnnWeights& w, const at::Tensor& h0,
                  const at::Tensor& c0, bool reverse) {
  const bool biases = w.b_ih.defined() && w.b_hh.defined();
  std::vector<at::Tensor> params{w.w_ih, w.w_hh};
  if (biases) {
    params.push_back(w.b_ih);
    params.push_back(w.b_hh);
  }
  auto in = reverse ? x.flip(1) : x;  // [B, T, I]
  RnnOutput r;
  if (cell == RnnCell::kLstm) {
    auto res = at::lstm(in, {h0.unsqueeze(0), c0.unsqueeze(0)}, params, biases, 1, 0.0, false,
                        false, /*batch_first=*/true);
    r.out = std::get<0>(res);
    r.h = std::get<1>(res).squeeze(0);
    r.c = std::get<2>(res).squeeze(0);
  } else {
    auto res = cell == RnnCell::kGru
                   ? at::gru(in, h0.unsqueeze(0), params, biases, 1, 0.0, false, false, true)
                   : at::rnn_tanh(in, h0.unsqueeze(0), params, biases, 1, 0.0, false, false, true);
    r.out = std::get<0>(res);
    r.h = std::get<1>(res).squeeze(0);
  }
  if (reverse) r.out = r.out.flip(1);
  return r;
}

}  // namespace

RnnOutput rnn_layer_composite(RnnCell cell, const at::Tensor& x, const RnnWeights& w,
                              const at::Tensor& h0_in, const at::Tensor& c0_in,
                              const at::Tensor& valid, bool reverse) {
  check_inputs(cell, x, w, h0_in, c0_in, valid);
  const int64_t B = x.size(0), T = x.size(1), H = w.w_hh.size(1);
  at::Tensor h = h0_in.defined() ? h0_in : x.new_zeros({B, H});  // [B, H]
  at::Tensor c = cell == RnnCell::kLstm ? (c0_in.defined() ? c0_in : x.new_zeros({B, H}))
                                        : at::Tensor();  // [B, H]
  auto xp = at::linear(x, w.w_ih, w.b_ih);               // [B, T, G·H]
  std::vector<at::Tensor> outs(T);
  for (int64_t s = 0; s < T; ++s) {
    const int64_t t = reverse ? T - 1 - s : s;
    auto xt = xp.select(1, t);                // [B, G·H]
    auto hh = at::linear(h, w.w_hh, w.b_hh);  // [B, G·H]
    at::Tensor h_new, c_new;
    if (cell == RnnCell::kElman) {
      h_new = at::tanh(xt + hh);
    } else if (cell == RnnCell::kLstm) {
      auto g = (xt + hh).chunk(4, 1);  // 4 × [B, H]
      c_new = at::sigmoid(g[1]) * c + at::sigmoid(g[0]) * at::tanh(g[2]);
      h_new = at::sigmoid(g[3]) * at::tanh(c_new);
    } else {
      auto gx = xt.chunk(3, 1), gh = hh.chunk(3, 1);  // 3 × [B, H]
      auto r = at::sigmoid(gx[0] + gh[0]), z = at::sigmoid(gx[1] + gh[1]);
      auto n = at::tanh(gx[2] + r * gh[2]);
      h_new = (1 - z) * n + z * h;
    }
    if (valid.defined()) {
      auto v = valid.select(1, t).unsqueeze(1);  // [B, 1]
      h_new = at::where(v, h_new, h);
      if (c.defined()) c_new = at::where(v, c_new, c);
      outs[t] = h_new * v.to(h_new.scalar_type());
    } else {
      outs[t] = h_new;
    }
    h = h_new;
    c = c_new;
  }
  return {at::stack(outs, 1), h, c};  // [B, T, H], [B, H], [B, H]
}

RnnOutput rnn_layer(RnnCell cell, const at::Tensor& x, const RnnWeights& w, const at::Tensor& h0_in,
                    const at::Tensor& c0_in, const at::Tensor& valid, bool reverse) {
  check_inputs(cell, x, w, h0_in, c0_in, valid);
  const int64_t B = x.size(0), H = w.w_hh.size(1);
  const bool lstm = cell == RnnCell::kLstm;
  auto h0 = h0_in.defined() ? h0_in : x.new_zeros({B, H});  // [B, H]
  auto c0 = lstm ? (c0_in.defined() ? c0_in : x.new_zeros({B, H})) : at::Tensor();
  if (!use_fused(x)) {
    if (!valid.defined() && x.size(1) > 0) return builtin(cell, x, w, h0, c0, reverse);
    return rnn_layer_composite(cell, x, w, h0, c0, valid, reverse);
  }
  auto xproj = input_projection(cell, x, w).contiguous();  // [B, T, G·H]
  c10::optional<at::Tensor> b_hh, c0_opt, valid_opt;
  if (cell == RnnCell::kGru) {
    b_hh = w.b_hh.defined() ? w.b_hh.to(x.scalar_type()).contiguous() : x.new_zeros({3 * H});
  }
  if (lstm) c0_opt = c0.contiguous();
  if (valid.defined()) valid_opt = valid.to(x.device());
  auto res = RnnFunction::apply(xproj, w.w_hh.contiguous(), b_hh, h0.contiguous(), c0_opt,
                                valid_opt, static_cast<int64_t>(kernel_kind(cell)), reverse);
  return {res[0], res[1], lstm ? res[2] : at::Tensor()};
}

}  // namespace longseq
