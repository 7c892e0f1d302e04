// Trainer: AdamW with linear warm-up then cosine decay, global-norm clipping (pre-clip norm
// reported), gradient accumulation over consecutive data indices, and a guard that skips steps
// whose loss or gradient is not finite and stops after max_bad_steps of them in a row.
#include <longseq/distributed.h>
#include <longseq/ring_attention.h>
#include <longseq/train.h>

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>

namespace longseq {

const OptionSet<TrainConfig>& train_options() {
  using O = TrainConfig;
  static const auto set =
      OptionSet<O>(O{})
          .add(option("steps", &O::steps, "optimizer steps").positive())
          .add(option("batch_size", &O::batch_size, "sequences per micro-batch").positive())
          .add(option("accumulate", &O::accumulate, "micro-batches per optimizer step").positive())
          .add(option("tbptt", &O::tbptt, "truncated BPTT chunk; 0 = full backpropagation")
                   .non_negative())
          .add(option("lr", &O::lr, "peak learning rate").positive())
          .add(option("min_lr_ratio", &O::min_lr_ratio, "cosine decays to lr * min_lr_ratio")
                   .range(0, 1))
          .add(option("warmup", &O::warmup, "linear warm-up steps").non_negative())
          .add(option("weight_decay", &O::weight_decay, "AdamW weight decay").non_negative())
          .add(option("beta1", &O::beta1, "AdamW beta1").range(0, 1, false, /*hi_open=*/true))
          .add(option("beta2", &O::beta2, "AdamW beta2").range(0, 1, false, /*hi_open=*/true))
          .add(option("clip", &O::clip, "max global gradient norm; 0 = off").non_negative())
          .add(option("eval_every", &O::eval_every, "steps between evaluations; 0 = never")
                   .non_negative())
          .add(option("eval_batches", &O::eval_batches,
                      "validation batches per evaluation; 0 = the whole split")
                   .non_negative())
          .add(option("max_bad_steps", &O::max_bad_steps,
                      "stop after this many non-finite steps in a row")
                   .positive())
          .add(option("dtype", &O::dtype, "parameter and compute dtype")
                   .choices({"float32", "float64"}));
  return set;
}

void TrainConfig::validate() const {
  train_options().check(*this, "train");
  TORCH_CHECK(std::isfinite(lr), "train: option `lr` must be finite, got ", lr);
}

ModelConfig resolve_model_config(const ModelConfig& model, const TaskInfo& info) {
  ModelConfig m = model;
  m.vocab_size = info.vocab_size;
  m.input_dim = info.vocab_size > 0 ? 0 : info.input_dim;
  m.head = info.head;
  m.num_outputs = info.num_outputs;
  if (m.mixer.max_len < info.seq_len) m.mixer.max_len = info.seq_len;
  return m;
}

LossParts task_loss(const TaskInfo& info, const at::Tensor& output, const Batch& batch) {
  LossParts parts;
  // float64 models keep their precision; lower precisions compute the loss in float32.
  const auto loss_dtype = output.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  if (info.head == "classify") {
    auto logits = output.to(loss_dtype);  // [B, K]
    parts.loss = at::cross_entropy_loss(logits, batch.targets);
    parts.correct = logits.argmax(-1).eq(batch.targets).sum().item<int64_t>();
    parts.count = batch.targets.size(0);
    return parts;
  }
  const auto& mask = batch.loss_mask;  // [B, T]
  parts.count = mask.sum().item<int64_t>();
  if (info.loss == "mse") {
    auto pred = output.squeeze(-1).to(loss_dtype);  // [B, T]
    auto err = (pred - batch.targets.to(loss_dtype)).pow(2) * mask.to(loss_dtype);
    parts.loss = err.sum() / std::max<int64_t>(parts.count, 1);
    return parts;
  }
  auto logits = output.to(loss_dtype);  // [B, T, K]
  const int64_t k = logits.size(-1);
  auto targets = batch.targets.masked_fill(mask.logical_not(), -100);  // [B, T]
  if (parts.count == 0) {  // no counted position (a sequence-parallel shard may have none): a
    parts.loss = logits.sum() * 0.0;  // zero loss whose backward still runs through the model
    return parts;
  }
  parts.loss = at::cross_entropy_loss(logits.reshape({-1, k}), targets.reshape({-1}));
  parts.correct = logits.argmax(-1).eq(targets).logical_and(mask).sum().item<int64_t>();
  return parts;
}

Batch shard_batch(const Batch& b, int rank, int ranks) {
  if (ranks == 1) return b;
  const int64_t rows = b.inputs.size(0);
  TORCH_CHECK(rows % ranks == 0, "shard_batch: ", rows, " rows do not split into ", ranks,
              " equal shards");
  const int64_t n = rows / ranks;
  return batch_rows(b, rank * n, n);
}

namespace {

// Sequence parallel: this rank's positions of every row of `b` (the positions its model outputs).
Batch own_positions(const Batch& b, const Distributed& dist) {
  return batch_positions(b, SequenceLayout(b.inputs.size(1), dist.size()).positions(dist.rank()));
}

}  // namespace

EvalResult evaluate(SequenceModel& model, const Task& task, Split split, int64_t batch_size,
                    int64_t max_batches, Distributed* dist) {
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  const auto& info = task.info();
  const int64_t size = info.split_size(split);
  TORCH_CHECK(size > 0, "evaluate: the task has no ", split_name(split), " split");
  int64_t batches = (size + batch_size - 1) / batch_size;
  if (max_batches > 0) batches = std::min(batches, max_batches);
  double loss_sum = 0;
  int64_t correct = 0, count = 0;
  // Data parallel: rank r evaluates batches r, r + N, ...; sequence parallel: every rank every
  // batch, on its positions.
  const bool by_position = model->sequence_sharded();
  TORCH_CHECK(!by_position || dist != nullptr,
              "evaluate: a sequence-parallel model needs the ranks (`dist`)");
  const int rank = dist && !by_position ? dist->rank() : 0;
  const int ranks = dist && !by_position ? dist->size() : 1;
  for (int64_t i = rank; i < batches; i += ranks) {
    auto b = task.batch(split, i, batch_size);
    auto out = model->forward(b.inputs, b.key_padding);
    if (by_position) {
      b = own_positions(b, *dist);
    }
    auto parts = task_loss(info, out, b);
    loss_sum += parts.loss.item<double>() * parts.count;
    correct += parts.correct;
    count += parts.count;
  }
  if (was_training) model->train();
  if (dist != nullptr) {  // exact in float64 for counts below 2^53
    const auto sums =
        dist->sum({loss_sum, static_cast<double>(correct), static_cast<double>(count)});
    loss_sum = sums[0];
    correct = static_cast<int64_t>(sums[1]);
    count = static_cast<int64_t>(sums[2]);
  }
  EvalResult r;
  r.count = count;
  r.loss = loss_sum / std::max<int64_t>(count, 1);
  r.accuracy = info.loss == "ce" ? static_cast<double>(correct) / std::max<int64_t>(count, 1) : -1;
  return r;
}

Trainer::Trainer(TrainConfig config, std::shared_ptr<Distributed> dist)
    : config_(std::move(config)), dist_(std::move(dist)) {
  config_.validate();
  task_ = make_task(config_.task, config_.task_options, config_.seed);
  config_.model = resolve_model_config(config_.model, task_->info());
  torch::manual_seed(config_.seed);
  model_ = SequenceModel(config_.model);
  if (config_.dtype == "float64") model_->to(at::kDouble);
  model_->train();
  if (dist_ && dist_->size() > 1 && config_.model.sequence_parallel) {
    TORCH_CHECK(config_.tbptt == 0, "train: `model.sequence_parallel` cannot take `tbptt`");
    const int64_t ranks = dist_->size(), length = task_->info().seq_len;
    TORCH_CHECK(length >= 2 * ranks, "train: `model.sequence_parallel` over ", ranks,
                " ranks needs sequences of at least ", 2 * ranks, " positions (two chunks per "
                "rank); task `", config_.task, "` has ", length, " (use fewer ranks, --nproc)");
    model_->shard_sequence(dist_);
  }
  if (dist_) {
    TORCH_CHECK(dist_->size() * config_.batch_size <= (int64_t{1} << 40),
                "train: the global batch is too large");
    dist_->broadcast_module(*model_);
    grad_sync_ = std::make_unique<GradientSync>(*dist_, model_->parameters());
  }
  auto opts = torch::optim::AdamWOptions(config_.lr)
                  .betas({config_.beta1, config_.beta2})
                  .eps(config_.adam_eps)
                  .weight_decay(config_.weight_decay);
  optimizer_ = std::make_unique<torch::optim::AdamW>(model_->parameters(), opts);
  if (config_.tbptt > 0) {
    const std::string why = model_->step_unsupported();
    TORCH_CHECK(why.empty(), "train: `tbptt` runs the model step by step, which it cannot: ", why);
  }
}

Trainer::~Trainer() = default;

int64_t Trainer::global_batch() const {
  return config_.batch_size * (model_->sequence_sharded() ? 1 : ranks());
}

int Trainer::rank() const { return dist_ ? dist_->rank() : 0; }
int Trainer::ranks() const { return dist_ ? dist_->size() : 1; }

double Trainer::truncated_backward(const Batch& b, double scale, bool* finite) {
  TORCH_CHECK(!b.key_padding.defined(), "train: `tbptt` needs unpadded sequences; task `",
              config_.task, "` pads its batches");
  const int64_t T = b.inputs.size(1), k = config_.tbptt;
  const double total = std::max<int64_t>(1, b.loss_mask.sum().item<int64_t>());
  ModelDecodeState state;
  double loss = 0;
  for (int64_t t0 = 0; t0 < T; t0 += k) {
    const int64_t n = std::min(k, T - t0);
    Batch chunk{
        b.inputs.narrow(1, t0, n), b.targets.narrow(1, t0, n), b.loss_mask.narrow(1, t0, n), {}};
    auto out = model_->step(chunk.inputs, state);  // [B, n, outputs]
    auto parts = task_loss(task_->info(), out, chunk);
    if (parts.count > 0) {
      auto weighted = parts.loss * (static_cast<double>(parts.count) / total);  // share of the mean
      const double l = weighted.item<double>();
      *finite = *finite && std::isfinite(l);
      loss += l;
      if (*finite || dist_) (weighted * scale).backward();  // collective under data parallel
    }
    if (state.last_embedding.defined()) state.last_embedding = state.last_embedding.detach();
    for (auto& layer : state.layers) {  // the truncation: no gradient into earlier chunks
      for (auto& kv : layer.tensors) {
        if (kv.second.defined()) kv.second = kv.second.detach();
      }
    }
  }
  return loss;
}

double Trainer::lr_at(int64_t step) const {
  // step counts from 0; warm-up reaches lr at step `warmup`, then cosine to lr · min_lr_ratio.
  if (config_.warmup > 0 && step < config_.warmup) {
    return config_.lr * static_cast<double>(step + 1) / static_cast<double>(config_.warmup);
  }
  const double span = std::max<int64_t>(1, config_.steps - config_.warmup);
  const double progress = std::min(1.0, static_cast<double>(step - config_.warmup) / span);
  const double floor = config_.lr * config_.min_lr_ratio;
  return floor + (config_.lr - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

StepStats Trainer::step() {
  const auto t0 = std::chrono::steady_clock::now();
  StepStats s;
  s.step = step_;
  s.lr = lr_at(step_);
  for (auto& group : optimizer_->param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(s.lr);
  }
  optimizer_->zero_grad();
  double loss_sum = 0;
  int64_t tokens = 0;
  bool finite = true;
  const int N = ranks();
  for (int64_t micro = 0; micro < config_.accumulate; ++micro) {
    // Every rank draws the global batch and trains on its rows (deterministic, disjoint shards).
    const auto global =
        task_->batch(Split::kTrain, step_ * config_.accumulate + micro, global_batch());
    tokens += global.inputs.size(0) * global.inputs.size(1);
    // Data parallel: this rank's rows; sequence parallel: its positions of every row.
    const auto b = model_->sequence_sharded() ? own_positions(global, *dist_)
                                              : shard_batch(global, rank(), N);
    // This shard's share of the global mean loss, times N because the ranks' gradients are
    // averaged: sum over ranks of (loss_r · count_r / count) is the mean over the global batch.
    double share = 1.0;
    if (N > 1) {
      const bool per_sequence = task_->info().head == "classify";
      const double local = per_sequence ? b.inputs.size(0) : b.loss_mask.sum().item<double>();
      const double total =
          per_sequence ? global.inputs.size(0) : global.loss_mask.sum().item<double>();
      share = local / std::max(total, 1.0);
    }
    const double weight = share * N;  // 1 for a single process
    if (config_.tbptt > 0 && b.inputs.size(1) > config_.tbptt) {
      loss_sum +=
          share * truncated_backward(b, weight / static_cast<double>(config_.accumulate), &finite);
      continue;
    }
    // A sequence-parallel model takes whole sequences and returns this rank's positions.
    const auto& in = model_->sequence_sharded() ? global : b;
    auto out = model_->forward(in.inputs, in.key_padding);
    auto parts = task_loss(task_->info(), out, b);
    const double l = parts.loss.item<double>();
    finite = finite && std::isfinite(l);
    loss_sum += share * l;
    // Every rank runs every backward, whatever its loss: the gradient averaging is collective.
    // The last one reduces buckets while it runs (not for reversible stacks, whose backward
    // recomputes and may accumulate a gradient twice).
    if (grad_sync_ && micro + 1 == config_.accumulate && !config_.model.reversible) {
      grad_sync_->arm();
    }
    if (finite || dist_) (parts.loss * weight / static_cast<double>(config_.accumulate)).backward();
  }
  if (dist_) {
    grad_sync_->finish();
    const auto sums = dist_->sum({loss_sum, finite ? 0.0 : 1.0});
    loss_sum = sums[0];
    finite = sums[1] == 0;
  }
  s.loss = loss_sum / config_.accumulate;
  const auto params = model_->parameters();
  s.grad_norm =
      finite ? torch::nn::utils::clip_grad_norm_(params, config_.clip > 0 ? config_.clip : 1e300)
             : std::nan("");
  if (!finite || !std::isfinite(s.grad_norm)) {
    s.skipped = true;
    optimizer_->zero_grad();
    ++skipped_total_;
    if (++bad_in_row_ >= config_.max_bad_steps) {
      stopped_ = true;
      stop_reason_ = "stopped after " + std::to_string(bad_in_row_) +
                     " non-finite steps in a row; try a lower `lr`, a smaller `clip`, more "
                     "`warmup`, or float64 to locate the overflow";
    }
  } else {
    bad_in_row_ = 0;
    s.clipped = config_.clip > 0 && s.grad_norm > config_.clip;
    clipped_total_ += s.clipped;
    optimizer_->step();
  }
  ++step_;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s.tokens_per_s = tokens / std::max(secs, 1e-9);
  return s;
}

void Trainer::run(const std::function<void(const StepStats&)>& on_step,
                  const std::function<void(int64_t, const EvalResult&)>& on_eval) {
  while (step_ < config_.steps && !stopped_) {
    auto s = step();
    if (on_step) on_step(s);
    const bool last = step_ == config_.steps;
    if (config_.eval_every > 0 && (step_ % config_.eval_every == 0 || last) && on_eval) {
      on_eval(step_, evaluate(model_, *task_, Split::kValidation, global_batch(),
                              config_.eval_batches, dist_.get()));
    }
  }
}

}  // namespace longseq
