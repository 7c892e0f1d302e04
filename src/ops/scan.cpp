// Linear-recurrence scans over dim 1 of [B, T, C] inputs (see longseq/scan.h):
// - linear_scan: h_t = a_t ⊙ h_{t-1} + b_t. Composite path: a loop over T of ATen ops (autograd
//   by LibTorch; saves O(B·T·C)). Fused CPU kernel (kernels/cpu/scan.h): one pass, sequential in T
//   and vectorised over channels; backward is the reverse recurrence from the saved output.
// - log_space_scan: the same recurrence in log space, parallel over T with cumsum and
//   logcumsumexp (Heinsen 2023); composite only.
// - selective_scan: Mamba's S6 (Gu & Dao 2023). Composite path: materialises
//   exp(delta ⊗ A) and delta·Bm·u [B, T, E, N] and loops over T (autograd saves O(B·T·E·N)).
//   Fused CPU kernel: O(E·N) state per thread forward; backward recomputes the states per block
//   of channels, so nothing of size [B, T, E, N] exists at any point.
// linear_scan and selective_scan pick the fused kernel when it covers the call (see use_fused).
#include <longseq/impl.h>
#include <longseq/op_work.h>
#include <longseq/scan.h>

#include "kernels/cpu/min_rnn.h"
#include "kernels/cpu/scan.h"
#include "ops/checks.h"
#include "ops/fused.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace longseq {

Work linear_scan_work(int64_t batch, int64_t t, int64_t channels, bool backward, double elem) {
  const double n = double(batch) * t * channels;
  // h = a h + b: a, b in, h out; backward reads a, h, dh and writes da, db.
  return backward ? Work{4 * n, elem * 5 * n} : Work{2 * n, elem * 3 * n};
}

Work min_rnn_work(int64_t batch, int64_t t, int64_t hidden, int64_t parts, bool backward,
                  double elem) {
  const double n = double(batch) * t * hidden;
  // About 10 operations per (b, t, h) for the gates and the blend (exp, log and sigmoid counted
  // as one each): xp in, h out; backward reads xp, h, dh and writes dxp.
  if (!backward) return {10 * n, elem * n * (parts + 1)};
  return {20 * n, elem * n * (2 * parts + 2)};
}

Work selective_scan_work(int64_t batch, int64_t t, int64_t channels, int64_t state, bool backward,
                         double elem) {
  const double ben = double(batch) * t * channels * state;
  // Per (b, t, e, n): exp(δA), h = ·h + δ·B·u, y += C·h: 7 operations. u, δ in, y out [B, T, E];
  // B, C in [B, T, N]. Backward recomputes the states and runs the adjoint: twice the operations,
  // the inputs and dy in, the input gradients out.
  const double bte = double(batch) * t * channels, btn = double(batch) * t * state;
  if (!backward) return {7 * ben, elem * (3 * bte + 2 * btn)};
  return {14 * ben, elem * (5 * bte + 4 * btn)};
}

namespace {

using ops_checks::check_floating;
using ops_checks::check_like;
using ops_checks::check_shape;

// Every kernel output is poisoned before the kernel writes it (ops/fused.h), as in the attention
// ops: an element a kernel leaves unwritten shows as NaN instead of stale memory.

// ---- linear scan -------------------------------------------------------------------------------

void check_linear(const at::Tensor& a, const at::Tensor& b, const at::Tensor& h0) {
  constexpr const char* op = "linear_scan";
  TORCH_CHECK(a.dim() == 3, op, ": expected 3-D `a` [B, T, C], got ", a.dim(), "-D");
  const int64_t B = a.size(0), T = a.size(1), C = a.size(2);
  check_floating(op, "a", a);
  check_shape(op, "b", b, {"B", "T", "C"}, {B, T, C});
  check_like(op, "b", b, "a", a);
  if (h0.defined()) {
    check_shape(op, "h0", h0, {"B", "C"}, {B, C});
    check_like(op, "h0", h0, "a", a);
  }
}

cpu::LinearScanParams linear_params(const at::Tensor& a) {
  cpu::LinearScanParams p;
  p.batch = a.size(0);
  p.t = a.size(1);
  p.channels = a.size(2);
  return p;
}

// Inputs a, b, h0 (differentiable; h0 is zeros when the caller gave none, as autograd::Function
// takes no undefined tensors) and whether h0 was given. Saves a, h0 and the output h.
struct LinearScanFunction : public torch::autograd::Function<LinearScanFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& a_in,
                            const at::Tensor& b_in, const at::Tensor& h0_in, bool has_h0) {
    auto a = a_in.contiguous(), b = b_in.contiguous(), h0 = h0_in.contiguous();  // [B, T, C]
    const auto p = linear_params(a);
    auto h = empty_poisoned({p.batch, p.t, p.channels}, a.options());  // [B, T, C]
    LONGSEQ_KERNEL_SCOPE("linear_scan_forward",
                         linear_scan_work(p.batch, p.t, p.channels, false, a.element_size()));
    AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "linear_scan_forward", [&] {
      cpu::linear_scan_forward<scalar_t>(a.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(),
                                         has_h0 ? h0.data_ptr<scalar_t>() : nullptr,
                                         h.data_ptr<scalar_t>(), p);
    });
    ctx->save_for_backward({a, h0, h});
    ctx->saved_data["has_h0"] = has_h0;
    return h;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &a = saved[0], &h0 = saved[1], &h = saved[2];
    const bool has_h0 = ctx->saved_data["has_h0"].toBool();
    const auto p = linear_params(a);
    auto grad_h = incoming_grad(grads[0], h);                                         // [B, T, C]
    auto grad_a = empty_poisoned(a.sizes(), a.options());                             // [B, T, C]
    auto grad_b = empty_poisoned(a.sizes(), a.options());                             // [B, T, C]
    auto grad_h0 = has_h0 ? empty_poisoned(h0.sizes(), h0.options()) : at::Tensor();  // [B, C]
    LONGSEQ_KERNEL_SCOPE("linear_scan_backward",
                         linear_scan_work(p.batch, p.t, p.channels, true, a.element_size()));
    AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "linear_scan_backward", [&] {
      cpu::linear_scan_backward<scalar_t>(a.data_ptr<scalar_t>(), h.data_ptr<scalar_t>(),
                                          has_h0 ? h0.data_ptr<scalar_t>() : nullptr,
                                          grad_h.data_ptr<scalar_t>(), grad_a.data_ptr<scalar_t>(),
                                          grad_b.data_ptr<scalar_t>(),
                                          has_h0 ? grad_h0.data_ptr<scalar_t>() : nullptr, p);
    });
    return {grad_a, grad_b, grad_h0, at::Tensor()};
  }
};

// ---- minGRU / minLSTM ---------------------------------------------------------------------------

void check_min_rnn(const at::Tensor& xp, bool lstm, const at::Tensor& valid, const at::Tensor& h0) {
  constexpr const char* op = "min_rnn_scan";
  TORCH_CHECK(xp.dim() == 3, op, ": expected 3-D `xp` [B, T, P·H], got ", xp.dim(), "-D");
  check_floating(op, "xp", xp);
  const int64_t parts = lstm ? 3 : 2;
  TORCH_CHECK(xp.size(2) % parts == 0, op, ": expected the last dim of `xp` to be ", parts, "·H (",
              lstm ? "minlstm: f, i, h̃" : "mingru: z, h̃", "), got ", xp.size(2));
  const int64_t B = xp.size(0), T = xp.size(1), H = xp.size(2) / parts;
  if (valid.defined()) {
    TORCH_CHECK(valid.scalar_type() == at::kBool, op, ": expected bool `valid`, got ",
                valid.scalar_type());
    check_shape(op, "valid", valid, {"B", "T"}, {B, T});
  }
  if (h0.defined()) {
    check_shape(op, "h0", h0, {"B", "H"}, {B, H});
    check_like(op, "h0", h0, "xp", xp);
  }
}

// g(x) = x + 0.5 (x >= 0), σ(x) (x < 0), as in the minGRU paper.
at::Tensor g_positive(const at::Tensor& x) { return at::where(x >= 0, x + 0.5, at::sigmoid(x)); }

// log g(x): log(x + ½) for x >= 0, log σ(x) = −softplus(−x) below.
at::Tensor log_g(const at::Tensor& x) {
  return at::where(x >= 0, at::log(at::relu(x) + 0.5), -at::softplus(-x));
}

constexpr double kLogZero = -1e4;  // exp() of it is 0 in float32 and float64, but stays finite

cpu::MinRnnParams min_rnn_params(const at::Tensor& xp, bool lstm) {
  cpu::MinRnnParams p;
  p.kind = lstm ? cpu::MinRnnKind::kLstm : cpu::MinRnnKind::kGru;
  p.batch = xp.size(0);
  p.t = xp.size(1);
  p.hidden = xp.size(2) / cpu::min_rnn_parts(p.kind);
  return p;
}

// The optional step mask travels in a struct: autograd::Function rejects undefined tensors.
struct ValidMask {
  at::Tensor valid;  // [B, T] bool or undefined
};

// Pairs the fused gated scan's forward and backward. Saves xp, h0 and h; the gates are recomputed.
struct MinRnnFunction : public torch::autograd::Function<MinRnnFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& xp_in,
                            const at::Tensor& h0_in, bool has_h0, bool lstm,
                            const ValidMask& valid) {
    auto xp = xp_in.contiguous(), h0 = h0_in.contiguous();  // [B, T, P·H], [B, H]
    auto v = valid.valid.defined() ? valid.valid.to(at::kCPU).contiguous() : at::Tensor();
    const auto p = min_rnn_params(xp, lstm);
    auto h = empty_poisoned({p.batch, p.t, p.hidden}, xp.options());  // [B, T, H]
    LONGSEQ_KERNEL_SCOPE(
        "min_rnn_forward",
        min_rnn_work(p.batch, p.t, p.hidden, cpu::min_rnn_parts(p.kind), false, xp.element_size()));
    AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "min_rnn_forward", [&] {
      cpu::min_rnn_forward<scalar_t>(
          xp.data_ptr<scalar_t>(), v.defined() ? v.data_ptr<bool>() : nullptr,
          has_h0 ? h0.data_ptr<scalar_t>() : nullptr, h.data_ptr<scalar_t>(), p);
    });
    ctx->save_for_backward({xp, h0, h});
    ctx->saved_data["has_h0"] = has_h0;
    ctx->saved_data["lstm"] = lstm;
    save_optional(ctx, "valid", v);
    return h;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &xp = saved[0], &h0 = saved[1], &h = saved[2];
    const bool has_h0 = ctx->saved_data["has_h0"].toBool();
    const auto v = load_optional(ctx, "valid");
    const auto p = min_rnn_params(xp, ctx->saved_data["lstm"].toBool());
    auto grad_h = incoming_grad(grads[0], h);                 // [B, T, H]
    auto grad_xp = empty_poisoned(xp.sizes(), xp.options());  // [B, T, P·H]
    auto grad_h0 = has_h0 ? empty_poisoned(h0.sizes(), h0.options()) : at::Tensor();  // [B, H]
    LONGSEQ_KERNEL_SCOPE(
        "min_rnn_backward",
        min_rnn_work(p.batch, p.t, p.hidden, cpu::min_rnn_parts(p.kind), true, xp.element_size()));
    AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "min_rnn_backward", [&] {
      cpu::min_rnn_backward<scalar_t>(
          xp.data_ptr<scalar_t>(), v.defined() ? v.data_ptr<bool>() : nullptr,
          has_h0 ? h0.data_ptr<scalar_t>() : nullptr, h.data_ptr<scalar_t>(),
          grad_h.data_ptr<scalar_t>(), grad_xp.data_ptr<scalar_t>(),
          has_h0 ? grad_h0.data_ptr<scalar_t>() : nullptr, p);
    });
    return {grad_xp, grad_h0, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// ---- selective scan ----------------------------------------------------------------------------

void check_selective(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                     const at::Tensor& Bm, const at::Tensor& Cm, const at::Tensor& D,
                     const at::Tensor& h0) {
  constexpr const char* op = "selective_scan";
  TORCH_CHECK(u.dim() == 3, op, ": expected 3-D `u` [B, T, E], got ", u.dim(), "-D");
  const int64_t B = u.size(0), T = u.size(1), E = u.size(2);
  check_floating(op, "u", u);
  check_shape(op, "delta", delta, {"B", "T", "E"}, {B, T, E});
  check_shape(op, "A", A, {"E", "N"}, {E, -1});
  const int64_t N = A.size(1);
  check_shape(op, "Bm", Bm, {"B", "T", "N"}, {B, T, N});
  check_shape(op, "Cm", Cm, {"B", "T", "N"}, {B, T, N});
  check_like(op, "delta", delta, "u", u);
  check_like(op, "A", A, "u", u);
  check_like(op, "Bm", Bm, "u", u);
  check_like(op, "Cm", Cm, "u", u);
  if (D.defined()) {
    check_shape(op, "D", D, {"E"}, {E});
    check_like(op, "D", D, "u", u);
  }
  if (h0.defined()) {
    check_shape(op, "h0", h0, {"B", "E", "N"}, {B, E, N});
    check_like(op, "h0", h0, "u", u);
  }
}

cpu::SelectiveScanParams selective_params(const at::Tensor& u, const at::Tensor& A) {
  cpu::SelectiveScanParams p;
  p.batch = u.size(0);
  p.t = u.size(1);
  p.channels = u.size(2);
  p.state = A.size(1);
  return p;
}

// Inputs u, delta, A, Bm, Cm, D, h0 (D and h0 zeros when not given; see LinearScanFunction) and
// which of D, h0 were given. Outputs y and h_T. Saves the inputs only: backward recomputes states.
struct SelectiveScanFunction : public torch::autograd::Function<SelectiveScanFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                const at::Tensor& u_in, const at::Tensor& delta_in,
                                                const at::Tensor& A_in, const at::Tensor& Bm_in,
                                                const at::Tensor& Cm_in, const at::Tensor& D_in,
                                                const at::Tensor& h0_in, bool has_D, bool has_h0) {
    auto u = u_in.contiguous(), delta = delta_in.contiguous();  // [B, T, E]
    auto A = A_in.contiguous();                                 // [E, N]
    auto Bm = Bm_in.contiguous(), Cm = Cm_in.contiguous();      // [B, T, N]
    auto D = D_in.contiguous();                                 // [E]
    auto h0 = h0_in.contiguous();                               // [B, E, N]
    const auto p = selective_params(u, A);
    auto y = empty_poisoned({p.batch, p.t, p.channels}, u.options());           // [B, T, E]
    auto h_last = empty_poisoned({p.batch, p.channels, p.state}, u.options());  // [B, E, N]
    LONGSEQ_KERNEL_SCOPE(
        "selective_scan_forward",
        selective_scan_work(p.batch, p.t, p.channels, p.state, false, u.element_size()));
    AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_forward", [&] {
      cpu::selective_scan_forward<scalar_t>(
          u.data_ptr<scalar_t>(), delta.data_ptr<scalar_t>(), A.data_ptr<scalar_t>(),
          Bm.data_ptr<scalar_t>(), Cm.data_ptr<scalar_t>(),
          has_D ? D.data_ptr<scalar_t>() : nullptr, has_h0 ? h0.data_ptr<scalar_t>() : nullptr,
          y.data_ptr<scalar_t>(), h_last.data_ptr<scalar_t>(), p);
    });
    ctx->save_for_backward({u, delta, A, Bm, Cm, D, h0});
    ctx->saved_data["has_D"] = has_D;
    ctx->saved_data["has_h0"] = has_h0;
    return {y, h_last};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const auto &u = s[0], &delta = s[1], &A = s[2], &Bm = s[3], &Cm = s[4], &D = s[5], &h0 = s[6];
    const bool has_D = ctx->saved_data["has_D"].toBool();
    const bool has_h0 = ctx->saved_data["has_h0"].toBool();
    const auto p = selective_params(u, A);
    auto grad_y = incoming_grad(grads[0], u);                                         // [B, T, E]
    auto grad_hl = grads[1].defined() ? grads[1].contiguous() : at::Tensor();         // [B, E, N]
    auto grad_u = empty_poisoned(u.sizes(), u.options());                             // [B, T, E]
    auto grad_delta = empty_poisoned(u.sizes(), u.options());                         // [B, T, E]
    auto grad_A = empty_poisoned(A.sizes(), A.options());                             // [E, N]
    auto grad_Bm = empty_poisoned(Bm.sizes(), Bm.options());                          // [B, T, N]
    auto grad_Cm = empty_poisoned(Cm.sizes(), Cm.options());                          // [B, T, N]
    auto grad_D = has_D ? empty_poisoned(D.sizes(), D.options()) : at::Tensor();      // [E]
    auto grad_h0 = has_h0 ? empty_poisoned(h0.sizes(), h0.options()) : at::Tensor();  // [B, E, N]
    LONGSEQ_KERNEL_SCOPE(
        "selective_scan_backward",
        selective_scan_work(p.batch, p.t, p.channels, p.state, true, u.element_size()));
    AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_backward", [&] {
      cpu::selective_scan_backward<scalar_t>(
          u.data_ptr<scalar_t>(), delta.data_ptr<scalar_t>(), A.data_ptr<scalar_t>(),
          Bm.data_ptr<scalar_t>(), Cm.data_ptr<scalar_t>(),
          has_D ? D.data_ptr<scalar_t>() : nullptr, has_h0 ? h0.data_ptr<scalar_t>() : nullptr,
          grad_y.data_ptr<scalar_t>(), grad_hl.defined() ? grad_hl.data_ptr<scalar_t>() : nullptr,
          grad_u.data_ptr<scalar_t>(), grad_delta.data_ptr<scalar_t>(), grad_A.data_ptr<scalar_t>(),
          grad_Bm.data_ptr<scalar_t>(), grad_Cm.data_ptr<scalar_t>(),
          has_D ? grad_D.data_ptr<scalar_t>() : nullptr,
          has_h0 ? grad_h0.data_ptr<scalar_t>() : nullptr, p);
    });
    return {grad_u, grad_delta, grad_A,       grad_Bm,     grad_Cm,
            grad_D, grad_h0,    at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor linear_scan_composite(const at::Tensor& a, const at::Tensor& b, const at::Tensor& h0) {
  check_linear(a, b, h0);
  const int64_t B = a.size(0), T = a.size(1), C = a.size(2);
  auto h = h0.defined() ? h0 : at::zeros({B, C}, a.options());  // [B, C]
  if (T == 0) return at::empty({B, 0, C}, a.options());
  // unbind, not select: select's backward writes a zero-filled [B, T, C] per step (O(T²) in all),
  // unbind's stacks the T step gradients once.
  const auto a_t = a.unbind(1), b_t = b.unbind(1);  // T × [B, C]
  std::vector<at::Tensor> hs;
  hs.reserve(T);
  for (int64_t t = 0; t < T; ++t) {
    h = at::addcmul(b_t[t], a_t[t], h);  // [B, C]
    hs.push_back(h);
  }
  return at::stack(hs, 1);  // [B, T, C]
}

at::Tensor linear_scan(const at::Tensor& a, const at::Tensor& b, const at::Tensor& h0) {
  check_linear(a, b, h0);
  if (a.numel() == 0 || !use_fused_kernel("linear_scan", a)) return linear_scan_composite(a, b, h0);
  const auto h0z = h0.defined() ? h0 : at::zeros({a.size(0), a.size(2)}, a.options());  // [B, C]
  return LinearScanFunction::apply(a, b, h0z, h0.defined());                            // [B, T, C]
}

at::Tensor min_rnn_scan_composite(const at::Tensor& xp, bool lstm, const at::Tensor& valid,
                                  const at::Tensor& h0) {
  check_min_rnn(xp, lstm, valid, h0);
  auto parts = xp.chunk(lstm ? 3 : 2, 2);  // each [B, T, H]
  // The paper's log-space parallel scan where it applies (h0 > 0: checked, a device sync, only
  // here): log a (carry) and log of the gate on h̃, then log_space_scan. Parallel over T on any
  // device.
  if (xp.size(1) > 0 && (!h0.defined() || (h0 > 0).all().item<bool>())) {
    at::Tensor log_a, log_in;  // [B, T, H]
    if (lstm) {
      auto diff = at::softplus(-parts[0]) - at::softplus(-parts[1]);  // log(i / f)
      log_a = -at::softplus(diff);                                    // log f'
      log_in = -at::softplus(-diff);                                  // log i'
    } else {
      log_a = -at::softplus(parts[0]);    // log(1 − z)
      log_in = -at::softplus(-parts[0]);  // log z
    }
    auto log_b = log_in + log_g(parts.back());  // [B, T, H]
    if (valid.defined()) {
      auto keep = valid.unsqueeze(-1).logical_not();  // [B, T, 1]
      log_a = log_a.masked_fill(keep, 0.0);
      log_b = log_b.masked_fill(keep, kLogZero);
    }
    return log_space_scan(log_a, log_b, h0.defined() ? h0.log() : at::Tensor());  // [B, T, H]
  }
  // Otherwise the real-space gates, then the sequential linear scan. As few elementwise passes as
  // possible: each is a full [B, T, H] read and write.
  at::Tensor a, gate;  // [B, T, H]
  if (lstm) {
    auto f = at::sigmoid(parts[0]), i = at::sigmoid(parts[1]);
    auto norm = f + i;
    a = f / norm;     // f'
    gate = i / norm;  // i'
  } else {
    gate = at::sigmoid(parts[0]);  // z
    a = 1 - gate;
  }
  auto b = gate * g_positive(parts.back());  // [B, T, H]
  if (valid.defined()) {
    auto keep = valid.unsqueeze(-1).logical_not();  // [B, T, 1]
    a = a.masked_fill(keep, 1.0);
    b = b.masked_fill(keep, 0.0);
  }
  return linear_scan_composite(a, b, h0);  // [B, T, H]
}

at::Tensor min_rnn_scan(const at::Tensor& xp, bool lstm, const at::Tensor& valid,
                        const at::Tensor& h0) {
  check_min_rnn(xp, lstm, valid, h0);
  if (xp.numel() == 0 || !use_fused_kernel("min_rnn_scan", xp)) {
    return min_rnn_scan_composite(xp, lstm, valid, h0);
  }
  const int64_t H = xp.size(2) / (lstm ? 3 : 2);
  const auto h0z = h0.defined() ? h0 : at::zeros({xp.size(0), H}, xp.options());  // [B, H]
  return MinRnnFunction::apply(xp, h0z, h0.defined(), lstm, ValidMask{valid});    // [B, T, H]
}

at::Tensor log_space_scan(const at::Tensor& log_a, const at::Tensor& log_b,
                          const at::Tensor& log_h0) {
  constexpr const char* op = "log_space_scan";
  TORCH_CHECK(log_a.dim() == 3, op, ": expected 3-D `log_a` [B, T, C], got ", log_a.dim(), "-D");
  const int64_t B = log_a.size(0), T = log_a.size(1), C = log_a.size(2);
  check_floating(op, "log_a", log_a);
  check_shape(op, "log_b", log_b, {"B", "T", "C"}, {B, T, C});
  check_like(op, "log_b", log_b, "log_a", log_a);
  // log h_t = a*_t + log Σ_{s<=t} exp(log_b_s − a*_s), a*_t = Σ_{s<=t} log_a_s; with h0, a leading
  // position 0 holds log_h0 with a*_{-1} = 0 (the minGRU appendix's padded form).
  auto a_star = at::cumsum(log_a, 1);  // [B, T, C]
  if (!log_h0.defined()) {
    return at::exp(a_star + at::logcumsumexp(log_b - a_star, 1));  // [B, T, C]
  }
  check_shape(op, "log_h0", log_h0, {"B", "C"}, {B, C});
  check_like(op, "log_h0", log_h0, "log_a", log_a);
  auto a_star0 = at::cat({at::zeros({B, 1, C}, log_a.options()), a_star}, 1);  // [B, T+1, C]
  auto log_values = at::cat({log_h0.unsqueeze(1), log_b}, 1);                  // [B, T+1, C]
  auto log_h = a_star0 + at::logcumsumexp(log_values - a_star0, 1);            // [B, T+1, C]
  return at::exp(log_h.narrow(1, 1, T));                                       // [B, T, C]
}

std::tuple<at::Tensor, at::Tensor> selective_scan_composite(
    const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& Bm,
    const at::Tensor& Cm, const at::Tensor& D, const at::Tensor& h0) {
  check_selective(u, delta, A, Bm, Cm, D, h0);
  const int64_t B = u.size(0), T = u.size(1), E = u.size(2), N = A.size(1);
  auto h = h0.defined() ? h0 : at::zeros({B, E, N}, u.options());  // [B, E, N]
  if (T == 0) return {at::empty({B, 0, E}, u.options()), h.clone()};
  auto delta_a = at::exp(delta.unsqueeze(-1) * A);                  // [B, T, E, N]
  auto delta_bu = (delta * u).unsqueeze(-1) * Bm.unsqueeze(2);      // [B, T, E, N]
  const auto da_t = delta_a.unbind(1), dbu_t = delta_bu.unbind(1);  // T × [B, E, N]
  std::vector<at::Tensor> hs;
  hs.reserve(T);
  for (int64_t t = 0; t < T; ++t) {
    h = at::addcmul(dbu_t[t], da_t[t], h);  // [B, E, N] (unbind: see linear_scan_composite)
    hs.push_back(h);
  }
  auto y = at::matmul(at::stack(hs, 1), Cm.unsqueeze(-1)).squeeze(-1);  // [B, T, E]
  if (D.defined()) y = y + u * D;                                       // [B, T, E]
  return {y, h};
}

std::tuple<at::Tensor, at::Tensor> selective_scan(const at::Tensor& u, const at::Tensor& delta,
                                                  const at::Tensor& A, const at::Tensor& Bm,
                                                  const at::Tensor& Cm, const at::Tensor& D,
                                                  const at::Tensor& h0) {
  check_selective(u, delta, A, Bm, Cm, D, h0);
  if (u.numel() == 0 || A.numel() == 0 || !use_fused_kernel("selective_scan", u)) {
    return selective_scan_composite(u, delta, A, Bm, Cm, D, h0);
  }
  const int64_t B = u.size(0), E = u.size(2), N = A.size(1);
  const auto Dz = D.defined() ? D : at::zeros({E}, u.options());           // [E]
  const auto h0z = h0.defined() ? h0 : at::zeros({B, E, N}, u.options());  // [B, E, N]
  auto out = SelectiveScanFunction::apply(u, delta, A, Bm, Cm, Dz, h0z, D.defined(), h0.defined());
  return {out[0], out[1]};  // y [B, T, E], h_T [B, E, N]
}

}  // namespace longseq
