// Atomic file writes (longseq/atomic_file.h): a replacement is all or nothing, failures leave the
// old file and no temporary, errors name the path, and a writer killed mid-write leaves the
// previous file intact and only its temporary, which remove_stale_temp_files() removes.
#include <longseq/atomic_file.h>
#include <longseq/safetensors.h>

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "test_util.h"
#include "util/file_test_util.h"

namespace longseq {
namespace {

namespace fs = std::filesystem;
using test::big_checkpoint;
using test::load_fails;
using test::read_bytes;
using test::write_bytes;

class AtomicFileTest : public test::TempDirTest {};

TEST_F(AtomicFileTest, ReplacesAndCleansUp) {
  const auto p = path("f.bin");
  write_file_atomic(p, std::string("old"));
  write_file_atomic(p, [](std::ostream& os) { os << "new contents"; });
  EXPECT_EQ(read_bytes(p), "new contents");
  EXPECT_FALSE(fs::exists(atomic_temp_path(p)));
  EXPECT_EQ(fs::directory_iterator(dir_)->path().filename().string(),
            "f.bin");  // nothing else left
  // A failing writer leaves the old file and no temporary.
  EXPECT_THROW(write_file_atomic(p,
                                 [](std::ostream& os) {
                                   os << "partial";
                                   throw std::runtime_error("boom");
                                 }),
               std::runtime_error);
  EXPECT_EQ(read_bytes(p), "new contents");
  EXPECT_FALSE(fs::exists(atomic_temp_path(p)));
  // Errors name the path and the errno text.
  const auto missing = path("no/such/dir/f.bin");
  EXPECT_TRUE(test::throws_with([&] { write_file_atomic(missing, std::string("x")); }, missing));
  EXPECT_TRUE(
      test::throws_with([&] { write_file_atomic(missing, std::string("x")); }, "No such file"));
  EXPECT_TRUE(test::throws_with([&] { write_file_atomic(dir_, std::string("x")); }, "rename"));
  EXPECT_FALSE(fs::exists(atomic_temp_path(dir_)));
}

// Waits up to `seconds` for one byte from the child; false on timeout or EOF.
bool wait_for_byte(int fd, int seconds) {
  pollfd pfd{fd, POLLIN, 0};
  if (::poll(&pfd, 1, seconds * 1000) <= 0) return false;
  char c;
  return ::read(fd, &c, 1) == 1;
}

// A child process starts replacing a checkpoint, writes half of it, and is SIGKILLed. The previous
// checkpoint still loads intact; the partial write exists only as the temporary file, which
// remove_stale_temp_files() removes once its writer is gone.
TEST_F(AtomicFileTest, KilledMidSaveLeavesPreviousCheckpoint) {
  const auto p = path("ckpt.safetensors");
  const NamedTensors old = {{"w1", torch::ones({4, 4})}, {"step", torch::tensor(10)}};
  save_safetensors(p, old, {{"step", "10"}});
  const std::string old_bytes = read_bytes(p);

  std::ostringstream os;
  write_safetensors(os, big_checkpoint(), {{"step", "20"}});
  const std::string bytes = os.str();
  const size_t half = bytes.size() / 2;

  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pipefd[0]);
    try {
      write_file_atomic(p, [&](std::ostream& out) {
        out.write(bytes.data(), static_cast<std::streamsize>(half));
        out.flush();
        const char c = 'x';
        (void)!::write(pipefd[1], &c, 1);
        for (;;) ::pause();  // killed here, mid-write
      });
    } catch (...) {
    }
    ::_exit(3);
  }
  ::close(pipefd[1]);
  const bool started = wait_for_byte(pipefd[0], 60);
  ::close(pipefd[0]);
  const std::string tmp = p + ".tmp." + std::to_string(child);
  const auto tmp_size = fs::exists(tmp) ? fs::file_size(tmp) : 0;
  ::kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(started) << "child did not reach the middle of the write";
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_EQ(tmp_size, half);  // the partial data went to the temporary file only

  EXPECT_EQ(read_bytes(p), old_bytes);
  std::map<std::string, std::string> meta;
  const auto loaded = load_safetensors(p, &meta);
  EXPECT_EQ(meta.at("step"), "10");
  ASSERT_EQ(loaded.size(), 2u);
  for (const auto& [name, t] : old) {
    const auto it =
        std::find_if(loaded.begin(), loaded.end(), [&](const auto& e) { return e.first == name; });
    ASSERT_NE(it, loaded.end());
    EXPECT_TRUE(torch::equal(it->second, t));
  }
  // Cleanup policy: the dead writer's temporary remains until remove_stale_temp_files().
  EXPECT_TRUE(fs::exists(tmp));
  EXPECT_TRUE(load_fails(tmp, "truncated"));        // and it is never mistaken for a checkpoint
  write_bytes(atomic_temp_path(p), "live writer");  // ours: this process is alive, so it stays
  EXPECT_EQ(remove_stale_temp_files(p), 1);
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_TRUE(fs::exists(atomic_temp_path(p)));
  EXPECT_TRUE(fs::exists(p));
}

}  // namespace
}  // namespace longseq
