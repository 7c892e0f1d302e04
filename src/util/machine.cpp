// What this machine is and whether longseq runs at its speed on it (longseq/machine.h).
//
// The BLAS trap this file exists for: Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernels
// from the CPU's family and model, and a CPU newer than the build (Intel family 6 model 207)
// gets an old core: Prescott (SSE3) on that Xeon, 6× below its AVX-512 rate. The fix is
// OPENBLAS_CORETYPE, read once when OpenBLAS loads, so a process can
// only get it by starting again: fix_blas_core_and_reexec().
#include <longseq/machine.h>
#include <longseq/memory_tracker.h>

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <cblas.h>
#include <cpuid.h>
#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <set>

namespace longseq {
namespace {

constexpr const char* kStageEnv = "LONGSEQ_BLAS_STAGE";        // "present" | "fix:<i>"
constexpr const char* kReplacedEnv = "LONGSEQ_BLAS_REPLACED";  // OpenBLAS's own choice

// Set once by fix_blas_core_and_reexec() in the process it settles on.
std::string g_replaced_core;
bool g_coretype_set_by_longseq = false;

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

uint64_t xcr0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

CpuInfo read_cpu() {
  CpuInfo c;
  unsigned a = 0, b = 0, cx = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &cx, &d)) return c;
  const unsigned max_leaf = a;
  char vendor[13] = {};
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &cx, 4);
  c.vendor = vendor;

  __get_cpuid(1, &a, &b, &cx, &d);
  const unsigned base_family = (a >> 8) & 0xF, base_model = (a >> 4) & 0xF;
  c.family = int(base_family == 0xF ? base_family + ((a >> 20) & 0xFF) : base_family);
  c.model_number =
      int(base_family == 0x6 || base_family == 0xF ? base_model | (((a >> 16) & 0xF) << 4)
                                                   : base_model);
  c.sse42 = cx & (1u << 20);
  const bool osxsave = cx & (1u << 27);
  const uint64_t xcr = osxsave ? xcr0() : 0;
  const bool os_avx = (xcr & 0x6) == 0x6;          // XMM and YMM state
  const bool os_avx512 = (xcr & 0xE6) == 0xE6;     // + opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr & 0x60000) == 0x60000;  // TILECFG, TILEDATA
  c.avx = os_avx && (cx & (1u << 28));
  c.fma = os_avx && (cx & (1u << 12));

  if (max_leaf >= 7) {
    __get_cpuid_count(7, 0, &a, &b, &cx, &d);
    c.avx2 = os_avx && (b & (1u << 5));
    c.avx512f = os_avx512 && (b & (1u << 16));
    c.avx512dq = os_avx512 && (b & (1u << 17));
    c.avx512cd = os_avx512 && (b & (1u << 28));
    c.avx512bw = os_avx512 && (b & (1u << 30));
    c.avx512vl = os_avx512 && (b & (1u << 31));
    c.avx512_fp16 = os_avx512 && (d & (1u << 23));
    c.amx = os_amx && (d & (1u << 24));
    __get_cpuid_count(7, 1, &a, &b, &cx, &d);
    c.avx512_bf16 = os_avx512 && (a & (1u << 5));
  }

  unsigned ext = 0;
  __get_cpuid(0x80000000, &ext, &b, &cx, &d);
  if (ext >= 0x80000004) {
    char brand[49] = {};
    for (unsigned leaf = 0; leaf < 3; ++leaf) {
      unsigned r[4];
      __get_cpuid(0x80000002 + leaf, &r[0], &r[1], &r[2], &r[3]);
      std::memcpy(brand + 16 * leaf, r, 16);
    }
    std::string s = brand;
    s.erase(0, s.find_first_not_of(' '));
    s.erase(s.find_last_not_of(' ') + 1);
    c.model = s;
  }

  cpu_set_t set;
  CPU_ZERO(&set);
  c.logical_cpus = sched_getaffinity(0, sizeof(set), &set) == 0
                       ? CPU_COUNT(&set)
                       : static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));

  // Physical cores: distinct (package, core) pairs of the CPUs this process may use. LibTorch's
  // default thread count is this number, OpenMP's the logical CPUs.
  std::set<std::pair<long, long>> cores;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    long package = -1, core = -1;
    std::ifstream(dir + "physical_package_id") >> package;
    std::ifstream(dir + "core_id") >> core;
    if (core >= 0) cores.insert({package, core});
  }
  c.physical_cores = static_cast<int>(cores.size());

  // Caches of CPU 0: sysfs sizes read "32768K"; instruction caches do not count.
  for (int index = 0; index < 16; ++index) {
    const std::string dir =
        "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    std::string type, size;
    std::ifstream(dir + "type") >> type;
    std::ifstream(dir + "size") >> size;
    if (type.empty() || size.empty()) break;
    if (type == "Instruction") continue;
    long long bytes = std::atoll(size.c_str());
    if (size.back() == 'K') bytes *= 1024;
    if (size.back() == 'M') bytes *= 1024 * 1024;
    c.last_level_cache_bytes = std::max(c.last_level_cache_bytes, bytes);
    c.last_level_cache_source = "sysfs";
  }
  // Some virtual machines have no cache folder in sysfs (seen on a Zen 5 guest); glibc then reads
  // the sizes from CPUID, where a guest may report more than one core complex has.
  if (c.last_level_cache_bytes == 0) {
    for (int name : {_SC_LEVEL3_CACHE_SIZE, _SC_LEVEL2_CACHE_SIZE}) {
      const long bytes = sysconf(name);
      if (bytes > 0) {
        c.last_level_cache_bytes = bytes;
        c.last_level_cache_source = "cpuid";
        break;
      }
    }
  }

  c.isa_level = 0;
  if (c.avx) c.isa_level = 1;
  if (c.avx2 && c.fma) c.isa_level = 2;
  if (c.isa_level == 2 && c.avx512f && c.avx512bw && c.avx512vl && c.avx512dq && c.avx512cd) {
    c.isa_level = 3;
  }
  return c;
}

// The ISA level of an OpenBLAS core name (openblas_get_corename()), by the kernels it runs.
int core_level(std::string core) {
  std::transform(core.begin(), core.end(), core.begin(), ::tolower);
  for (const char* name : {"skylakex", "cooperlake", "sapphirerapids"}) {
    if (core == name) return 3;
  }
  for (const char* name : {"haswell", "zen", "excavator"}) {
    if (core == name) return 2;
  }
  for (const char* name : {"sandybridge", "bulldozer", "piledriver", "steamroller"}) {
    if (core == name) return 1;
  }
  return 0;
}

// OPENBLAS_CORETYPE values whose kernels the CPU runs, best first, down to just above `floor`.
std::vector<std::string> cores_for(const CpuInfo& cpu, int floor) {
  std::vector<std::string> out;
  // SKYLAKEX for every AVX-512 CPU: COOPERLAKE (and SAPPHIRERAPIDS) add bf16 routines only, with
  // the same sgemm/dgemm kernels (236-242 against 228-238 GFLOP/s measured on Zen 5), and
  // OpenBLAS 0.3.21 does not take COOPERLAKE from OPENBLAS_CORETYPE ("Core not found").
  if (cpu.isa_level >= 3) out.push_back("SKYLAKEX");
  if (cpu.isa_level >= 2 && floor < 2) out.push_back("HASWELL");
  if (cpu.isa_level >= 1 && floor < 1) out.push_back("SANDYBRIDGE");
  return out;
}

void print_fixed_line(const BlasInfo& info) {
  std::fprintf(stderr,
               "longseq: OpenBLAS chose core %s, below this CPU (%s); re-ran with "
               "OPENBLAS_CORETYPE=%s (core %s). LONGSEQ_BLAS_FIX=0 keeps OpenBLAS's choice.\n",
               info.replaced_core.c_str(), isa_level_name(cpu_info().isa_level),
               env_or_empty("OPENBLAS_CORETYPE").c_str(), info.core.c_str());
}

[[noreturn]] void reexec(char** argv) {
  std::fflush(stdout);
  std::fflush(stderr);
  execv("/proc/self/exe", argv);
  // execv only returns on failure; nothing of this process has run yet, so stopping is safe.
  std::fprintf(stderr, "longseq: error: could not re-execute /proc/self/exe: %s\n",
               std::strerror(errno));
  std::_Exit(1);
}

}  // namespace

std::vector<std::string> CpuInfo::features() const {
  std::vector<std::string> out;
  const std::pair<bool, const char*> all[] = {{sse42, "sse4.2"},
                                              {avx, "avx"},
                                              {avx2, "avx2"},
                                              {fma, "fma"},
                                              {avx512f, "avx512f"},
                                              {avx512bw, "avx512bw"},
                                              {avx512vl, "avx512vl"},
                                              {avx512dq, "avx512dq"},
                                              {avx512cd, "avx512cd"},
                                              {avx512_bf16, "avx512_bf16"},
                                              {avx512_fp16, "avx512_fp16"},
                                              {amx, "amx"}};
  for (const auto& [has, name] : all) {
    if (has) out.push_back(name);
  }
  return out;
}

const CpuInfo& cpu_info() {
  static const CpuInfo info = read_cpu();
  return info;
}

const char* isa_level_name(int level) {
  switch (level) {
    case 3: return "avx512";
    case 2: return "avx2";
    case 1: return "avx";
    default: return "sse";
  }
}

BlasInfo blas_info() {
  BlasInfo b;
  b.config = openblas_get_config();
  b.core = openblas_get_corename();
  switch (openblas_get_parallel()) {
    case 0: b.threading = "sequential"; break;
    case 1: b.threading = "pthreads"; break;
    default: b.threading = "openmp"; break;
  }
  b.core_level = core_level(b.core);
  b.below_cpu = b.core_level < cpu_info().isa_level;
  if (b.below_cpu) b.better_cores = cores_for(cpu_info(), b.core_level);
  b.user_set = !env_or_empty("OPENBLAS_L2_SIZE").empty() ||
               (!env_or_empty("OPENBLAS_CORETYPE").empty() && !g_coretype_set_by_longseq &&
                env_or_empty(kStageEnv).empty());
  b.replaced_core = g_replaced_core;
  return b;
}

void warn_once_if_blas_below_cpu() {
  static std::once_flag once;
  std::call_once(once, [] {
    const BlasInfo b = blas_info();
    if (!b.below_cpu || b.user_set) return;
    TORCH_WARN("longseq: OpenBLAS runs its ", b.core, " kernels, below this CPU (",
               isa_level_name(cpu_info().isa_level),
               "): every GEMM runs several times slower. "
               "Start the process with OPENBLAS_CORETYPE=",
               b.better_cores.front(),
               " (the `longseq` tool does this itself; `longseq env` shows the result).");
  });
}

void fix_blas_core_and_reexec(char** argv) {
  if (env_or_empty("LONGSEQ_BLAS_FIX") == "0") return;
  const std::string stage = env_or_empty(kStageEnv);
  if (stage.empty()) {
    const std::string present = env_or_empty("LONGSEQ_TEST_BLAS_CORETYPE");
    if (!present.empty() && !blas_info().user_set) {
      setenv("OPENBLAS_CORETYPE", present.c_str(), 1);
      setenv(kStageEnv, "present", 1);
      reexec(argv);
    }
  }
  g_coretype_set_by_longseq = !stage.empty();
  const BlasInfo info = blas_info();
  const bool fixing = stage.rfind("fix:", 0) == 0;
  if (!fixing && (info.user_set || !info.below_cpu)) {
    unsetenv(kStageEnv);
    return;
  }
  // Ours to fix. The candidates run from the best core for the CPU down to just above the core
  // OpenBLAS chose itself; a name this build does not know falls back to its own choice, so each
  // restarted process checks again and moves down the list.
  const std::string replaced = fixing ? env_or_empty(kReplacedEnv) : info.core;
  const std::vector<std::string> cores = cores_for(cpu_info(), core_level(replaced));
  size_t next = fixing ? std::strtoul(stage.c_str() + 4, nullptr, 10) + 1 : 0;
  while (next < cores.size() && core_level(cores[next]) <= info.core_level) ++next;
  if (info.below_cpu && next < cores.size()) {
    setenv("OPENBLAS_CORETYPE", cores[next].c_str(), 1);
    setenv(kStageEnv, ("fix:" + std::to_string(next)).c_str(), 1);
    setenv(kReplacedEnv, replaced.c_str(), 1);
    reexec(argv);
  }
  // Settled. Children (gnuplot, workers) see OPENBLAS_CORETYPE as a setting to respect.
  unsetenv(kStageEnv);
  unsetenv(kReplacedEnv);
  if (info.core_level > core_level(replaced)) {
    g_replaced_core = replaced;
    print_fixed_line(blas_info());
    return;
  }
  if (fixing) unsetenv("OPENBLAS_CORETYPE");
  std::fprintf(stderr,
               "longseq: warning: OpenBLAS runs core %s, below this CPU (%s), and this OpenBLAS "
               "build knows no better core for it; GEMMs run several times slower.\n",
               info.core.c_str(), isa_level_name(cpu_info().isa_level));
}

void pin_thread_count() {
  thread_local bool pinned = false;
  if (pinned) return;
  pinned = true;
  // LibTorch's per-thread lazy initialisation sets this thread's OpenMP count.
  (void)at::get_num_threads();
}

double measure_sgemm_gflops(int threads, int n) {
  TORCH_CHECK(threads > 0, "measure_sgemm_gflops: `threads` must be > 0, got ", threads);
  TORCH_CHECK(n > 0, "measure_sgemm_gflops: `n` must be > 0, got ", n);
  std::vector<float> a(size_t(n) * n), b(size_t(n) * n), c(size_t(n) * n);
  std::mt19937 gen(0);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (auto* v : {&a, &b}) {
    for (auto& x : *v) x = dist(gen);
  }
  // OpenBLAS's OpenMP build takes its team size from the caller's OpenMP count; the pthread
  // build from its own setting.
  const int omp_prev = omp_get_max_threads(), blas_prev = openblas_get_num_threads();
  omp_set_num_threads(threads);
  if (openblas_get_parallel() == 1) openblas_set_num_threads(threads);
  double best = 1e30;
  for (int rep = 0; rep < 4; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a.data(), n, b.data(), n,
                0.f, c.data(), n);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rep > 0) best = std::min(best, s);  // the first run is the warm-up
  }
  if (openblas_get_parallel() == 1) openblas_set_num_threads(blas_prev);
  omp_set_num_threads(omp_prev);
  return 2.0 * n * double(n) * n / best / 1e9;
}

double measure_copy_bandwidth_gbs() {
  const size_t bytes = size_t(256) << 20;
  std::vector<char> src(bytes, 1), dst(bytes, 0);  // both touched: no page faults when timed
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    std::memcpy(dst.data(), src.data(), bytes);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s);
  }
  volatile char sink = dst[bytes / 2];
  (void)sink;
  return 2.0 * double(bytes) / best / 1e9;
}

double sgemm_error_vs_naive() {
  struct Shape {
    int m, n, k;
  };
  const Shape shapes[] = {{37, 29, 53}, {64, 65, 17}, {5, 130, 301}, {129, 7, 64}};
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  double worst = 0;
  for (const auto& s : shapes) {
    for (int tr = 0; tr < 4; ++tr) {
      const bool ta = tr & 1, tb = tr & 2;
      std::vector<float> a(size_t(s.m) * s.k), b(size_t(s.k) * s.n), c(size_t(s.m) * s.n);
      for (auto* v : {&a, &b, &c}) {
        for (auto& x : *v) x = dist(gen);
      }
      const std::vector<float> c0 = c;
      const int lda = ta ? s.m : s.k, ldb = tb ? s.k : s.n;
      const float alpha = 1.25f, beta = -0.5f;
      cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                  s.m, s.n, s.k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), s.n);
      for (int i = 0; i < s.m; ++i) {
        for (int j = 0; j < s.n; ++j) {
          double ref = 0, mag = 0;
          for (int p = 0; p < s.k; ++p) {
            const double x = ta ? a[size_t(p) * lda + i] : a[size_t(i) * lda + p];
            const double y = tb ? b[size_t(j) * ldb + p] : b[size_t(p) * ldb + j];
            ref += x * y;
            mag += std::abs(x * y);
          }
          const double want = alpha * ref + beta * c0[size_t(i) * s.n + j];
          const double scale = std::abs(alpha) * mag + std::abs(beta * c0[size_t(i) * s.n + j]);
          worst = std::max(worst, std::abs(c[size_t(i) * s.n + j] - want) / (scale + 1e-30));
        }
      }
    }
  }
  return worst;
}

const char* kernel_isa_variant() {
  // The order GCC's target_clones resolver tries them in (kernels/cpu/vec_math.h).
  if (__builtin_cpu_supports("avx512f")) return "avx512f";
  if (__builtin_cpu_supports("avx2")) return "avx2";
  return "default";
}

}  // namespace longseq
