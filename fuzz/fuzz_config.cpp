// Fuzzes longseq::parse_train_config (src/train/config.cpp) with `--set` overrides. Input
// layout: leading lines up to the first empty line are overrides ("key=value", one per line),
// the rest is the JSON text; with no empty line the whole input is the JSON text. Rejection by
// c10::Error is expected. An accepted config must also round-trip: train_config_to_json of it
// must parse again to the same JSON (a failure there is reported as a finding).
#include "fuzz_util.h"

#include <longseq/config.h>

#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> overrides;
  std::string text = in;
  const auto sep = in.find("\n\n");
  if (sep != std::string::npos) {
    text = in.substr(sep + 2);
    size_t pos = 0;
    while (pos < sep) {
      size_t nl = in.find('\n', pos);
      if (nl == std::string::npos || nl > sep) nl = sep;
      overrides.push_back(in.substr(pos, nl - pos));
      pos = nl + 1;
    }
  }
  longseq_fuzz::expect_c10_errors_only([&] {
    const longseq::TrainConfig c = longseq::parse_train_config(text, overrides, "fuzz");
    const std::string once = longseq::train_config_to_json(c);
    std::string twice;
    try {
      twice = longseq::train_config_to_json(longseq::parse_train_config(once, {}, "roundtrip"));
    } catch (const c10::Error& e) {
      std::fprintf(stderr, "FINDING: accepted config does not re-parse:\n%s\n%s\n", once.c_str(),
                   e.what_without_backtrace());
      std::abort();
    }
    if (once != twice) {
      std::fprintf(stderr, "FINDING: config round-trip differs:\n%s\n---\n%s\n", once.c_str(),
                   twice.c_str());
      std::abort();
    }
  });
  return 0;
}
