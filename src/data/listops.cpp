// ListOps (Nangia & Bowman 2018) as the Long Range Arena generator defines it (Tay et al. 2021,
// lra_benchmarks/data/listops.py): a node at depth < max_depth is a leaf with probability 0.75
// (a digit 0-9), otherwise an operator from {MIN, MAX, MED, SM} with 2..max_args children; at
// max_depth always a leaf. Written without parentheses (as LRA's input pipeline feeds them), the
// length counts digits, operators and closing brackets. Trees are kept when
// min_length < length < max_length, de-duplicated, and split train/validation/test from one pool.
// MED is int(numpy.median) (the mean of the middle two, truncated, for an even count); SM is the
// sum modulo 10.
#include "data/task_impls.h"

#include <longseq/attention.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

namespace longseq {
namespace {

constexpr int64_t kDigit0 = 1, kMin = 11, kMax = 12, kMed = 13, kSm = 14, kEnd = 15;

int64_t apply(int64_t op, std::vector<int64_t> args) {
  switch (op) {
    case kMin: return *std::min_element(args.begin(), args.end());
    case kMax: return *std::max_element(args.begin(), args.end());
    case kSm: {
      int64_t s = 0;
      for (int64_t a : args) s += a;
      return s % 10;
    }
    case kMed: {
      std::sort(args.begin(), args.end());
      const size_t n = args.size();
      // numpy.median then int(): truncation of a non-negative mean is floor.
      return n % 2 ? args[n / 2] : (args[n / 2 - 1] + args[n / 2]) / 2;
    }
  }
  TORCH_CHECK(false, "listops: unknown operator id ", op);
}

// Recursive descent over prefix tokens; returns the value of the subtree starting at `i`.
int64_t eval_at(const std::vector<int64_t>& t, size_t& i, int depth) {
  TORCH_CHECK(i < t.size(), "listops: sequence ends inside an expression");
  TORCH_CHECK(depth < 10000, "listops: expression nested too deeply");
  const int64_t tok = t[i++];
  if (tok >= kDigit0 && tok < kDigit0 + 10) return tok - kDigit0;
  TORCH_CHECK(tok >= kMin && tok <= kSm, "listops: unexpected token id ", tok, " at ", i - 1);
  std::vector<int64_t> args;
  while (true) {
    TORCH_CHECK(i < t.size(), "listops: operator without closing bracket");
    if (t[i] == kEnd) {
      ++i;
      break;
    }
    args.push_back(eval_at(t, i, depth + 1));
  }
  TORCH_CHECK(!args.empty(), "listops: operator with no arguments");
  return apply(tok, std::move(args));
}

struct Generator {
  std::mt19937_64 rng;
  int64_t max_depth, max_args, max_length;
  std::vector<int64_t> out;
  bool too_long = false;

  // Appends a tree; mirrors generate_tree(depth, max_depth, max_args). Stops early (the tree is
  // rejected anyway) once the output reaches max_length.
  int64_t tree(int64_t depth) {
    if (too_long) return 0;
    const double r = depth < max_depth ? std::uniform_real_distribution<double>(0, 1)(rng) : 1.0;
    if (r > 0.25) {
      const int64_t value = std::uniform_int_distribution<int64_t>(0, 9)(rng);
      out.push_back(kDigit0 + value);
      too_long = static_cast<int64_t>(out.size()) >= max_length;
      return value;
    }
    const int64_t n = std::uniform_int_distribution<int64_t>(2, max_args)(rng);
    const size_t op_at = out.size();
    out.push_back(0);  // operator, chosen after the children as in the reference
    std::vector<int64_t> args;
    for (int64_t k = 0; k < n && !too_long; ++k) args.push_back(tree(depth + 1));
    if (too_long) return 0;
    const int64_t op = kMin + std::uniform_int_distribution<int64_t>(0, 3)(rng);
    out[op_at] = op;
    out.push_back(kEnd);
    too_long = static_cast<int64_t>(out.size()) >= max_length;
    return apply(op, std::move(args));
  }
};

class ListOps : public Task {
 public:
  ListOps(const ResolvedOptions& o, uint64_t seed) : seed_(seed) {
    const int64_t min_len = o.get_int("min_length"), max_len = o.get_int("max_length");
    const int64_t depth = o.get_int("max_depth"), args = o.get_int("max_args");
    data::check_range("listops", "min_length", min_len, 0, 1 << 20);
    data::check_range("listops", "max_length", max_len, min_len + 2, 1 << 20);
    data::check_range("listops", "max_depth", depth, 1, 64);
    data::check_range("listops", "max_args", args, 2, 1000);
    info_.vocab_size = kListOpsVocab;
    info_.num_outputs = 10;
    info_.head = "classify";
    info_.loss = "ce";
    info_.seq_len = max_len - 1;
    info_.baseline = std::log(10.0);
    info_.baseline_text = "uniform guessing over 10 classes (loss ln 10, accuracy 10%)";
    info_.train_size = o.get_int("train_size");
    info_.valid_size = o.get_int("valid_size");
    info_.test_size = o.get_int("test_size");
    for (const char* k : {"train_size", "valid_size", "test_size"}) {
      data::check_range("listops", k, o.get_int(k), 1, 1 << 22);
    }
    const int64_t total = info_.train_size + info_.valid_size + info_.test_size;
    Generator g{std::mt19937_64(seed), depth, args, max_len, {}, false};
    std::set<std::vector<int64_t>> seen;
    int64_t attempts = 0;
    while (static_cast<int64_t>(examples_.size()) < total) {
      TORCH_CHECK(++attempts < 1000 * total + 1000000, "listops: could not generate ", total,
                  " distinct trees with ", min_len, " < length < ", max_len, " (kept ",
                  examples_.size(), "); widen the bounds or ask for fewer examples");
      g.out.clear();
      g.too_long = false;
      const int64_t label = g.tree(1);
      const auto len = static_cast<int64_t>(g.out.size());
      if (g.too_long || len <= min_len || len >= max_len) continue;
      if (!seen.insert(g.out).second) continue;
      examples_.push_back({std::vector<uint8_t>(g.out.begin(), g.out.end()), label});
    }
    // The reference splits a set (arbitrary order); a seeded shuffle gives the same effect.
    std::shuffle(examples_.begin(), examples_.end(), std::mt19937_64(seed ^ 0x5EEDULL));
  }

  const TaskInfo& info() const override { return info_; }

  Batch batch(Split split, int64_t index, int64_t batch_size) const override {
    TORCH_CHECK(batch_size > 0 && index >= 0, "listops: bad batch request (index ", index,
                ", size ", batch_size, ")");
    int64_t offset = 0, size = info_.train_size;
    if (split == Split::kValidation) offset = info_.train_size, size = info_.valid_size;
    if (split == Split::kTest) offset = info_.train_size + info_.valid_size, size = info_.test_size;
    std::vector<int64_t> ids;
    if (split == Split::kTrain) {
      // Walk a fresh shuffle each epoch.
      int64_t perm_epoch = -1;
      at::Tensor perm;
      for (int64_t k = 0; k < batch_size; ++k) {
        const int64_t p = index * batch_size + k, epoch = p / size;
        if (epoch != perm_epoch) {
          auto gen = data::generator_for(seed_, Split::kTrain, -1 - epoch);
          perm = at::randperm(size, gen, at::TensorOptions().dtype(at::kLong));
          perm_epoch = epoch;
        }
        ids.push_back(perm.data_ptr<int64_t>()[p % size]);
      }
    } else {
      TORCH_CHECK(index * batch_size < size, "listops: ", split_name(split), " batch ", index,
                  " starts past the split's ", size, " examples");
      for (int64_t k = index * batch_size; k < std::min(size, (index + 1) * batch_size); ++k) {
        ids.push_back(k);
      }
    }
    int64_t t = 0;
    for (int64_t id : ids) t = std::max<int64_t>(t, examples_[offset + id].tokens.size());
    const int64_t b = static_cast<int64_t>(ids.size());
    auto inputs = at::zeros({b, t}, at::TensorOptions().dtype(at::kLong));
    auto lengths = at::zeros({b}, inputs.options());
    auto labels = at::zeros({b}, inputs.options());
    auto in = inputs.accessor<int64_t, 2>();
    auto len = lengths.accessor<int64_t, 1>();
    auto lab = labels.accessor<int64_t, 1>();
    for (int64_t r = 0; r < b; ++r) {
      const auto& ex = examples_[offset + ids[r]];
      for (size_t j = 0; j < ex.tokens.size(); ++j) in[r][j] = ex.tokens[j];
      len[r] = static_cast<int64_t>(ex.tokens.size());
      lab[r] = ex.label;
    }
    return {inputs, labels, {}, padding_mask_from_lengths(lengths, t)};
  }

  int64_t num_examples() const { return static_cast<int64_t>(examples_.size()); }

 private:
  struct Example {
    std::vector<uint8_t> tokens;
    int64_t label;
  };
  TaskInfo info_;
  uint64_t seed_;
  std::vector<Example> examples_;
};

}  // namespace

int64_t listops_evaluate(const std::vector<int64_t>& tokens) {
  size_t i = 0;
  const int64_t v = eval_at(tokens, i, 0);
  TORCH_CHECK(i == tokens.size(), "listops: trailing tokens after position ", i);
  return v;
}

namespace data {
std::unique_ptr<Task> make_listops(const ResolvedOptions& o, uint64_t seed) {
  return std::make_unique<ListOps>(o, seed);
}
}  // namespace data

}  // namespace longseq
