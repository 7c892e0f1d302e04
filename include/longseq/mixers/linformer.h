#pragma once
#include <longseq/attention.h>
#include <longseq/mixer.h>

namespace longseq {

struct LinformerOptions {
  explicit LinformerOptions(MixerConfig common) : common_(common) {}
  TORCH_ARG(MixerConfig, common);
  TORCH_ARG(int64_t, proj_len) = 256;  ///< R
  TORCH_ARG(bool, share_kv) = false;   ///< F = E
};

/// Linformer (Wang et al. 2020): keys and values projected along the sequence to R rows by learned
/// E, F [R, max_len], O(T·R). Refuses causal: the projection mixes future positions.
class LinformerImpl : public AttentionMixerImpl {
 public:
  explicit LinformerImpl(const LinformerOptions& options);
  const LinformerOptions& options() const { return options_; }

 protected:
  at::Tensor attend(const at::Tensor& x, const at::Tensor& q, const at::Tensor& k,
                    const at::Tensor& v, const AttentionMask& mask) override;

 private:
  LinformerOptions options_;
  at::Tensor e_proj_, f_proj_;  // [R, max_len]
};
TORCH_MODULE(Linformer);

}  // namespace longseq
