// Google Benchmark microbenchmarks of exact attention: the fused FlashAttention-style CPU kernel vs
// the composite LibTorch path, forward and forward+backward (B=1, H=8, D=64), and a 2048³ sgemm
// (torch::mm) as this machine's reference rate. Counters: GFLOP/s with exact attention counted as
// 4·B·H·T²·D forward and 2.5× that backward (half when causal), 2·n³ for the GEMM.
#include <longseq/attention.h>
#include <longseq/impl.h>

#include "bench_util.h"

#include <benchmark/benchmark.h>
#include <torch/torch.h>

namespace {

void bench_exact(benchmark::State& state, longseq::Impl impl, bool backward, bool causal) {
  const int64_t t = state.range(0), b = 1, h = 8, d = 64;
  longseq::ImplGuard guard(impl);
  torch::manual_seed(0);
  auto q = torch::randn({b, h, t, d}, torch::requires_grad(backward));
  auto k = torch::randn({b, h, t, d}, torch::requires_grad(backward));
  auto v = torch::randn({b, h, t, d}, torch::requires_grad(backward));
  const longseq::AttentionMask mask{causal, {}};
  for (auto _ : state) {
    if (backward) {
      longseq::exact_attention(q, k, v, mask).sum().backward();
    } else {
      torch::NoGradGuard g;
      benchmark::DoNotOptimize(longseq::exact_attention(q, k, v, mask));
    }
  }
  const double flops = 4.0 * b * h * t * t * d * (backward ? 3.5 : 1.0) * (causal ? 0.5 : 1.0);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9 * state.iterations(), benchmark::Counter::kIsRate);
}

void bench_sgemm(benchmark::State& state) {
  const int64_t n = state.range(0);
  auto a = torch::randn({n, n}), bm = torch::randn({n, n});
  for (auto _ : state) benchmark::DoNotOptimize(torch::mm(a, bm));
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * n * n * n * 1e-9 * state.iterations(), benchmark::Counter::kIsRate);
}

const bool registered = [] {
  benchmark::RegisterBenchmark("sgemm/torch::mm", bench_sgemm)
      ->Arg(2048)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  for (bool causal : {false, true}) {
    longseq::bench::register_fused_and_composite(
        causal ? "exact/causal" : "exact",
        [causal](benchmark::State& s, longseq::Impl impl, bool bwd) {
          bench_exact(s, impl, bwd, causal);
        });
  }
  return true;
}();

}  // namespace
