// Ring attention on 2 and 3 processes (Gloo on 127.0.0.1) against single-process exact attention
// in float64 (the composite reference): outputs and q/k/v gradients, causal and not, sequence
// lengths that do not split evenly. The zig-zag layout: every position once, causal work balanced.
#include <longseq/attention.h>
#include <longseq/ring_attention.h>

#include "ranks.h"
#include "test_util.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <set>

namespace longseq {
namespace {

TEST(SequenceLayout, EveryPositionOnceInChunkOrder) {
  for (int ranks : {1, 2, 3, 4}) {
    for (int64_t length : {2 * ranks, 2 * ranks + 1, 37, 64, 101}) {
      if (length < 2 * ranks) continue;
      const SequenceLayout layout(length, ranks);
      std::set<int64_t> seen;
      int64_t total = 0;
      for (int r = 0; r < ranks; ++r) {
        const auto pos = layout.positions(r);
        ASSERT_EQ(pos.numel(), layout.local_length(r));
        total += pos.numel();
        for (int64_t i = 0; i < pos.numel(); ++i) seen.insert(pos[i].item<int64_t>());
        // Chunk sizes differ by at most one.
        EXPECT_LE(std::abs(layout.local_length(r) - layout.local_length(0)), 2);
        // Chunk r, then chunk 2N-1-r, each in increasing order.
        const auto c = layout.chunks(r);
        const int64_t n0 = layout.chunk_size(c[0]);
        EXPECT_EQ(c[0], r);
        EXPECT_EQ(c[1], 2 * ranks - 1 - r);
        EXPECT_TRUE(pos.narrow(0, 0, n0).equal(
            at::arange(layout.chunk_begin(c[0]), layout.chunk_begin(c[0]) + n0, at::kLong)));
        EXPECT_TRUE(pos.narrow(0, n0, pos.numel() - n0)
                        .equal(at::arange(layout.chunk_begin(c[1]), layout.chunk_begin(c[1] + 1),
                                          at::kLong)));
      }
      EXPECT_EQ(total, length);
      EXPECT_EQ(static_cast<int64_t>(seen.size()), length);
      EXPECT_EQ(*seen.begin(), 0);
      EXPECT_EQ(*seen.rbegin(), length - 1);
    }
  }
}

TEST(SequenceLayout, CausalWorkIsBalanced) {
  // The (query, key) pairs a causal mask lets each rank score: within 1% of each other (the
  // contiguous layout would give rank 0 of 4 1/7 of rank 3's).
  const int64_t length = 4096;
  for (int ranks : {2, 3, 4}) {
    const SequenceLayout layout(length, ranks);
    std::vector<double> work;
    for (int r = 0; r < ranks; ++r) {
      const auto pos = layout.positions(r);
      work.push_back((pos + 1).sum().item<double>());  // query t sees t + 1 keys
    }
    const auto [lo, hi] = std::minmax_element(work.begin(), work.end());
    EXPECT_LT(*hi / *lo, 1.01) << ranks << " ranks";
  }
}

TEST(SequenceLayout, RefusesTooShortSequences) {
  try {
    SequenceLayout(5, 3);
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot be spread over 3 ranks"), std::string::npos)
        << e.what();
  }
}

// One rank's checks: for each case, the full q, k, v and upstream gradient are drawn from the
// same seed on every rank; the reference runs on the whole sequence in float64, the ring on this
// rank's positions, and the rank compares its rows.
TEST(RingAttentionWorker, MatchesExactAttention) {
  if (!test::is_rank_worker()) GTEST_SKIP() << "a rank of the RingAttention.* tests";
  at::set_num_threads(1);
  Distributed dist(*rank_info_from_env(), std::chrono::seconds(60));
  const auto dtype = std::getenv("RING_DTYPE") == std::string("float") ? at::kFloat : at::kDouble;
  const double tol = dtype == at::kFloat ? 1e-5 : 1e-10;
  const int64_t B = 2, H = 2, D = 8;
  int case_no = 0;
  for (int64_t T : {6 * dist.size() + 1, 67, 301}) {
    for (bool causal : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "T = " << T << (causal ? " causal" : " full")
                                        << ", rank " << dist.rank() << " of " << dist.size());
      at::manual_seed(1000 + case_no++);
      const auto f64 = at::TensorOptions().dtype(at::kDouble);
      auto q = at::randn({B, H, T, D}, f64), k = at::randn({B, H, T, D}, f64);
      auto v = at::randn({B, H, T, D}, f64), g = at::randn({B, H, T, D}, f64);
      auto qr = q.clone().requires_grad_(), kr = k.clone().requires_grad_(),
           vr = v.clone().requires_grad_();
      auto want = exact_attention_composite(qr, kr, vr, test::mask_of(causal));
      want.backward(g);

      const auto pos = SequenceLayout(T, dist.size()).positions(dist.rank());
      auto local = [&](const at::Tensor& x) { return x.index_select(2, pos).to(dtype); };
      auto ql = local(q).requires_grad_(), kl = local(k).requires_grad_(),
           vl = local(v).requires_grad_();
      auto got = ring_attention(ql, kl, vl, causal, dist, T);
      got.backward(local(g));
      EXPECT_TRUE(test::all_close(got, want.index_select(2, pos), tol, tol));
      EXPECT_TRUE(test::all_close(ql.grad(), qr.grad().index_select(2, pos), tol, tol));
      EXPECT_TRUE(test::all_close(kl.grad(), kr.grad().index_select(2, pos), tol, tol));
      EXPECT_TRUE(test::all_close(vl.grad(), vr.grad().index_select(2, pos), tol, tol));

      if (causal) {  // changing the last quarter of the keys and values changes no earlier row
        const int64_t cut = T - T / 4;
        auto later = (pos >= cut).to(dtype).view({1, 1, -1, 1});
        at::NoGradGuard no_grad;
        auto moved = ring_attention(ql, kl + 5 * later, vl - 3 * later, true, dist, T);
        auto early = (pos < cut).nonzero().view(-1);
        EXPECT_TRUE(test::all_close(moved.index_select(2, early), got.index_select(2, early), 0, 0));
      }
    }
  }
  test::mark_rank_done();
}

TEST(RingAttention, TwoRanksFloat64) {
  EXPECT_TRUE(test::run_ranks(2, "RingAttentionWorker.*", {"RING_DTYPE=double"}));
}
TEST(RingAttention, ThreeRanksFloat64) {
  EXPECT_TRUE(test::run_ranks(3, "RingAttentionWorker.*", {"RING_DTYPE=double"}));
}
TEST(RingAttention, TwoRanksFloat32) {
  EXPECT_TRUE(test::run_ranks(2, "RingAttentionWorker.*", {"RING_DTYPE=float"}));
}

}  // namespace
}  // namespace longseq
