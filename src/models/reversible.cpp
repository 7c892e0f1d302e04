// Reversible residual stack (Gomez et al. 2017, RevNet; Kitaev et al. 2020, Reformer):
//   x1 = x2 = h;  y1 = x1 + F(x2),  y2 = x2 + G(y1);  out = (y1 + y2) / 2
// with F = a block's mixer branch and G its feed-forward branch. The autograd Function keeps only
// the last (y1, y2); backward inverts each block (x2 = y2 - G(y1), x1 = y1 - F(x2)) while
// re-running F and G under autograd to get their vector-Jacobian products. Each branch is replayed
// under the CPU RNG state it first ran with (dropout) and with redraw counters frozen (Performer
// features, Reformer rotations), so the recomputation is the forward pass, bit for bit.
#include <longseq/mixer.h>
#include <longseq/model.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <unordered_map>

namespace longseq {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor rng_state() { return at::detail::getDefaultCPUGenerator().get_state(); }
void set_rng_state(const at::Tensor& s) {
  auto gen = at::detail::getDefaultCPUGenerator();
  gen.set_state(s);
}

struct ReversibleStack : public torch::autograd::Function<ReversibleStack> {
  // `params` are every block's parameters in block order, so backward can return their gradients.
  static at::Tensor forward(AutogradContext* ctx, std::vector<Block>* blocks, const at::Tensor& h,
                            c10::optional<at::Tensor> key_padding, at::TensorList params) {
    const at::Tensor kp = key_padding.value_or(at::Tensor());
    std::vector<at::Tensor> rng;  // per block: state before F, state before G
    at::Tensor y1 = h, y2 = h;
    for (auto& block : *blocks) {
      rng.push_back(rng_state());
      y1 = y1 + block->mix(y2, kp);  // [B, T, C]
      rng.push_back(rng_state());
      y2 = y2 + block->feed(y1);  // [B, T, C]
    }
    ctx->save_for_backward({y1, y2});
    ctx->saved_data["blocks"] = reinterpret_cast<int64_t>(blocks);
    ctx->saved_data["key_padding"] = kp;
    ctx->saved_data["rng"] = rng;
    ctx->saved_data["num_params"] = static_cast<int64_t>(params.size());
    return (y1 + y2) * 0.5;  // [B, T, C]
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto* blocks = reinterpret_cast<std::vector<Block>*>(ctx->saved_data["blocks"].toInt());
    const at::Tensor kp = ctx->saved_data["key_padding"].toTensor();
    const auto rng = ctx->saved_data["rng"].toTensorVector();
    const int64_t num_params = ctx->saved_data["num_params"].toInt();
    auto saved = ctx->get_saved_variables();
    at::Tensor y1 = saved[0], y2 = saved[1];
    at::Tensor dy1 = grad_out[0] * 0.5, dy2 = grad_out[0] * 0.5;  // [B, T, C]

    // Parameter slots in the order forward() received them.
    std::vector<at::Tensor> params;
    for (auto& block : *blocks) {
      for (const auto& p : block->parameters()) params.push_back(p);
    }
    TORCH_INTERNAL_ASSERT(
        static_cast<int64_t>(params.size()) == num_params,
        "reversible stack: the blocks' parameters changed between forward and backward");
    std::unordered_map<const void*, size_t> slot;
    for (size_t i = 0; i < params.size(); ++i) slot[params[i].unsafeGetTensorImpl()] = i;
    std::vector<at::Tensor> dparams(params.size());

    // Runs `branch` on a leaf copy of `in` and returns (branch output, d in) after accumulating
    // the parameter gradients for grad_output `dy`.
    auto vjp = [&](Block& block, const at::Tensor& in, const at::Tensor& dy,
                   const at::Tensor& state, bool mixer_branch) {
      at::AutoGradMode grad_on(true);
      RedrawSchedule::ReplayGuard replay;
      set_rng_state(state);
      auto leaf = in.detach().requires_grad_(true);
      auto out = mixer_branch ? block->mix(leaf, kp) : block->feed(leaf);  // [B, T, C]
      std::vector<at::Tensor> inputs{leaf};
      std::vector<size_t> where;
      for (const auto& p : block->parameters()) {
        if (!p.requires_grad()) continue;
        inputs.push_back(p);
        where.push_back(slot.at(p.unsafeGetTensorImpl()));
      }
      auto grads = torch::autograd::grad({out}, inputs, {dy}, /*retain_graph=*/false,
                                         /*create_graph=*/false, /*allow_unused=*/true);
      for (size_t i = 0; i < where.size(); ++i) {
        const auto& g = grads[i + 1];
        if (!g.defined()) continue;
        auto& acc = dparams[where[i]];
        acc = acc.defined() ? acc + g : g;
      }
      return std::make_pair(out.detach(), grads[0]);
    };

    const at::Tensor entry_rng = rng_state();
    for (int64_t l = static_cast<int64_t>(blocks->size()) - 1; l >= 0; --l) {
      auto& block = (*blocks)[l];
      auto [g, dg_in] = vjp(block, y1, dy2, rng[2 * l + 1], /*mixer_branch=*/false);
      const at::Tensor x2 = y2 - g;  // [B, T, C]
      dy1 = dy1 + dg_in;             // y1 feeds G
      auto [f, df_in] = vjp(block, x2, dy1, rng[2 * l], /*mixer_branch=*/true);
      const at::Tensor x1 = y1 - f;  // [B, T, C]
      dy2 = dy2 + df_in;             // x2 feeds F and passes through to y2
      y1 = x1;
      y2 = x2;
    }
    set_rng_state(entry_rng);  // the caller's random stream continues as if nothing replayed

    variable_list result{at::Tensor(), dy1 + dy2, at::Tensor()};  // blocks, h (= x1 = x2), padding
    for (auto& g : dparams) result.push_back(g);
    return result;
  }
};

}  // namespace

at::Tensor reversible_blocks(std::vector<Block>& blocks, const at::Tensor& h,
                             const at::Tensor& key_padding, bool recompute) {
  if (!recompute || !at::GradMode::is_enabled()) {
    at::Tensor y1 = h, y2 = h;
    for (auto& block : blocks) {
      y1 = y1 + block->mix(y2, key_padding);  // [B, T, C]
      y2 = y2 + block->feed(y1);              // [B, T, C]
    }
    return (y1 + y2) * 0.5;  // [B, T, C]
  }
  std::vector<at::Tensor> params;
  for (auto& block : blocks) {
    for (const auto& p : block->parameters()) params.push_back(p);
  }
  c10::optional<at::Tensor> kp;
  if (key_padding.defined()) kp = key_padding;
  return ReversibleStack::apply(&blocks, h, kp, at::TensorList(params));
}

}  // namespace longseq
