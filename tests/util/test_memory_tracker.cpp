// The tensor budget of MemoryTracker (`train --max-memory`): an allocation above it fails with an
// error naming the budget and leaves the count as it was; below it, allocations go through.
#include <longseq/memory_tracker.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

namespace longseq {
namespace {

struct LimitReset {
  ~LimitReset() { MemoryTracker::set_limit(0); }
};

TEST(MemoryTracker, AllocationAboveTheBudgetFailsAndChangesNothing) {
  MemoryTracker::install();
  LimitReset reset;
  const int64_t before = MemoryTracker::current_bytes();
  MemoryTracker::set_limit(before + (int64_t{3} << 20));  // 3 MiB of room
  auto fits = at::empty({1 << 19}, at::kFloat);            // 2 MiB
  EXPECT_EQ(MemoryTracker::current_bytes(), before + (int64_t{2} << 20));
  try {
    auto too_much = at::empty({1 << 19}, at::kFloat);  // 2 more: 4 MiB > 3
    FAIL() << "expected an out-of-memory error";
  } catch (const c10::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("out of memory: a tensor of 2.0 MiB"), std::string::npos) << what;
    EXPECT_NE(what.find("(--max-memory)"), std::string::npos) << what;
  }
  EXPECT_EQ(MemoryTracker::current_bytes(), before + (int64_t{2} << 20));
  fits = at::Tensor();
  EXPECT_EQ(MemoryTracker::current_bytes(), before);
  MemoryTracker::set_limit(0);  // no budget: anything goes
  auto big = at::empty({1 << 21}, at::kFloat);
  EXPECT_EQ(MemoryTracker::current_bytes(), before + (int64_t{8} << 20));
}

TEST(MemoryTracker, NegativeBudgetIsRefused) {
  EXPECT_THROW(MemoryTracker::set_limit(-1), c10::Error);
}

}  // namespace
}  // namespace longseq
