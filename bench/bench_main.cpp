// main() of every Google Benchmark binary in bench/: sets the LibTorch / kernel thread count
// (--threads=N, default every hardware thread: LibTorch alone would use one), then runs the
// benchmarks with Google Benchmark's own flags. Freed memory stays in the process, as in the CLI
// (longseq/memory.h: keep_freed_memory), so large temporaries do not fault their pages in again
// on every iteration; LONGSEQ_KEEP_FREED_MEMORY=0 opts out.
#include <longseq/memory.h>

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
  longseq::keep_freed_memory_by_default();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
