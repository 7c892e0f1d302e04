#pragma once
/// What this machine is, and whether longseq runs at its speed on it: the CPU's ISA, the BLAS core
/// OpenBLAS chose (and whether it is below the CPU), measured sgemm and memory-copy rates. Read by
/// `longseq env`, the header of `longseq bench`, and the start-up of every longseq executable.

#include <string>
#include <vector>

namespace longseq {

/// The CPU's model and the instruction-set features the kernels and OpenBLAS care about, from
/// cpuid (features the OS does not enable through XCR0 count as absent).
struct CpuInfo {
  std::string vendor;  ///< "GenuineIntel", "AuthenticAMD", ...
  std::string model;   ///< the brand string, e.g. "AMD EPYC 9R14"
  int family = 0, model_number = 0;
  bool sse42 = false, avx = false, avx2 = false, fma = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512cd = false;
  bool avx512_bf16 = false, avx512_fp16 = false, amx = false;
  int logical_cpus = 0;    ///< CPUs this process may run on
  int physical_cores = 0;  ///< distinct cores among them (sysfs topology; 0 if unknown)
  /// The largest data or unified cache of CPU 0 in bytes (sysfs; the L3 of one core complex on
  /// Zen 4), else the L3 (or L2) size glibc reads from CPUID; 0 if unknown. The recurrent
  /// roofline reads it (op_work.h, rnn_work).
  long long last_level_cache_bytes = 0;
  std::string last_level_cache_source;  ///< "sysfs", "cpuid" or empty (unknown)
  /// 0 baseline (SSE), 1 AVX, 2 AVX2 + FMA, 3 AVX-512 (F, BW, VL, DQ, CD).
  int isa_level = 0;
  /// The features above that are present, e.g. {"avx2", "fma", "avx512f", ...}.
  std::vector<std::string> features() const;
};

/// Reads cpuid once.
const CpuInfo& cpu_info();

/// Name of an ISA level: "sse", "avx", "avx2", "avx512".
const char* isa_level_name(int level);

/// The BLAS library longseq's kernels and LibTorch call, and the core it runs.
struct BlasInfo {
  std::string config;      ///< openblas_get_config(), e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ..."
  std::string core;        ///< openblas_get_corename(), e.g. "Haswell"
  std::string threading;   ///< "sequential", "pthreads" or "openmp"
  int core_level = 0;      ///< ISA level of `core` (see CpuInfo::isa_level)
  bool below_cpu = false;  ///< core_level < cpu_info().isa_level
  /// OPENBLAS_CORETYPE values that would run at the CPU's level, best first (empty when not
  /// below_cpu). Whether this OpenBLAS build knows one shows only in a process started with it.
  std::vector<std::string> better_cores;
  /// The user set OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE: longseq never overrides either.
  bool user_set = false;
  /// Set by fix_blas_core_and_reexec(): the core OpenBLAS chose on its own, before longseq
  /// re-executed with OPENBLAS_CORETYPE; empty when there was no such re-execution.
  std::string replaced_core;
};

/// Reads OpenBLAS's choice and compares it with cpu_info().
BlasInfo blas_info();

/// For library users: once per process, a warning (TORCH_WARN) when OpenBLAS runs a core below
/// the CPU, naming the fix (OPENBLAS_CORETYPE). Called when a mixer or model is built and when a
/// fused kernel runs; cheap after the first call.
void warn_once_if_blas_below_cpu();

/// For executables, first thing in main(): when OpenBLAS runs a core below the CPU and the user
/// set neither OPENBLAS_CORETYPE nor OPENBLAS_L2_SIZE, re-executes this program (same arguments)
/// with OPENBLAS_CORETYPE set to the best core this OpenBLAS build knows for the CPU (trying each
/// of blas_info().better_cores in turn), and says so in one line on stderr. LONGSEQ_BLAS_FIX=0
/// turns it off. Returns when no re-execution is needed or possible.
/// Test hook: LONGSEQ_TEST_BLAS_CORETYPE=NAME makes the first start present core NAME as if
/// OpenBLAS had chosen it itself (it is not treated as the user's setting).
void fix_blas_core_and_reexec(char** argv);

/// Pins the calling thread's OpenMP thread count to LibTorch's setting (at::get_num_threads()).
/// LibTorch sets it lazily, on a thread's first parallel_for, and OpenBLAS reads it at every
/// call, so without this the GEMMs run before the first parallel_for may use another thread count
/// (OpenMP's default: every logical CPU) than every later one. Called by make_mixer(), the model
/// and the ops; idempotent and cheap.
void pin_thread_count();

/// sgemm rate in GFLOP/s on n×n×n (best of a few runs after a warm-up) with `threads` threads.
double measure_sgemm_gflops(int threads, int n = 1024);

/// Memory-copy bandwidth in GB/s (bytes read + written per second) over a 256 MiB buffer.
double measure_copy_bandwidth_gbs();

/// Largest relative error of OpenBLAS's sgemm on odd shapes (all four transpose cases) against a
/// plain double loop; a core that computes wrong results shows here.
double sgemm_error_vs_naive();

/// Which variant the fused kernels' target_clones picked on this CPU: "avx512f", "avx2" or
/// "default".
const char* kernel_isa_variant();

}  // namespace longseq
