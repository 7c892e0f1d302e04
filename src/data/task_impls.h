#pragma once
// Factories of the task implementations; the registry in tasks.cpp is their only caller.
#include <longseq/tasks.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>

#include <memory>

namespace longseq::data {

std::unique_ptr<Task> make_copy_memory(const ResolvedOptions& o, uint64_t seed);
std::unique_ptr<Task> make_adding(const ResolvedOptions& o, uint64_t seed);
std::unique_ptr<Task> make_selective_copy(const ResolvedOptions& o, uint64_t seed);
std::unique_ptr<Task> make_mqar(const ResolvedOptions& o, uint64_t seed);
std::unique_ptr<Task> make_listops(const ResolvedOptions& o, uint64_t seed);
std::unique_ptr<Task> make_fashion_mnist(const ResolvedOptions& o, uint64_t seed);
std::unique_ptr<Task> make_bytes(const ResolvedOptions& o, uint64_t seed);

inline at::Generator generator_for(uint64_t seed, Split split, int64_t index) {
  return at::make_generator<at::CPUGeneratorImpl>(batch_seed(seed, split, index));
}

/// Checks an option is in [lo, hi] with the task's name in the message.
void check_range(const char* task, const char* option, int64_t value, int64_t lo, int64_t hi);

}  // namespace longseq::data
