// Atomic file replacement (see longseq/atomic_file.h): write a temporary file beside the target,
// fsync it, rename it over the target, fsync the directory. rename() within one directory is atomic
// on POSIX file systems, and the two fsyncs order the data before the name change on disk.
#include <longseq/atomic_file.h>
#include <c10/util/Exception.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <sstream>
#include <streambuf>
#include <vector>

namespace longseq {
namespace {

std::string errno_text(int err) {
  return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")";
}

// Splits "dir/name" into "dir" and "name"; a bare name lives in ".".
std::pair<std::string, std::string> split_path(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return {".", path};
  if (slash == 0) return {"/", path.substr(1)};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

// A buffered output streambuf over a file descriptor that remembers the first write error's errno,
// so a failed write reports "No space left on device" rather than a bare stream failbit.
class FdStreamBuf final : public std::streambuf {
 public:
  explicit FdStreamBuf(int fd) : fd_(fd), buf_(1 << 20) {
    setp(buf_.data(), buf_.data() + buf_.size());
  }
  int error() const { return error_; }
  bool flush_all() { return drain() && error_ == 0; }

 protected:
  int_type overflow(int_type ch) override {
    if (!drain()) return traits_type::eof();
    if (!traits_type::eq_int_type(ch, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(ch);
      pbump(1);
    }
    return traits_type::not_eof(ch);
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    if (n >= static_cast<std::streamsize>(buf_.size())) {
      // Large blocks (tensor data) go straight to the file.
      if (!drain() || !write_all(s, static_cast<size_t>(n))) return 0;
      return n;
    }
    return std::streambuf::xsputn(s, n);
  }
  int sync() override { return drain() ? 0 : -1; }

 private:
  bool drain() {
    const size_t n = static_cast<size_t>(pptr() - pbase());
    const bool ok = write_all(pbase(), n);
    setp(buf_.data(), buf_.data() + buf_.size());
    return ok;
  }
  bool write_all(const char* p, size_t n) {
    if (error_ != 0) return false;
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        error_ = errno;
        return false;
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }

  int fd_;
  std::vector<char> buf_;
  int error_ = 0;
};

// Closes the descriptor and removes the temporary file unless released.
struct TempFile {
  std::string path;
  int fd = -1;
  bool keep = false;
  ~TempFile() {
    if (fd >= 0) ::close(fd);
    if (!keep) ::unlink(path.c_str());
  }
};

}  // namespace

std::string atomic_temp_path(const std::string& path) {
  return path + ".tmp." + std::to_string(static_cast<long long>(::getpid()));
}

void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write) {
  TORCH_CHECK(!path.empty(), "write_file_atomic: empty path");
  TempFile tmp;
  tmp.path = atomic_temp_path(path);
  // Created exclusively, never through a link: O_EXCL fails on any existing entry, a symbolic
  // link included. An entry of our name is a leftover of an earlier process with our (recycled)
  // pid or a planted link; it is unlinked (a link as a link) and the create tried once more.
  const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  tmp.fd = ::open(tmp.path.c_str(), flags, 0666);
  if (tmp.fd < 0 && errno == EEXIST && ::unlink(tmp.path.c_str()) == 0) {
    tmp.fd = ::open(tmp.path.c_str(), flags, 0666);
  }
  if (tmp.fd < 0) {
    const int err = errno;
    tmp.keep = true;  // not ours to remove: we did not create it
    TORCH_CHECK(false, "write_file_atomic: cannot create temporary file `", tmp.path, "` for `",
                path, "`: ", errno_text(err));
  }
  {
    FdStreamBuf buf(tmp.fd);
    std::ostream os(&buf);
    write(os);  // an exception propagates; ~TempFile removes the temporary file
    const bool ok = os.good() && buf.flush_all();
    if (!ok) {
      const int err = buf.error();
      TORCH_CHECK(false, "write_file_atomic: writing `", path, "` (via `", tmp.path,
                  "`) failed: ", err ? errno_text(err) : std::string("stream error"));
    }
  }
  if (::fsync(tmp.fd) != 0) {
    const int err = errno;
    TORCH_CHECK(false, "write_file_atomic: fsync of `", tmp.path, "` failed: ", errno_text(err));
  }
  const int fd = tmp.fd;
  tmp.fd = -1;
  if (::close(fd) != 0) {
    const int err = errno;
    TORCH_CHECK(false, "write_file_atomic: close of `", tmp.path, "` failed: ", errno_text(err));
  }
  if (::rename(tmp.path.c_str(), path.c_str()) != 0) {
    const int err = errno;
    TORCH_CHECK(false, "write_file_atomic: cannot rename `", tmp.path, "` to `", path,
                "`: ", errno_text(err));
  }
  tmp.keep = true;  // it is `path` now
  // Make the rename durable. Some file systems cannot fsync a directory (EINVAL); the rename has
  // happened either way, so only a real I/O error is reported.
  const std::string dir = split_path(path).first;
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    const int rc = ::fsync(dfd);
    const int err = errno;
    ::close(dfd);
    TORCH_CHECK(rc == 0 || err == EINVAL || err == EROFS, "write_file_atomic: fsync of directory `",
                dir, "` after writing `", path, "` failed: ", errno_text(err));
  }
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  write_file_atomic(path, [&bytes](std::ostream& os) {
    os.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  });
}

int remove_stale_temp_files(const std::string& path) {
  const auto [dir, name] = split_path(path);
  const std::string prefix = name + ".tmp.";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return 0;
  std::vector<std::string> stale;
  while (const dirent* e = ::readdir(d)) {
    const std::string entry = e->d_name;
    if (entry.size() <= prefix.size() || entry.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string pid_text = entry.substr(prefix.size());
    if (pid_text.find_first_not_of("0123456789") != std::string::npos || pid_text.size() > 9) {
      continue;
    }
    const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
    // kill(pid, 0) probes for existence; EPERM means it exists but belongs to someone else.
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(dir + "/" + entry);
  }
  ::closedir(d);
  int removed = 0;
  for (const auto& p : stale) removed += ::unlink(p.c_str()) == 0 ? 1 : 0;
  return removed;
}

}  // namespace longseq
