// `longseq env`: the machine as longseq sees it (CPU and ISA, LibTorch and its threads, the BLAS
// core and whether it is below the CPU, measured sgemm and copy rates, allocator, kernel ISA), so
// that any figure can be read against this machine's limits.
#include "commands.h"

#include <longseq/machine.h>
#include <longseq/memory_tracker.h>

#include <ATen/Parallel.h>
#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <torch/version.h>

#include <thread>

namespace longseq::cli {

nlohmann::json machine_json(bool measure) {
  const CpuInfo& cpu = cpu_info();
  const BlasInfo blas = blas_info();
  const int threads = at::get_num_threads();
  nlohmann::json j;
  j["cpu"] = {{"model", cpu.model},
              {"vendor", cpu.vendor},
              {"family", cpu.family},
              {"model_number", cpu.model_number},
              {"isa", isa_level_name(cpu.isa_level)},
              {"features", cpu.features()},
              {"logical_cpus", cpu.logical_cpus},
              {"physical_cores", cpu.physical_cores},
              {"last_level_cache_bytes", cpu.last_level_cache_bytes},
              {"last_level_cache_source", cpu.last_level_cache_source}};
  j["libtorch"] = {
      {"version", TORCH_VERSION},
      {"parallel_backend",
       at::get_parallel_info().find("OpenMP") != std::string::npos ? "OpenMP" : "other"},
      {"threads", threads}};
  j["blas"] = {{"config", blas.config},
               {"core", blas.core},
               {"core_isa", isa_level_name(blas.core_level)},
               {"threading", blas.threading},
               {"below_cpu", blas.below_cpu},
               {"better_cores", blas.better_cores},
               {"coretype_set_by_user", blas.user_set},
               {"replaced_core", blas.replaced_core}};
  const AllocatorInfo alloc = allocator_info();
  j["allocator"] = {{"name", alloc.name}, {"keep_freed_memory", alloc.keep_freed}};
  j["kernels"] = {{"isa_variant", kernel_isa_variant()}};
  if (measure) {
    j["measured"] = {{"sgemm_n", 2048},
                     {"sgemm_gflops_1_thread", measure_sgemm_gflops(1, 2048)},
                     {"sgemm_gflops_all_threads", measure_sgemm_gflops(threads, 2048)},
                     {"all_threads", threads},
                     {"copy_gbs", measure_copy_bandwidth_gbs()},
                     {"sgemm_max_rel_error_vs_naive", sgemm_error_vs_naive()}};
  }
  return j;
}

std::string blas_line(const nlohmann::json& m) {
  std::string line = fmt::format("blas: {} ({}, {} build)", m["blas"]["core"].get<std::string>(),
                                 m["blas"]["core_isa"].get<std::string>(),
                                 m["blas"]["threading"].get<std::string>());
  if (m["blas"]["below_cpu"].get<bool>())
    line += fmt::format(", below this CPU's {}", m["cpu"]["isa"].get<std::string>());
  if (m.contains("measured")) {
    line +=
        fmt::format("; sgemm {}³ {:.1f} GFLOP/s on {} threads", m["measured"]["sgemm_n"].get<int>(),
                    m["measured"]["sgemm_gflops_all_threads"].get<double>(),
                    m["measured"]["all_threads"].get<int>());
  }
  return line;
}

namespace {

void print_text(const nlohmann::json& j) {
  const auto& cpu = j["cpu"];
  std::string features;
  for (const auto& f : cpu["features"])
    features += (features.empty() ? "" : " ") + f.get<std::string>();
  fmt::print("cpu:        {} ({}, family {} model {})\n", cpu["model"].get<std::string>(),
             cpu["vendor"].get<std::string>(), cpu["family"].get<int>(),
             cpu["model_number"].get<int>());
  fmt::print("isa:        {} [{}]\n", cpu["isa"].get<std::string>(), features);
  fmt::print("cpus:       {} logical on {} cores; longseq threads {}\n",
             cpu["logical_cpus"].get<int>(), cpu["physical_cores"].get<int>(),
             j["libtorch"]["threads"].get<int>());
  const auto llc = cpu["last_level_cache_bytes"].get<long long>();
  const auto llc_source = cpu["last_level_cache_source"].get<std::string>();
  fmt::print("cache:      {}\n",
             llc > 0 ? fmt::format("last level {} MiB (CPU 0, {})", llc >> 20,
                                   llc_source == "sysfs" ? "sysfs" : "CPUID via glibc; no sysfs")
                     : std::string("last level unknown"));
  fmt::print("libtorch:   {} (parallel backend {})\n", j["libtorch"]["version"].get<std::string>(),
             j["libtorch"]["parallel_backend"].get<std::string>());
  const auto& b = j["blas"];
  fmt::print("blas:       {}\n", b["config"].get<std::string>());
  fmt::print("blas core:  {} ({}), {} threading{}{}\n", b["core"].get<std::string>(),
             b["core_isa"].get<std::string>(), b["threading"].get<std::string>(),
             b["below_cpu"].get<bool>() ? ", BELOW this CPU" : ", matches this CPU",
             b["replaced_core"].get<std::string>().empty()
                 ? ""
                 : fmt::format(" (longseq replaced OpenBLAS's own choice, {})",
                               b["replaced_core"].get<std::string>()));
  if (b["below_cpu"].get<bool>() && b["coretype_set_by_user"].get<bool>()) {
    fmt::print("            (OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE set by you: kept as given)\n");
  }
  fmt::print("allocator:  {}, keep freed memory {}\n", j["allocator"]["name"].get<std::string>(),
             j["allocator"]["keep_freed_memory"].get<bool>() ? "on" : "off");
  fmt::print("kernels:    {} variant\n", j["kernels"]["isa_variant"].get<std::string>());
  if (j.contains("measured")) {
    const auto& m = j["measured"];
    fmt::print("sgemm:      {}³: {:.1f} GFLOP/s on 1 thread, {:.1f} GFLOP/s on {} threads\n",
               m["sgemm_n"].get<int>(), m["sgemm_gflops_1_thread"].get<double>(),
               m["sgemm_gflops_all_threads"].get<double>(), m["all_threads"].get<int>());
    fmt::print("memcpy:     {:.1f} GB/s (read + write, one thread)\n", m["copy_gbs"].get<double>());
    fmt::print("sgemm check: max relative error vs a double loop {:.2e}\n",
               m["sgemm_max_rel_error_vs_naive"].get<double>());
  }
}

}  // namespace

Runner add_env_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("env",
                                 "describe this machine: CPU, threads, BLAS core, measured "
                                 "sgemm and memory-copy rates");
  auto json = std::make_shared<bool>(false);
  auto quick = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "machine-readable output");
  cmd->add_flag("--no-measure", *quick, "skip the sgemm and bandwidth measurements");
  return [json, quick] {
    const nlohmann::json j = machine_json(!*quick);
    if (*json) {
      fmt::print("{}\n", j.dump(2));
    } else {
      print_text(j);
    }
  };
}

}  // namespace longseq::cli
