// Byte-level language modelling over any file: inputs are bytes (vocabulary 256), targets the next
// byte. The file splits 90/5/5 into train/validation/test; training windows start at random
// offsets, validation/test walk their part in order. Loss in nats per byte; bits = nats / ln 2.
#include "data/task_impls.h"
#include "util/json_read.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstring>

namespace longseq::data {
namespace {

class Bytes : public Task {
 public:
  Bytes(const ResolvedOptions& o, uint64_t seed) : seed_(seed), t_(o.get_int("length")) {
    const std::string path = o.get_string("file");
    TORCH_CHECK(!path.empty(), "bytes: option `file` is required (a text file to model)");
    check_range("bytes", "length", t_, 1, 1 << 24);
    // A regular file only (a FIFO would block, a device never end), of at most 4 GiB in memory.
    const std::string raw = read_regular_file(path, "bytes: option `file`", int64_t{4} << 30);
    const int64_t n = static_cast<int64_t>(raw.size());
    TORCH_CHECK(n >= 20 * (t_ + 1), "bytes: `file` '", path, "' has ", n, " bytes; with `length` ",
                t_, " it needs at least ", 20 * (t_ + 1), " (5% of it must hold one sequence)");
    data_ = at::empty({n}, at::TensorOptions().dtype(at::kByte));
    std::memcpy(data_.data_ptr<uint8_t>(), raw.data(), raw.size());
    train_end_ = n * 90 / 100;
    valid_end_ = n * 95 / 100;
    info_.vocab_size = 256;
    info_.num_outputs = 256;
    info_.head = "lm";
    info_.loss = "ce";
    info_.seq_len = t_;
    info_.baseline = std::log(256.0);
    info_.baseline_text = "uniform bytes: 8 bits per byte";
    info_.train_size = 0;
    info_.valid_size = (valid_end_ - train_end_ - 1) / t_;
    info_.test_size = (n - valid_end_ - 1) / t_;
  }

  const TaskInfo& info() const override { return info_; }

  Batch batch(Split split, int64_t index, int64_t batch_size) const override {
    TORCH_CHECK(batch_size > 0 && index >= 0, "bytes: bad batch request (index ", index, ", size ",
                batch_size, ")");
    at::Tensor starts;
    if (split == Split::kTrain) {
      auto gen = generator_for(seed_, split, index);
      starts =
          at::randint(0, train_end_ - t_, {batch_size}, gen, at::TensorOptions().dtype(at::kLong));
    } else {
      const int64_t base = split == Split::kValidation ? train_end_ : valid_end_;
      const int64_t size = info_.split_size(split);
      TORCH_CHECK(index * batch_size < size, "bytes: ", split_name(split), " batch ", index,
                  " starts past the split's ", size, " sequences");
      starts =
          at::arange(index * batch_size, std::min(size, (index + 1) * batch_size), at::kLong) * t_ +
          base;
    }
    auto idx = starts.unsqueeze(1) + at::arange(t_ + 1, at::kLong).unsqueeze(0);  // [B, T+1]
    auto window = data_.index_select(0, idx.view(-1)).view(idx.sizes()).to(at::kLong);
    auto targets = window.narrow(1, 1, t_).contiguous();
    return {window.narrow(1, 0, t_).contiguous(),
            targets,
            at::ones(targets.sizes(), targets.options().dtype(at::kBool)),
            {}};
  }

 private:
  TaskInfo info_;
  uint64_t seed_;
  int64_t t_;
  at::Tensor data_;
  int64_t train_end_ = 0, valid_end_ = 0;
};

}  // namespace

std::unique_ptr<Task> make_bytes(const ResolvedOptions& o, uint64_t seed) {
  return std::make_unique<Bytes>(o, seed);
}

}  // namespace longseq::data
