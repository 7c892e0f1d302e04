// Counting CPU allocator (see longseq/memory_tracker.h). It wraps the allocator LibTorch had, so
// tensors
// still come from the same place; each allocation carries a small context that remembers its size
// and the wrapped deleter.
#include <longseq/memory_tracker.h>

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <sys/resource.h>
#include <unistd.h>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <unordered_map>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace longseq {
namespace {

std::atomic<int64_t> g_current{0};
std::atomic<int64_t> g_peak{0};
std::atomic<int64_t> g_limit{0};

// Sizes of live tracked blocks. The DataPtr context must equal the data pointer (LibTorch's
// raw_allocate() asserts it), so sizes live in this side table instead of a per-block context.
std::mutex g_mutex;
std::unordered_map<void*, int64_t> g_sizes;
c10::DeleterFnPtr g_inner_deleter = nullptr;

// Bytes as MiB with one decimal ("0.1", "564.0").
std::string mib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

void counting_delete(void* ptr) {
  if (!ptr) return;
  int64_t bytes = 0;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_sizes.find(ptr);
    if (it != g_sizes.end()) {
      bytes = it->second;
      g_sizes.erase(it);
    }
  }
  g_current.fetch_sub(bytes, std::memory_order_relaxed);
  g_inner_deleter(ptr);
}

class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* inner) : inner_(inner) {}

  c10::DataPtr allocate(size_t n) const override {
    c10::DataPtr inner = inner_->allocate(n);
    // Only blocks whose context is the data pointer and whose deleter is the inner allocator's
    // raw deleter can be re-wrapped; anything else passes through uncounted.
    if (inner.get() == nullptr || inner.get() != inner.get_context() ||
        inner.get_deleter() != g_inner_deleter) {
      return inner;
    }
    void* data = inner.release_context();
    const c10::Device device = inner.device();
    {
      std::lock_guard<std::mutex> lock(g_mutex);
      g_sizes[data] = static_cast<int64_t>(n);
    }
    const int64_t now = g_current.fetch_add(static_cast<int64_t>(n), std::memory_order_relaxed) +
                        static_cast<int64_t>(n);
    const int64_t limit = g_limit.load(std::memory_order_relaxed);
    if (limit > 0 && now > limit) {
      counting_delete(data);
      TORCH_CHECK(false, "out of memory: a tensor of ", mib(static_cast<int64_t>(n)),
                  " MiB would bring this process's tensors to ", mib(now),
                  " MiB, above its budget of ", mib(limit), " MiB (--max-memory)");
    }
    int64_t peak = g_peak.load(std::memory_order_relaxed);
    while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
    return c10::DataPtr(data, data, &counting_delete, device);
  }

  c10::DeleterFnPtr raw_deleter() const override { return &counting_delete; }

  // LibTorch 2.x declares this pure virtual; 1.13 does not have it (hence no `override`).
  void copy_data(void* dest, const void* src, std::size_t count) const {
    std::memcpy(dest, src, count);
  }

 private:
  c10::Allocator* inner_;
};

std::once_flag g_install_once;
std::atomic<bool> g_installed{false};

}  // namespace

void MemoryTracker::install() {
  std::call_once(g_install_once, [] {
    c10::Allocator* inner = c10::GetCPUAllocator();
    g_inner_deleter = inner->raw_deleter();
    TORCH_CHECK(g_inner_deleter != nullptr,
                "MemoryTracker: the CPU allocator has no raw deleter; cannot count its blocks");
    static CountingAllocator allocator(inner);
    c10::SetCPUAllocator(&allocator, /*priority=*/100);
    g_installed = true;
  });
}

bool MemoryTracker::installed() { return g_installed; }
int64_t MemoryTracker::current_bytes() { return g_current.load(); }
int64_t MemoryTracker::peak_bytes() { return g_peak.load(); }
void MemoryTracker::reset_peak() { g_peak.store(g_current.load()); }
void MemoryTracker::set_limit(int64_t bytes) {
  TORCH_CHECK(bytes >= 0, "MemoryTracker: the limit must be >= 0 bytes, got ", bytes);
  g_limit.store(bytes);
}
int64_t MemoryTracker::limit() { return g_limit.load(); }

int64_t peak_resident_bytes() {
  rusage u{};
  if (::getrusage(RUSAGE_SELF, &u) != 0) return 0;
  return static_cast<int64_t>(u.ru_maxrss) * 1024;  // Linux reports KiB
}

int64_t physical_memory_bytes() {
  return static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) *
         static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

namespace {
std::atomic<bool> g_keep_freed{false};
}  // namespace

bool keep_freed_memory_enabled() { return g_keep_freed.load(); }

bool keep_freed_memory() {
#if defined(__GLIBC__)
  // M_MMAP_MAX = 0: no block is served by mmap(), so none is unmapped on free;
  // M_TRIM_THRESHOLD = max: free() never shrinks the heap back to the OS.
  const bool no_mmap = mallopt(M_MMAP_MAX, 0) == 1;
  const bool no_trim = mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max()) == 1;
  g_keep_freed = no_mmap && no_trim;
  return no_mmap && no_trim;
#else
  return false;
#endif
}

bool keep_freed_memory_by_default() {
  const char* keep = std::getenv("LONGSEQ_KEEP_FREED_MEMORY");
  if (keep && std::string(keep) == "0") return false;
  return keep_freed_memory();
}

}  // namespace longseq
