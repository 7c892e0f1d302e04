#pragma once
// One function per subcommand, each in its own file; main.cpp wires them up.
#include <CLI/CLI.hpp>
#include <longseq/roofline.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <string>

namespace longseq::cli {

/// Each adds its subcommand to `app` and returns what to run when it is chosen. main() runs it
/// after parsing and after applying global options such as --threads.
using Runner = std::function<void()>;
Runner add_list_command(CLI::App& app);
Runner add_bench_command(CLI::App& app);
Runner add_train_command(CLI::App& app);
Runner add_eval_command(CLI::App& app);
Runner add_generate_command(CLI::App& app);
Runner add_diagnose_command(CLI::App& app);
Runner add_env_command(CLI::App& app);
Runner add_report_command(CLI::App& app);
Runner add_recommend_command(CLI::App& app);

/// The executable's malloc (allocator.cpp): jemalloc unless built with sanitizers.
struct AllocatorInfo {
  std::string name;         ///< "jemalloc 5.3.0-...", "glibc malloc"
  bool keep_freed = false;  ///< freed memory stays with the process for reuse
};
/// At start-up: keeps freed memory for reuse unless LONGSEQ_KEEP_FREED_MEMORY is "0".
void configure_allocator();
AllocatorInfo allocator_info();

/// "# rates after the rows: sgemm .. GFLOP/s, memcpy .. GB/s" for rates measured again after a
/// measurement (`what`: "rows", "steps"), with a warning when they are more than 10% above the ones
/// the measurement was judged by: on a shared machine the rates move, and a share of the limit
/// judged in a slow moment is overstated.
std::string rates_after_line(const MachineLimits& before, const MachineLimits& after,
                             const std::string& what);

/// "machine: <cpu>, <cores> cores; threads: N; libtorch X.Y.Z"
std::string machine_line();

/// `longseq env --json`'s object: CPU, LibTorch, BLAS core, allocator, kernel ISA and, with
/// `measure`, sgemm and memory-copy rates measured now (about a second).
nlohmann::json machine_json(bool measure);

/// "blas: Cooperlake (avx512, openmp build); sgemm 2048³ 250.1 GFLOP/s on 2 threads"
std::string blas_line(const nlohmann::json& machine);

/// Creates the output directory `dir` and its parents unless it is one already; `what` names the
/// flag in the error (e.g. "bench: `--trace-dir`").
void make_output_directory(const std::string& dir, const std::string& what);

}  // namespace longseq::cli
