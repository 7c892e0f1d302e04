#pragma once
/// Training and evaluation of a SequenceModel on a Task: AdamW, warm-up then cosine learning rate,
/// clipping by global norm (the pre-clip norm is logged), gradient accumulation, periodic
/// evaluation, non-finite step skipping, metrics as JSON lines.

#include <longseq/model.h>
#include <longseq/options.h>
#include <longseq/tasks.h>

#include <torch/optim/adamw.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace longseq {

class Distributed;
class GradientSync;

struct TrainConfig {
  std::string task = "mqar";
  std::map<std::string, std::string> task_options;
  ModelConfig model;  ///< input/output sizes and head are filled from the task
  int64_t steps = 1000;
  int64_t batch_size = 32;
  int64_t accumulate = 1;  ///< micro-batches per optimizer step
  /// Truncated backpropagation through time: > 0 runs each training sequence in chunks of this
  /// many steps through the model's step(), carrying the state (recurrent state, KV caches)
  /// forward and detaching it between chunks, so gradients reach back at most `tbptt` steps and
  /// activation memory is that of one chunk. 0 = full BPTT. Per-position/LM tasks without padding.
  int64_t tbptt = 0;
  double lr = 1e-3;
  double min_lr_ratio = 0.1;  ///< cosine decays to lr · min_lr_ratio
  int64_t warmup = 100;       ///< linear warm-up steps
  double weight_decay = 0.01;
  double beta1 = 0.9, beta2 = 0.98, adam_eps = 1e-8;
  double clip = 1.0;  ///< max global gradient norm; 0 = no clipping
  int64_t eval_every = 100;
  int64_t eval_batches = 0;    ///< validation batches per evaluation; 0 = the whole split
  int64_t max_bad_steps = 10;  ///< stop after this many non-finite steps in a row
  uint64_t seed = 0;
  std::string dtype = "float32";  ///< parameters and compute: float32 or float64
  std::string metrics_path;       ///< JSON lines; empty = none

  void validate() const;
};

/// The TrainConfig members a config file sets (its `train` section), with ranges and help.
const OptionSet<TrainConfig>& train_options();

struct EvalResult {
  double loss = 0;
  double accuracy = -1;  ///< fraction of counted positions (or sequences) right; -1 for mse
  int64_t count = 0;     ///< positions or sequences evaluated
};

struct StepStats {
  int64_t step = 0;
  double loss = 0;
  double grad_norm = 0;  ///< before clipping
  bool clipped = false;
  bool skipped = false;  ///< non-finite loss or gradient
  double lr = 0;
  double tokens_per_s = 0;
};

/// Fills the model's input/output sizes and head from the task; throws on conflicts.
ModelConfig resolve_model_config(const ModelConfig& model, const TaskInfo& info);

/// Loss (and accuracy numerator/denominator) of a model output on a batch.
struct LossParts {
  at::Tensor loss;  ///< scalar, mean over counted positions/sequences
  int64_t correct = 0;
  int64_t count = 0;
};
LossParts task_loss(const TaskInfo& info, const at::Tensor& output, const Batch& batch);

/// Evaluates `model` on `split` in batches of `batch_size` (at most `max_batches`; 0 = all).
/// With `dist`, rank r evaluates batches r, r+N, ... (or, for a sequence-parallel model, every
/// batch on its positions) and the sums are reduced: every rank gets the result of the whole
/// split.
EvalResult evaluate(SequenceModel& model, const Task& task, Split split, int64_t batch_size,
                    int64_t max_batches = 0, Distributed* dist = nullptr);

/// Rows [rank·B/N, (rank+1)·B/N) of `b` (all of its tensors): rank's shard of a global batch.
Batch shard_batch(const Batch& b, int rank, int ranks);

class Trainer {
 public:
  /// With `dist` (data parallel over dist->size() ranks), `config.batch_size` is per rank: each
  /// step every rank draws the same global batch of N × batch_size sequences and trains on its
  /// own rows; gradients, losses and evaluations are averaged over the ranks, so N ranks follow
  /// the run of one process at batch N × batch_size. Rank 0's initial parameters are broadcast.
  /// With `model.sequence_parallel`, the N ranks share each sequence instead (the global batch
  /// is batch_size, each rank trains on its positions of every row, attention is the ring).
  explicit Trainer(TrainConfig config, std::shared_ptr<Distributed> dist = nullptr);
  ~Trainer();
  /// Runs until config.steps (or a stop); `on_step` sees every step, `on_eval` every evaluation.
  void run(const std::function<void(const StepStats&)>& on_step = {},
           const std::function<void(int64_t, const EvalResult&)>& on_eval = {});
  /// One optimizer step (accumulate micro-batches); public for tests.
  StepStats step();

  SequenceModel& model() { return model_; }
  const Task& task() const { return *task_; }
  const TrainConfig& config() const { return config_; }
  int64_t current_step() const { return step_; }
  int64_t skipped_steps() const { return skipped_total_; }
  int64_t clipped_steps() const { return clipped_total_; }
  bool stopped() const { return stopped_; }
  const std::string& stop_reason() const { return stop_reason_; }
  torch::optim::AdamW& optimizer() { return *optimizer_; }
  Distributed* distributed() const { return dist_.get(); }
  /// This process's rank (0 without data parallel) and the number of ranks.
  int rank() const;
  int ranks() const;
  /// Sequences per micro-batch over all ranks (batch_size × ranks; batch_size when the ranks
  /// share each sequence, model.sequence_parallel): also the evaluation batch, so that N ranks
  /// evaluate the batches one process at this batch size would.
  int64_t global_batch() const;
  /// For checkpoint loading: continue from `step` with these run totals.
  void restore_counters(int64_t step, int64_t skipped, int64_t clipped) {
    step_ = step;
    skipped_total_ = skipped;
    clipped_total_ = clipped;
    bad_in_row_ = 0;
  }
  double lr_at(int64_t step) const;

 private:
  // One truncated-BPTT pass over batch `b` (chunks of config.tbptt); returns its loss (the mean
  // over counted positions) and backpropagates it times `scale`.
  double truncated_backward(const Batch& b, double scale, bool* finite);
  TrainConfig config_;
  std::shared_ptr<Distributed> dist_;
  std::unique_ptr<GradientSync> grad_sync_;
  std::unique_ptr<Task> task_;
  SequenceModel model_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  int64_t step_ = 0;
  int64_t bad_in_row_ = 0;
  int64_t skipped_total_ = 0;
  int64_t clipped_total_ = 0;
  bool stopped_ = false;
  std::string stop_reason_;
};

}  // namespace longseq
