// Output paths and lines shared by the subcommands.
#include "commands.h"

#include <c10/util/Exception.h>
#include <fmt/core.h>

#include <algorithm>

#include <filesystem>
#include <system_error>

namespace longseq::cli {

std::string rates_after_line(const MachineLimits& before, const MachineLimits& after,
                             const std::string& what) {
  const double drift = std::max(after.sgemm_gflops / before.sgemm_gflops,
                                after.bandwidth_gbs / before.bandwidth_gbs);
  return fmt::format(
      "# rates after the {}: sgemm {:.1f} GFLOP/s, memcpy {:.1f} GB/s{}\n", what,
      after.sgemm_gflops, after.bandwidth_gbs,
      drift > 1.1 ? fmt::format(" ({:.0f}% above the rates the limits were judged by: the machine "
                                "was slower at the start; rerun on a quiet machine)",
                                100 * (drift - 1))
                  : "");
}

void make_output_directory(const std::string& dir, const std::string& what) {
  TORCH_CHECK(!dir.empty(), what, " is empty: expected a directory path");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  TORCH_CHECK(!ec && std::filesystem::is_directory(dir, ec), what, " '", dir,
              "' cannot be used as a directory: ",
              ec ? ec.message() : std::string("it exists and is not a directory"));
}

}  // namespace longseq::cli
