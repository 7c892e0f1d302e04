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
};

/// Total physical memory of this machine in bytes.
int64_t physical_memory_bytes();

}  // namespace longseq
