// Growing external memory: capacity follows the amount of distinct content, repeated content
// updates slots instead of allocating, the cap holds, and step() equals forward().
#include <longseq/mixers/memory.h>

#include "test_util.h"

namespace longseq {
namespace {

MemoryOptions options() {
  MixerConfig c;
  c.dim = 24;
  c.heads = 1;
  c.max_len = 256;
  c.causal = true;
  return MemoryOptions(c).slots(2).max_slots(16).key_dim(16).threshold(0.5);
}

// A sequence cycling through `distinct` fixed random token vectors.
at::Tensor cycling(int64_t distinct, int64_t length, int64_t seed) {
  torch::manual_seed(seed);
  auto vocab = torch::randn({distinct, 24});
  return vocab.index_select(0, torch::arange(length) % distinct).unsqueeze(0);  // [1, T, C]
}

TEST(MemoryMixer, CapacityGrowsWithDistinctContentOnly) {
  torch::manual_seed(0);
  Memory m(options());
  m->eval();
  torch::NoGradGuard ng;
  std::vector<int64_t> used;
  for (int64_t distinct : {1, 3, 6, 12}) {
    m->forward(cycling(distinct, 96, 7));
    used.push_back(m->last_used_slots()[0].item<int64_t>());
  }
  // Keys are (normalised projections of) the previous token: `distinct` different ones.
  EXPECT_LE(used[0], 2);
  for (size_t i = 1; i < used.size(); ++i) EXPECT_GT(used[i], used[i - 1]) << i;
  EXPECT_LE(used[3], 16);
  // 96 steps of 3 repeating tokens never allocate more than the distinct keys (+ the start).
  EXPECT_LE(used[1], 4);
  // The capacity grew by doubling from 2 and stays within max_slots.
  EXPECT_GE(m->last_capacity(), used[3]);
  EXPECT_LE(m->last_capacity(), 16);
}

TEST(MemoryMixer, CapacityStopsAtMaxSlots) {
  torch::manual_seed(1);
  auto o = options();
  o.max_slots(4);
  Memory m(o);
  torch::NoGradGuard ng;
  auto y = m->forward(torch::randn({2, 50, 24}));
  EXPECT_EQ(m->last_capacity(), 4);
  EXPECT_EQ(m->last_used_slots().max().item<int64_t>(), 4);
  EXPECT_TRUE(y.isfinite().all().item<bool>());
}

TEST(MemoryMixer, StepEqualsForwardAndGradientsFlow) {
  torch::manual_seed(2);
  Memory m(options());
  m->to(torch::kDouble);
  auto x = torch::randn({2, 19, 24}, torch::kDouble);
  {
    torch::NoGradGuard ng;
    auto want = m->forward(x);
    DecodeState s;
    auto a = m->step(x.narrow(1, 0, 7), s);
    auto b = m->step(x.narrow(1, 7, 12), s);
    EXPECT_TRUE(test::all_close(at::cat({a, b}, 1), want, 1e-12, 1e-12));
  }
  auto xg = x.clone().requires_grad_();
  m->forward(xg).pow(2).sum().backward();
  EXPECT_TRUE(xg.grad().isfinite().all().item<bool>());
  for (const auto& p : m->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
}

}  // namespace
}  // namespace longseq
