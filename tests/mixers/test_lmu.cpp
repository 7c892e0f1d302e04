// Legendre Memory Unit: the FFT memory equals the recurrence, the memory holds the sliding window
// of its input (delayed input decoded with the shifted Legendre polynomials), step() == forward().
#include <longseq/mixers/lmu.h>

#include "test_util.h"

#include <cmath>

namespace longseq {
namespace {

LmuOptions options(int64_t order, double window) {
  MixerConfig c;
  c.dim = 6;
  c.heads = 1;
  c.max_len = 400;
  c.causal = true;
  return LmuOptions(c).order(order).window(window).channels(2);
}

TEST(Lmu, FftMemoryEqualsTheRecurrence) {
  torch::manual_seed(0);
  Lmu m(options(12, 30));
  auto u = torch::randn({2, 77, 2}, torch::kDouble);
  EXPECT_TRUE(test::all_close(m->memory(u), m->memory_recurrent(u), 1e-9, 1e-10));
}

TEST(Lmu, MemoryReconstructsTheDelayedInput) {
  // A slow signal: u(t − θ') ≈ Σ_i m_i(t) P̃_i(θ'/θ) for θ' across the window.
  Lmu m(options(16, 40));
  auto t = torch::arange(300, torch::kDouble);
  auto signal = torch::sin(t * 0.05) + 0.5 * torch::cos(t * 0.11 + 1.0);            // [T]
  auto mem = m->memory(signal.view({1, 300, 1}).expand({1, 300, 2}).contiguous());  // [1, T, 2, d]
  for (double r : {0.0, 0.25, 0.5, 1.0}) {
    auto dec = lmu_legendre_decoder(16, r);           // [d]
    auto rec = at::matmul(mem.select(2, 0)[0], dec);  // [T]
    const int64_t delay = static_cast<int64_t>(std::lround(r * 40));
    auto want = signal.narrow(0, 100 - delay, 200);
    auto got = rec.narrow(0, 100, 200);
    const double err = ((got - want).abs().max() / want.abs().max()).item<double>();
    EXPECT_LT(err, 0.05) << "delay " << r << "·θ";
  }
}

TEST(Lmu, StepEqualsForward) {
  torch::manual_seed(1);
  Lmu m(options(8, 16));
  m->to(torch::kDouble);
  auto x = torch::randn({2, 25, 6}, torch::kDouble);
  auto want = m->forward(x);
  DecodeState s;
  auto a = m->step(x.narrow(1, 0, 10), s);
  auto b = m->step(x.narrow(1, 10, 15), s);
  EXPECT_TRUE(test::all_close(at::cat({a, b}, 1), want, 1e-9, 1e-10));
}

}  // namespace
}  // namespace longseq
