// Strict JSON and file reading (see util/json_read.h). nlohmann's DOM parser recurses once per
// nesting level (a deeply nested document overflows the stack) and its callback parser walks the
// parent after each child (quadratic in the number of tensors of a safetensors header); the SAX
// handler here builds the document in one pass with an explicit stack, and stops at the first
// limit it crosses, before building what crosses it.
#include "util/json_read.h"

#include <c10/util/Exception.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace longseq {
namespace {

using json = nlohmann::json;

class StrictBuilder {
 public:
  explicit StrictBuilder(const JsonLimits& limits) : limits_(limits) {}

  bool null() { return put(json(nullptr)); }
  bool boolean(bool v) { return put(json(v)); }
  bool number_integer(json::number_integer_t v) { return put(json(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return put(json(v)); }
  bool number_float(json::number_float_t v, const json::string_t&) { return put(json(v)); }
  bool string(json::string_t& v) { return put(json(std::move(v))); }
  bool binary(json::binary_t&) { return fail("binary values are not JSON"); }
  bool start_object(std::size_t) { return open(json::object()); }
  bool start_array(std::size_t) { return open(json::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(json::string_t& k) {
    json& obj = *stack_.back();
    if (obj.contains(k)) return fail("duplicate key \"" + k + "\"" + where_in());
    key_ = std::move(k);
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) {
    return fail("not valid JSON at byte " + std::to_string(position) + ": " + e.what());
  }

  json& result() { return root_; }
  const std::string& error() const { return error_; }

 private:
  bool fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return false;
  }

  // " (in key \"a\")" when inside an object, for error messages.
  std::string where_in() const {
    return path_.empty() ? std::string() : " (in \"" + path_.back() + "\")";
  }

  bool count() {
    if (++values_ > limits_.max_values) {
      return fail("more than " + std::to_string(limits_.max_values) + " values");
    }
    return true;
  }

  // Stores `v` where the next value goes; returns the stored value.
  json* store(json v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json& top = *stack_.back();
    if (top.is_object()) return &(top[key_] = std::move(v));
    if (limits_.max_array >= 0 && static_cast<int64_t>(top.size()) >= limits_.max_array) {
      fail("an array longer than " + std::to_string(limits_.max_array) + " elements" + where_in());
      return nullptr;
    }
    top.push_back(std::move(v));
    return &top.back();
  }

  bool put(json v) { return count() && store(std::move(v)) != nullptr; }

  bool open(json container) {
    if (!count()) return false;
    if (static_cast<int>(stack_.size()) >= limits_.max_depth) {
      return fail("nested deeper than " + std::to_string(limits_.max_depth) + " levels" +
                  where_in());
    }
    const bool in_object = !stack_.empty() && stack_.back()->is_object();
    json* slot = store(std::move(container));
    if (slot == nullptr) return false;
    path_.push_back(in_object ? key_ : path_.empty() ? std::string() : path_.back());
    stack_.push_back(slot);
    return true;
  }

  bool close() {
    stack_.pop_back();
    path_.pop_back();
    return true;
  }

  JsonLimits limits_;
  json root_;
  std::vector<json*> stack_;
  std::vector<std::string> path_;
  std::string key_;
  int64_t values_ = 0;
  std::string error_;
};

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

json parse_json_strict(const std::string& text, const std::string& where,
                       const JsonLimits& limits) {
  StrictBuilder b(limits);
  bool ok = false;
  try {
    ok = json::sax_parse(text, &b);
  } catch (const json::exception& e) {
    TORCH_CHECK(false, where, "not valid JSON: ", e.what());
  }
  TORCH_CHECK(ok && b.error().empty(), where,
              b.error().empty() ? std::string("not valid JSON") : b.error());
  return std::move(b.result());
}

void check_regular_file(const std::string& path, const std::string& what) {
  struct stat st {};
  TORCH_CHECK(::stat(path.c_str(), &st) == 0, what, ": cannot read '", path,
              "': ", errno_text(errno));
  TORCH_CHECK(!S_ISDIR(st.st_mode), what, ": '", path, "' is a directory, not a file");
  TORCH_CHECK(S_ISREG(st.st_mode), what, ": '", path,
              "' is not a regular file (a FIFO, socket or device would block or never end)");
}

std::string read_regular_file(const std::string& path, const std::string& what, int64_t max_bytes) {
  check_regular_file(path, what);
  // O_NONBLOCK: if the path became a FIFO since the check, open() must not wait for a writer.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  TORCH_CHECK(fd >= 0, what, ": cannot open '", path, "': ", errno_text(errno));
  std::string out;
  try {
    struct stat st {};
    TORCH_CHECK(::fstat(fd, &st) == 0, what, ": cannot stat '", path, "': ", errno_text(errno));
    TORCH_CHECK(S_ISREG(st.st_mode), what, ": '", path, "' is not a regular file");
    TORCH_CHECK(st.st_size <= max_bytes, what, ": '", path, "' is ", st.st_size,
                " bytes, above the limit of ", max_bytes, " bytes for this kind of file");
    out.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < out.size()) {
      const ssize_t r = ::read(fd, out.data() + got, out.size() - got);
      if (r < 0 && errno == EINTR) continue;
      TORCH_CHECK(r >= 0, what, ": cannot read '", path, "': ", errno_text(errno));
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    out.resize(got);  // a file that shrank while reading is read as it now is
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return out;
}

}  // namespace longseq
