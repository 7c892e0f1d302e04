#pragma once
// One function per subcommand, each in its own file; main.cpp wires them up.
#include <CLI/CLI.hpp>

namespace longseq::cli {

void add_list_command(CLI::App& app);
void add_bench_command(CLI::App& app);

/// "machine: <cpu>, <cores> cores; threads: N; libtorch X.Y.Z"
std::string machine_line();

}  // namespace longseq::cli
