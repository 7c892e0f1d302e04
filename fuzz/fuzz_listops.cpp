// Fuzzes the ListOps reader and generator (src/data/listops.cpp). Byte 0 picks the mode:
// - even: the rest are token ids (each byte mod 17: the vocabulary's 16 ids and one past it),
//   read by listops_evaluate, the recursive descent that gives an expression its value;
// - odd: the rest is "key=value" lines of task options for make_task("listops", ...); every
//   sequence of a train and a test batch must then evaluate to its label (a finding otherwise).
//   Options that would make one execution long (sizes above 64, lengths above 400) are skipped.
// Rejection by c10::Error is expected.
#include "fuzz_util.h"

#include <longseq/tasks.h>

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

namespace {

bool too_costly(const std::map<std::string, std::string>& o) {
  const std::map<std::string, long long> caps = {{"train_size", 64}, {"valid_size", 64},
                                                 {"test_size", 64}, {"min_length", 400},
                                                 {"max_length", 400}};
  for (const auto& [key, cap] : caps) {
    auto it = o.find(key);
    if (it == o.end()) continue;
    char* end = nullptr;
    const long long v = std::strtoll(it->second.c_str(), &end, 10);
    if (v > cap || it->second.size() > 18) return true;
  }
  // The defaults are LRA's sizes (tens of thousands of sequences): always set small ones.
  return !o.count("train_size") || !o.count("valid_size") || !o.count("test_size") ||
         !o.count("max_length");
}

void check_batch(longseq::Task& task, longseq::Split split) {
  auto b = task.batch(split, 0, 4);
  auto lengths = b.key_padding.defined() ? b.key_padding.sum(1)
                                         : at::full({b.inputs.size(0)}, b.inputs.size(1));
  for (int64_t r = 0; r < b.inputs.size(0); ++r) {
    const int64_t len = lengths[r].item<int64_t>();
    auto row = b.inputs[r].narrow(0, 0, len).contiguous();
    const std::vector<int64_t> tokens(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + len);
    const int64_t want = b.targets[r].item<int64_t>(), got = longseq::listops_evaluate(tokens);
    if (got != want) {
      std::fprintf(stderr, "FINDING: a generated sequence evaluates to %lld, its label is %lld\n",
                   static_cast<long long>(got), static_cast<long long>(want));
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  if (data[0] % 2 == 0) {
    std::vector<int64_t> tokens(size - 1);
    for (size_t i = 1; i < size; ++i) tokens[i - 1] = data[i] % 17;
    longseq_fuzz::expect_c10_errors_only([&] { (void)longseq::listops_evaluate(tokens); });
    return 0;
  }
  std::map<std::string, std::string> options;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    const std::string line = text.substr(pos, nl - pos);
    const size_t eq = line.find('=');
    if (eq != std::string::npos) options[line.substr(0, eq)] = line.substr(eq + 1);
    pos = nl + 1;
  }
  if (too_costly(options)) return 0;
  longseq_fuzz::expect_c10_errors_only([&] {
    auto task = longseq::make_task("listops", options, 0);
    check_batch(*task, longseq::Split::kTrain);
    check_batch(*task, longseq::Split::kTest);
  });
  return 0;
}
