#pragma once
#include <longseq/attention.h>
#include <longseq/mixer.h>

namespace longseq {

struct ReformerOptions {
  explicit ReformerOptions(MixerConfig common) : common_(common) {}
  TORCH_ARG(MixerConfig, common);
  TORCH_ARG(int64_t, buckets) = ReformerCoreOptions{}.buckets;  ///< NB
  TORCH_ARG(int64_t, n_hashes) = ReformerCoreOptions{}.n_hashes;
  TORCH_ARG(int64_t, chunk) = ReformerCoreOptions{}.chunk;
  TORCH_ARG(int64_t, redraw) = 1;  ///< new rotations every k training calls; 0 = never
};

/// Reformer (Kitaev et al. 2020) LSH attention with shared QK, O(T·chunk) memory.
class ReformerImpl : public AttentionMixerImpl {
 public:
  explicit ReformerImpl(const ReformerOptions& options);
  const ReformerOptions& options() const { return options_; }
  void redraw_rotations();
  const at::Tensor& rotations() const { return rotations_; }

 protected:
  at::Tensor attend(const at::Tensor& x, const at::Tensor& q, const at::Tensor& k,
                    const at::Tensor& v, const AttentionMask& mask) override;

 private:
  ReformerOptions options_;
  ReformerCoreOptions core_;
  at::Tensor rotations_;  // [n_hashes, D, NB/2]
  RedrawSchedule schedule_;
};
TORCH_MODULE(Reformer);

}  // namespace longseq
