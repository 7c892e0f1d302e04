#pragma once
/// Long-range tasks: deterministic generators and readers with train/validation/test splits.
/// docs/tasks.md defines each one and gives its published reference numbers.

#include <longseq/options.h>

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace longseq {

enum class Split { kTrain, kValidation, kTest };
const char* split_name(Split split);

struct Batch {
  at::Tensor inputs;       ///< int64 token ids [B, T], or float features [B, T, F]
  at::Tensor targets;      ///< per position: int64 [B, T] (-100 = ignored) or float [B, T];
                           ///< classification: int64 [B]
  at::Tensor loss_mask;    ///< bool [B, T]: positions whose loss counts (undefined for classify)
  at::Tensor key_padding;  ///< bool [B, T] (true = real token), or undefined when none is padded
};

/// Rows [first, first + n) of every tensor of `b` (views).
Batch batch_rows(const Batch& b, int64_t first, int64_t n);
/// Positions `positions` (int64 [n]) of every per-position tensor of `b`, in that order (sequence
/// parallelism); classification targets [B] are kept whole.
Batch batch_positions(const Batch& b, const at::Tensor& positions);
/// `parts` stacked along the rows (the first part itself when there is one).
Batch cat_batches(const std::vector<Batch>& parts);

struct TaskInfo {
  int64_t vocab_size = 0;   ///< > 0 for token inputs
  int64_t input_dim = 0;    ///< > 0 for float inputs
  int64_t num_outputs = 0;  ///< classes (or 1 for regression)
  std::string head;         ///< model head: "lm", "per_position" or "classify"
  std::string loss;         ///< "ce" (cross-entropy) or "mse"
  int64_t seq_len = 0;      ///< longest input length
  double baseline = 0;      ///< reference loss of a model with no memory (0 if none)
  std::string baseline_text;
  int64_t split_size(Split s) const {
    return s == Split::kTrain ? train_size : s == Split::kTest ? test_size : valid_size;
  }
  int64_t train_size = 0;  ///< 0 = unbounded (generated on demand)
  int64_t valid_size = 0;
  int64_t test_size = 0;
};

class Task {
 public:
  virtual ~Task() = default;
  virtual const TaskInfo& info() const = 0;
  /// Batch number `index` of `split`: a pure function of (task options, seed, split, index).
  /// Validation and test batches cover their split in order; training batches are drawn anew
  /// (generators) or walk a per-epoch shuffle (datasets).
  virtual Batch batch(Split split, int64_t index, int64_t batch_size) const = 0;
};

struct TaskSpec {
  std::string name;
  std::string description;
  std::vector<OptionSpec> options;
  std::function<std::unique_ptr<Task>(const ResolvedOptions&, uint64_t seed)> make;
};

const std::vector<TaskSpec>& task_registry();
std::vector<std::string> task_names();
/// Throws naming the valid tasks / options on an unknown name or key, or a malformed value.
std::unique_ptr<Task> make_task(const std::string& name,
                                const std::map<std::string, std::string>& options = {},
                                uint64_t seed = 0);

/// Seed of one batch: mixes task seed, split and index (splitmix64), so splits never share draws.
uint64_t batch_seed(uint64_t seed, Split split, int64_t index);

/// ListOps as the Long Range Arena generator defines it (exposed for tests).
struct ListOpsExample {
  std::vector<int64_t> tokens;  ///< ids: 1..10 digits 0-9, 11 [MIN, 12 [MAX, 13 [MED, 14 [SM, 15 ]
  int64_t label = 0;
};
constexpr int64_t kListOpsVocab = 16;  ///< 0 = padding
/// Evaluates a token sequence (ids as above); throws on a malformed one.
int64_t listops_evaluate(const std::vector<int64_t>& tokens);

}  // namespace longseq
