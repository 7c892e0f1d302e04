// Fuzzes the Fashion-MNIST IDX reader (src/data/fashion_mnist.cpp) through
// make_task("fmnist", {dir, valid_size 1}). Input byte 0 picks the file: bits 0-1 which of the
// four .gz files (train images, train labels, t10k images, t10k labels) gets the rest of the
// input, bit 2 whether it is written gzip-compressed (zlib gzwrite) or raw. The other three files
// hold small valid IDX data (3 training, 2 test images). Rejection by c10::Error is expected.
#include "fuzz_util.h"
#include "idx_util.h"

#include <longseq/tasks.h>

#include <ATen/ATen.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace longseq_fuzz;
  static const std::string dir = scratch_dir();
  static int dirty = -1;  // the file the previous input overwrote
  static const bool init = [] {
    for (int i = 0; i < 4; ++i) {
      const std::string v = idx_valid(i);
      write_gz(dir + "/" + kIdxFiles[i], v.data(), v.size());
    }
    return true;
  }();
  (void)init;
  if (size < 1) return 0;
  const int which = data[0] & 3;
  const bool gz = (data[0] & 4) == 0;
  if (dirty >= 0 && dirty != which) {
    const std::string v = idx_valid(dirty);
    write_gz(dir + "/" + kIdxFiles[dirty], v.data(), v.size());
  }
  dirty = which;
  const std::string path = dir + "/" + kIdxFiles[which];
  if (gz) {
    write_gz(path, data + 1, size - 1);
  } else {
    write_file(path, data + 1, size - 1);
  }
  expect_c10_errors_only([&] {
    auto task = longseq::make_task("fmnist", {{"dir", dir}, {"valid_size", "1"}}, 0);
    auto b = task->batch(longseq::Split::kTrain, 0, 2);
    (void)b.inputs.sum().item<double>();
    auto t = task->batch(longseq::Split::kTest, 0, 2);
    (void)t.targets.sum().item<int64_t>();
  });
  return 0;
}
