#pragma once
// Test helpers shared by the file-writing tests (safetensors, atomic files): a scratch directory
// per test, whole-file reads and writes, and the check that a safetensors load is refused.
#include <longseq/safetensors.h>

#include <gtest/gtest.h>
#include <stdlib.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace longseq::test {

/// A fresh directory under the system's temporary directory, removed after the test.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "longseq_st_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const {
    return (std::filesystem::path(dir_) / name).string();
  }

  std::string dir_;
};

inline std::string read_bytes(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

inline void write_bytes(const std::string& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Loading `p` throws a c10::Error whose message names the file and contains `want`.
inline ::testing::AssertionResult load_fails(const std::string& p, const std::string& want) {
  try {
    load_safetensors(p);
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    if (msg.find(want) == std::string::npos || msg.find(p) == std::string::npos) {
      return ::testing::AssertionFailure()
             << "message lacks \"" << want << "\" or the path: " << msg;
    }
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "not a c10::Error: " << e.what();
  }
  return ::testing::AssertionFailure() << "loaded without error";
}

/// Two 1024 x 1024 float tensors (8 MiB): large enough that a write is caught half-way.
inline NamedTensors big_checkpoint() {
  torch::manual_seed(5);
  return {{"w1", torch::randn({1024, 1024})}, {"w2", torch::randn({1024, 1024})}};  // 8 MiB
}

}  // namespace longseq::test
