// Fuzzes longseq::load_safetensors (src/util/safetensors.cpp): the input is written to a file
// and loaded. Rejection by c10::Error is expected; crashes, sanitizer reports and other
// exceptions are findings. Seeds: fuzz/corpus/safetensors (written by save_safetensors).
#include "fuzz_util.h"

#include <longseq/safetensors.h>

#include <ATen/ATen.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = longseq_fuzz::scratch_dir() + "/input.safetensors";
  longseq_fuzz::write_file(path, data, size);
  longseq_fuzz::expect_c10_errors_only([&] {
    std::map<std::string, std::string> meta;
    auto tensors = longseq::load_safetensors(path, &meta);
    // Touch every loaded byte so ASan sees reads of the tensor storage.
    for (auto& [name, t] : tensors) {
      if (t.numel() > 0) (void)t.contiguous().reshape({-1}).view(at::kByte).sum().item<int64_t>();
    }
  });
  return 0;
}
