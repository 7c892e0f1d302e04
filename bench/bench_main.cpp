// main() of every Google Benchmark binary in bench/: sets the LibTorch / kernel thread count
// (--threads=N, default every hardware thread: LibTorch alone would use one), then runs the
// benchmarks with Google Benchmark's own flags. The context lines name OpenBLAS's core and the
// sgemm rate measured at start, the machine's limit to read the figures against. Freed memory stays
// in the process, as in the CLI
// (longseq/memory_tracker.h: keep_freed_memory), so large temporaries do not fault their pages in
// again on every iteration; LONGSEQ_KEEP_FREED_MEMORY=0 opts out.
#include <longseq/machine.h>
#include <longseq/memory_tracker.h>

#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <string>
#include <thread>

int main(int argc, char** argv) {
  longseq::fix_blas_core_and_reexec(argv);  // OpenBLAS at the CPU's core (longseq/machine.h)
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
  const longseq::BlasInfo blas = longseq::blas_info();
  benchmark::AddCustomContext("blas_core", blas.core + (blas.below_cpu ? " (below this CPU)" : ""));
  benchmark::AddCustomContext("sgemm_2048_gflops",
                              std::to_string(longseq::measure_sgemm_gflops(threads, 2048)));
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
