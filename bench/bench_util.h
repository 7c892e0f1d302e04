#pragma once
// Shared registration of the fused-vs-composite microbenchmarks (bench_attention, bench_flash,
// bench_scan): one benchmark per (implementation, mode) at the usual lengths.

#include <longseq/impl.h>

#include <benchmark/benchmark.h>

#include <functional>
#include <string>
#include <utility>

namespace longseq::bench {

/// fn(state, impl, backward), with the length T in state.range(0).
using ImplBenchmark = std::function<void(benchmark::State&, longseq::Impl, bool)>;

/// Registers NAME/fused/fwd, NAME/fused/fwd+bwd, NAME/composite/fwd, NAME/composite/fwd+bwd at
/// T = 1024 and 4096, timed in real milliseconds.
inline void register_fused_and_composite(const std::string& name, const ImplBenchmark& fn) {
  for (auto [impl, impl_label] : {std::pair{longseq::Impl::kFused, "fused"},
                                  std::pair{longseq::Impl::kComposite, "composite"}}) {
    for (bool bwd : {false, true}) {
      const std::string label = name + "/" + impl_label + (bwd ? "/fwd+bwd" : "/fwd");
      benchmark::RegisterBenchmark(
          label.c_str(), [fn, impl = impl, bwd](benchmark::State& s) { fn(s, impl, bwd); })
          ->Arg(1024)
          ->Arg(4096)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
}

}  // namespace longseq::bench
