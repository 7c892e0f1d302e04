// gnuplot without a shell (plot.h).
#include "plot.h"

#include <c10/util/Exception.h>

#include <spawn.h>
#include <sys/wait.h>
#include <cerrno>
#include <cstring>
#include <vector>

extern char** environ;

namespace longseq::cli {

std::string gnuplot_quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "''";
    } else if (c == '\n' || c == '\r') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "'";
}

void run_gnuplot(const std::string& dir, const std::string& script, const std::string& what) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
  std::vector<char*> argv = {const_cast<char*>("gnuplot"), const_cast<char*>(script.c_str()),
                             nullptr};
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, "gnuplot", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  TORCH_CHECK(rc == 0, what, ": cannot start gnuplot (", std::strerror(rc),
              "); install Debian's `gnuplot-nox` (scripts/setup.sh does), or pass --no-plot");
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  TORCH_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, what, ": gnuplot failed on '", dir,
              "/", script, "' (",
              WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                : std::string("killed by a signal"),
              ")");
}

}  // namespace longseq::cli
