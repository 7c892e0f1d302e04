// Fused Reformer bucket-chunk kernel (kernels/cpu/reformer_attention) against the composite path
// (itself held to exact attention over the union of the rounds' windows in
// tests/ops/test_reformer.cpp) in float64, forward and backward (autograd through the composite
// path), and against exact attention directly where one chunk covers everything; odd lengths,
// chunks, head dims 32/64/80/128, 1–3 rounds, causal, padding.
#include <longseq/attention.h>
#include <longseq/impl.h>
#include <longseq/memory_tracker.h>

#include "kernels/ref/attention_ref.h"
#include "test_util.h"

#include <cmath>

namespace longseq {
namespace {

struct Case {
  int64_t b, h, t, d, buckets, n_hashes, chunk;
  bool causal, padding;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << "B" << c.b << " H" << c.h << " T" << c.t << " D" << c.d << " NB" << c.buckets << " n"
      << c.n_hashes << " chunk " << c.chunk << (c.causal ? " causal" : "")
      << (c.padding ? " padded" : "");
}

class ReformerFusedVsComposite : public ::testing::TestWithParam<Case> {};

TEST_P(ReformerFusedVsComposite, ForwardAndBackward) {
  const auto c = GetParam();
  torch::manual_seed(31);
  auto qk = torch::randn({c.b, c.h, c.t, c.d}, torch::kDouble);
  auto v = torch::randn({c.b, c.h, c.t, c.d}, torch::kDouble);
  ReformerCoreOptions o;
  o.buckets = c.buckets;
  o.n_hashes = c.n_hashes;
  o.chunk = c.chunk;
  auto rot = reformer_draw_rotations(o, c.d, 5, torch::kDouble);
  at::Tensor pad;
  if (c.padding) {
    pad = torch::rand({c.b, c.t}) > 0.25;
    pad[0].narrow(0, 0, std::min<int64_t>(2, c.t)).fill_(false);
    if (c.b > 1) pad[c.b - 1].fill_(false);  // a batch with no real key at all
  }
  auto f = [&](const std::vector<at::Tensor>& in) {
    return reformer_attention(in[0], in[1], rot, o, test::mask_of(c.causal, pad));
  };
  auto probe = torch::randn({c.b, c.h, c.t, c.d}, torch::kDouble);
  at::Tensor want;
  std::vector<at::Tensor> want_g;
  {
    ImplGuard composite(Impl::kComposite);
    want = f({qk, v});
    want_g = test::grads_of(f, {qk, v}, probe);
  }
  ImplGuard fused(Impl::kFused);
  {
    auto leaf = qk.detach().requires_grad_(true);
    auto node = reformer_attention(leaf, v, rot, o, test::mask_of(c.causal, pad)).grad_fn();
    ASSERT_NE(node, nullptr);
    EXPECT_NE(node->name().find("ReformerFunction"), std::string::npos) << node->name();
  }
  EXPECT_TRUE(test::all_close(f({qk, v}), want, 1e-10, 1e-11)) << "float64 forward";
  auto got_g = test::grads_of(f, {qk, v}, probe);
  EXPECT_TRUE(test::all_close(got_g[0], want_g[0], 1e-9, 1e-10)) << "float64 dqk";
  EXPECT_TRUE(test::all_close(got_g[1], want_g[1], 1e-9, 1e-10)) << "float64 dv";
  // float32: same buckets (the rotations and inputs are the float64 ones rounded), looser error.
  auto qk32 = qk.to(torch::kFloat), v32 = v.to(torch::kFloat);
  auto rot32 = rot.to(torch::kFloat);
  auto got32 = reformer_attention(qk32, v32, rot32, o, test::mask_of(c.causal, pad));
  auto want32 = [&] {
    ImplGuard composite(Impl::kComposite);
    return reformer_attention(qk32, v32, rot32, o, test::mask_of(c.causal, pad));
  }();
  EXPECT_TRUE(test::all_close(got32, want32, 1e-4, 2e-5)) << "float32 forward";
}

INSTANTIATE_TEST_SUITE_P(OddShapes, ReformerFusedVsComposite,
                         ::testing::Values(Case{2, 2, 1, 32, 2, 1, 64, false, false},
                                           Case{1, 3, 5, 64, 4, 2, 2, true, true},
                                           Case{2, 2, 63, 80, 8, 1, 7, false, true},
                                           Case{2, 2, 64, 128, 8, 2, 16, true, false},
                                           Case{1, 2, 65, 32, 4, 3, 8, false, false},
                                           Case{2, 2, 65, 80, 2, 2, 64, true, true},
                                           Case{1, 2, 65, 64, 1, 2, 13, false,
                                                true},  // one bucket: the plain chunks
                                           Case{2, 2, 1000, 64, 16, 2, 64, true, true},
                                           Case{1, 2, 1000, 32, 32, 3, 50, false, false}));

// One chunk covering the sequence and one bucket: exact shared-QK attention with the self rule,
// straight from the float64 naive loop.
TEST(ReformerFused, OneChunkEqualsExactSharedQk) {
  ImplGuard fused(Impl::kFused);
  torch::manual_seed(32);
  const int64_t T = 37, D = 16;
  auto qk = torch::randn({1, 2, T, D}, torch::kDouble);
  auto v = torch::randn({1, 2, T, D}, torch::kDouble);
  ReformerCoreOptions o;
  o.buckets = 1;
  o.n_hashes = 1;
  o.chunk = T;
  auto rot = reformer_draw_rotations(o, D, 1, torch::kDouble);
  auto got = reformer_attention(qk, v, rot, o);
  auto eye = torch::eye(T, torch::kBool);
  auto kn = qk / qk.norm(2, -1, true);
  auto want = ref::attention_naive(qk, kn, v, eye.logical_not(), 1.0 / std::sqrt(double(D)));
  EXPECT_TRUE(test::all_close(got, want, 1e-10, 1e-12));
}

TEST(ReformerFused, DropoutRunsComposite) {
  ImplGuard automatic(Impl::kAuto);  // kFused would refuse the dropout call
  auto qk = torch::randn({1, 2, 16, 8}, torch::requires_grad());
  ReformerCoreOptions o;
  o.buckets = 2;
  o.chunk = 4;
  auto rot = reformer_draw_rotations(o, 8, 1);
  auto name = [](const at::Tensor& t) { return t.grad_fn() ? t.grad_fn()->name() : std::string(); };
  EXPECT_NE(name(reformer_attention(qk, qk, rot, o)).find("ReformerFunction"), std::string::npos);
  EXPECT_EQ(name(reformer_attention(qk, qk, rot, o, {}, 0.1, true)).find("ReformerFunction"),
            std::string::npos);
}

TEST(ReformerFused, GradientMatchesCentralDifferences) {
  ImplGuard fused(Impl::kFused);
  torch::manual_seed(33);
  for (bool causal : {false, true}) {
    ReformerCoreOptions o;
    o.buckets = 2;
    o.n_hashes = 2;
    o.chunk = 3;
    auto rot = reformer_draw_rotations(o, 4, 2, torch::kDouble);
    auto pad = padding_mask_from_lengths(torch::tensor({8, 6}), 8);
    auto f = [&](const std::vector<at::Tensor>& in) {
      return reformer_attention(in[0], in[1], rot, o, test::mask_of(causal, pad));
    };
    EXPECT_TRUE(test::gradcheck(f, {torch::randn({2, 2, 8, 4}), torch::randn({2, 2, 8, 4})}))
        << "causal " << causal;
  }
}

// The composite keeps sorted, chunked copies of q, k, v and the [n, T, 2c] probabilities for
// autograd; the fused path keeps out, lse and the permutations.
TEST(ReformerFused, UsesLessMemoryThanCompositeAndGrowsLinearly) {
  MemoryTracker::install();
  auto growth = [](int64_t t, Impl impl) {
    ImplGuard g(impl);
    auto qk = torch::randn({1, 2, t, 64}, torch::requires_grad());
    ReformerCoreOptions o;
    o.n_hashes = 2;
    auto rot = reformer_draw_rotations(o, 64, 0);
    const int64_t before = MemoryTracker::current_bytes();
    MemoryTracker::reset_peak();
    reformer_attention(qk, qk, rot, o).sum().backward();
    return static_cast<double>(MemoryTracker::peak_bytes() - before);
  };
  const double f2 = growth(2048, Impl::kFused), f4 = growth(4096, Impl::kFused);
  const double c4 = growth(4096, Impl::kComposite);
  EXPECT_LT(f4 / f2, 2.2) << f2 << " -> " << f4;
  EXPECT_LT(f4, c4 / 2) << "fused " << f4 << " vs composite " << c4;
}

}  // namespace
}  // namespace longseq
