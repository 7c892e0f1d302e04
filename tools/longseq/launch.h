#pragma once
// `longseq train --nproc N`: the single-machine launcher of N data-parallel ranks.
#include <chrono>
#include <string>
#include <vector>

namespace longseq::cli {

/// The command line of one rank: `args` (the launcher's own, program name excluded) without
/// --nproc and --threads, then `--threads <threads>`.
std::vector<std::string> rank_arguments(const std::vector<std::string>& args, int threads);

/// Runs `rank_args` as N ranks of this program (torchrun's environment variables, a free port on
/// 127.0.0.1, threads / N threads each), forwards SIGINT/SIGTERM (a second one kills), and stops
/// the others within `timeout` + 15 s when one fails. Returns "" when every rank succeeded, else
/// which rank failed first and how (and how the others ended).
std::string launch_ranks(int nproc, int threads, const std::vector<std::string>& rank_args,
                         std::chrono::milliseconds timeout);

/// The arguments main() was given (program name excluded), for the launcher.
const std::vector<std::string>& program_arguments();
void set_program_arguments(int argc, char** argv);

}  // namespace longseq::cli
