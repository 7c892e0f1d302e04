// longseq/machine.h: the CPU's ISA, OpenBLAS's core against it, the thread-count pin.
#include <longseq/machine.h>

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <thread>

namespace longseq {
namespace {

TEST(Machine, IsaLevelFollowsTheFeatures) {
  const CpuInfo& c = cpu_info();
  EXPECT_FALSE(c.vendor.empty());
  EXPECT_GE(c.logical_cpus, 1);
  const bool avx512 = c.avx512f && c.avx512bw && c.avx512vl && c.avx512dq && c.avx512cd;
  const int want = c.avx2 && c.fma ? (avx512 ? 3 : 2) : (c.avx ? 1 : 0);
  EXPECT_EQ(c.isa_level, want);
  const auto f = c.features();
  EXPECT_EQ(std::count(f.begin(), f.end(), "avx2"), c.avx2 ? 1 : 0);
  // What the compiler's own cpuid reading says (target_clones dispatch uses it).
  EXPECT_EQ(c.avx2, static_cast<bool>(__builtin_cpu_supports("avx2")));
  EXPECT_EQ(c.avx512f, static_cast<bool>(__builtin_cpu_supports("avx512f")));
}

// Where sysfs describes CPU 0's caches, the last level is read (an L2 at least, here).
TEST(Machine, LastLevelCacheFromSysfs) {
  const CpuInfo& c = cpu_info();
  EXPECT_GE(c.last_level_cache_bytes, 0);
  if (std::ifstream("/sys/devices/system/cpu/cpu0/cache/index0/size").good()) {
    EXPECT_GE(c.last_level_cache_bytes, 256 * 1024);
    EXPECT_EQ(c.last_level_cache_source, "sysfs");
  } else if (sysconf(_SC_LEVEL3_CACHE_SIZE) > 0 || sysconf(_SC_LEVEL2_CACHE_SIZE) > 0) {
    EXPECT_GE(c.last_level_cache_bytes, 256 * 1024);  // the CPUID fallback
    EXPECT_EQ(c.last_level_cache_source, "cpuid");
  }
}

TEST(Machine, BlasInfoComparesTheCoreWithTheCpu) {
  const BlasInfo b = blas_info();
  EXPECT_FALSE(b.core.empty());
  EXPECT_NE(b.config.find("OpenBLAS"), std::string::npos) << b.config;
  EXPECT_EQ(b.below_cpu, b.core_level < cpu_info().isa_level);
  EXPECT_EQ(b.better_cores.empty(), !b.below_cpu);
}

// Whatever core OpenBLAS runs in this process, its sgemm agrees with a plain loop (a core that
// computes wrong results on this CPU fails here; the CLI's chosen core is checked by
// cli.env_blas_*).
TEST(Machine, SgemmAgreesWithANaiveLoop) { EXPECT_LT(sgemm_error_vs_naive(), 1e-5); }

TEST(Machine, KernelVariantIsOneOfTheClones) {
  const std::string v = kernel_isa_variant();
  EXPECT_TRUE(v == "avx512f" || v == "avx2" || v == "default") << v;
}

// A new thread starts with OpenMP's default count; pin_thread_count() gives it LibTorch's, which
// every OpenBLAS call on it then follows.
TEST(Machine, PinThreadCountGivesANewThreadLibTorchsCount) {
  const int saved = at::get_num_threads();
  at::set_num_threads(1);
  int before = 0, after = 0;
  std::thread([&] {
    before = omp_get_max_threads();
    pin_thread_count();
    after = omp_get_max_threads();
  }).join();
  at::set_num_threads(saved);
  EXPECT_EQ(after, 1) << "OpenMP's default in a new thread was " << before;
}

}  // namespace
}  // namespace longseq
