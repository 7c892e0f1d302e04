// Google Benchmark microbenchmarks of the scans: the fused CPU kernels vs the composite LibTorch
// paths, forward and forward+backward, at B = 8, C = E = H = 256, N = 16, T in {1024, 4096}.
// min_rnn_scan (minGRU) also runs as "gates+scan": the gates as LibTorch ops feeding the fused
// linear scan (what minGRU ran before its gates moved into the kernel).
// Thread count: --threads=N (default: every hardware thread). Counters: elements/s (B·T·C for
// linear_scan and min_rnn_scan, B·T·E·N state updates for selective_scan).
#include <longseq/impl.h>
#include <longseq/scan.h>

#include "bench_util.h"

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <string>

namespace {

constexpr int64_t kBatch = 8, kChannels = 256, kState = 16;

void bench_linear(benchmark::State& state, longseq::Impl impl, bool backward) {
  const int64_t t = state.range(0);
  longseq::ImplGuard guard(impl);
  torch::manual_seed(0);
  auto a = (torch::rand({kBatch, t, kChannels}) * 0.5 + 0.5).requires_grad_(backward);
  auto b = torch::randn({kBatch, t, kChannels}, torch::requires_grad(backward));
  auto h0 = torch::randn({kBatch, kChannels}, torch::requires_grad(backward));
  for (auto _ : state) {
    if (backward) {
      longseq::linear_scan(a, b, h0).sum().backward();
    } else {
      torch::NoGradGuard g;
      benchmark::DoNotOptimize(longseq::linear_scan(a, b, h0));
    }
  }
  state.counters["elem/s"] = benchmark::Counter(double(kBatch * t * kChannels) * state.iterations(),
                                                benchmark::Counter::kIsRate);
}

void bench_selective(benchmark::State& state, longseq::Impl impl, bool backward) {
  const int64_t t = state.range(0);
  longseq::ImplGuard guard(impl);
  torch::manual_seed(0);
  auto rg = torch::requires_grad(backward);
  auto u = torch::randn({kBatch, t, kChannels}, rg);
  auto delta = torch::softplus(torch::randn({kBatch, t, kChannels}) - 1).requires_grad_(backward);
  auto A = (-torch::exp(torch::randn({kChannels, kState}) * 0.5)).requires_grad_(backward);
  auto Bm = torch::randn({kBatch, t, kState}, rg);
  auto Cm = torch::randn({kBatch, t, kState}, rg);
  auto D = torch::randn({kChannels}, rg);
  for (auto _ : state) {
    if (backward) {
      auto [y, h] = longseq::selective_scan(u, delta, A, Bm, Cm, D);
      y.sum().backward();
    } else {
      torch::NoGradGuard g;
      benchmark::DoNotOptimize(longseq::selective_scan(u, delta, A, Bm, Cm, D));
    }
  }
  state.counters["elem/s"] = benchmark::Counter(
      double(kBatch * t * kChannels * kState) * state.iterations(), benchmark::Counter::kIsRate);
}

// minGRU from its projection xp [B, T, 2H]; `unfused_gates` runs min_rnn_scan_composite on the
// fused linear scan.
void bench_min_rnn(benchmark::State& state, longseq::Impl impl, bool unfused_gates, bool backward) {
  const int64_t t = state.range(0);
  longseq::ImplGuard guard(impl);
  torch::manual_seed(0);
  auto xp = torch::randn({kBatch, t, 2 * kChannels}, torch::requires_grad(backward));
  auto run = [&] {
    return unfused_gates ? longseq::min_rnn_scan_composite(xp, false)
                         : longseq::min_rnn_scan(xp, false);
  };
  for (auto _ : state) {
    if (backward) {
      run().sum().backward();
    } else {
      torch::NoGradGuard g;
      benchmark::DoNotOptimize(run());
    }
  }
  state.counters["elem/s"] = benchmark::Counter(double(kBatch * t * kChannels) * state.iterations(),
                                                benchmark::Counter::kIsRate);
}

const bool registered = [] {
  for (bool bwd : {false, true}) {
    benchmark::RegisterBenchmark(
        (std::string("min_rnn_scan/gates+scan") + (bwd ? "/fwd+bwd" : "/fwd")).c_str(),
        [bwd](benchmark::State& s) { bench_min_rnn(s, longseq::Impl::kFused, true, bwd); })
        ->Arg(1024)
        ->Arg(4096)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  longseq::bench::register_fused_and_composite("linear_scan", bench_linear);
  longseq::bench::register_fused_and_composite(
      "min_rnn_scan", [](benchmark::State& s, longseq::Impl impl, bool bwd) {
        bench_min_rnn(s, impl, false, bwd);
      });
  longseq::bench::register_fused_and_composite("selective_scan", bench_selective);
  return true;
}();

}  // namespace
