// Gradient-flow diagnostics (see include/longseq/diagnose.h).
//   ‖∂L/∂x_t‖: from forward_recorded(), which retains the gradient of every layer's input stream.
//   σ_max(∂s_{t+1}/∂s_t): power iteration on JᵀJ for the state update s_{t+1} = f(s_t, x_{t+1}) of
//   one layer (its mixer's step()): Jᵀu by autograd (vector-Jacobian product), Jv by central
//   differences (the fused recurrent kernels have no double backward, so the double-vjp trick for
//   Jv is not available).
#include <longseq/diagnose.h>
#include <longseq/train.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/autograd.h>
#include <torch/torch.h>

#include <cmath>

namespace longseq {
namespace {

// Float tensors of a decode state, in key order (the layer's state vector s).
std::vector<std::string> state_keys(const DecodeState& s) {
  std::vector<std::string> keys;
  for (const auto& kv : s.tensors) {
    if (kv.second.defined() && at::isFloatingType(kv.second.scalar_type()))
      keys.push_back(kv.first);
  }
  return keys;
}

double fit_backward_factor(const std::vector<double>& g) {
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t t = 0; t < g.size(); ++t) {
    if (!(g[t] > 0) || !std::isfinite(g[t])) continue;
    const double x = static_cast<double>(t), y = std::log(g[t]);
    n += 1;
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  if (n < 2 || n * sxx - sx * sx == 0) return std::nan("");
  const double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
  return std::exp(-slope);
}

// σ_max of ∂s_{t+1}/∂s_t for block `block` at step t of the first sequence of `input` [B, T, C].
double sigma_max_at(Block& block, const at::Tensor& input, int64_t t, int64_t iterations,
                    std::string* note) {
  auto x = input.narrow(0, 0, 1).detach();  // [1, T, C]
  DecodeState prefix;
  {
    torch::NoGradGuard ng;
    block->mix_step(x.narrow(1, 0, t), prefix);
  }
  const auto keys = state_keys(prefix);
  auto xt = x.narrow(1, t, 1);  // [1, 1, C]
  auto f = [&](const std::vector<at::Tensor>& s) {
    DecodeState st = prefix;
    for (size_t i = 0; i < keys.size(); ++i) st.tensors[keys[i]] = s[i];
    block->mix_step(xt, st);
    std::vector<at::Tensor> out;
    for (const auto& k : keys) out.push_back(st.tensors.at(k));
    return out;
  };
  std::vector<at::Tensor> s0;
  for (const auto& k : keys) s0.push_back(prefix.tensors.at(k).detach());
  {
    torch::NoGradGuard ng;
    auto s1 = f(s0);
    for (size_t i = 0; i < keys.size(); ++i) {
      if (s1[i].sizes() != s0[i].sizes()) {
        *note = "the state grows with t (`" + keys[i] + "`: a cache, not a fixed-size state)";
        return std::nan("");
      }
    }
  }
  auto flat = [](const std::vector<at::Tensor>& ts) { return at::flatten_dense_tensors(ts); };
  auto unflat = [&](const at::Tensor& v) { return at::unflatten_dense_tensors(v, s0); };
  const auto base = flat(s0);
  const double scale = std::max(1.0, base.norm().item<double>());
  const double eps = (base.scalar_type() == at::kDouble ? 1e-6 : 1e-3) * scale;
  torch::manual_seed(0);
  auto v = at::randn_like(base);
  v = v / v.norm();
  double sigma = 0;
  for (int64_t it = 0; it < iterations; ++it) {
    at::Tensor jv;
    {
      torch::NoGradGuard ng;
      jv = (flat(f(unflat(base + eps * v))) - flat(f(unflat(base - eps * v)))) / (2 * eps);
    }
    sigma = jv.norm().item<double>();
    if (sigma == 0) break;
    // v ← Jᵀ (J v) / ‖·‖
    std::vector<at::Tensor> leaves;
    for (const auto& t : s0) leaves.push_back(t.clone().requires_grad_(true));
    auto out = flat(f(leaves));
    auto grads = torch::autograd::grad({out}, leaves, {jv.detach()}, false, false, true);
    std::vector<at::Tensor> parts;
    for (size_t i = 0; i < grads.size(); ++i) {
      parts.push_back(grads[i].defined() ? grads[i].reshape(-1)
                                         : at::zeros_like(s0[i]).reshape(-1));
    }
    auto jtjv = at::cat(parts);
    const double n = jtjv.norm().item<double>();
    if (n == 0) break;
    v = jtjv / n;
  }
  return sigma;
}

}  // namespace

GradientProfile diagnose_gradients(SequenceModel& model, const TaskInfo& info, Batch batch,
                                   int64_t power_iterations, std::vector<int64_t> probe_steps,
                                   int64_t loss_last) {
  TORCH_CHECK(power_iterations >= 0, "diagnose: `power_iterations` must be >= 0, got ",
              power_iterations);
  TORCH_CHECK(loss_last >= 0,
              "diagnose: `loss_last` must be >= 0 (0 = every counted position), got ", loss_last);
  if (loss_last > 0) {
    TORCH_CHECK(batch.loss_mask.defined(),
                "diagnose: `loss_last` needs a per-position task; this "
                "task's head is `",
                info.head, "`");
    const int64_t T = batch.loss_mask.size(1);
    batch.loss_mask = batch.loss_mask.clone();
    if (loss_last < T) batch.loss_mask.narrow(1, 0, T - loss_last).fill_(false);
  }
  const bool was_training = model->is_training();
  model->eval();  // no dropout: the profile of the function itself
  std::vector<at::Tensor> stream;
  auto out = model->forward_recorded(batch.inputs, batch.key_padding, stream);
  auto parts = task_loss(info, out, batch);
  model->zero_grad();
  parts.loss.backward();
  GradientProfile p;
  p.loss = parts.loss.item<double>();
  const int64_t T = stream[0].size(1);
  p.seq_len = T;
  if (probe_steps.empty()) probe_steps = {T / 4, T / 2, (3 * T) / 4};
  const auto& blocks = model->blocks();
  for (size_t l = 0; l < stream.size(); ++l) {
    LayerGradientProfile lp;
    lp.layer = static_cast<int64_t>(l);
    auto g = stream[l].grad();
    auto norms = g.defined() ? g.detach().to(at::kDouble).norm(2, {2}).mean(0)
                             : at::zeros({T}, at::kDouble);  // [T]
    lp.grad_norm.assign(norms.data_ptr<double>(), norms.data_ptr<double>() + T);
    lp.backward_factor = fit_backward_factor(lp.grad_norm);
    if (l < blocks.size()) {
      Block block = blocks[l];
      lp.mixer = block->mixer()->mixer_name();
      const std::string why = block->mixer()->step_unsupported();
      if (!why.empty()) {
        lp.sigma_note = why;
      } else if (power_iterations > 0) {
        for (int64_t t : probe_steps) {
          if (t < 1 || t >= T) continue;
          std::string note;
          const double s = sigma_max_at(block, stream[l].detach(), t, power_iterations, &note);
          if (!note.empty()) {
            lp.sigma_note = note;
            break;
          }
          lp.sigma_max.emplace_back(t, s);
        }
      }
    }
    p.layers.push_back(std::move(lp));
  }
  model->zero_grad();
  if (was_training) model->train();
  return p;
}

std::string gradient_profile_json(const GradientProfile& p) {
  nlohmann::json j;
  j["loss"] = p.loss;
  j["seq_len"] = p.seq_len;
  j["layers"] = nlohmann::json::array();
  for (const auto& l : p.layers) {
    nlohmann::json s = nlohmann::json::array();
    for (const auto& ts : l.sigma_max) s.push_back({{"t", ts.first}, {"sigma_max", ts.second}});
    j["layers"].push_back(
        {{"layer", l.layer},
         {"mixer", l.mixer},
         {"grad_norm", l.grad_norm},
         {"backward_factor", std::isfinite(l.backward_factor) ? nlohmann::json(l.backward_factor)
                                                              : nlohmann::json(nullptr)},
         {"sigma_max", s},
         {"sigma_note", l.sigma_note}});
  }
  return j.dump(1);
}

}  // namespace longseq
