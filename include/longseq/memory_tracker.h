#pragma once
/// Live-tensor memory accounting on CPU: a wrapper around LibTorch's CPU allocator that counts
/// the bytes of every tensor allocation still alive, and their peak.

#include <cstdint>

namespace longseq {

class MemoryTracker {
 public:
  /// Installs the counting allocator (idempotent). Tensors allocated before are not counted.
  static void install();
  static bool installed();
  /// Bytes of tensor storage allocated through the tracker and not yet freed.
  static int64_t current_bytes();
  /// Highest current_bytes() since the last reset_peak().
  static int64_t peak_bytes();
  /// Sets the peak to the current value.
  static void reset_peak();
  /// A budget for tracked tensor bytes (0: none). An allocation that would take
  /// current_bytes() above it fails with a c10::Error naming the budget, as an allocation the
  /// machine cannot serve does: `longseq train --max-memory`.
  static void set_limit(int64_t bytes);
  static int64_t limit();
};

/// The highest resident set size of this process so far, in bytes (getrusage's ru_maxrss).
int64_t peak_resident_bytes();

/// Total physical memory of this machine in bytes.
int64_t physical_memory_bytes();

/// Keeps memory freed by large tensors in the process for the next allocation instead of handing
/// it back to the OS. glibc serves blocks above its mmap threshold (at most 32 MiB) with fresh
/// mmap()s and unmaps them on free, so every large temporary (activations of a [8, 4096, 256]
/// model are 32 MiB each) faults all its pages in again on every training step; measured on this
/// machine, page faults were ~30% of a minGRU step. On: large blocks come from the heap (no mmap)
/// and the heap is not trimmed, so the resident size stays at the peak of the run. Returns false
/// where the C library has no such setting. `longseq` (the CLI) and the benchmark binaries call
/// keep_freed_memory_by_default() at start-up.
bool keep_freed_memory();
/// keep_freed_memory() unless the environment variable LONGSEQ_KEEP_FREED_MEMORY is "0" (the
/// opt-out); returns whether it was turned on.
bool keep_freed_memory_by_default();
/// Whether keep_freed_memory() is in force in this process.
bool keep_freed_memory_enabled();

}  // namespace longseq
