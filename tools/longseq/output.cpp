// Output paths shared by the subcommands.
#include "commands.h"

#include <c10/util/Exception.h>

#include <filesystem>
#include <system_error>

namespace longseq::cli {

void make_output_directory(const std::string& dir, const std::string& what) {
  TORCH_CHECK(!dir.empty(), what, " is empty: expected a directory path");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  TORCH_CHECK(!ec && std::filesystem::is_directory(dir, ec), what, " '", dir,
              "' cannot be used as a directory: ",
              ec ? ec.message() : std::string("it exists and is not a directory"));
}

}  // namespace longseq::cli
