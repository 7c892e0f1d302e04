// Scans (kernels/cpu/scan): the fused linear and selective scans against the float64 naive loops
// (forward) and autograd through the composite paths (backward), central differences, stepping
// one position at a time, the log-space form, poisoned outputs, errors and determinism.
#include <longseq/impl.h>
#include <longseq/scan.h>

#include "kernels/cpu/scan.h"
#include "kernels/ref/scan_ref.h"
#include "test_util.h"

#include <ATen/Parallel.h>

#include <limits>
#include <tuple>

namespace longseq {
namespace {

// ---- inputs ------------------------------------------------------------------------------------

// Decay coefficients in (−0.99, 0.99): a long scan stays bounded and sign changes are covered.
at::Tensor make_decay(at::IntArrayRef sizes) {
  return (torch::rand(sizes, torch::kDouble) * 2 - 1) * 0.99;
}

struct SsInputs {
  at::Tensor u, delta, A, Bm, Cm, D, h0;  // float64
  std::vector<at::Tensor> list() const { return {u, delta, A, Bm, Cm, D, h0}; }
};

// Mamba-like ranges: delta = softplus(·) in (0, ~2), A = −exp(·) < 0.
SsInputs make_ss(int64_t b, int64_t t, int64_t e, int64_t n, bool with_d, bool with_h0) {
  SsInputs in;
  in.u = torch::randn({b, t, e}, torch::kDouble);
  in.delta = torch::softplus(torch::randn({b, t, e}, torch::kDouble) - 1);
  in.A = -torch::exp(torch::randn({e, n}, torch::kDouble) * 0.5);
  in.Bm = torch::randn({b, t, n}, torch::kDouble);
  in.Cm = torch::randn({b, t, n}, torch::kDouble);
  if (with_d) in.D = torch::randn({e}, torch::kDouble);
  if (with_h0) in.h0 = torch::randn({b, e, n}, torch::kDouble);
  return in;
}

at::Tensor to(const at::Tensor& x, at::ScalarType dtype) {
  return x.defined() ? x.to(dtype) : at::Tensor();
}

// ---- linear scan vs reference ------------------------------------------------------------------

using LinearCase = std::tuple<int64_t, int64_t, int64_t, bool>;  // B, T, C, with h0

// Gradients of sum(h ⊙ probe) w.r.t. a, b and h0 (undefined when h0 is not given).
std::vector<at::Tensor> linear_grads(const at::Tensor& a, const at::Tensor& b, const at::Tensor& h0,
                                     const at::Tensor& probe, bool composite) {
  auto aa = a.detach().requires_grad_(true), bb = b.detach().requires_grad_(true);
  auto hh = h0.defined() ? h0.detach().requires_grad_(true) : at::Tensor();
  auto h = composite ? linear_scan_composite(aa, bb, hh) : linear_scan(aa, bb, hh);
  (h * probe).sum().backward();
  return {aa.grad(), bb.grad(), hh.defined() ? hh.grad() : at::Tensor()};
}

class ScanLinearVsReference : public ::testing::TestWithParam<LinearCase> {};

TEST_P(ScanLinearVsReference, ForwardAndBackward) {
  const auto [B, T, C, with_h0] = GetParam();
  ImplGuard fused(Impl::kFused);
  torch::manual_seed(11);
  auto a = make_decay({B, T, C});
  auto b = torch::randn({B, T, C}, torch::kDouble);
  auto h0 = with_h0 ? torch::randn({B, C}, torch::kDouble) : at::Tensor();

  auto want = ref::linear_scan_naive(a, b, h0);
  EXPECT_TRUE(test::all_close(linear_scan(a, b, h0), want, 1e-12, 1e-12)) << "float64 fused";
  EXPECT_TRUE(test::all_close(linear_scan_composite(a, b, h0), want, 1e-12, 1e-12))
      << "float64 composite";
  auto got32 = linear_scan(a.to(torch::kFloat), b.to(torch::kFloat), to(h0, torch::kFloat));
  EXPECT_EQ(got32.scalar_type(), torch::kFloat);
  EXPECT_TRUE(test::all_close(got32, want, 1e-5, 1e-5)) << "float32 fused";

  auto probe = torch::randn({B, T, C}, torch::kDouble);
  auto want_g = linear_grads(a, b, h0, probe, /*composite=*/true);
  auto got_g = linear_grads(a, b, h0, probe, /*composite=*/false);
  auto got_g32 = linear_grads(a.to(torch::kFloat), b.to(torch::kFloat), to(h0, torch::kFloat),
                              probe.to(torch::kFloat), /*composite=*/false);
  const char* names[] = {"da", "db", "dh0"};
  for (int n = 0; n < (with_h0 ? 3 : 2); ++n) {
    EXPECT_TRUE(test::all_close(got_g[n], want_g[n], 1e-10, 1e-11)) << "float64 " << names[n];
    EXPECT_TRUE(test::all_close(got_g32[n], want_g[n], 1e-4, 1e-4)) << "float32 " << names[n];
  }
  if (!with_h0) EXPECT_FALSE(got_g[2].defined());
}

INSTANTIATE_TEST_SUITE_P(Scan, ScanLinearVsReference,
                         ::testing::Combine(::testing::Values(1, 3),
                                            ::testing::Values(1, 5, 63, 64, 65, 1000),
                                            ::testing::Values(1, 7, 80), ::testing::Bool()));

TEST(ScanLinear, GradientMatchesCentralDifferences) {
  ImplGuard fused(Impl::kFused);
  torch::manual_seed(5);
  auto f = [](const std::vector<at::Tensor>& in) { return linear_scan(in[0], in[1], in[2]); };
  EXPECT_TRUE(
      test::gradcheck(f, {make_decay({2, 5, 3}), torch::randn({2, 5, 3}), torch::randn({2, 3})}));
  auto f0 = [](const std::vector<at::Tensor>& in) { return linear_scan(in[0], in[1]); };
  EXPECT_TRUE(test::gradcheck(f0, {make_decay({1, 4, 7}), torch::randn({1, 4, 7})}));
}

TEST(ScanLinear, SteppingOneAtATimeMatchesTheWholeSequence) {
  ImplGuard fused(Impl::kFused);
  torch::manual_seed(6);
  const int64_t B = 2, T = 37, C = 70;
  auto a = make_decay({B, T, C}).to(torch::kFloat);
  auto b = torch::randn({B, T, C});
  auto h0 = torch::randn({B, C});
  auto whole = linear_scan(a, b, h0);  // [B, T, C]
  at::Tensor h = h0;
  std::vector<at::Tensor> steps;
  for (int64_t t = 0; t < T; ++t) {
    auto out = linear_scan(a.narrow(1, t, 1), b.narrow(1, t, 1), h);  // [B, 1, C]
    h = out.select(1, 0);                                             // [B, C]
    steps.push_back(out);
  }
  EXPECT_TRUE(test::all_close(at::cat(steps, 1), whole, 1e-5, 1e-5));
}

TEST(ScanLinear, NonContiguousInputs) {
  ImplGuard fused(Impl::kFused);
  torch::manual_seed(8);
  auto a = make_decay({9, 2, 6}).transpose(0, 1);  // [B, T, C] strided
  auto b = torch::randn({6, 9, 2}, torch::kDouble).permute({2, 1, 0});
  auto h0 = torch::randn({6, 2}, torch::kDouble).t();
  EXPECT_TRUE(
      test::all_close(linear_scan(a, b, h0), ref::linear_scan_naive(a, b, h0), 1e-12, 1e-12));
}

TEST(ScanLinear, DispatchFollowsTheSwitch) {
  auto a = torch::rand({1, 4, 3}, torch::requires_grad());
  auto b = torch::rand({1, 4, 3});
  auto name = [](const at::Tensor& t) { return t.grad_fn() ? t.grad_fn()->name() : std::string(); };
  {
    ImplGuard g(Impl::kFused);
    EXPECT_NE(name(linear_scan(a, b)).find("LinearScan"), std::string::npos);
    // Integer or half inputs are not covered by the kernel: composite (which rejects ints).
    EXPECT_THROW(
        linear_scan(torch::ones({1, 2, 2}, torch::kLong), torch::ones({1, 2, 2}, torch::kLong)),
        c10::Error);
  }
  ImplGuard g(Impl::kComposite);
  EXPECT_EQ(name(linear_scan(a, b)).find("LinearScan"), std::string::npos);
}

TEST(ScanLinear, EmptyShapes) {
  ImplGuard fused(Impl::kFused);
  auto a = torch::rand({2, 0, 3}), b = torch::rand({2, 0, 3});
  EXPECT_EQ(linear_scan(a, b).sizes(), (std::vector<int64_t>{2, 0, 3}));
  EXPECT_EQ(linear_scan(torch::rand({2, 4, 0}), torch::rand({2, 4, 0})).sizes(),
            (std::vector<int64_t>{2, 4, 0}));
}

TEST(ScanLinear, ErrorsNameTheArgument) {
  auto a = torch::rand({2, 5, 7}), b = torch::rand({2, 5, 7});
  EXPECT_TRUE(test::throws_with([&] { linear_scan(a[0], b[0]); },
                                "linear_scan: expected 3-D `a` [B, T, C], got 2-D"));
  EXPECT_TRUE(test::throws_with(
      [&] {
        linear_scan(a, torch::rand({2, 5, 8}));
      },
      "linear_scan: expected `b` of shape [B, T, C] = [2, 5, 7], got "
      "[2, 5, 8]"));
  EXPECT_TRUE(test::throws_with(
      [&] {
        linear_scan(a, b, torch::rand({2, 5}));
      },
      "linear_scan: expected `h0` of shape [B, C] = [2, 7], got [2, 5]"));
  EXPECT_TRUE(test::throws_with([&] { linear_scan(a, b.to(torch::kDouble)); },
                                "linear_scan: expected `b` of dtype Float (as `a`), got Double"));
}

// ---- log-space scan ----------------------------------------------------------------------------

TEST(ScanLogSpace, MatchesLinearScanOfTheExponentials) {
  ImplGuard fused(Impl::kFused);
  torch::manual_seed(9);
  for (auto [B, T, C] :
       {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {3, 5, 7}, {2, 64, 80}, {1, 65, 7}}) {
    // a in (0.5, 1): |Σ log a| stays ~T/3, within float32's 1e-5 for these T (see scan.h).
    auto log_a = torch::log(torch::rand({B, T, C}, torch::kDouble) * 0.5 + 0.5);
    auto log_b = torch::randn({B, T, C}, torch::kDouble) * 0.5;
    auto log_h0 = torch::randn({B, C}, torch::kDouble);
    for (bool with_h0 : {false, true}) {
      auto lh0 = with_h0 ? log_h0 : at::Tensor();
      auto h0 = with_h0 ? log_h0.exp() : at::Tensor();
      auto want = linear_scan(log_a.exp(), log_b.exp(), h0);
      EXPECT_TRUE(test::all_close(log_space_scan(log_a, log_b, lh0), want, 1e-10, 0))
          << "float64 B" << B << " T" << T << " C" << C << " h0 " << with_h0;
      auto want32 = linear_scan(log_a.exp().to(torch::kFloat), log_b.exp().to(torch::kFloat),
                                to(h0, torch::kFloat));
      auto got32 =
          log_space_scan(log_a.to(torch::kFloat), log_b.to(torch::kFloat), to(lh0, torch::kFloat));
      EXPECT_TRUE(test::all_close(got32, want32, 1e-5, 0))
          << "float32 B" << B << " T" << T << " C" << C << " h0 " << with_h0;
    }
  }
}

TEST(ScanLogSpace, GradientsMatchLinearScan) {
  ImplGuard fused(Impl::kFused);
  torch::manual_seed(10);
  auto la = torch::log(torch::rand({2, 9, 5}, torch::kDouble) * 0.5 + 0.5).requires_grad_(true);
  auto lb = torch::randn({2, 9, 5}, torch::kDouble).requires_grad_(true);
  auto lh = torch::randn({2, 5}, torch::kDouble).requires_grad_(true);
  auto probe = torch::randn({2, 9, 5}, torch::kDouble);
  auto g_log = torch::autograd::grad({(log_space_scan(la, lb, lh) * probe).sum()}, {la, lb, lh});
  auto g_lin = torch::autograd::grad({(linear_scan(la.exp(), lb.exp(), lh.exp()) * probe).sum()},
                                     {la, lb, lh});
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(test::all_close(g_log[i], g_lin[i], 1e-9, 1e-12)) << i;
}

TEST(ScanLogSpace, ErrorsNameTheArgument) {
  auto x = torch::rand({2, 5, 7});
  EXPECT_TRUE(test::throws_with(
      [&] {
        log_space_scan(x, x, torch::rand({3, 7}));
      },
      "log_space_scan: expected `log_h0` of shape [B, C] = [2, 7], got "
      "[3, 7]"));
  EXPECT_TRUE(test::throws_with([&] { log_space_scan(x, x[0]); },
                                "log_space_scan: expected `log_b` of shape [B, T, C] = [2, 5, 7]"));
}

// ---- selective scan vs reference ---------------------------------------------------------------

struct SsCase {
  int64_t b, t, e, n;
  bool with_d, with_h0;
};

void PrintTo(const SsCase& c, std::ostream* os) {
  *os << "B" << c.b << " T" << c.t << " E" << c.e << " N" << c.n << (c.with_d ? " D" : "")
      << (c.with_h0 ? " h0" : "");
}

// Gradients of sum(y ⊙ py) + sum(h_T ⊙ ph) w.r.t. every input (undefined for absent D, h0).
std::vector<at::Tensor> ss_grads(const SsInputs& in, const at::Tensor& py, const at::Tensor& ph,
                                 bool composite) {
  std::vector<at::Tensor> x;
  for (const auto& t : in.list()) x.push_back(t.defined() ? t.detach().requires_grad_(true) : t);
  auto [y, hl] = composite ? selective_scan_composite(x[0], x[1], x[2], x[3], x[4], x[5], x[6])
                           : selective_scan(x[0], x[1], x[2], x[3], x[4], x[5], x[6]);
  ((y * py).sum() + (hl * ph).sum()).backward();
  std::vector<at::Tensor> g;
  for (const auto& t : x) g.push_back(t.defined() ? t.grad() : at::Tensor());
  return g;
}

SsInputs cast(const SsInputs& in, at::ScalarType dtype) {
  return {to(in.u, dtype),  to(in.delta, dtype), to(in.A, dtype), to(in.Bm, dtype),
          to(in.Cm, dtype), to(in.D, dtype),     to(in.h0, dtype)};
}

class SelectiveScanVsReference : public ::testing::TestWithParam<SsCase> {};

TEST_P(SelectiveScanVsReference, ForwardAndBackward) {
  const auto c = GetParam();
  ImplGuard fused(Impl::kFused);
  torch::manual_seed(13);
  const auto in = make_ss(c.b, c.t, c.e, c.n, c.with_d, c.with_h0);
  const auto in32 = cast(in, torch::kFloat);

  auto [want_y, want_h] =
      ref::selective_scan_naive(in.u, in.delta, in.A, in.Bm, in.Cm, in.D, in.h0);
  auto [y, h] = selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm, in.D, in.h0);
  EXPECT_TRUE(test::all_close(y, want_y, 1e-10, 1e-11)) << "float64 fused y";
  EXPECT_TRUE(test::all_close(h, want_h, 1e-10, 1e-11)) << "float64 fused h_T";
  auto [cy, ch] = selective_scan_composite(in.u, in.delta, in.A, in.Bm, in.Cm, in.D, in.h0);
  EXPECT_TRUE(test::all_close(cy, want_y, 1e-10, 1e-11)) << "float64 composite y";
  EXPECT_TRUE(test::all_close(ch, want_h, 1e-10, 1e-11)) << "float64 composite h_T";
  auto [y32, h32] = selective_scan(in32.u, in32.delta, in32.A, in32.Bm, in32.Cm, in32.D, in32.h0);
  EXPECT_EQ(y32.scalar_type(), torch::kFloat);
  EXPECT_TRUE(test::all_close(y32, want_y, 1e-4, 1e-4)) << "float32 fused y";
  EXPECT_TRUE(test::all_close(h32, want_h, 1e-4, 1e-4)) << "float32 fused h_T";

  auto py = torch::randn({c.b, c.t, c.e}, torch::kDouble);
  auto ph = torch::randn({c.b, c.e, c.n}, torch::kDouble);
  auto want_g = ss_grads(in, py, ph, /*composite=*/true);
  auto got_g = ss_grads(in, py, ph, /*composite=*/false);
  auto got_g32 = ss_grads(in32, py.to(torch::kFloat), ph.to(torch::kFloat), /*composite=*/false);
  const char* names[] = {"du", "ddelta", "dA", "dBm", "dCm", "dD", "dh0"};
  for (int i = 0; i < 7; ++i) {
    if (!want_g[i].defined()) {
      EXPECT_FALSE(got_g[i].defined()) << names[i];
      continue;
    }
    EXPECT_TRUE(test::all_close(got_g[i], want_g[i], 1e-9, 1e-10)) << "float64 " << names[i];
    // float32: sums over up to T·E terms (dA, dD) or E·N terms; relative to the gradient's scale.
    const double scale = want_g[i].abs().max().item<double>();
    EXPECT_TRUE(test::all_close(got_g32[i], want_g[i], 1e-3, 1e-4 * (1 + scale)))
        << "float32 " << names[i];
  }
}

INSTANTIATE_TEST_SUITE_P(
    SelectiveScan, SelectiveScanVsReference,
    ::testing::Values(SsCase{1, 1, 1, 1, false, false}, SsCase{3, 1, 7, 16, true, true},
                      SsCase{1, 5, 7, 5, true, false}, SsCase{3, 5, 80, 16, false, true},
                      SsCase{1, 63, 80, 5, true, true}, SsCase{3, 64, 7, 1, false, false},
                      SsCase{3, 65, 80, 16, true, true}, SsCase{1, 64, 1, 16, true, true},
                      SsCase{3, 63, 7, 16, false, true}, SsCase{1, 5, 80, 1, false, false},
                      SsCase{3, 65, 1, 5, true, true}, SsCase{1, 1000, 7, 16, true, true},
                      SsCase{3, 1000, 80, 5, true, false},
                      // several channel blocks with a partial last one; groups of 2 blocks (B 1,
                      // E 300: 19 blocks in 10 groups); one group per row (B 17).
                      SsCase{2, 9, 37, 4, true, true}, SsCase{1, 9, 300, 3, true, true},
                      SsCase{17, 5, 20, 4, true, true},
                      // states past one 16-state tile: two tiles, and one tile plus a tail
                      SsCase{2, 33, 19, 32, true, true}, SsCase{1, 40, 20, 21, false, true}));

TEST(SelectiveScan, GradientMatchesCentralDifferences) {
  ImplGuard fused(Impl::kFused);
  torch::manual_seed(14);
  auto f = [](const std::vector<at::Tensor>& x) {
    auto [y, h] = selective_scan(x[0], x[1], x[2], x[3], x[4], x[5], x[6]);
    return at::cat({y.reshape(-1), h.reshape(-1)});
  };
  auto in = make_ss(2, 4, 3, 2, true, true);
  EXPECT_TRUE(test::gradcheck(f, in.list()));
  auto f0 = [](const std::vector<at::Tensor>& x) {
    return std::get<0>(selective_scan(x[0], x[1], x[2], x[3], x[4]));
  };
  auto in0 = make_ss(1, 3, 17, 3, false, false);  // two channel blocks
  EXPECT_TRUE(test::gradcheck(f0, {in0.u, in0.delta, in0.A, in0.Bm, in0.Cm}));
}

TEST(SelectiveScan, SteppingOneAtATimeMatchesTheWholeSequence) {
  ImplGuard fused(Impl::kFused);
  torch::manual_seed(15);
  const auto in = cast(make_ss(2, 29, 21, 16, true, true), torch::kFloat);
  auto [y, h_last] = selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm, in.D, in.h0);
  at::Tensor h = in.h0;
  std::vector<at::Tensor> ys;
  for (int64_t t = 0; t < in.u.size(1); ++t) {
    auto [yt, ht] = selective_scan(in.u.narrow(1, t, 1), in.delta.narrow(1, t, 1), in.A,
                                   in.Bm.narrow(1, t, 1), in.Cm.narrow(1, t, 1), in.D, h);
    ys.push_back(yt);
    h = ht;
  }
  EXPECT_TRUE(test::all_close(at::cat(ys, 1), y, 1e-5, 1e-5));
  EXPECT_TRUE(test::all_close(h, h_last, 1e-5, 1e-5));
}

TEST(SelectiveScan, BackwardIsDeterministicAcrossThreadCounts) {
  ImplGuard fused(Impl::kFused);
  torch::manual_seed(16);
  const auto in = cast(make_ss(2, 50, 70, 16, true, true), torch::kFloat);
  auto py = torch::randn({2, 50, 70}), ph = torch::randn({2, 70, 16});
  const int prev = at::get_num_threads();
  at::set_num_threads(1);
  auto g1 = ss_grads(in, py, ph, false);
  at::set_num_threads(std::max(2, prev));
  auto g2 = ss_grads(in, py, ph, false);
  auto g3 = ss_grads(in, py, ph, false);
  at::set_num_threads(prev);
  for (size_t i = 0; i < g1.size(); ++i) {
    EXPECT_TRUE(g1[i].equal(g2[i])) << i;
    EXPECT_TRUE(g2[i].equal(g3[i])) << i;
  }
}

TEST(SelectiveScan, NonContiguousInputsAndOneOutputUsed) {
  ImplGuard fused(Impl::kFused);
  torch::manual_seed(17);
  auto in = make_ss(2, 6, 9, 4, true, true);
  in.u = in.u.transpose(0, 1).contiguous().transpose(0, 1);  // [B, T, E] strided
  in.A = in.A.t().contiguous().t();                          // [E, N] strided
  auto [y, h] = selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm, in.D, in.h0);
  auto [wy, wh] = ref::selective_scan_naive(in.u, in.delta, in.A, in.Bm, in.Cm, in.D, in.h0);
  EXPECT_TRUE(test::all_close(y, wy, 1e-10, 1e-11));
  // Only h_T used: the undefined y gradient is zero.
  auto x = in.Cm.detach().requires_grad_(true);
  auto hl = std::get<1>(selective_scan(in.u, in.delta, in.A, in.Bm, x, in.D, in.h0));
  hl.sum().backward();
  EXPECT_TRUE(x.grad().eq(0).all().item<bool>());  // h_T does not depend on Cm
}

TEST(SelectiveScan, DispatchFollowsTheSwitch) {
  auto in = cast(make_ss(1, 4, 3, 2, true, false), torch::kFloat);
  auto u = in.u.requires_grad_(true);
  auto name = [](const at::Tensor& t) { return t.grad_fn() ? t.grad_fn()->name() : std::string(); };
  {
    ImplGuard g(Impl::kFused);
    EXPECT_NE(name(std::get<0>(selective_scan(u, in.delta, in.A, in.Bm, in.Cm, in.D)))
                  .find("SelectiveScan"),
              std::string::npos);
  }
  ImplGuard g(Impl::kComposite);
  EXPECT_EQ(name(std::get<0>(selective_scan(u, in.delta, in.A, in.Bm, in.Cm, in.D)))
                .find("SelectiveScan"),
            std::string::npos);
}

TEST(SelectiveScan, EmptyTime) {
  ImplGuard fused(Impl::kFused);
  auto in = make_ss(2, 0, 3, 4, true, true);
  auto [y, h] = selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm, in.D, in.h0);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 0, 3}));
  EXPECT_TRUE(h.equal(in.h0));
}

TEST(SelectiveScan, ErrorsNameTheArgument) {
  const auto in = cast(make_ss(2, 5, 7, 4, true, true), torch::kFloat);
  auto call = [&](const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                  const at::Tensor& Bm, const at::Tensor& Cm, const at::Tensor& D,
                  const at::Tensor& h0) { return selective_scan(u, delta, A, Bm, Cm, D, h0); };
  EXPECT_TRUE(test::throws_with([&] { call(in.u[0], in.delta, in.A, in.Bm, in.Cm, in.D, in.h0); },
                                "selective_scan: expected 3-D `u` [B, T, E], got 2-D"));
  EXPECT_TRUE(test::throws_with(
      [&] {
        call(in.u, in.delta, torch::rand({8, 4}), in.Bm, in.Cm, in.D, in.h0);
      },
      "selective_scan: expected `A` of shape [E, N] = [7, N], got [8, 4]"));
  EXPECT_TRUE(test::throws_with(
      [&] { call(in.u, in.delta.narrow(1, 0, 4), in.A, in.Bm, in.Cm, in.D, in.h0); },
      "selective_scan: expected `delta` of shape [B, T, E] = [2, 5, 7], got [2, 4, 7]"));
  EXPECT_TRUE(test::throws_with(
      [&] {
        call(in.u, in.delta, in.A, torch::rand({2, 5, 3}), in.Cm, in.D, in.h0);
      },
      "selective_scan: expected `Bm` of shape [B, T, N] = [2, 5, 4], got [2, 5, 3]"));
  EXPECT_TRUE(test::throws_with(
      [&] { call(in.u, in.delta, in.A, in.Bm, in.Cm.unsqueeze(0), in.D, in.h0); },
      "selective_scan: expected `Cm` of shape [B, T, N] = [2, 5, 4], got [1, 2, 5, 4]"));
  EXPECT_TRUE(
      test::throws_with([&] { call(in.u, in.delta, in.A, in.Bm, in.Cm, torch::rand({6}), in.h0); },
                        "selective_scan: expected `D` of shape [E] = [7], got [6]"));
  EXPECT_TRUE(test::throws_with(
      [&] {
        call(in.u, in.delta, in.A, in.Bm, in.Cm, in.D, torch::rand({2, 4, 7}));
      },
      "selective_scan: expected `h0` of shape [B, E, N] = [2, 7, 4], got [2, 4, 7]"));
  EXPECT_TRUE(test::throws_with(
      [&] { call(in.u, in.delta, in.A.to(torch::kDouble), in.Bm, in.Cm, in.D, in.h0); },
      "selective_scan: expected `A` of dtype Float (as `u`), got Double"));
}

// ---- kernels write every output element --------------------------------------------------------

at::Tensor nan_like(at::IntArrayRef sizes) {
  return at::empty(sizes, at::kDouble).fill_(std::numeric_limits<double>::quiet_NaN());
}

TEST(ScanKernel, LinearScanWritesEveryOutput) {
  torch::manual_seed(18);
  const int64_t B = 3, T = 65, C = 70;  // C: one full and one partial channel block
  cpu::LinearScanParams p{B, T, C};
  auto a = make_decay({B, T, C}), b = torch::randn({B, T, C}, torch::kDouble);
  auto h0 = torch::randn({B, C}, torch::kDouble), dout = torch::randn({B, T, C}, torch::kDouble);
  for (bool with_h0 : {false, true}) {
    const double* h0p = with_h0 ? h0.data_ptr<double>() : nullptr;
    auto h = nan_like({B, T, C});
    cpu::linear_scan_forward<double>(a.data_ptr<double>(), b.data_ptr<double>(), h0p,
                                     h.data_ptr<double>(), p);
    EXPECT_TRUE(test::all_close(h, ref::linear_scan_naive(a, b, with_h0 ? h0 : at::Tensor()), 1e-12,
                                1e-12));
    auto da = nan_like({B, T, C}), db = nan_like({B, T, C}), dh0 = nan_like({B, C});
    cpu::linear_scan_backward<double>(a.data_ptr<double>(), h.data_ptr<double>(), h0p,
                                      dout.data_ptr<double>(), da.data_ptr<double>(),
                                      db.data_ptr<double>(), dh0.data_ptr<double>(), p);
    EXPECT_TRUE(da.isfinite().all().item<bool>());
    EXPECT_TRUE(db.isfinite().all().item<bool>());
    EXPECT_TRUE(dh0.isfinite().all().item<bool>());
  }
}

TEST(ScanKernel, SelectiveScanWritesEveryOutput) {
  torch::manual_seed(19);
  for (auto [B, E, with_opt] : {std::tuple<int64_t, int64_t, bool>{1, 37, true},
                                {3, 37, false},
                                {1, 300, true},
                                {17, 20, true}}) {
    const int64_t T = 7, N = 5;
    cpu::SelectiveScanParams p{B, T, E, N};
    auto in = make_ss(B, T, E, N, true, true);
    const double* D = with_opt ? in.D.data_ptr<double>() : nullptr;
    const double* h0 = with_opt ? in.h0.data_ptr<double>() : nullptr;
    auto y = nan_like({B, T, E}), hl = nan_like({B, E, N});
    cpu::selective_scan_forward<double>(in.u.data_ptr<double>(), in.delta.data_ptr<double>(),
                                        in.A.data_ptr<double>(), in.Bm.data_ptr<double>(),
                                        in.Cm.data_ptr<double>(), D, h0, y.data_ptr<double>(),
                                        hl.data_ptr<double>(), p);
    auto [wy, wh] =
        ref::selective_scan_naive(in.u, in.delta, in.A, in.Bm, in.Cm,
                                  with_opt ? in.D : at::Tensor(), with_opt ? in.h0 : at::Tensor());
    EXPECT_TRUE(test::all_close(y, wy, 1e-10, 1e-11)) << "B" << B << " E" << E;
    EXPECT_TRUE(test::all_close(hl, wh, 1e-10, 1e-11)) << "B" << B << " E" << E;
    auto dy = torch::randn({B, T, E}, torch::kDouble),
         dhl = torch::randn({B, E, N}, torch::kDouble);
    std::vector<at::Tensor> g = {nan_like({B, T, E}), nan_like({B, T, E}), nan_like({E, N}),
                                 nan_like({B, T, N}), nan_like({B, T, N}), nan_like({E}),
                                 nan_like({B, E, N})};
    cpu::selective_scan_backward<double>(
        in.u.data_ptr<double>(), in.delta.data_ptr<double>(), in.A.data_ptr<double>(),
        in.Bm.data_ptr<double>(), in.Cm.data_ptr<double>(), D, h0, dy.data_ptr<double>(),
        dhl.data_ptr<double>(), g[0].data_ptr<double>(), g[1].data_ptr<double>(),
        g[2].data_ptr<double>(), g[3].data_ptr<double>(), g[4].data_ptr<double>(),
        g[5].data_ptr<double>(), g[6].data_ptr<double>(), p);
    for (size_t i = 0; i < g.size(); ++i) {
      EXPECT_TRUE(g[i].isfinite().all().item<bool>()) << "grad " << i << " B" << B << " E" << E;
    }
  }
}

}  // namespace
}  // namespace longseq
