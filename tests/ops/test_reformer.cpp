// Reformer LSH attention (src/ops/reformer_attention.cpp) and the Reformer mixer against exact
// shared-QK attention computed by the naive float64 reference.
#include <longseq/attention.h>
#include <longseq/mixers/reformer.h>

#include "kernels/ref/attention_ref.h"
#include "test_util.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

namespace longseq {
namespace {

using test::all_close;

at::Tensor randn(at::IntArrayRef shape, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(shape, gen, at::TensorOptions().dtype(at::kDouble));
}

// Bool [B, T]: random real/pad pattern (about 1 in 4 padded), every row of batch 0 real.
at::Tensor random_padding(int64_t B, int64_t T, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto kp = at::rand({B, T}, gen, at::TensorOptions().dtype(at::kDouble)) > 0.25;
  kp[0].fill_(true);
  return kp;
}

// Bool [B, H, T, T]: causal and key-padding constraints (no self rule yet).
at::Tensor base_allowed(int64_t B, int64_t H, int64_t T, bool causal, const at::Tensor& kp) {
  auto allowed = at::ones({B, H, T, T}, at::TensorOptions().dtype(at::kBool));
  if (causal) allowed = allowed.logical_and(at::ones({T, T}, allowed.options()).tril());
  if (kp.defined()) allowed = allowed.logical_and(kp.view({B, 1, 1, T}));
  return allowed;
}

// Reformer's self rule: a query sees its own position only when it sees nothing else.
at::Tensor apply_self_rule(const at::Tensor& allowed) {
  const int64_t T = allowed.size(-1);
  auto others = allowed.logical_and(at::eye(T, allowed.options()).logical_not());
  auto has_other = others.any(-1, /*keepdim=*/true);
  return at::where(has_other, others, allowed);
}

// Exact shared-QK attention over `allowed` (before the self rule): keys = qk / ‖qk‖.
at::Tensor exact_shared_qk(const at::Tensor& qk, const at::Tensor& v, const at::Tensor& allowed) {
  auto kn = qk / qk.norm(2, -1, true);
  return ref::attention_naive(qk, kn, v, apply_self_rule(allowed),
                              1.0 / std::sqrt(static_cast<double>(qk.size(3))));
}

// Bool [B, H, T, T]: j visible to i in some round, computed independently of the op: stable sort
// by bucket with std::stable_sort, chunk index = slot / chunk, window = own or previous chunk.
// Causal: the `chunk` most recent tokens of i's own bucket up to i (slot gap in [0, chunk)).
at::Tensor union_of_windows(const at::Tensor& buckets_in, int64_t chunk, bool causal = false) {
  auto buckets = buckets_in.contiguous();
  const int64_t B = buckets.size(0), H = buckets.size(1), R = buckets.size(2), T = buckets.size(3);
  auto out = at::zeros({B, H, T, T}, at::TensorOptions().dtype(at::kBool));
  auto ba = buckets.accessor<int64_t, 4>();
  auto oa = out.accessor<bool, 4>();
  std::vector<int64_t> order(T), chunk_of(T);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t r = 0; r < R; ++r) {
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(),
                         [&](int64_t x, int64_t y) { return ba[b][h][r][x] < ba[b][h][r][y]; });
        for (int64_t s = 0; s < T; ++s) chunk_of[order[s]] = causal ? s : s / chunk;
        for (int64_t i = 0; i < T; ++i) {
          for (int64_t j = 0; j < T; ++j) {
            const int64_t d = chunk_of[i] - chunk_of[j];
            const bool same_bucket = ba[b][h][r][i] == ba[b][h][r][j];
            if (causal ? (same_bucket && d >= 0 && d < chunk) : (d == 0 || d == 1)) {
              oa[b][h][i][j] = true;
            }
          }
        }
      }
    }
  }
  return out;
}

// Zeroes the rows of padded queries. Reformer sorts padded tokens into an extra last bucket so
// their content never moves a real token; their own outputs are finite but not comparable.
at::Tensor real_rows(const at::Tensor& out, const at::Tensor& kp) {
  if (!kp.defined()) return out;
  return out * kp.view({out.size(0), 1, out.size(2), 1}).to(out.scalar_type());
}

// reformer_hash, with padded tokens in the extra last bucket as reformer_attention does.
at::Tensor padded_hash(const at::Tensor& qk, const at::Tensor& rot, const ReformerCoreOptions& o,
                       const at::Tensor& kp) {
  auto h = reformer_hash(qk, rot, o);
  if (!kp.defined()) return h;
  return h.masked_fill(kp.logical_not().view({qk.size(0), 1, 1, qk.size(2)}), o.buckets);
}

// The core's options and the mask's causal flag, as the tests vary them together.
struct Core : ReformerCoreOptions {
  bool causal = false;
};

Core core(int64_t buckets, int64_t n_hashes, int64_t chunk, bool causal) {
  Core o;
  o.buckets = buckets;
  o.n_hashes = n_hashes;
  o.chunk = chunk;
  o.causal = causal;
  return o;
}

at::Tensor reformer(const at::Tensor& qk, const at::Tensor& v, const at::Tensor& rot, const Core& o,
                    const at::Tensor& key_padding = {}, double dropout_p = 0.0,
                    bool train = false) {
  return reformer_attention(qk, v, rot, o, test::mask_of(o.causal, key_padding), dropout_p, train);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "<no error>";
}

// ---- exactness --------------------------------------------------------------------------------

// One bucket, one chunk: LSH attention degenerates to exact shared-QK attention with the self rule.
TEST(ReformerAttention, OneBucketOneChunkMatchesExact) {
  for (int64_t T : {1, 5, 13, 63, 65}) {
    for (int64_t D : {16, 80}) {
      for (bool causal : {false, true}) {
        for (bool padded : {false, true}) {
          SCOPED_TRACE("T=" + std::to_string(T) + " D=" + std::to_string(D) +
                       " causal=" + std::to_string(causal) + " padded=" + std::to_string(padded));
          const int64_t B = 2, H = 3;
          auto qk = randn({B, H, T, D}, 1 + T + D);
          auto v = randn({B, H, T, D}, 2 + T + D);
          auto kp = padded ? random_padding(B, T, 3 + T) : at::Tensor();
          for (int64_t chunk : {T, T + 7}) {
            auto opts = core(1, 1, chunk, causal);
            auto rot = reformer_draw_rotations(opts, D, 7, at::kDouble);
            auto got = reformer(qk, v, rot, opts, kp);
            auto want = exact_shared_qk(qk, v, base_allowed(B, H, T, causal, kp));
            EXPECT_TRUE(all_close(real_rows(got, kp), real_rows(want, kp), 1e-10, 1e-10));
          }
        }
      }
    }
  }
}

// chunk >= T: every round sees everything, so the duplicate correction (c_ij = n_hashes) and the
// log-sum-exp combination of rounds must reproduce exact attention.
TEST(ReformerAttention, ManyRoundsOneChunkMatchesExact) {
  for (int64_t nb : {2, 8, 16}) {
    for (int64_t n_hashes : {2, 3, 5}) {
      for (bool causal : {false, true}) {
        SCOPED_TRACE("NB=" + std::to_string(nb) + " n_hashes=" + std::to_string(n_hashes) +
                     " causal=" + std::to_string(causal));
        const int64_t B = 2, H = 2, T = 29, D = 24;
        auto qk = randn({B, H, T, D}, 11 + nb + n_hashes);
        auto v = randn({B, H, T, 8}, 12 + nb);  // Dv != D on purpose
        auto kp = random_padding(B, T, 13);
        auto opts = core(nb, n_hashes, 32, causal);
        auto rot = reformer_draw_rotations(opts, D, 5, at::kDouble);
        auto got = reformer(qk, v, rot, opts, kp);
        // Non-causal: every round sees everything. Causal: a round sees the same-bucket past.
        auto allowed = base_allowed(B, H, T, causal, kp);
        if (causal)
          allowed = allowed.logical_and(union_of_windows(padded_hash(qk, rot, opts, kp), T, true));
        auto want = exact_shared_qk(qk, v, allowed);
        EXPECT_TRUE(all_close(real_rows(got, kp), real_rows(want, kp), 1e-10, 1e-10));
      }
    }
  }
}

// Several chunks and rounds: the output must be exact softmax attention over the union of the
// windows of all rounds (each key counted once), the union rebuilt here from reformer_hash alone.
TEST(ReformerAttention, ManyRoundsMatchesUnionOfWindows) {
  for (int64_t T : {7, 37, 64}) {
    for (int64_t chunk : {3, 8}) {
      for (int64_t n_hashes : {1, 2, 4}) {
        for (bool causal : {false, true}) {
          SCOPED_TRACE("T=" + std::to_string(T) + " chunk=" + std::to_string(chunk) + " n_hashes=" +
                       std::to_string(n_hashes) + " causal=" + std::to_string(causal));
          const int64_t B = 2, H = 2, D = 12, nb = 4;
          auto qk = randn({B, H, T, D}, 21 + T);
          auto v = randn({B, H, T, D}, 22 + T);
          auto kp = random_padding(B, T, 23 + T);
          auto opts = core(nb, n_hashes, chunk, causal);
          auto rot = reformer_draw_rotations(opts, D, 9 + chunk, at::kDouble);
          auto got = reformer(qk, v, rot, opts, kp);
          auto windows =
              union_of_windows(padded_hash(qk, rot, opts, kp), std::min(chunk, T), causal);
          auto want =
              exact_shared_qk(qk, v, base_allowed(B, H, T, causal, kp).logical_and(windows));
          EXPECT_TRUE(all_close(real_rows(got, kp), real_rows(want, kp), 1e-10, 1e-10));
        }
      }
    }
  }
}

// float32 follows the float64 result (same rotations, drawn in float32 for every dtype).
TEST(ReformerAttention, Float32MatchesFloat64) {
  const int64_t B = 1, H = 2, T = 50, D = 16;
  auto qk = randn({B, H, T, D}, 31), v = randn({B, H, T, D}, 32);
  auto opts = core(4, 3, 8, true);
  auto rot = reformer_draw_rotations(opts, D, 3);
  auto got = reformer(qk.to(at::kFloat), v.to(at::kFloat), rot, opts);
  auto want = reformer(qk, v, rot.to(at::kDouble), opts);
  EXPECT_TRUE(all_close(got, want, 1e-4, 1e-5));
  EXPECT_TRUE(at::equal(reformer_hash(qk.to(at::kFloat), rot, opts),
                        reformer_hash(qk, rot.to(at::kDouble), opts)));
}

// reformer_hash's buckets are argmax([x R ; −x R]) per round, computed by one loop per row
// (kernels/cpu): against that ATen expression, with an odd count of buckets' halves, a zero query
// (all ties: bucket 0), a tie between the halves, and a NaN (its first index, as argmax gives it).
TEST(ReformerHash, BucketsAreTheArgmaxOfRotationsAndTheirNegations) {
  for (auto dtype : {at::kDouble, at::kFloat}) {
    const int64_t B = 2, H = 3, T = 7, D = 5;
    auto opts = core(10, 3, 4, false);  // NB/2 = 5 rotations per round
    auto rot = reformer_draw_rotations(opts, D, 11).to(dtype);
    auto qk = randn({B, H, T, D}, 12).to(dtype);
    qk[0][1][2].zero_();                       // every projection 0: all tie, bucket 0
    qk[1][0][3].fill_(std::nan(""));           // NaN projections
    auto want_of = [&](const at::Tensor& r) {  // [B, H, n, T]
      const int64_t n = opts.n_hashes, half = r.size(2);
      auto xr = at::matmul(qk, r.permute({1, 0, 2}).reshape({D, n * half}))
                    .view({B, H, T, n, half});
      return at::cat({xr, xr.neg()}, -1).argmax(-1).permute({0, 1, 3, 2}).contiguous();
    };
    auto got = reformer_hash(qk, rot, opts);
    EXPECT_TRUE(at::equal(got, want_of(rot))) << dtype;
    EXPECT_EQ(got[0][1].select(-1, 2).max().item<int64_t>(), 0) << dtype;
    // Rotations whose second column is the negation of the first: x·r1 = −(x·r0), so the largest
    // of [x R ; −x R] may be reached twice, and then the first index wins.
    auto tied = rot.clone();
    tied.select(2, 1).copy_(-tied.select(2, 0));
    EXPECT_TRUE(at::equal(reformer_hash(qk, tied, opts), want_of(tied))) << dtype;
  }
}

// ---- approximation quality --------------------------------------------------------------------

// Error against full shared-QK attention (NB = 8, chunk 16, T = 128) falls as rounds are added.
// Clustered inputs (8 centres of norm 4·√D, unit noise per coordinate, v random) make LSH
// meaningful; plain Gaussian inputs give nearly uniform attention, which LSH can only approach by
// covering more keys. Also reported: the share of the exact attention mass on keys the rounds
// cover (read off with v = I), and NB = 1 (plain positional chunks) as the no-hashing baseline.
TEST(ReformerAttention, ErrorFallsWithRounds) {
  const int64_t B = 1, H = 4, T = 128, D = 32, chunk = 16, n_seeds = 5;
  const std::vector<int64_t> rounds = {1, 2, 4, 8};
  const auto eye = at::eye(T, at::TensorOptions().dtype(at::kDouble)).expand({B, H, T, T});
  const auto all = base_allowed(B, H, T, false, {});
  for (bool clustered : {true, false}) {
    std::vector<double> err(rounds.size(), 0.0), covered(rounds.size(), 0.0);
    double err_no_hash = 0.0;
    for (int64_t seed = 0; seed < n_seeds; ++seed) {
      at::Tensor qk;
      if (clustered) {
        auto centres = randn({H, 8, D}, 100 + seed);
        centres = centres / centres.norm(2, -1, true) * (4 * std::sqrt(double(D)));
        auto gen = at::make_generator<at::CPUGeneratorImpl>(200 + seed);
        auto which = at::randint(8, {H, T}, gen, at::TensorOptions().dtype(at::kLong));
        auto picked = centres.gather(1, which.unsqueeze(-1).expand({H, T, D}));  // [H, T, D]
        qk = (picked + randn({H, T, D}, 300 + seed)).unsqueeze(0);               // [1, H, T, D]
      } else {
        qk = randn({B, H, T, D}, 100 + seed);
      }
      auto v = randn({B, H, T, D}, 400 + seed);
      auto want = exact_shared_qk(qk, v, all);
      auto exact_weights = exact_shared_qk(qk, eye, all);  // [B, H, T, T]
      for (size_t i = 0; i < rounds.size(); ++i) {
        auto opts = core(8, rounds[i], chunk, false);
        auto rot = reformer_draw_rotations(opts, D, 500 + seed, at::kDouble);
        err[i] += test::rel_error(reformer(qk, v, rot, opts), want) / n_seeds;
        auto seen = reformer(qk, eye, rot, opts) > 0;  // [B, H, T, T]
        covered[i] += (exact_weights * seen).sum(-1).mean().item<double>() / n_seeds;
      }
      auto opts = core(1, 1, chunk, false);
      auto rot = reformer_draw_rotations(opts, D, 500 + seed, at::kDouble);
      err_no_hash += test::rel_error(reformer(qk, v, rot, opts), want) / n_seeds;
    }
    std::cout << "[ reformer ] " << (clustered ? "clustered" : "gaussian")
              << " inputs, NB=8, chunk=16, T=128, D=32, mean of " << n_seeds << " seeds x " << H
              << " heads (NB=1 positional chunks: rel. error " << std::setprecision(3)
              << err_no_hash << ")\n";
    for (size_t i = 0; i < rounds.size(); ++i) {
      std::cout << "[ reformer ]   n_hashes=" << rounds[i] << "  rel. error " << err[i]
                << "  exact mass covered " << covered[i] << "\n";
    }
    for (size_t i = 1; i < rounds.size(); ++i) {
      EXPECT_LT(err[i], err[i - 1]);
      EXPECT_GT(covered[i], covered[i - 1]);
    }
    EXPECT_LT(err.back(), 0.5 * err.front());
    if (clustered) EXPECT_LT(err.front(), 0.8 * err_no_hash);  // hashing beats position alone
  }
}

// ---- causality --------------------------------------------------------------------------------

// Causal LSH attention never attends to a future key, and outputs <= t ignore future inputs
// altogether, keys included: the causal window (the `chunk` most recent tokens of the query's own
// bucket) depends on earlier tokens only, however the future tokens hash. Plain chunk windows
// would fail the second half: a future token sorted into an earlier bucket shifts chunk bounds.
TEST(ReformerAttention, CausalNeverAttendsToFutureKeys) {
  const int64_t B = 2, H = 2, T = 40, D = 16;
  auto qk = randn({B, H, T, D}, 41), v = randn({B, H, T, D}, 42);
  auto kp = random_padding(B, T, 43);
  auto opts = core(4, 3, 8, true);
  auto rot = reformer_draw_rotations(opts, D, 44, at::kDouble);
  auto out = reformer(qk, v, rot, opts, kp);
  for (int64_t t : {0, 7, 19, 38}) {
    auto v2 = v.clone();
    v2.narrow(2, t + 1, T - t - 1).add_(randn({B, H, T - t - 1, D}, 45 + t) * 10);
    auto out2 = reformer(qk, v2, rot, opts, kp);
    EXPECT_TRUE(all_close(out2.narrow(2, 0, t + 1), out.narrow(2, 0, t + 1), 0, 0)) << "t=" << t;
  }
  for (int64_t t : {0, 7, 19, 38}) {
    auto qk2 = qk.clone();
    qk2.narrow(2, t + 1, T - t - 1).mul_(3).add_(randn({B, H, T - t - 1, D}, 46 + t));
    auto out2 = reformer(qk2, v, rot, opts, kp);
    EXPECT_TRUE(all_close(out2.narrow(2, 0, t + 1), out.narrow(2, 0, t + 1), 1e-12, 1e-12))
        << "t=" << t;
  }
  // v = I_T: output row i is query i's weight on every key.
  auto eye = at::eye(T, v.options()).expand({B, H, T, T});
  auto weights = reformer(qk, eye, rot, opts, kp);  // [B, H, T, T]
  auto future = at::ones({T, T}, at::TensorOptions().dtype(at::kBool)).triu(1);
  EXPECT_EQ(weights.masked_select(future).abs().max().item<double>(), 0.0);
  // Rows sum to 1 (or 0 for a query whose every visible key is padding) and padding gets no weight.
  auto sums = weights.sum(-1);
  EXPECT_TRUE(all_close(sums * (1 - sums), at::zeros_like(sums), 0, 1e-12));
  auto pad_weight = weights.masked_select(kp.logical_not().view({B, 1, 1, T}).expand_as(weights));
  if (pad_weight.numel() > 0) EXPECT_EQ(pad_weight.abs().max().item<double>(), 0.0);
}

// ---- determinism ------------------------------------------------------------------------------

TEST(ReformerAttention, SameSeedSameBucketsAndOutput) {
  const int64_t B = 2, H = 2, T = 33, D = 16;
  auto opts = core(8, 3, 8, false);
  torch::manual_seed(1);
  auto r1 = reformer_draw_rotations(opts, D, 123);
  torch::manual_seed(2);
  auto r2 = reformer_draw_rotations(opts, D, 123);
  auto r3 = reformer_draw_rotations(opts, D, 124);
  EXPECT_EQ(r1.sizes(), (std::vector<int64_t>{3, D, 4}));
  EXPECT_EQ(r1.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(r1, r2));
  EXPECT_FALSE(at::equal(r1, r3));
  EXPECT_TRUE(at::equal(reformer_draw_rotations(opts, D, 123, at::kDouble), r1.to(at::kDouble)));

  auto qk = randn({B, H, T, D}, 51), v = randn({B, H, T, D}, 52);
  auto h1 = reformer_hash(qk, r1, opts), h2 = reformer_hash(qk, r2, opts);
  EXPECT_EQ(h1.sizes(), (std::vector<int64_t>{B, H, 3, T}));
  EXPECT_EQ(h1.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(h1, h2));
  EXPECT_GE(h1.min().item<int64_t>(), 0);
  EXPECT_LT(h1.max().item<int64_t>(), 8);
  EXPECT_TRUE((h1 != h1.flatten()[0]).any().item<bool>());  // not all in one bucket
  // Hashing is invariant to positive scaling (argmax of a linear map).
  EXPECT_TRUE(at::equal(reformer_hash(qk * 3.5, r1, opts), h1));
  EXPECT_TRUE(at::equal(reformer(qk, v, r1, opts), reformer(qk, v, r2, opts)));

  auto one = core(1, 2, 8, false);
  auto h_one = reformer_hash(qk, reformer_draw_rotations(one, D, 1), one);
  EXPECT_EQ(h_one.sizes(), (std::vector<int64_t>{B, H, 2, T}));
  EXPECT_EQ(h_one.abs().max().item<int64_t>(), 0);
}

// ---- gradients --------------------------------------------------------------------------------

TEST(ReformerAttention, GradcheckFloat64) {
  for (bool causal : {false, true}) {
    for (bool padded : {false, true}) {
      SCOPED_TRACE("causal=" + std::to_string(causal) + " padded=" + std::to_string(padded));
      auto opts = core(2, 2, 2, causal);
      auto rot = reformer_draw_rotations(opts, 4, 61, at::kDouble);
      at::Tensor kp;
      if (padded) kp = at::tensor({1, 1, 0, 1, 1, 1}).to(at::kBool).view({1, 6});
      auto f = [&](const std::vector<at::Tensor>& in) {
        return reformer(in[0], in[1], rot, opts, kp);
      };
      EXPECT_TRUE(test::gradcheck(f, {randn({1, 1, 6, 4}, 62), randn({1, 1, 6, 4}, 63)}));
    }
  }
}

// ---- padding and errors -----------------------------------------------------------------------

TEST(ReformerAttention, AllPaddedRowsGiveZerosAndFiniteGrads) {
  const int64_t B = 2, H = 2, T = 21, D = 8;
  auto opts = core(4, 2, 4, true);
  auto rot = reformer_draw_rotations(opts, D, 71, at::kDouble);
  auto kp = at::ones({B, T}, at::TensorOptions().dtype(at::kBool));
  kp[1].fill_(false);  // batch 1: nothing real
  kp[0][0] = false;    // batch 0, causal: query 0 sees only padding
  auto qk = randn({B, H, T, D}, 72).requires_grad_(true);
  auto v = randn({B, H, T, D}, 73).requires_grad_(true);
  auto out = reformer(qk, v, rot, opts, kp);
  EXPECT_EQ(out[1].abs().max().item<double>(), 0.0);
  EXPECT_EQ(out[0].select(1, 0).abs().max().item<double>(), 0.0);
  EXPECT_TRUE(out.isfinite().all().item<bool>());
  (out * randn(out.sizes(), 74)).sum().backward();
  EXPECT_TRUE(qk.grad().isfinite().all().item<bool>());
  EXPECT_TRUE(v.grad().isfinite().all().item<bool>());
  EXPECT_EQ(v.grad()[1].abs().max().item<double>(), 0.0);
}

TEST(ReformerAttention, DropoutOnlyInTraining) {
  const int64_t B = 1, H = 2, T = 24, D = 8;
  auto opts = core(4, 2, 4, false);
  auto rot = reformer_draw_rotations(opts, D, 81, at::kDouble);
  auto qk = randn({B, H, T, D}, 82), v = randn({B, H, T, D}, 83);
  auto eval = reformer(qk, v, rot, opts);
  EXPECT_TRUE(at::equal(reformer(qk, v, rot, opts, {}, 0.5, false), eval));
  EXPECT_TRUE(at::equal(reformer(qk, v, rot, opts, {}, 0.0, true), eval));
  torch::manual_seed(0);
  auto train = reformer(qk, v, rot, opts, {}, 0.5, true);
  EXPECT_FALSE(at::equal(train, eval));
  EXPECT_TRUE(train.isfinite().all().item<bool>());
}

TEST(ReformerAttention, ClearErrors) {
  const int64_t D = 8;
  auto qk = randn({1, 2, 10, D}, 91), v = randn({1, 2, 10, D}, 92);
  auto ok = core(4, 2, 4, false);
  auto rot = reformer_draw_rotations(ok, D, 1, at::kDouble);
  auto has = [](const std::string& msg, const std::string& sub) {
    return msg.find(sub) != std::string::npos ? ::testing::AssertionSuccess()
                                              : ::testing::AssertionFailure() << msg;
  };
  EXPECT_TRUE(has(error_of([&] { reformer(qk, v, rot, core(3, 2, 4, false)); }),
                  "reformer_attention: expected `buckets` to be 1 or an even number >= 2, got 3"));
  EXPECT_TRUE(
      has(error_of([&] { reformer(qk, v, rot, core(4, 0, 4, false)); }), "`n_hashes` > 0, got 0"));
  EXPECT_TRUE(
      has(error_of([&] { reformer(qk, v, rot, core(4, 2, 0, false)); }), "`chunk` > 0, got 0"));
  EXPECT_TRUE(has(error_of([&] { reformer(qk, v, rot, core(8, 2, 4, false)); }),
                  "reformer_attention: expected `rotations` of shape [n_hashes, D, max(NB/2, 1)] "
                  "= [2, 8, 4], got [2, 8, 2]"));
  EXPECT_TRUE(has(error_of([&] { reformer_hash(qk, rot.narrow(1, 0, 4), ok); }),
                  "reformer_hash: expected `rotations`"));
  EXPECT_TRUE(has(error_of([&] { reformer(qk, v, {}, ok); }), "`rotations` must be given"));
  auto bad_kp = at::ones({1, 9}, at::TensorOptions().dtype(at::kBool));
  EXPECT_TRUE(has(error_of([&] { reformer(qk, v, rot, ok, bad_kp); }),
                  "reformer_attention: expected `key_padding` of shape [1, 10], got [1, 9]"));
  EXPECT_TRUE(
      has(error_of([&] { reformer(qk, v.narrow(2, 0, 9), rot, ok); }), "reformer_attention"));
  EXPECT_TRUE(has(error_of([&] { reformer(qk[0], v[0], rot, ok); }),
                  "reformer_attention: expected 4-D `q`"));
  EXPECT_TRUE(has(error_of([&] { reformer(qk, v, rot, ok, {}, 1.0, true); }),
                  "`dropout_p` in [0, 1), got 1"));
  EXPECT_TRUE(has(error_of([&] { reformer_draw_rotations(ok, 0, 1); }), "`head_dim` > 0, got 0"));
}

// ---- the mixer --------------------------------------------------------------------------------

MixerConfig small_config(bool causal = false) {
  MixerConfig c;
  c.dim = 32;
  c.heads = 2;
  c.causal = causal;
  c.max_len = 256;
  c.seed = 5;
  return c;
}

TEST(ReformerMixer, RejectsBadOptions) {
  auto cfg = small_config();
  auto has = [](const std::string& msg, const std::string& sub) {
    return msg.find(sub) != std::string::npos ? ::testing::AssertionSuccess()
                                              : ::testing::AssertionFailure() << msg;
  };
  EXPECT_TRUE(has(error_of([&] { Reformer(ReformerOptions(cfg).buckets(3)); }),
                  "reformer: option `buckets` must be 1 or an even number >= 2, got 3"));
  EXPECT_TRUE(has(error_of([&] { Reformer(ReformerOptions(cfg).buckets(0)); }),
                  "reformer: option `buckets` must be 1 or an even number >= 2, got 0"));
  EXPECT_TRUE(has(error_of([&] { Reformer(ReformerOptions(cfg).n_hashes(0)); }),
                  "reformer: option `n_hashes` must be > 0, got 0"));
  EXPECT_TRUE(has(error_of([&] { Reformer(ReformerOptions(cfg).chunk(0)); }),
                  "reformer: option `chunk` must be > 0, got 0"));
  EXPECT_TRUE(has(error_of([&] { Reformer(ReformerOptions(cfg).redraw(-1)); }),
                  "reformer: option `redraw` must be >= 0"));
  EXPECT_NO_THROW(Reformer(ReformerOptions(cfg).buckets(1)));
}

TEST(ReformerMixer, ForwardShapeBufferAndSharedQK) {
  auto cfg = small_config(true);
  Reformer m(ReformerOptions(cfg).buckets(4).n_hashes(2).chunk(8));
  m->eval();
  auto x = randn({2, 19, 32}, 101).to(at::kFloat);
  auto y = m->forward(x);
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_TRUE(y.isfinite().all().item<bool>());
  auto buffers = m->named_buffers();
  ASSERT_TRUE(buffers.contains("rotations"));
  EXPECT_EQ(buffers["rotations"].sizes(), (std::vector<int64_t>{2, 16, 2}));
  ReformerCoreOptions c = core(4, 2, 8, true);
  EXPECT_TRUE(at::equal(m->rotations(), reformer_draw_rotations(c, 16, cfg.seed)));
  EXPECT_FALSE(m->named_parameters().contains("wk.weight"));  // shared QK: no key projection
  // Padding accepted; eval is deterministic.
  auto kp = padding_mask_from_lengths(at::tensor({19, 11}, at::kLong), 19);
  auto y1 = m->forward(x, kp), y2 = m->forward(x, kp);
  EXPECT_TRUE(at::equal(y1, y2));
  // Works after moving to float64 (the buffer follows the module).
  m->to(at::kDouble);
  EXPECT_EQ(m->rotations().scalar_type(), at::kDouble);
  auto yd = m->forward(x.to(at::kDouble), kp);
  EXPECT_TRUE(all_close(yd, y1, 1e-4, 1e-5));
}

TEST(ReformerMixer, RedrawsEveryKTrainingCallsOnly) {
  auto cfg = small_config();
  auto x = randn({1, 16, 32}, 111).to(at::kFloat);
  Reformer m(ReformerOptions(cfg).buckets(4).n_hashes(1).chunk(4).redraw(2));
  auto r0 = m->rotations().clone();
  m->eval();
  for (int i = 0; i < 3; ++i) m->forward(x);
  EXPECT_TRUE(at::equal(m->rotations(), r0));  // fixed in eval
  m->train();
  m->forward(x);  // call 0
  m->forward(x);  // call 1
  EXPECT_TRUE(at::equal(m->rotations(), r0));
  m->forward(x);  // call 2: new draw
  auto r1 = m->rotations().clone();
  EXPECT_FALSE(at::equal(r1, r0));
  EXPECT_TRUE(at::equal(m->named_buffers()["rotations"], r1));  // still the registered buffer
  // Same seed, same sequence of draws.
  Reformer m2(ReformerOptions(cfg).buckets(4).n_hashes(1).chunk(4).redraw(2));
  m2->train();
  for (int i = 0; i < 3; ++i) m2->forward(x);
  EXPECT_TRUE(at::equal(m2->rotations(), r1));
  // redraw = 0: never.
  Reformer m3(ReformerOptions(cfg).buckets(4).n_hashes(1).chunk(4).redraw(0));
  m3->train();
  for (int i = 0; i < 4; ++i) m3->forward(x);
  EXPECT_TRUE(at::equal(m3->rotations(), r0));
}

}  // namespace
}  // namespace longseq
