// Google Benchmark microbenchmarks: forward and forward+backward of every registered mixer at a few
// lengths (B=1, H=8, D=64). Iterates the registry, so new mixers appear without edits here.
#include <longseq/registry.h>

#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <torch/torch.h>

namespace {

void run_mixer(benchmark::State& state, const std::string& name, bool backward) {
  const int64_t t = state.range(0);
  longseq::MixerConfig c;
  c.max_len = t;
  torch::manual_seed(0);
  auto mixer = longseq::make_mixer(name, c);
  auto x = torch::randn({1, t, c.dim}, torch::requires_grad(backward));
  for (auto _ : state) {
    if (backward) {
      mixer->forward(x).sum().backward();
    } else {
      torch::NoGradGuard g;
      benchmark::DoNotOptimize(mixer->forward(x));
    }
  }
  state.SetItemsProcessed(state.iterations() * t);
}

const bool registered = [] {
  for (const auto& name : longseq::mixer_names()) {
    for (bool bwd : {false, true}) {
      benchmark::RegisterBenchmark((name + (bwd ? "/fwd+bwd" : "/fwd")).c_str(),
                                   [name, bwd](benchmark::State& s) { run_mixer(s, name, bwd); })
          ->Arg(1024)
          ->Arg(4096)
          ->Unit(benchmark::kMillisecond);
    }
  }
  return true;
}();

}  // namespace
