// Google Benchmark microbenchmarks of the recurrent layers: the fused Elman/LSTM/GRU recurrence
// (rnn_layer) vs the torch::nn::RNN/LSTM/GRU modules with the same shapes, forward and
// forward+backward, B=8, I=H=256 (the issue-5 speed setting), T in {256, 1024}.
#include <longseq/rnn.h>

#include <benchmark/benchmark.h>
#include <torch/torch.h>

namespace {

constexpr int64_t kB = 8, kH = 256;

void bench_fused(benchmark::State& state, longseq::RnnCell cell, bool backward) {
  const int64_t t = state.range(0), g = longseq::rnn_gates(cell);
  torch::manual_seed(0);
  auto x = torch::randn({kB, t, kH}, torch::requires_grad(backward));
  auto opt = torch::requires_grad(backward);
  longseq::RnnWeights w{torch::randn({g * kH, kH}, opt) * 0.05,
                        torch::randn({g * kH, kH}, opt) * 0.05, torch::zeros({g * kH}, opt),
                        torch::zeros({g * kH}, opt)};
  for (auto _ : state) {
    if (backward) {
      longseq::rnn_layer(cell, x, w).out.sum().backward();
    } else {
      torch::NoGradGuard ng;
      benchmark::DoNotOptimize(longseq::rnn_layer(cell, x, w).out);
    }
  }
  state.counters["steps/s"] =
      benchmark::Counter(static_cast<double>(t) * state.iterations(), benchmark::Counter::kIsRate);
}

void bench_torch(benchmark::State& state, longseq::RnnCell cell, bool backward) {
  const int64_t t = state.range(0);
  torch::manual_seed(0);
  auto x = torch::randn({kB, t, kH}, torch::requires_grad(backward));
  torch::nn::LSTM lstm(torch::nn::LSTMOptions(kH, kH).batch_first(true));
  torch::nn::GRU gru(torch::nn::GRUOptions(kH, kH).batch_first(true));
  torch::nn::RNN rnn(torch::nn::RNNOptions(kH, kH).batch_first(true));
  auto run = [&] {
    if (cell == longseq::RnnCell::kLstm) return std::get<0>(lstm->forward(x));
    if (cell == longseq::RnnCell::kGru) return std::get<0>(gru->forward(x));
    return std::get<0>(rnn->forward(x));
  };
  for (auto _ : state) {
    if (backward) {
      run().sum().backward();
    } else {
      torch::NoGradGuard ng;
      benchmark::DoNotOptimize(run());
    }
  }
  state.counters["steps/s"] =
      benchmark::Counter(static_cast<double>(t) * state.iterations(), benchmark::Counter::kIsRate);
}

const bool registered = [] {
  for (auto [cell, name] :
       {std::pair{longseq::RnnCell::kElman, "elman"}, std::pair{longseq::RnnCell::kLstm, "lstm"},
        std::pair{longseq::RnnCell::kGru, "gru"}}) {
    for (bool bwd : {false, true}) {
      const std::string mode = bwd ? "/fwd+bwd" : "/fwd";
      benchmark::RegisterBenchmark(
          (std::string(name) + "/fused" + mode).c_str(),
          [cell = cell, bwd](benchmark::State& s) { bench_fused(s, cell, bwd); })
          ->Arg(256)
          ->Arg(1024)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
      benchmark::RegisterBenchmark(
          (std::string(name) + "/torch::nn" + mode).c_str(),
          [cell = cell, bwd](benchmark::State& s) { bench_torch(s, cell, bwd); })
          ->Arg(256)
          ->Arg(1024)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
  return true;
}();

}  // namespace
