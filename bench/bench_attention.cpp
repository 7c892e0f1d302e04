// Google Benchmark microbenchmarks of the attention cores on q, k, v [B, H, T, D] (B=1, H=8, D=64):
// each mechanism's fused CPU kernel against its composite LibTorch path, forward and
// forward+backward, with the peak of live tensor bytes of one iteration (MemoryTracker) as a
// counter. Mechanism options are the mixers' defaults: longformer W=256, performer R=256 (chunk
// 32), reformer 32 buckets × 2 rounds (chunk 64), linformer R=256.
#include <longseq/attention.h>
#include <longseq/impl.h>
#include <longseq/memory_tracker.h>

#include "bench_util.h"

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace {

longseq::AttentionMask mask_of(bool causal) {
  longseq::AttentionMask m;
  m.causal = causal;
  return m;
}

using Core = std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&)>;

struct Mechanism {
  std::string name;
  // Builds the core for length t (its random draws or projections made once, outside the loop).
  std::function<Core(int64_t t)> make;
};

constexpr int64_t kB = 1, kH = 8, kD = 64;

std::vector<Mechanism> mechanisms() {
  std::vector<Mechanism> m;
  for (bool causal : {false, true}) {
    m.push_back({std::string("longformer") + (causal ? "/causal" : ""), [causal](int64_t) -> Core {
                   longseq::LongformerPattern p;
                   p.window = 256;
                   return
                       [p, causal](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
                         return longseq::longformer_attention(q, k, v, p, mask_of(causal));
                       };
                 }});
    m.push_back({std::string("performer") + (causal ? "/causal" : ""), [causal](int64_t) -> Core {
                   auto omega = longseq::performer_draw_features(256, kD, 0);
                   longseq::PerformerCoreOptions o;
                   return [omega, o, causal](const at::Tensor& q, const at::Tensor& k,
                                             const at::Tensor& v) {
                     return longseq::performer_attention(q, k, v, omega, o, mask_of(causal));
                   };
                 }});
    m.push_back({std::string("reformer") + (causal ? "/causal" : ""), [causal](int64_t) -> Core {
                   longseq::ReformerCoreOptions o;
                   o.n_hashes = 2;
                   auto rot = longseq::reformer_draw_rotations(o, kD, 0);
                   return [rot, o, causal](const at::Tensor& q, const at::Tensor&,
                                           const at::Tensor& v) {
                     return longseq::reformer_attention(q, v, rot, o, mask_of(causal));
                   };
                 }});
  }
  m.push_back({"linformer", [](int64_t t) -> Core {
                 auto e = torch::randn({256, t}) / 16.0, f = torch::randn({256, t}) / 16.0;
                 e.requires_grad_(true);
                 f.requires_grad_(true);
                 return [e, f](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
                   return longseq::linformer_attention(q, k, v, e, f);
                 };
               }});
  return m;
}

void run(benchmark::State& state, const Mechanism& mech, longseq::Impl impl, bool backward) {
  const int64_t t = state.range(0);
  longseq::ImplGuard guard(impl);
  longseq::MemoryTracker::install();
  torch::manual_seed(0);
  auto q = torch::randn({kB, kH, t, kD}, torch::requires_grad(backward));
  auto k = torch::randn({kB, kH, t, kD}, torch::requires_grad(backward));
  auto v = torch::randn({kB, kH, t, kD}, torch::requires_grad(backward));
  auto core = mech.make(t);
  auto once = [&] {
    if (backward) {
      core(q, k, v).sum().backward();
    } else {
      torch::NoGradGuard g;
      benchmark::DoNotOptimize(core(q, k, v));
    }
  };
  once();  // warm-up, and the memory measurement
  const int64_t before = longseq::MemoryTracker::current_bytes();
  longseq::MemoryTracker::reset_peak();
  once();
  const double peak = static_cast<double>(longseq::MemoryTracker::peak_bytes() - before);
  for (auto _ : state) once();
  state.counters["peak_MiB"] = peak / (1 << 20);
  state.SetItemsProcessed(state.iterations() * t);
}

const bool registered = [] {
  for (const auto& mech : mechanisms()) {
    longseq::bench::register_fused_and_composite(
        mech.name,
        [mech](benchmark::State& s, longseq::Impl impl, bool bwd) { run(s, mech, impl, bwd); });
  }
  return true;
}();

}  // namespace
