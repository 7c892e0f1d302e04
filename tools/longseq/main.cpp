// longseq: command-line tool. Errors from anywhere surface here once, as `error: ...` plus a
// `hint: ...` where the fix is obvious, and a non-zero exit.
#include "commands.h"
#include "launch.h"

#include <longseq/machine.h>
#include <longseq/memory_tracker.h>

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <fmt/core.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <thread>

namespace longseq::cli {

std::string machine_line() {
  std::string cpu = "unknown cpu";
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  return fmt::format("machine: {}, {} cores; threads: {}; libtorch {}", cpu,
                     std::thread::hardware_concurrency(), at::get_num_threads(), TORCH_VERSION);
}

}  // namespace longseq::cli

int main(int argc, char** argv) {
  // OpenBLAS at the CPU's core: may start this program again, once (longseq/machine.h).
  longseq::fix_blas_core_and_reexec(argv);
  // Large temporaries would otherwise fault their pages in on every step (allocator.cpp).
  longseq::cli::configure_allocator();
  CLI::App app{"longseq: sequence mixers for long inputs (attention remedies and recurrences)"};
  app.require_subcommand(1);
  app.fallthrough();                                // --threads may follow the subcommand too
  longseq::cli::set_program_arguments(argc, argv);  // `train --nproc` starts ranks with them
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  // A data-parallel rank (torchrun's LOCAL_WORLD_SIZE ranks on this machine) takes its share.
  if (const char* local = std::getenv("LOCAL_WORLD_SIZE")) {
    const int n = std::atoi(local);
    if (n > 1) threads = std::max(1, threads / n);
  }
  app.add_option("--threads", threads,
                 "intra-op threads (default: all cores, or their share on a data-parallel rank)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  std::map<std::string, longseq::cli::Runner> runners = {
      {"list", longseq::cli::add_list_command(app)},
      {"bench", longseq::cli::add_bench_command(app)},
      {"train", longseq::cli::add_train_command(app)},
      {"eval", longseq::cli::add_eval_command(app)},
      {"generate", longseq::cli::add_generate_command(app)},
      {"diagnose", longseq::cli::add_diagnose_command(app)},
      {"env", longseq::cli::add_env_command(app)},
      {"report", longseq::cli::add_report_command(app)},
      {"recommend", longseq::cli::add_recommend_command(app)},
  };
  // CLI11's own errors in our form: `error: ` and the flag, then where to look.
  app.failure_message([](const CLI::App* a, const CLI::Error& e) {
    std::string msg = "error: " + std::string(e.what()) + "\n";
    if (a != nullptr)
      msg += "hint: `longseq --help` (or `longseq <command> --help`) lists the options\n";
    return msg;
  });
  try {
    // The first word that is neither a flag nor --threads' value names the command.
    for (int i = 1; i < argc; ++i) {
      const std::string word = argv[i];
      if (word == "--threads") {
        ++i;
        continue;
      }
      if (word.empty() || word[0] == '-') continue;
      if (runners.count(word)) break;
      std::string names;
      for (const auto& [name, runner] : runners) names += (names.empty() ? "" : ", ") + name;
      TORCH_CHECK(false, "unknown command '", word, "'; commands: ", names);
    }
    app.parse(argc, argv);
    // Far more threads than CPUs only contend (and a huge count takes minutes to spawn).
    const int cpus = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    const int cap = std::max(256, 16 * cpus);
    TORCH_CHECK(threads <= cap, "`--threads` ", threads, " is above the limit of ", cap,
                " for this machine's ", cpus, " logical CPUs (16 per CPU, at least 256)");
    at::set_num_threads(threads);
    for (const auto* sub : app.get_subcommands()) runners.at(sub->get_name())();
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    fmt::print(stderr, "error: {}\n", msg);
    if (msg.find("unknown mixer") != std::string::npos) {
      fmt::print(stderr, "hint: `longseq list` shows every mixer and its options\n");
    } else if (msg.find("unknown option") != std::string::npos) {
      fmt::print(stderr,
                 "hint: `longseq list` shows each mixer's options; pass them as "
                 "--opt MIXER.KEY=VALUE\n");
    }
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
