// main() of every Google Benchmark binary in bench/: sets the LibTorch / kernel thread count
// (--threads=N, default every hardware thread: LibTorch alone would use one), then runs the
// benchmarks with Google Benchmark's own flags.
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <string>
#include <thread>

int main(int argc, char** argv) {
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--threads=", 0) == 0) {
      threads = std::stoi(arg.substr(10));
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  at::set_num_threads(threads);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
