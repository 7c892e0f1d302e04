// The task registry: the one list of tasks, with their options and defaults.
#include "data/task_impls.h"

#include <c10/util/Exception.h>

#include <limits>

namespace longseq {

const char* split_name(Split split) {
  switch (split) {
    case Split::kTrain: return "train";
    case Split::kValidation: return "validation";
    case Split::kTest: return "test";
  }
  return "?";
}

Batch batch_rows(const Batch& b, int64_t first, int64_t n) {
  auto rows = [&](const at::Tensor& t) { return t.defined() ? t.narrow(0, first, n) : t; };
  return {rows(b.inputs), rows(b.targets), rows(b.loss_mask), rows(b.key_padding)};
}

Batch batch_positions(const Batch& b, const at::Tensor& positions) {
  auto cols = [&](const at::Tensor& t) {
    return t.defined() && t.dim() >= 2 ? t.index_select(1, positions.to(t.device())) : t;
  };
  return {cols(b.inputs), cols(b.targets), cols(b.loss_mask), cols(b.key_padding)};
}

Batch cat_batches(const std::vector<Batch>& parts) {
  TORCH_CHECK(!parts.empty(), "cat_batches: no batches");
  if (parts.size() == 1) return parts[0];
  auto cat = [&](at::Tensor Batch::*field) {
    std::vector<at::Tensor> ts;
    for (const auto& p : parts) ts.push_back(p.*field);
    return ts[0].defined() ? at::cat(ts) : at::Tensor();
  };
  return {cat(&Batch::inputs), cat(&Batch::targets), cat(&Batch::loss_mask),
          cat(&Batch::key_padding)};
}

uint64_t batch_seed(uint64_t seed, Split split, int64_t index) {
  // splitmix64 over the three inputs: nearby (split, index) pairs give unrelated seeds.
  auto mix = [](uint64_t z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  };
  return mix(mix(mix(seed) ^ (static_cast<uint64_t>(split) + 1)) ^ static_cast<uint64_t>(index));
}

namespace data {

void check_range(const char* task, const char* option, int64_t value, int64_t lo, int64_t hi) {
  TORCH_CHECK(value >= lo && value <= hi, task, ": option `", option, "` must be in [", lo, ", ",
              hi, "], got ", value);
}

}  // namespace data

namespace {

// Task options are plain values read by name (ResolvedOptions), not members of an Options struct.
OptionSpec task_option(const char* name, OptionKind kind, const char* default_value,
                       const char* help) {
  OptionSpec o;
  o.name = name;
  o.kind = kind;
  o.default_value = default_value;
  o.help = help;
  return o;
}

}  // namespace

const std::vector<TaskSpec>& task_registry() {
  using K = OptionKind;
  static const std::vector<TaskSpec> table = {
      {"copy",
       "copy memory: 10 symbols from 1-8, T blanks, a delimiter, then reproduce the symbols",
       {task_option("blanks", K::kInt, "200", "T, blanks between the symbols and the delimiter"),
        task_option("valid_size", K::kInt, "1000", "validation sequences"),
        task_option("test_size", K::kInt, "1000", "test sequences")},
       data::make_copy_memory},
      {"adding",
       "adding problem: sum the two values marked in a sequence of T (value, marker) pairs",
       {task_option("length", K::kInt, "400", "T"),
        task_option("valid_size", K::kInt, "1000", "validation sequences"),
        task_option("test_size", K::kInt, "1000", "test sequences")},
       data::make_adding},
      {"selective_copy",
       "selective copying: 16 tokens (vocabulary 16) scattered in L noise positions, copy them in "
       "order",
       {task_option("length", K::kInt, "512", "L, positions holding the scattered tokens"),
        task_option("tokens", K::kInt, "16", "tokens to copy"),
        task_option("valid_size", K::kInt, "1000", "validation sequences"),
        task_option("test_size", K::kInt, "1000", "test sequences")},
       data::make_selective_copy},
      {"mqar",
       "multi-query associative recall (Zoology): key-value pairs, then queries of their keys",
       {task_option("length", K::kInt, "128", "T"),
        task_option("pairs", K::kInt, "16", "key-value pairs"),
        task_option("vocab", K::kInt, "8192",
                    "vocabulary (keys from the lower half, values the upper)"),
        task_option("valid_size", K::kInt, "1000", "validation sequences"),
        task_option("test_size", K::kInt, "1000", "test sequences")},
       data::make_mqar},
      {"listops",
       "ListOps exactly as the Long Range Arena generator (MIN MAX MED SM, depth <= 10, 2-10 args)",
       {task_option("min_length", K::kInt, "500", "keep trees longer than this"),
        task_option("max_length", K::kInt, "2000", "keep trees shorter than this"),
        task_option("max_depth", K::kInt, "10", "maximum tree depth"),
        task_option("max_args", K::kInt, "10", "maximum operator arguments"),
        task_option("train_size", K::kInt, "96000", "training examples"),
        task_option("valid_size", K::kInt, "2000", "validation examples"),
        task_option("test_size", K::kInt, "2000", "test examples")},
       data::make_listops},
      {"fmnist",
       "sequential Fashion-MNIST: 784 pixels read one per step (Debian dataset-fashion-mnist)",
       {task_option("dir", K::kString, "/usr/share/datasets/fashion-mnist",
                    "directory of the IDX files"),
        task_option("valid_size", K::kInt, "5000",
                    "validation images held out of the training file")},
       data::make_fashion_mnist},
      {"bytes",
       "byte-level language modelling over a text file (reports bits per byte)",
       {task_option("file", K::kString, "", "the text file (required)"),
        task_option("length", K::kInt, "512", "bytes per sequence")},
       data::make_bytes},
  };
  return table;
}

std::vector<std::string> task_names() {
  std::vector<std::string> names;
  for (const auto& t : task_registry()) names.push_back(t.name);
  return names;
}

std::unique_ptr<Task> make_task(const std::string& name,
                                const std::map<std::string, std::string>& options, uint64_t seed) {
  const TaskSpec* spec = nullptr;
  for (const auto& t : task_registry()) spec = t.name == name ? &t : spec;
  if (!spec) {
    std::string valid;
    for (const auto& n : task_names()) valid += (valid.empty() ? "" : ", ") + n;
    TORCH_CHECK(false, "unknown task '", name, "'; valid tasks: ", valid);
  }
  auto values = resolve_option_values(name, spec->options, options);
  return spec->make(ResolvedOptions(name, values), seed);
}

}  // namespace longseq
