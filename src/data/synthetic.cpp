// Synthetic long-range tasks (docs/tasks.md): copy memory, adding problem, selective copying and
// multi-query associative recall. Every batch is a pure function of (options, seed, split, index).
#include "data/task_impls.h"

#include <ATen/ATen.h>

#include <cmath>

namespace longseq::data {
namespace {

constexpr int64_t kIgnore = -100;  // cross_entropy's default ignore_index

class GeneratedTask : public Task {
 public:
  GeneratedTask(TaskInfo info, uint64_t seed) : info_(std::move(info)), seed_(seed) {}
  const TaskInfo& info() const override { return info_; }
  Batch batch(Split split, int64_t index, int64_t batch_size) const override {
    TORCH_CHECK(batch_size > 0, "task: `batch_size` must be > 0, got ", batch_size);
    TORCH_CHECK(index >= 0, "task: batch `index` must be >= 0, got ", index);
    const int64_t size = info_.split_size(split);
    if (split != Split::kTrain) {
      TORCH_CHECK(index * batch_size < size, "task: ", split_name(split), " batch ", index,
                  " of size ", batch_size, " starts past the split's ", size, " sequences");
    }
    if (split == Split::kTrain) {
      auto gen = generator_for(seed_, split, index);
      return make(batch_size, gen);
    }
    // Validation/test sequences [first, last) (the last batch cut to the split size), generated
    // in fixed blocks of kBlock sequences: the same sets whatever the batch size, so that runs at
    // different batch sizes (or ranks) evaluate the same sequences.
    const int64_t first = index * batch_size, last = std::min(size, first + batch_size);
    std::vector<Batch> parts;
    for (int64_t blk = first / kBlock; blk * kBlock < last; ++blk) {
      const int64_t b0 = blk * kBlock, n = std::min(kBlock, size - b0);
      auto gen = generator_for(seed_, split, blk);
      const int64_t lo = std::max(first, b0) - b0, hi = std::min(last, b0 + n) - b0;
      parts.push_back(batch_rows(make(n, gen), lo, hi - lo));
    }
    return cat_batches(parts);
  }

  static constexpr int64_t kBlock = 64;  ///< validation/test sequences per generator draw

 protected:
  virtual Batch make(int64_t b, at::Generator& gen) const = 0;
  TaskInfo info_;
  uint64_t seed_;
};

const auto kLong = at::TensorOptions().dtype(at::kLong);

// ---- copy memory (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016) ----------------------
// inputs:  a1..a10 (from 1..8), T-1 blanks (0), delimiter 9, 10 blanks        length T + 20
// targets: T + 10 blanks (0), then a1..a10                                      every position
class CopyMemory : public GeneratedTask {
 public:
  CopyMemory(int64_t blanks, TaskInfo info, uint64_t seed)
      : GeneratedTask(std::move(info), seed), t_(blanks) {}

 protected:
  Batch make(int64_t b, at::Generator& gen) const override {
    const int64_t len = t_ + 20;
    auto symbols = at::randint(1, 9, {b, 10}, gen, kLong);  // [B, 10]
    auto inputs = at::zeros({b, len}, kLong);
    inputs.narrow(1, 0, 10).copy_(symbols);
    inputs.select(1, t_ + 9).fill_(9);
    auto targets = at::zeros({b, len}, kLong);
    targets.narrow(1, t_ + 10, 10).copy_(symbols);
    return {inputs, targets, at::ones({b, len}, kLong.dtype(at::kBool)), {}};
  }

 private:
  int64_t t_;
};

// ---- adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015) -------------------------
// inputs [B, T, 2]: values U(0, 1), markers 1 at one position in each half; target: their sum,
// read at the last position.
class Adding : public GeneratedTask {
 public:
  Adding(int64_t length, TaskInfo info, uint64_t seed)
      : GeneratedTask(std::move(info), seed), t_(length) {}

 protected:
  Batch make(int64_t b, at::Generator& gen) const override {
    const int64_t half = t_ / 2;
    auto values = at::rand({b, t_}, gen, at::TensorOptions().dtype(at::kFloat));  // [B, T]
    auto first = at::randint(0, half, {b, 1}, gen, kLong);                        // [B, 1]
    auto second = at::randint(half, t_, {b, 1}, gen, kLong);                      // [B, 1]
    auto markers = at::zeros({b, t_}, values.options());
    markers.scatter_(1, first, 1.0).scatter_(1, second, 1.0);
    auto sum = values.gather(1, first) + values.gather(1, second);  // [B, 1]
    auto targets = at::zeros({b, t_}, values.options());
    targets.select(1, t_ - 1).copy_(sum.squeeze(1));
    auto mask = at::zeros({b, t_}, kLong.dtype(at::kBool));
    mask.select(1, t_ - 1).fill_(true);
    return {at::stack({values, markers}, -1), targets, mask, {}};  // inputs [B, T, 2]
  }

 private:
  int64_t t_;
};

// ---- selective copying (Gu & Dao 2023, Mamba) ------------------------------------------------
// inputs:  L positions: `tokens` data tokens (1..16) at random sorted positions, blanks (0)
//          elsewhere; then `tokens` markers (17)
// targets: the data tokens in order at the marker positions, ignored elsewhere
class SelectiveCopy : public GeneratedTask {
 public:
  SelectiveCopy(int64_t length, int64_t tokens, TaskInfo info, uint64_t seed)
      : GeneratedTask(std::move(info), seed), l_(length), n_(tokens) {}

 protected:
  Batch make(int64_t b, at::Generator& gen) const override {
    auto data = at::randint(1, 17, {b, n_}, gen, kLong);  // [B, n]
    auto pos =
        std::get<0>(at::rand({b, l_}, gen).argsort(int64_t{1}).narrow(1, 0, n_).sort(1));  // [B, n]
    auto inputs = at::zeros({b, l_ + n_}, kLong);
    inputs.narrow(1, 0, l_).scatter_(1, pos, data);
    inputs.narrow(1, l_, n_).fill_(17);
    auto targets = at::full({b, l_ + n_}, kIgnore, kLong);
    targets.narrow(1, l_, n_).copy_(data);
    return {inputs, targets, targets.ne(kIgnore), {}};
  }

 private:
  int64_t l_, n_;
};

// ---- multi-query associative recall (Arora et al. 2023, Zoology) ----------------------------
// inputs:  k1 v1 k2 v2 ... kn vn (keys distinct, from [1, V/2); values from [V/2, V)), then
//          T - 2n positions of blanks (0) with each key queried once at a random position
// targets: at a query, the value paired with its key; ignored elsewhere
class Mqar : public GeneratedTask {
 public:
  Mqar(int64_t length, int64_t pairs, int64_t vocab, TaskInfo info, uint64_t seed)
      : GeneratedTask(std::move(info), seed), t_(length), n_(pairs), v_(vocab) {}

 protected:
  Batch make(int64_t b, at::Generator& gen) const override {
    const int64_t half = v_ / 2;
    auto keys =
        at::rand({b, half - 1}, gen).argsort(int64_t{1}).narrow(1, 0, n_) + 1;  // [B, n] distinct
    auto values = at::randint(half, v_, {b, n_}, gen, kLong);                   // [B, n]
    auto inputs = at::zeros({b, t_}, kLong);
    auto targets = at::full({b, t_}, kIgnore, kLong);
    inputs.narrow(1, 0, 2 * n_)
        .copy_(at::stack(std::vector<at::Tensor>{keys, values}, 2).view({b, 2 * n_}));
    const int64_t rest = t_ - 2 * n_;
    auto qpos = at::rand({b, rest}, gen).argsort(int64_t{1}).narrow(1, 0, n_) + 2 * n_;  // [B, n]
    auto order = at::rand({b, n_}, gen).argsort(int64_t{1});  // which key
    inputs.scatter_(1, qpos, keys.gather(1, order));
    targets.scatter_(1, qpos, values.gather(1, order));
    return {inputs, targets, targets.ne(kIgnore), {}};
  }

 private:
  int64_t t_, n_, v_;
};

// Validation/test sizes of a generated task (its training stream is unbounded).
void read_split_sizes(const char* task, const ResolvedOptions& o, TaskInfo& info) {
  info.valid_size = o.get_int("valid_size");
  info.test_size = o.get_int("test_size");
  check_range(task, "valid_size", info.valid_size, 1, 1 << 24);
  check_range(task, "test_size", info.test_size, 1, 1 << 24);
}

}  // namespace

std::unique_ptr<Task> make_copy_memory(const ResolvedOptions& o, uint64_t seed) {
  const int64_t t = o.get_int("blanks");
  check_range("copy", "blanks", t, 1, 1 << 20);
  TaskInfo info;
  info.vocab_size = 10;
  info.num_outputs = 10;
  info.head = "per_position";
  info.loss = "ce";
  info.seq_len = t + 20;
  info.baseline = 10 * std::log(8.0) / (t + 20);
  info.baseline_text = "no-memory baseline 10*ln(8)/(T+20)";
  read_split_sizes("copy", o, info);
  return std::make_unique<CopyMemory>(t, info, seed);
}

std::unique_ptr<Task> make_adding(const ResolvedOptions& o, uint64_t seed) {
  const int64_t t = o.get_int("length");
  check_range("adding", "length", t, 2, 1 << 20);
  TaskInfo info;
  info.input_dim = 2;
  info.num_outputs = 1;
  info.head = "per_position";
  info.loss = "mse";
  info.seq_len = t;
  info.baseline = 1.0 / 6.0;
  info.baseline_text = "predicting 1 gives MSE 1/6 = 0.167";
  read_split_sizes("adding", o, info);
  return std::make_unique<Adding>(t, info, seed);
}

std::unique_ptr<Task> make_selective_copy(const ResolvedOptions& o, uint64_t seed) {
  const int64_t l = o.get_int("length"), n = o.get_int("tokens");
  check_range("selective_copy", "tokens", n, 1, 1 << 16);
  check_range("selective_copy", "length", l, n, 1 << 20);
  TaskInfo info;
  info.vocab_size = 18;
  info.num_outputs = 18;
  info.head = "per_position";
  info.loss = "ce";
  info.seq_len = l + n;
  info.baseline = std::log(16.0);
  info.baseline_text = "guessing gives loss ln(16) and accuracy 1/16";
  read_split_sizes("selective_copy", o, info);
  return std::make_unique<SelectiveCopy>(l, n, info, seed);
}

std::unique_ptr<Task> make_mqar(const ResolvedOptions& o, uint64_t seed) {
  const int64_t t = o.get_int("length"), n = o.get_int("pairs"), v = o.get_int("vocab");
  check_range("mqar", "pairs", n, 1, 1 << 16);
  check_range("mqar", "vocab", v, 2 * n + 2, 1 << 24);
  TORCH_CHECK(t >= 3 * n, "mqar: option `length` must be >= 3 * `pairs` = ", 3 * n,
              " (pairs plus one query per key), got ", t);
  TaskInfo info;
  info.vocab_size = v;
  info.num_outputs = v;
  info.head = "per_position";
  info.loss = "ce";
  info.seq_len = t;
  info.baseline = std::log(static_cast<double>(v - v / 2));
  info.baseline_text = "guessing a value gives loss ln(V/2)";
  read_split_sizes("mqar", o, info);
  return std::make_unique<Mqar>(t, n, v, info, seed);
}

}  // namespace longseq::data
