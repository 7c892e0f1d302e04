#pragma once
// The process's one profile in progress: whether it is active, and the work fused kernels
// recorded in it by scope name (record_kernel_work in roofline.cpp writes, profile.cpp reads).

#include <longseq/roofline.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>

namespace longseq {

struct ProfileState {
  std::atomic<bool> active{false};
  std::mutex mutex;
  std::map<std::string, Work> kernel_work;
};

inline ProfileState& profile_state() {
  static ProfileState state;
  return state;
}

}  // namespace longseq
