#pragma once
// Runs this test binary as N ranks on 127.0.0.1 (torchrun's environment variables and a free port)
// for the tests of collective code: a test spawns N copies of itself filtered to a worker test,
// which skips unless LONGSEQ_TEST_RANKS is set.

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace longseq::test {

/// Whether this process is a rank started by run_ranks().
inline bool is_rank_worker() { return std::getenv("LONGSEQ_TEST_RANKS") != nullptr; }

/// A worker's last statement: leaves done.<rank> in run_ranks()'s directory, so that a filter
/// that matched no test (exit 0 all the same) fails the run.
inline void mark_rank_done() {
  const char* dir = std::getenv("LONGSEQ_TEST_RANKS");
  const char* rank = std::getenv("RANK");
  if (dir == nullptr || rank == nullptr || ::testing::Test::HasFailure()) return;
  const std::string path = std::string(dir) + "/done." + rank;
  if (FILE* f = std::fopen(path.c_str(), "w")) std::fclose(f);
}

/// Spawns `n` ranks of this binary running the tests that match `filter`, each with one thread
/// and `extra_env` ("KEY=value"), and waits up to `timeout` (then kills them). Success when every
/// rank exited 0; else which did not and how.
inline ::testing::AssertionResult run_ranks(int n, const std::string& filter,
                                            const std::vector<std::string>& extra_env = {},
                                            std::chrono::seconds timeout = std::chrono::seconds(
                                                120)) {
  int port = 0;
  {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port = ntohs(a.sin_port);
    }
    if (fd >= 0) ::close(fd);
  }
  if (port == 0) return ::testing::AssertionFailure() << "no free TCP port on 127.0.0.1";
  char dir_template[] = "/tmp/longseq_ranks_XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) {
    return ::testing::AssertionFailure() << "cannot create a directory under /tmp";
  }
  const std::string dir = dir_template;
  std::vector<pid_t> pids(n, -1);
  const std::string filter_arg = "--gtest_filter=" + filter;
  for (int r = 0; r < n; ++r) {
    // Ours and extra_env first, then the inherited variables they do not set.
    std::vector<std::string> env = {
        "LONGSEQ_TEST_RANKS=" + dir,    "RANK=" + std::to_string(r),
        "WORLD_SIZE=" + std::to_string(n), "LOCAL_RANK=" + std::to_string(r),
        "LOCAL_WORLD_SIZE=" + std::to_string(n), "MASTER_ADDR=127.0.0.1",
        "MASTER_PORT=" + std::to_string(port),   "OMP_NUM_THREADS=1"};
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    const size_t set_here = env.size();
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string kv = *e, key = kv.substr(0, kv.find('=') + 1);
      bool taken = false;
      for (size_t i = 0; i < set_here; ++i) taken = taken || env[i].rfind(key, 0) == 0;
      if (!taken) env.push_back(kv);
    }
    std::vector<char*> argv{const_cast<char*>("longseq_tests"),
                            const_cast<char*>(filter_arg.c_str()), nullptr};
    std::vector<char*> envp;
    for (auto& kv : env) envp.push_back(kv.data());
    envp.push_back(nullptr);
    if (::posix_spawn(&pids[r], "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data()) !=
        0) {
      for (int q = 0; q < r; ++q) ::kill(pids[q], SIGKILL);
      for (int q = 0; q < r; ++q) ::waitpid(pids[q], nullptr, 0);
      return ::testing::AssertionFailure() << "cannot start rank " << r;
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<int> status(n, 0);
  std::vector<bool> done(n, false);
  int left = n;
  while (left > 0 && std::chrono::steady_clock::now() < deadline) {
    for (int r = 0; r < n; ++r) {
      if (!done[r] && ::waitpid(pids[r], &status[r], WNOHANG) == pids[r]) {
        done[r] = true;
        --left;
      }
    }
    if (left > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::string failures;
  for (int r = 0; r < n; ++r) {
    if (!done[r]) {
      ::kill(pids[r], SIGKILL);
      ::waitpid(pids[r], &status[r], 0);
      failures += " rank " + std::to_string(r) + " timed out;";
    } else if (!WIFEXITED(status[r]) || WEXITSTATUS(status[r]) != 0) {
      failures += " rank " + std::to_string(r) + " ended with status " +
                  std::to_string(status[r]) + ";";
    } else if (::access((dir + "/done." + std::to_string(r)).c_str(), F_OK) != 0) {
      failures += " rank " + std::to_string(r) + " ran no worker test to its end;";
    }
    ::unlink((dir + "/done." + std::to_string(r)).c_str());
  }
  ::rmdir(dir.c_str());
  if (failures.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << filter << " on " << n << " ranks:" << failures
                                       << " (their output is above)";
}

}  // namespace longseq::test
