// Shared helpers for the libFuzzer targets (docs/fuzzing.md).
#pragma once

#include <c10/util/Exception.h>
#include <c10/util/Logging.h>

#include <unistd.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>

namespace longseq_fuzz {

// A private scratch directory per fuzzing process (removed at exit by fuzz.sh's scratch cleanup,
// or left in $TMPDIR; each holds a few small files).
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/longseq_fuzz_XXXXXX";
    if (!::mkdtemp(tmpl.data())) std::abort();
    return tmpl;
  }();
  return dir;
}

// Every refused input throws a c10::Error, and LibTorch captures and symbolizes a stack trace for
// each one: that, not the code under test, was most of each execution's time. The fuzzers only
// need the message, so every target installs an empty trace before its first input.
inline const bool kNoErrorBacktraces = [] {
  c10::SetStackTraceFetcher([] { return std::string("(stack trace off while fuzzing)"); });
  return true;
}();

inline void write_file(const std::string& path, const void* data, size_t size) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!f) std::abort();
}

inline void write_file(const std::string& path, const std::string& data) {
  write_file(path, data.data(), data.size());
}

// Runs `fn`; a c10::Error is the expected way to reject bad input. Any other exception escaping
// the library is reported as a finding (abort, so libFuzzer saves the input).
template <class F>
void expect_c10_errors_only(F&& fn) {
  try {
    fn();
  } catch (const c10::Error& e) {
    // expected: input rejected. LONGSEQ_FUZZ_VERBOSE=1 prints why (checking that seeds load).
    static const bool verbose = std::getenv("LONGSEQ_FUZZ_VERBOSE") != nullptr;
    if (verbose) std::fprintf(stderr, "rejected: %s\n", e.what_without_backtrace());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FINDING: non-c10 exception escaped: %s\n", e.what());
    std::abort();
  }
}

}  // namespace longseq_fuzz
