// Counting CPU allocator (see longseq/memory.h). It wraps the allocator LibTorch had, so tensors
// still come from the same place; each allocation carries a small context that remembers its size
// and the wrapped deleter.
#include <longseq/memory.h>

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <unistd.h>

namespace longseq {
namespace {

std::atomic<int64_t> g_current{0};
std::atomic<int64_t> g_peak{0};

struct TrackedContext {
  void* inner_ctx;
  c10::DeleterFnPtr inner_deleter;
  int64_t bytes;
};

void tracked_delete(void* ctx_ptr) {
  auto* ctx = static_cast<TrackedContext*>(ctx_ptr);
  g_current.fetch_sub(ctx->bytes, std::memory_order_relaxed);
  if (ctx->inner_deleter) ctx->inner_deleter(ctx->inner_ctx);
  delete ctx;
}

class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* inner) : inner_(inner) {}

  c10::DataPtr allocate(size_t n) const override {
    c10::DataPtr inner = inner_->allocate(n);
    void* data = inner.get();
    const c10::Device device = inner.device();
    c10::DeleterFnPtr deleter = inner.get_deleter();
    void* inner_ctx = inner.release_context();
    auto* ctx = new TrackedContext{inner_ctx, deleter, static_cast<int64_t>(n)};
    const int64_t now = g_current.fetch_add(ctx->bytes, std::memory_order_relaxed) + ctx->bytes;
    int64_t peak = g_peak.load(std::memory_order_relaxed);
    while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
    return c10::DataPtr(data, ctx, &tracked_delete, device);
  }

  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }

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
    static CountingAllocator allocator(c10::GetCPUAllocator());
    c10::SetCPUAllocator(&allocator, /*priority=*/100);
    g_installed = true;
  });
}

bool MemoryTracker::installed() { return g_installed; }
int64_t MemoryTracker::current_bytes() { return g_current.load(); }
int64_t MemoryTracker::peak_bytes() { return g_peak.load(); }
void MemoryTracker::reset_peak() { g_peak.store(g_current.load()); }

int64_t physical_memory_bytes() {
  return static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace longseq
