// `longseq train --nproc N`: runs N ranks of the same command on this machine, as torchrun would
// (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT=a free
// port), each with its share of --threads. It forwards SIGINT/SIGTERM to every rank, and when one
// rank fails it gives the others the collective timeout (plus a grace period) to stop on their
// own, then terminates them; it exits non-zero, naming the rank, if any rank failed.
#include "launch.h"

#include <c10/util/Exception.h>
#include <fmt/core.h>

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

extern char** environ;

namespace longseq::cli {
namespace {

std::atomic<int> g_forward_signal{0};
extern "C" void on_launcher_signal(int sig) { g_forward_signal = sig; }

// A TCP port that is free now (the kernel's pick for port 0). Another process could take it
// before rank 0 binds it; rank 0's store then fails with a clear "address in use" error.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  TORCH_CHECK(fd >= 0, "train --nproc: cannot open a socket: ", std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  ::close(fd);
  TORCH_CHECK(ok, "train --nproc: cannot find a free TCP port on 127.0.0.1");
  return ntohs(a.sin_port);
}

std::string describe(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return fmt::format("was killed by signal {} ({})", WTERMSIG(status),
                       ::strsignal(WTERMSIG(status)));
  }
  return "stopped";
}

std::vector<std::string>& stored_arguments() {
  static std::vector<std::string> args;
  return args;
}

}  // namespace

const std::vector<std::string>& program_arguments() { return stored_arguments(); }

void set_program_arguments(int argc, char** argv) {
  stored_arguments().assign(argv + 1, argv + argc);
}

std::vector<std::string> rank_arguments(const std::vector<std::string>& args, int threads) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--nproc" || a == "--threads") {
      ++i;  // and its value
      continue;
    }
    if (a.rfind("--nproc=", 0) == 0 || a.rfind("--threads=", 0) == 0) continue;
    out.push_back(a);
  }
  out.push_back("--threads");
  out.push_back(std::to_string(threads));
  return out;
}

std::string launch_ranks(int nproc, int threads, const std::vector<std::string>& rank_args,
                         std::chrono::milliseconds timeout) {
  TORCH_CHECK(nproc >= 1, "train: `--nproc` must be >= 1, got ", nproc);
  const int per_rank = std::max(1, threads / nproc);
  const int port = free_port();
  fmt::print("# launching {} ranks on 127.0.0.1:{}, {} thread{} each\n", nproc, port, per_rank,
             per_rank == 1 ? "" : "s");
  std::fflush(stdout);
  const auto args = rank_arguments(rank_args, per_rank);
  std::vector<pid_t> pids(nproc, -1);
  std::vector<int> status(nproc, 0);
  std::vector<bool> done(nproc, false);

  struct sigaction sa {};
  sa.sa_handler = on_launcher_signal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {
  }, old_term{};
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);

  for (int r = 0; r < nproc; ++r) {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string kv = *e;
      bool ours = false;
      for (const char* k : {"RANK=", "WORLD_SIZE=", "LOCAL_RANK=", "LOCAL_WORLD_SIZE=",
                            "MASTER_ADDR=", "MASTER_PORT=", "TORCHELASTIC_USE_AGENT_STORE="}) {
        ours = ours || kv.rfind(k, 0) == 0;
      }
      if (!ours) env.push_back(kv);
    }
    env.push_back("RANK=" + std::to_string(r));
    env.push_back("WORLD_SIZE=" + std::to_string(nproc));
    env.push_back("LOCAL_RANK=" + std::to_string(r));
    env.push_back("LOCAL_WORLD_SIZE=" + std::to_string(nproc));
    env.push_back("MASTER_ADDR=127.0.0.1");
    env.push_back("MASTER_PORT=" + std::to_string(port));
    std::vector<char*> argv, envp;
    static const std::string exe = "/proc/self/exe";
    argv.push_back(const_cast<char*>("longseq"));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    const int rc = ::posix_spawn(&pids[r], exe.c_str(), nullptr, nullptr, argv.data(), envp.data());
    if (rc != 0) {
      for (int q = 0; q < r; ++q) ::kill(pids[q], SIGKILL);
      for (int q = 0; q < r; ++q) ::waitpid(pids[q], nullptr, 0);
      TORCH_CHECK(false, "train --nproc: cannot start rank ", r, ": ", std::strerror(rc));
    }
  }

  using clock = std::chrono::steady_clock;
  int first_failed = -1;
  clock::time_point deadline = clock::time_point::max();
  int forwarded = 0;
  bool terminated = false, killed = false;
  int left = nproc;
  while (left > 0) {
    const int sig = g_forward_signal.exchange(0);
    if (sig != 0) {
      ++forwarded;
      fmt::print(stderr, "train --nproc: forwarding signal {} to {} rank(s)\n", sig, left);
      for (int r = 0; r < nproc; ++r) {
        if (!done[r]) ::kill(pids[r], forwarded > 1 ? SIGKILL : sig);
      }
    }
    int st = 0;
    const pid_t pid = ::waitpid(-1, &st, WNOHANG);
    if (pid > 0) {
      for (int r = 0; r < nproc; ++r) {
        if (pids[r] != pid) continue;
        done[r] = true;
        status[r] = st;
        --left;
        const bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (!ok && first_failed < 0) {
          first_failed = r;
          fmt::print(stderr, "train --nproc: rank {} {}\n", r, describe(st));
          // The others notice within the collective timeout; then they are stopped.
          deadline = clock::now() + timeout + std::chrono::seconds(15);
        }
      }
      continue;
    }
    if (pid < 0 && errno != EINTR) break;
    if (clock::now() > deadline && !terminated) {
      fmt::print(stderr, "train --nproc: terminating {} rank(s) still running\n", left);
      for (int r = 0; r < nproc; ++r) {
        if (!done[r]) ::kill(pids[r], SIGTERM);
      }
      terminated = true;
      deadline = clock::now() + std::chrono::seconds(5);
    } else if (clock::now() > deadline && terminated && !killed) {
      for (int r = 0; r < nproc; ++r) {
        if (!done[r]) ::kill(pids[r], SIGKILL);
      }
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  if (first_failed < 0) return "";
  std::string others;
  for (int r = 0; r < nproc; ++r) {
    if (r != first_failed && !(WIFEXITED(status[r]) && WEXITSTATUS(status[r]) == 0)) {
      others += fmt::format("; rank {} {}", r, describe(status[r]));
    }
  }
  return fmt::format("train --nproc: rank {} {} first{}", first_failed,
                     describe(status[first_failed]), others);
}

}  // namespace longseq::cli
