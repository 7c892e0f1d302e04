// Fuzzes the byte-text reader (src/data/bytes.cpp) through make_task("bytes", {file, length 8})
// and one training batch of 2. Rejection by c10::Error is expected.
#include "fuzz_util.h"

#include <longseq/tasks.h>

#include <ATen/ATen.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = longseq_fuzz::scratch_dir() + "/input.txt";
  longseq_fuzz::write_file(path, data, size);
  longseq_fuzz::expect_c10_errors_only([&] {
    auto task = longseq::make_task("bytes", {{"file", path}, {"length", "8"}}, 0);
    auto b = task->batch(longseq::Split::kTrain, 0, 2);
    (void)b.inputs.sum().item<int64_t>();
    const auto& info = task->info();
    if (info.valid_size > 0) (void)task->batch(longseq::Split::kValidation, 0, 1);
  });
  return 0;
}
