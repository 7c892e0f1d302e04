// The op profiler (longseq/profile.h) and the counted work it and `bench` judge rates by
// (longseq/roofline.h, longseq/op_work.h, MixerSpec::work).
#include <longseq/attention.h>
#include <longseq/impl.h>
#include <longseq/machine.h>
#include <longseq/op_work.h>
#include <longseq/profile.h>
#include <longseq/registry.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>

namespace longseq {
namespace {

// Fixed rates, so that shares of the limit are arithmetic, not measurements.
const MachineLimits kLimits{100.0, 10.0};

TEST(Roofline, GemmWorkAndTheLimitItSets) {
  const Work w = gemm_work(2, 3, 5);
  EXPECT_EQ(w.flops, 2.0 * 2 * 3 * 5);
  EXPECT_EQ(w.bytes, 4.0 * (2 * 3 + 3 * 5 + 2 * 5));
  // 1e9 FLOPs at 100 GFLOP/s: 10 ms; 1e6 bytes at 10 GB/s: 0.1 ms.
  EXPECT_DOUBLE_EQ(limit_ms({1e9, 1e6}, kLimits), 10.0);
  EXPECT_STREQ(limit_kind({1e9, 1e6}, kLimits), "flops");
  EXPECT_DOUBLE_EQ(limit_ms({1e6, 1e9}, kLimits), 100.0);
  EXPECT_STREQ(limit_kind({1e6, 1e9}, kLimits), "bytes");
}

// The attention counts by hand: B = 1, H = 2, T = S = 5, D = 3, Dv = 4.
TEST(Roofline, ExactAttentionWorkByHand) {
  const double nc_pairs = 25, c_pairs = 15;  // 5·5, and 1 + 2 + 3 + 4 + 5
  EXPECT_EQ(exact_attention_work(1, 2, 5, 5, 3, 4, false, false).flops, 2 * 2 * nc_pairs * 7);
  EXPECT_EQ(exact_attention_work(1, 2, 5, 5, 3, 4, true, false).flops, 2 * 2 * c_pairs * 7);
  EXPECT_EQ(exact_attention_work(1, 2, 5, 5, 3, 4, true, true).flops,
            2 * 2 * c_pairs * (3 * 3 + 2 * 4));
  // Forward bytes: q, k, v read, out and the log-sum-exp written, per head.
  EXPECT_EQ(exact_attention_work(1, 2, 5, 5, 3, 4, false, false).bytes,
            4.0 * 2 * (5 * 3 + 5 * 3 + 5 * 4 + 5 * 4 + 5));
}

// The recurrent weight is charged from memory once per call when it fits in half the last-level
// cache, else at every step; the FLOPs are the same either way.
TEST(Roofline, RecurrentWeightReadsFollowTheCache) {
  const int64_t B = 2, T = 100, G = 4;
  const double cache = static_cast<double>(cpu_info().last_level_cache_bytes);
  for (int64_t H : {8, 4096}) {  // W_hh 1 KiB, and 256 MiB
    SCOPED_TRACE("H " + std::to_string(H));
    const double w = 4.0 * G * H * H;
    const double io = 4.0 * (2 * B * T * G * H + 2 * B * T * H);
    const Work fwd = rnn_work(B, T, H, G, false);
    EXPECT_EQ(fwd.flops, T * 2.0 * B * G * H * H);
    EXPECT_DOUBLE_EQ(fwd.bytes, (w <= cache / 2 ? w : T * w) + io);
  }
  // On a machine whose cache sysfs names, the small weight is read once: fewer bytes than the
  // T reads of W_hh alone.
  if (cache > 0) EXPECT_LT(rnn_work(B, T, 8, G, false).bytes, 4.0 * T * G * 8 * 8);
}

TEST(Roofline, EveryMixerCountsItsWork) {
  MixerConfig c;
  c.dim = 32;
  c.heads = 2;
  c.max_len = 512;
  for (const auto& spec : mixer_registry()) {
    SCOPED_TRACE(spec.name);
    const auto fwd = mixer_work(spec.name, c, {}, 2, 256, "fwd");
    const auto both = mixer_work(spec.name, c, {}, 2, 256, "fwd+bwd");
    const auto longer = mixer_work(spec.name, c, {}, 2, 512, "fwd+bwd");
    EXPECT_GT(fwd.flops, 0);
    EXPECT_GT(fwd.bytes, 0);
    EXPECT_GT(both.flops, 1.5 * fwd.flops) << "a backward costs at least half a forward";
    EXPECT_GT(both.bytes, fwd.bytes);
    EXPECT_GT(longer.flops, 1.9 * both.flops) << "twice the length, at least about twice the work";
  }
}

// exact's mixer work is its four projections plus the attention, each by hand.
TEST(Roofline, ExactMixerWorkIsProjectionsPlusAttention) {
  MixerConfig c;
  c.dim = 32;
  c.heads = 2;
  c.causal = true;
  const double rows = 3 * 100, C = 32;
  const double proj_fwd = 4 * 2 * rows * C * C;
  const double attn_fwd = 2 * 3 * 2 * (100.0 * 101 / 2) * (16 + 16);
  EXPECT_DOUBLE_EQ(mixer_work("exact", c, {}, 3, 100, "fwd").flops, proj_fwd + attn_fwd);
  const double attn_bwd = 2 * 3 * 2 * (100.0 * 101 / 2) * (3 * 16 + 2 * 16);
  EXPECT_DOUBLE_EQ(mixer_work("exact", c, {}, 3, 100, "fwd+bwd").flops,
                   3 * proj_fwd + attn_fwd + attn_bwd);
  EXPECT_THROW(mixer_work("exact", c, {}, 3, 100, "bwd"), c10::Error);
}

const ProfileRow* find_row(const ProfileReport& r, const std::string& name) {
  for (const auto& row : r.rows)
    if (row.name == name) return &row;
  return nullptr;
}

TEST(Profile, ExactMixerStepShowsGemmsKernelsAndTheirWork) {
  ImplGuard fused(Impl::kFused);
  MixerConfig c;
  c.dim = 32;
  c.heads = 2;
  c.causal = true;
  torch::manual_seed(0);
  auto mixer = make_mixer("exact", c, {});
  auto x = torch::randn({2, 64, 32}, torch::requires_grad());
  auto step = [&] { mixer->forward(x).sum().backward(); };
  step();  // warm-up
  const auto report = profile_region(step, kLimits);

  ASSERT_FALSE(report.rows.empty());
  EXPECT_GT(report.wall_ms, 0);
  double self = 0;
  int64_t events = 0;
  bool gemm = false;
  for (const auto& row : report.rows) {
    EXPECT_GE(row.self_ms, 0) << row.name;
    EXPECT_GE(row.calls, 1) << row.name;
    self += row.self_ms;
    events += row.calls;
    if (row.category == "gemm" && row.work.flops > 0) gemm = true;
  }
  EXPECT_TRUE(gemm) << "the projections' GEMMs, with LibTorch's FLOP counts";
  // Self times partition the calling thread's time in ops, which is within the clock's. The
  // collector's times are whole microseconds: each event's self time may be one off.
  EXPECT_NEAR(self, report.in_ops_ms, 0.01 * report.in_ops_ms + 0.001 * double(events));
  EXPECT_LE(report.in_ops_ms, report.wall_ms * 1.001 + 0.01);

  const auto* fwd = find_row(report, "longseq::flash_attention_forward");
  const auto* bwd = find_row(report, "longseq::flash_attention_backward");
  ASSERT_NE(fwd, nullptr);
  ASSERT_NE(bwd, nullptr);
  EXPECT_EQ(fwd->category, "kernel");
  EXPECT_EQ(fwd->calls, 1);
  EXPECT_DOUBLE_EQ(fwd->work.flops, exact_attention_work(2, 2, 64, 64, 16, 16, true, false).flops);
  EXPECT_DOUBLE_EQ(bwd->work.flops, exact_attention_work(2, 2, 64, 64, 16, 16, true, true).flops);
  if (fwd->self_ms > 0) {
    EXPECT_NEAR(fwd->gflops, fwd->work.flops / (fwd->self_ms * 1e6), 1e-9 * fwd->gflops);
    EXPECT_NEAR(fwd->pct_of_limit, 100 * limit_ms(fwd->work, kLimits) / fwd->self_ms,
                1e-9 * fwd->pct_of_limit);
  }
  double limit = 0;
  for (const auto& row : report.rows) limit += limit_ms(row.work, kLimits);
  EXPECT_NEAR(report.limit_ms, limit, 1e-9 * limit);

  // The trace: chrome's event format, with the kernels in it.
  const auto trace = nlohmann::json::parse(report.trace_json);
  ASSERT_TRUE(trace.contains("traceEvents"));
  bool kernel_event = false;
  for (const auto& e : trace["traceEvents"]) {
    EXPECT_EQ(e["ph"], "X");
    EXPECT_GE(e["dur"].get<int64_t>(), 0);
    if (e["name"] == "longseq::flash_attention_backward") kernel_event = true;
  }
  EXPECT_TRUE(kernel_event);

  const auto json = profile_to_json(report);
  EXPECT_EQ(json["ops"].size(), report.rows.size());
  const std::string table = format_profile(report, 3);
  EXPECT_NE(table.find("more ops"), std::string::npos) << table;
  EXPECT_NE(table.find("outside any op"), std::string::npos) << table;
}

// Outside a profile the kernels' counts go nowhere: a later profile holds only its own.
TEST(Profile, CountsOnlyItsOwnRegionAndRefusesNesting) {
  ImplGuard fused(Impl::kFused);
  auto q = torch::randn({1, 1, 8, 4});
  exact_attention(q, q, q);  // not profiled
  const auto report = profile_region([&] { exact_attention(q, q, q); }, kLimits);
  const auto* fwd = find_row(report, "longseq::flash_attention_forward");
  ASSERT_NE(fwd, nullptr);
  EXPECT_EQ(fwd->calls, 1);
  EXPECT_DOUBLE_EQ(fwd->work.flops, exact_attention_work(1, 1, 8, 8, 4, 4, false, false).flops);
  EXPECT_THROW(profile_region([] { profile_region([] {}, kLimits); }, kLimits), c10::Error);
  // The refused nesting left no profile running.
  EXPECT_NO_THROW(profile_region([] {}, kLimits));
}

}  // namespace
}  // namespace longseq
