// The executable's allocator. With jemalloc linked in (CMakeLists.txt: not under sanitizers),
// freed memory stays with the process for reuse: no purging of dirty or muzzy pages, and no
// separate eagerly purged arena for large blocks (oversize_threshold 0), and a freed extent up to
// 1024 times a request's size may be split to serve it (lg_extent_max_active_fit 10; jemalloc's
// 64 kept the few hundred MiB that `bench` and `env` free after measuring the machine's rates
// from serving tensors, which then faulted in fresh pages for the first ~60 iterations:
// 1000 faults and 6–10 ms per layer iteration in reformer and linformer). glibc's
// malloc, even told to keep freed memory (longseq/memory_tracker.h: no mmap, no trim), gave the
// pages of large tensors back once its heap top passed its 2 GiB trim ceiling, or grew its heap
// through fragmentation, and every training step faulted them in again: a 4-layer performer at
// T = 16384 spent 22 s of a 31 s profiling run in the kernel, and its step took 1.5x as long
// (docs/performance.md). LONGSEQ_KEEP_FREED_MEMORY=0 turns the keeping off, as for glibc.
#include "commands.h"

#include <longseq/memory_tracker.h>

#include <cstdlib>
#include <string>

#if defined(LONGSEQ_WITH_JEMALLOC)
#include <jemalloc/jemalloc.h>

#include <sys/types.h>

// Read by jemalloc when it starts (before main); MALLOC_CONF in the environment overrides it.
extern "C" {
const char* malloc_conf =
    "dirty_decay_ms:-1,muzzy_decay_ms:-1,oversize_threshold:0,lg_extent_max_active_fit:10";
}
#endif

namespace longseq::cli {

#if defined(LONGSEQ_WITH_JEMALLOC)
namespace {

// The decay time, in ms, that arenas created from now on get (−1: never purge).
ssize_t decay_ms(const char* which) {
  ssize_t v = 0;
  size_t len = sizeof(v);
  return mallctl(which, &v, &len, nullptr, 0) == 0 ? v : 0;
}

// Sets a decay time for every existing arena and for arenas created later.
void set_decay_ms(const char* kind, ssize_t ms) {
  const std::string all = "arena." + std::to_string(MALLCTL_ARENAS_ALL) + "." + kind;
  const std::string later = std::string("arenas.") + kind;
  mallctl(later.c_str(), nullptr, nullptr, &ms, sizeof(ms));
  mallctl(all.c_str(), nullptr, nullptr, &ms, sizeof(ms));
}

}  // namespace

void configure_allocator() {
  const char* keep = std::getenv("LONGSEQ_KEEP_FREED_MEMORY");
  if (keep && std::string(keep) == "0") {
    set_decay_ms("dirty_decay_ms", 10000);  // jemalloc's defaults
    set_decay_ms("muzzy_decay_ms", 0);
  }
}

AllocatorInfo allocator_info() {
  const char* version = nullptr;
  size_t len = sizeof(version);
  mallctl("version", &version, &len, nullptr, 0);
  AllocatorInfo info;
  info.name = std::string("jemalloc ") + (version ? version : "?");
  info.keep_freed = decay_ms("arenas.dirty_decay_ms") < 0 && decay_ms("arenas.muzzy_decay_ms") < 0;
  return info;
}
#else
void configure_allocator() { keep_freed_memory_by_default(); }

AllocatorInfo allocator_info() { return {"glibc malloc", keep_freed_memory_enabled()}; }
#endif

}  // namespace longseq::cli
