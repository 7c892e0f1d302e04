// Memory-augmented recurrent mixer with a growing external memory (see mixers/memory.h for the
// allocation rule).
#include <longseq/op_work.h>
#include <longseq/mixers/memory.h>
#include <longseq/registry.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace longseq {
namespace {

at::Tensor unit(const at::Tensor& x) {  // x / |x| over the last dim
  return x / x.norm(2, {-1}, /*keepdim=*/true).clamp_min(1e-12);
}

const OptionSet<MemoryOptions>& memory_options() {
  using O = MemoryOptions;
  static const auto set =
      OptionSet<O>(O(MixerConfig{}))
          .add(option("slots", &O::slots, "initial capacity").positive().tests({"2"}))
          .add(option("max_slots", &O::max_slots, "largest capacity").positive().tests({"8"}))
          .add(option("key_dim", &O::key_dim, "width of keys and values").positive().tests({"6"}))
          .add(option("threshold", &O::threshold, "allocate when max cosine to the slots is below")
                   .range(-1, 1));
  return set;
}

}  // namespace

MemoryImpl::MemoryImpl(const MemoryOptions& options)
    : SequenceMixerImpl("memory", options.common()), options_(options) {
  const auto& o = options_;
  memory_options().check(o, name_);
  TORCH_CHECK(o.max_slots() >= o.slots(), "memory: option `max_slots` (", o.max_slots(),
              ") must be >= `slots` (", o.slots(), ")");
  const int64_t C = config_.dim, K = o.key_dim();
  wk_ = register_module("wk", torch::nn::Linear(C, K));
  wv_ = register_module("wv", torch::nn::Linear(C, K));
  wq_ = register_module("wq", torch::nn::Linear(C, K));
  wa_ = register_module("wa", torch::nn::Linear(C, 1));
  wo_ = register_module("wo",
                        torch::nn::Linear(torch::nn::LinearOptions(K + C, C).bias(config_.bias)));
  beta_ =
      register_parameter("beta", torch::full({1}, std::log(std::sqrt(static_cast<double>(K)) * 2)));
}

at::Tensor MemoryImpl::run(const at::Tensor& x, const at::Tensor& key_padding, DecodeState& state) {
  check_input(x, key_padding);
  const int64_t B = x.size(0), T = x.size(1), K = options_.key_dim();
  const auto& o = options_;
  auto& keys = state.tensors["keys"];      // [B, capacity, K]
  auto& values = state.tensors["values"];  // [B, capacity, K]
  auto& used = state.tensors["used"];      // [B] int64, slots in use
  auto& prev = state.tensors["prev"];      // [B, C], the previous token (for the shifted key)
  if (!keys.defined()) {
    keys = x.new_zeros({B, o.slots(), K});
    values = x.new_zeros({B, o.slots(), K});
    used = at::zeros({B}, at::kLong);
    prev = x.new_zeros({B, x.size(2)});
  }
  auto shifted = at::cat({prev.unsqueeze(1), x.narrow(1, 0, T - 1)}, 1);  // [B, T, C]
  auto k_all = unit(wk_->forward(shifted));                               // [B, T, K]
  auto v_all = wv_->forward(x);                                           // [B, T, K]
  auto q_all = wq_->forward(x);                                           // [B, T, K]
  auto a_all = at::sigmoid(wa_->forward(x));                              // [B, T, 1]
  auto valid = key_padding.defined() ? key_padding : at::ones({B, T}, at::kBool);
  const double neg_inf = -std::numeric_limits<double>::infinity();
  std::vector<at::Tensor> reads;
  reads.reserve(T);
  for (int64_t t = 0; t < T; ++t) {
    auto k = k_all.select(1, t), v = v_all.select(1, t), q = q_all.select(1, t);  // [B, K]
    auto vt = valid.select(1, t);                                                 // [B]
    int64_t cap = keys.size(1);
    at::Tensor target, fresh;
    {
      at::NoGradGuard no_grad;  // the allocation decision is discrete
      auto slot_ids = at::arange(cap, at::kLong).unsqueeze(0);  // [1, cap]
      auto sim = at::matmul(keys, k.unsqueeze(-1))
                     .squeeze(-1)  // [B, cap]
                     .masked_fill(slot_ids >= used.unsqueeze(1), neg_inf);
      auto [best, nearest] = sim.max(1);  // [B], [B]
      auto want_new = (used == 0).logical_or(best < o.threshold()).logical_and(vt);
      if (want_new.logical_and(used >= cap).any().item<bool>() && cap < o.max_slots()) {
        const int64_t grown = std::min(2 * cap, o.max_slots());  // capacity doubles
        keys = at::cat({keys, keys.new_zeros({B, grown - cap, K})}, 1);
        values = at::cat({values, values.new_zeros({B, grown - cap, K})}, 1);
        cap = grown;
      }
      fresh = want_new.logical_and(used < cap);               // [B]
      target = at::where(fresh, used, nearest.clamp_min(0));  // [B]
    }
    auto onehot = at::one_hot(target, cap).to(x.scalar_type()) *
                  vt.to(x.scalar_type()).unsqueeze(1);  // [B, cap]
    auto alpha =
        at::where(fresh.unsqueeze(1), at::ones_like(a_all.select(1, t)), a_all.select(1, t));
    auto hot = onehot.unsqueeze(-1);                                  // [B, cap, 1]
    auto old_k = (keys * hot).sum(1), old_v = (values * hot).sum(1);  // [B, K]
    auto new_k = unit((1 - alpha) * old_k + alpha * k);               // [B, K]
    auto new_v = (1 - alpha) * old_v + alpha * v;                     // [B, K]
    keys = keys * (1 - hot) + hot * new_k.unsqueeze(1);               // [B, cap, K]
    values = values * (1 - hot) + hot * new_v.unsqueeze(1);           // [B, cap, K]
    used = used + fresh.to(at::kLong);
    // Read the used slots by content.
    auto scores = at::matmul(keys, q.unsqueeze(-1)).squeeze(-1) * beta_.exp();   // [B, cap]
    auto unused = at::arange(cap, at::kLong).unsqueeze(0) >= used.unsqueeze(1);  // [B, cap]
    auto probs = at::softmax(scores.masked_fill(unused, neg_inf), 1)
                     .masked_fill(unused, 0.0);  // [B, cap] (0 if none)
    probs = at::where(probs.isnan(), at::zeros_like(probs), probs);
    reads.push_back(at::matmul(probs.unsqueeze(1), values).squeeze(1));  // [B, K]
    prev = at::where(vt.unsqueeze(1), x.select(1, t), prev);
  }
  last_used_ = used.clone();
  last_capacity_ = keys.size(1);
  auto r = at::stack(reads, 1);             // [B, T, K]
  return wo_->forward(at::cat({r, x}, 2));  // [B, T, C]
}

at::Tensor MemoryImpl::forward(const at::Tensor& x, const at::Tensor& key_padding) {
  DecodeState fresh;
  return run(x, key_padding, fresh);  // [B, T, C]
}

at::Tensor MemoryImpl::step(const at::Tensor& x, DecodeState& state) {
  auto out = run(x, {}, state);
  state.position += x.size(1);
  return out;  // [B, n, C]
}

// Roofline: the key, value, query and gate projections, reading and writing up to max_slots
// slots of key_dim per step (counted at full capacity), the output projection over [read, x].
static Work memory_work(const MemoryOptions& o, int64_t batch, int64_t t, bool backward) {
  const auto& c = o.common();
  const int64_t C = c.dim, K = o.key_dim();
  const double rows = double(batch) * t;
  const Work slots{4.0 * rows * o.max_slots() * K, 0};
  return 3 * linear_layer_work(rows, C, K, backward) + linear_layer_work(rows, C, 1, backward) +
         (backward ? 2 * slots : slots) + linear_layer_work(rows, K + double(C), C, backward);
}

MixerSpec memory_mixer_spec() {
  return mixer_spec<Memory>(
      "memory",
      "recurrent controller with an external memory that allocates slots for new content (up to "
      "max_slots), read by content attention; O(T*slots)",
      memory_options(), {}, memory_work);
}

}  // namespace longseq
