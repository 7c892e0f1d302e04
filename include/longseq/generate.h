#pragma once
/// Sampling from a causal language model, with incremental state where every mixer has one
/// (KV cache for exact and windowed attention, running sums for causal Performer) and by
/// recomputing the whole prefix for each new token otherwise.

#include <longseq/model.h>

#include <string>

namespace longseq {

struct GenerateOptions {
  int64_t max_new = 64;      ///< tokens to append
  double temperature = 1.0;  ///< logits / temperature; 0 = greedy (argmax)
  int64_t top_k = 0;         ///< sample among the k most likely tokens; 0 = all
  uint64_t seed = 0;         ///< sampling RNG (a local generator; the global one is untouched)
  bool use_cache = true;     ///< false: recompute the prefix even where step() exists

  /// Throws naming the bad field.
  void validate() const;
};

struct GenerateResult {
  at::Tensor tokens;         ///< [B, P + max_new]: the prompt, then the generated tokens
  bool cached = false;       ///< whether incremental state was used
  std::string why_uncached;  ///< when not cached: the reason
  double seconds = 0;        ///< wall time of the generation loop
};

/// prompt: int64 token ids [B, P], P >= 1. Runs in eval mode without grad (restores the mode).
GenerateResult generate(SequenceModel& model, const at::Tensor& prompt,
                        const GenerateOptions& opts);

}  // namespace longseq
