// Fused causal FAVOR+ prefix sums (kernels/cpu/performer_causal) against the float64 naive loop
// (forward) and autograd through a dense float64 form of the same formula (backward), on odd
// lengths around the chunk, value dims 32/64/80/128, rows that see no key; then through
// performer_attention: fused vs composite for both feature maps, with padding, and memory.
#include <longseq/attention.h>
#include <longseq/impl.h>
#include <longseq/memory_tracker.h>
#include <ATen/Parallel.h>

#include "kernels/cpu/performer_attention.h"
#include "kernels/ref/attention_ref.h"
#include "test_util.h"

#include <cmath>
#include <limits>

namespace longseq {
namespace {

using test::mask_of;

// Dense differentiable form: W = (fq fkᵀ) ⊙ exp(m_j − m_t) ⊙ tril, out = W v / rowsum(W).
at::Tensor dense_causal(const at::Tensor& fq, const at::Tensor& fk, const at::Tensor& v,
                        const at::Tensor& m) {
  const int64_t T = fq.size(2);
  auto w = at::matmul(fq, fk.transpose(-2, -1));  // [B, H, T, T]
  if (m.defined()) w = w * (m.unsqueeze(-2) - m.unsqueeze(-1)).clamp_max(0).exp();
  w = w * at::ones({T, T}, fq.options()).tril();
  auto den = w.sum(-1, true);
  return at::matmul(w, v) / den.masked_fill(den == 0, 1);
}

struct Case {
  int64_t bh, t, r, dv, chunk;
  bool stabiliser, empty_rows;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << "BH" << c.bh << " T" << c.t << " R" << c.r << " Dv" << c.dv << " chunk " << c.chunk
      << (c.stabiliser ? " m" : "") << (c.empty_rows ? " empty-rows" : "");
}

struct Outputs {
  at::Tensor out, den, dfq, dfk, dv;
};

template <typename scalar_t>
Outputs run_kernel(const at::Tensor& fq, const at::Tensor& fk, const at::Tensor& v,
                   const at::Tensor& m, const at::Tensor& g, int64_t chunk) {
  cpu::PerformerCausalParams p;
  p.bh = fq.size(0) * fq.size(1);
  p.t = fq.size(2);
  p.r = fq.size(3);
  p.dv = v.size(3);
  p.chunk = chunk;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Outputs o;
  o.out = at::full(v.sizes(), nan, v.options());
  o.den = at::full({fq.size(0), fq.size(1), p.t}, nan, v.options());
  o.dfq = at::full(fq.sizes(), nan, fq.options());
  o.dfk = at::full(fk.sizes(), nan, fk.options());
  o.dv = at::full(v.sizes(), nan, v.options());
  const scalar_t* mp = m.defined() ? m.data_ptr<scalar_t>() : nullptr;
  cpu::performer_causal_forward<scalar_t>(fq.data_ptr<scalar_t>(), fk.data_ptr<scalar_t>(),
                                          v.data_ptr<scalar_t>(), mp, o.out.data_ptr<scalar_t>(),
                                          o.den.data_ptr<scalar_t>(), p);
  cpu::performer_causal_backward<scalar_t>(
      fq.data_ptr<scalar_t>(), fk.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(), mp,
      o.out.data_ptr<scalar_t>(), o.den.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(),
      o.dfq.data_ptr<scalar_t>(), o.dfk.data_ptr<scalar_t>(), o.dv.data_ptr<scalar_t>(), p);
  return o;
}

class PerformerCausalKernel : public ::testing::TestWithParam<Case> {};

TEST_P(PerformerCausalKernel, ForwardAndBackwardMatchReferences) {
  const auto c = GetParam();
  torch::manual_seed(21);
  const auto f64 = torch::kDouble;
  // Features as the op makes them: non-negative, with the stabiliser a running max.
  auto fq = torch::rand({1, c.bh, c.t, c.r}, f64);
  auto fk = torch::rand({1, c.bh, c.t, c.r}, f64);
  if (c.empty_rows) fk.narrow(2, 0, std::min<int64_t>(3, c.t)).zero_();  // first queries see none
  auto v = torch::randn({1, c.bh, c.t, c.dv}, f64);
  at::Tensor m;
  if (c.stabiliser) m = std::get<0>(at::cummax(torch::randn({1, c.bh, c.t}, f64) * 3, 2));
  auto g = torch::randn({1, c.bh, c.t, c.dv}, f64);

  auto want = ref::performer_causal_naive(fq, fk, v, m);
  auto leaves = std::vector<at::Tensor>{fq, fk, v};
  auto want_g = test::grads_of(
      [&](const std::vector<at::Tensor>& in) { return dense_causal(in[0], in[1], in[2], m); },
      leaves, g);

  auto got = run_kernel<double>(fq, fk, v, m, g, c.chunk);
  EXPECT_TRUE(test::all_close(got.out, want, 1e-10, 1e-12)) << "float64 out";
  EXPECT_TRUE(test::all_close(got.dfq, want_g[0], 1e-9, 1e-11)) << "float64 dfq";
  EXPECT_TRUE(test::all_close(got.dfk, want_g[1], 1e-9, 1e-11)) << "float64 dfk";
  EXPECT_TRUE(test::all_close(got.dv, want_g[2], 1e-9, 1e-11)) << "float64 dv";
  if (c.empty_rows) {
    EXPECT_TRUE(got.out.narrow(2, 0, std::min<int64_t>(3, c.t)).eq(0).all().item<bool>());
  }

  const auto f32 = [](const at::Tensor& x) { return x.defined() ? x.to(torch::kFloat) : x; };
  auto got32 = run_kernel<float>(f32(fq), f32(fk), f32(v), f32(m), f32(g), c.chunk);
  EXPECT_TRUE(test::all_close(got32.out, want, 1e-4, 1e-5)) << "float32 out";
  EXPECT_TRUE(test::all_close(got32.dfq, want_g[0], 2e-3, 1e-4)) << "float32 dfq";
  EXPECT_TRUE(test::all_close(got32.dfk, want_g[1], 2e-3, 1e-4)) << "float32 dfk";
  EXPECT_TRUE(test::all_close(got32.dv, want_g[2], 2e-3, 1e-4)) << "float32 dv";
}

INSTANTIATE_TEST_SUITE_P(
    OddShapes, PerformerCausalKernel,
    ::testing::Values(Case{2, 1, 8, 32, 64, true, false}, Case{3, 5, 16, 64, 64, true, true},
                      Case{2, 63, 33, 80, 64, true, false}, Case{2, 64, 16, 128, 64, false, true},
                      Case{2, 65, 24, 32, 64, true, true}, Case{1, 65, 7, 80, 7, true, false},
                      Case{2, 1000, 32, 64, 64, true, true},
                      Case{1, 1000, 16, 80, 13, false, false}));

// Through the op: the fused path against the composite path (float64) for both feature maps,
// causal or not, with key padding and odd head dims, and against central differences.
// Covers the fused feature maps (kernels/cpu/performer_features) in both forms.
TEST(PerformerFused, OpMatchesCompositeForBothKernelsCausalOrNot) {
  torch::manual_seed(22);
  for (bool causal : {false, true})
    for (auto kernel : {PerformerKernel::kSoftmax, PerformerKernel::kRelu}) {
      for (int64_t t : {5, 63, 65, 200}) {
        for (int64_t d : {32, 80}) {
          auto q = torch::randn({2, 2, t, d}, torch::kDouble);
          auto k = torch::randn({2, 2, t, d}, torch::kDouble);
          auto v = torch::randn({2, 2, t, d}, torch::kDouble);
          auto pad = torch::rand({2, t}) > 0.3;
          pad[0].narrow(0, 0, std::min<int64_t>(2, t)).fill_(false);
          auto omega = performer_draw_features(48, d, 3, torch::kDouble);
          PerformerCoreOptions o;
          o.kernel = kernel;
          o.chunk = 16;
          auto f = [&](const std::vector<at::Tensor>& in) {
            return performer_attention(in[0], in[1], in[2], omega, o, mask_of(causal, pad));
          };
          auto probe = torch::randn({2, 2, t, d}, torch::kDouble);
          at::Tensor want;
          std::vector<at::Tensor> want_g;
          {
            ImplGuard g(Impl::kComposite);
            want = f({q, k, v});
            want_g = test::grads_of(f, {q, k, v}, probe);
          }
          ImplGuard g(Impl::kFused);
          const std::string where = "T " + std::to_string(t) + " D " + std::to_string(d) +
                                    (kernel == PerformerKernel::kRelu ? " relu" : " softmax") +
                                    (causal ? " causal" : "");
          auto got = f({q, k, v});
          EXPECT_TRUE(test::all_close(got, want, 1e-10, 1e-12)) << where;
          auto got_g = test::grads_of(f, {q, k, v}, probe);
          for (int n = 0; n < 3; ++n) {
            EXPECT_TRUE(test::all_close(got_g[n], want_g[n], 1e-8, 1e-10))
                << where << " grad " << n;
          }
        }
      }
    }
}

// The non-causal kernel at R = 256, Dv = 64 runs blocks of 32 rows, and a head's sums over rows
// in up to four groups when B·H < 4: T = 333 has 11 blocks with a tail, in 4 groups at B·H = 1
// and 2 at B·H = 2, 3. Against the composite in float64, and the same bits on 1, 2 and 3 threads.
TEST(PerformerFused, NonCausalRowBlocksAndGroupsMatchCompositeOnAnyThreadCount) {
  torch::manual_seed(24);
  const int64_t t = 333, d = 64;
  for (auto [b, h] : {std::pair<int64_t, int64_t>{1, 1}, {1, 2}, {3, 1}, {2, 2}}) {
    const std::string where = "B " + std::to_string(b) + " H " + std::to_string(h);
    auto q = torch::randn({b, h, t, d}, torch::kDouble),
         k = torch::randn({b, h, t, d}, torch::kDouble),
         v = torch::randn({b, h, t, d}, torch::kDouble);
    auto omega = performer_draw_features(256, d, 5, torch::kDouble);
    auto pad = torch::rand({b, t}) > 0.2;
    PerformerCoreOptions o;
    auto f = [&](const std::vector<at::Tensor>& in) {
      return performer_attention(in[0], in[1], in[2], in[3], o, mask_of(false, pad));
    };
    auto probe = torch::randn({b, h, t, d}, torch::kDouble);
    at::Tensor want;
    std::vector<at::Tensor> want_g;
    {
      ImplGuard g(Impl::kComposite);
      want = f({q, k, v, omega});
      want_g = test::grads_of(
          [&](const std::vector<at::Tensor>& in) {
            return f({in[0], in[1], in[2], omega});
          },
          {q, k, v}, probe);
    }
    ImplGuard g(Impl::kFused);
    EXPECT_TRUE(test::all_close(f({q, k, v, omega}), want, 1e-10, 1e-12)) << where;
    auto got_g = test::grads_of(
        [&](const std::vector<at::Tensor>& in) {
          return f({in[0], in[1], in[2], omega});
        },
        {q, k, v}, probe);
    for (int n = 0; n < 3; ++n) {
      EXPECT_TRUE(test::all_close(got_g[n], want_g[n], 1e-8, 1e-10)) << where << " grad " << n;
    }
    // float32 bits on 1, 2, 3 threads
    const int saved = at::get_num_threads();
    std::vector<std::vector<at::Tensor>> runs;
    for (int threads : {1, 2, 3}) {
      at::set_num_threads(threads);
      std::vector<at::Tensor> in = {q.to(torch::kFloat).requires_grad_(),
                                    k.to(torch::kFloat).requires_grad_(),
                                    v.to(torch::kFloat).requires_grad_()};
      auto out = f({in[0], in[1], in[2], omega.to(torch::kFloat)});
      (out * probe.to(torch::kFloat)).sum().backward();
      runs.push_back({out, in[0].grad(), in[1].grad(), in[2].grad()});
    }
    at::set_num_threads(saved);
    for (size_t r = 1; r < runs.size(); ++r) {
      for (size_t i = 0; i < runs[0].size(); ++i) {
        EXPECT_TRUE(test::all_close(runs[r][i], runs[0][i], 0, 0))
            << where << " tensor " << i << ", run " << r;
      }
    }
  }
}

// An empty batch (B·H = 0, which the non-causal row split once divided by) gives empty outputs
// and gradients, causal or not.
TEST(PerformerFused, EmptyBatch) {
  ImplGuard g(Impl::kFused);
  auto omega = performer_draw_features(256, 64, 5);
  PerformerCoreOptions o;
  for (bool causal : {false, true}) {
    auto q = torch::randn({0, 2, 5, 64}, torch::requires_grad());
    auto out = performer_attention(q, q, q, omega, o, mask_of(causal));
    EXPECT_EQ(out.sizes(), q.sizes());
    out.sum().backward();
    EXPECT_EQ(q.grad().sizes(), q.sizes());
  }
}

TEST(PerformerFused, DispatchFollowsTheSwitch) {
  auto q = torch::randn({1, 2, 16, 8}, torch::requires_grad());
  auto omega = performer_draw_features(8, 8, 1);
  PerformerCoreOptions o;
  const auto causal = mask_of(true);
  auto name = [](const at::Tensor& t) { return t.grad_fn() ? t.grad_fn()->name() : std::string(); };
  {
    ImplGuard g(Impl::kFused);
    EXPECT_NE(name(performer_attention(q, q, q, omega, o, causal)).find("PerformerCausal"),
              std::string::npos);
  }
  ImplGuard g(Impl::kComposite);
  EXPECT_EQ(name(performer_attention(q, q, q, omega, o, causal)).find("PerformerCausal"),
            std::string::npos);
}

TEST(PerformerFused, GradientMatchesCentralDifferences) {
  ImplGuard g(Impl::kFused);
  torch::manual_seed(23);
  auto omega = performer_draw_features(6, 3, 5, torch::kDouble);
  for (bool causal : {false, true})
    for (auto kernel : {PerformerKernel::kSoftmax, PerformerKernel::kRelu}) {
      PerformerCoreOptions o;
      o.kernel = kernel;
      o.chunk = 3;
      auto pad = padding_mask_from_lengths(torch::tensor({7, 5}), 7);
      auto f = [&](const std::vector<at::Tensor>& in) {
        return performer_attention(in[0], in[1], in[2], omega, o, mask_of(causal, pad));
      };
      EXPECT_TRUE(test::gradcheck(
          f, {torch::randn({2, 2, 7, 3}), torch::randn({2, 2, 7, 3}), torch::randn({2, 2, 7, 3})}));
    }
}

// The composite saves per-chunk weights [T, c] and N − 1 carried states [R, Dv]; the fused path
// saves den [T] on top of the features both paths share.
TEST(PerformerFused, CausalUsesLessMemoryThanComposite) {
  MemoryTracker::install();
  auto growth = [](int64_t t, Impl impl) {
    ImplGuard g(impl);
    auto q = torch::randn({1, 2, t, 64}, torch::requires_grad());
    auto omega = performer_draw_features(128, 64, 0);
    PerformerCoreOptions o;
    const int64_t before = MemoryTracker::current_bytes();
    MemoryTracker::reset_peak();
    performer_attention(q, q, q, omega, o, mask_of(true)).sum().backward();
    return static_cast<double>(MemoryTracker::peak_bytes() - before);
  };
  const double f2 = growth(2048, Impl::kFused), f4 = growth(4096, Impl::kFused);
  const double c4 = growth(4096, Impl::kComposite);
  EXPECT_LT(f4 / f2, 2.2) << f2 << " -> " << f4;
  EXPECT_LT(f4, c4) << "fused " << f4 << " vs composite " << c4;
}

}  // namespace
}  // namespace longseq
