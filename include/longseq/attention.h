#pragma once
/// Functional attention cores on q, k, v laid out [B, H, T, D] (keys and values [B, H, S, D]).
/// For users with their own projections; the mixers in longseq/mixers/ call these.
/// Every core follows one masking contract (AttentionMask): a query that sees no key at all
/// (every visible key padded) gets an all-zero output row, never NaN.

#include <ATen/core/Tensor.h>
#include <optional>

#include <cstdint>
#include <vector>

namespace longseq {

/// Which keys a query may see: the one mask every core takes (exact, linformer, longformer,
/// performer, reformer, linear). A model's `causal` reaches the cores only through here.
struct AttentionMask {
  /// Query i (of T) sees key j (of S) only if j <= i + (S - T): the queries are the last T
  /// positions of the key sequence (S == T for self-attention).
  bool causal = false;
  /// Optional bool [B, S], true where the key is a real token, false where it is padding.
  at::Tensor key_padding;
  /// Optional explicit pattern: bool, broadcastable to [B, H, T, S] (each dim 1 or full), true
  /// where query t may see key s; combined (and) with causal and key_padding. Only the cores
  /// that score every pair take it (exact attention); the others reject it by name.
  at::Tensor allowed;
};

/// Checks `mask` against a core's shapes: key_padding [B, S] bool, allowed broadcastable to
/// [B, H, T, S] bool. `causal_ok` / `pattern_ok` say whether the core supports a causal mask and
/// an explicit pattern; an unsupported one is an error naming `op` and the field.
void check_mask(const char* op, const AttentionMask& mask, int64_t batch, int64_t heads, int64_t t,
                int64_t s, bool causal_ok, bool pattern_ok);

/// Bool [B, S] key mask (true = real token) from per-sequence lengths [B] (int64).
at::Tensor padding_mask_from_lengths(const at::Tensor& lengths, int64_t max_len);

/// Softmax over the last dim of `scores` with `allowed` (bool, broadcastable) selecting entries.
/// Rows with nothing allowed give all-zero probabilities and log-sum-exp -inf.
/// Returns {probs, lse} where lse has the last dim removed (undefined unless `with_lse`).
std::pair<at::Tensor, at::Tensor> masked_softmax(const at::Tensor& scores,
                                                 const at::Tensor& allowed, bool with_lse = true);

/// Bool [B or 1, H or 1, T, S] of allowed (query, key) pairs under `mask` (causal, key padding and
/// the explicit pattern), or an undefined tensor when everything is allowed.
at::Tensor dense_allowed(const AttentionMask& mask, int64_t batch, int64_t t, int64_t s,
                         const at::Device& device);

/// Shared input checks for the cores: 4-D, same batch/heads/head dim, dtype and device.
void check_qkv(const char* op, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);
void check_key_padding(const char* op, const at::Tensor& key_padding, int64_t batch, int64_t s);

/// Rotary position embedding (Su et al. 2021) of x [B, H, T, D] (D even) at positions
/// offset..offset+T-1: pairs (x_i, x_{i+D/2}) rotate by angle t·θ_i, θ_i = 10000^(-2i/D), so
/// dot products of rotated q_t and k_s depend on t − s only.
at::Tensor rotary_embedding(const at::Tensor& x, int64_t offset = 0);
/// The same at explicit positions: int64 [T], position of each row of x (sequence parallelism,
/// where a rank holds positions that are not one range).
at::Tensor rotary_embedding(const at::Tensor& x, const at::Tensor& positions);

/// Exact softmax attention: softmax(q kᵀ · scale + mask) v, scale defaults to 1/√D.
/// Dropout `dropout_p` applies to the attention probabilities when `train` is true.
at::Tensor exact_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const AttentionMask& mask = {}, double dropout_p = 0.0,
                           bool train = false, std::optional<double> scale = std::nullopt);
/// The composite LibTorch path of exact_attention (same contract), whatever the fused/composite
/// switch says: the reference of the fused kernel, and what runs where no fused kernel covers a
/// call.
at::Tensor exact_attention_composite(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const AttentionMask& mask = {}, double dropout_p = 0.0,
                                     bool train = false,
                                     std::optional<double> scale = std::nullopt);

/// Linformer: softmax(q (E k)ᵀ/√D) (F v) with E, F [R, >= S] sliced to their first S columns.
/// Padded keys (mask.key_padding) are zeroed before projection. Non-causal only (the projection
/// mixes all positions): a causal mask or an explicit pattern is an error.
at::Tensor linformer_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& e_proj, const at::Tensor& f_proj,
                               const AttentionMask& mask = {}, double dropout_p = 0.0,
                               bool train = false);
/// The composite LibTorch path of linformer_attention (same contract): its reference.
at::Tensor linformer_attention_composite(const at::Tensor& q, const at::Tensor& k,
                                         const at::Tensor& v, const at::Tensor& e_proj,
                                         const at::Tensor& f_proj, const AttentionMask& mask = {},
                                         double dropout_p = 0.0, bool train = false);

/// Longformer pattern. Non-causal: query i sees keys i + d·m for m in [-W/2, W/2]; causal
/// (AttentionMask::causal): keys i - d·m for m in [0, W]; d is the head's dilation. Global
/// positions attend to every key and are attended by every query. Self-attention only (T == S).
struct LongformerPattern {
  int64_t window = 256;
  std::vector<int64_t> dilation = {1};    ///< one value for all heads, or one per head
  std::vector<int64_t> global_positions;  ///< sorted, unique, each in [0, T)
  /// Queries per block of the banded computation (memory O(block · (block + W·d)) per block).
  /// 0 picks the implementation's default: 32 queries of one dilation residue in the fused
  /// kernel, max(64, W/2) in the composite path.
  int64_t block = 0;
};

/// Global rows (and the keys/values they attend to) may use their own projections: pass
/// q_global/k_global/v_global [B, H, T, D] or leave them undefined to reuse q, k, v. The band is
/// the pattern: an explicit mask.allowed is an error.
at::Tensor longformer_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const LongformerPattern& pattern, const AttentionMask& mask = {},
                                const at::Tensor& q_global = {}, const at::Tensor& k_global = {},
                                const at::Tensor& v_global = {}, double dropout_p = 0.0,
                                bool train = false);
/// The composite LibTorch path of longformer_attention (same contract): its reference.
at::Tensor longformer_attention_composite(const at::Tensor& q, const at::Tensor& k,
                                          const at::Tensor& v, const LongformerPattern& pattern,
                                          const AttentionMask& mask = {},
                                          const at::Tensor& q_global = {},
                                          const at::Tensor& k_global = {},
                                          const at::Tensor& v_global = {}, double dropout_p = 0.0,
                                          bool train = false);

/// Bool [H, T, T] dense mask equivalent to a Longformer pattern (for tests and small T).
at::Tensor longformer_dense_allowed(const LongformerPattern& pattern, bool causal, int64_t heads,
                                    int64_t t);
/// Bool [H, Tq, Tk]: which keys at positions `kpos` [Tk] the queries at positions `qpos` [Tq]
/// (int64) see under the pattern (band, globals, causal); incremental decoding uses it.
at::Tensor longformer_allowed(const LongformerPattern& pattern, bool causal, int64_t heads,
                              const at::Tensor& qpos, const at::Tensor& kpos);

/// FAVOR+ (Performer) with random features `omega` [R, D].
enum class PerformerKernel { kSoftmax, kRelu };
struct PerformerCoreOptions {
  PerformerKernel kernel = PerformerKernel::kSoftmax;
  int64_t chunk = 32;  ///< causal prefix-sum chunk length (32: fastest fused, measured)
};

/// Draw orthogonal random features [R, D] (blocks of Gaussian-QR rows scaled by chi norms).
at::Tensor performer_draw_features(int64_t features, int64_t head_dim, uint64_t seed,
                                   at::ScalarType dtype = at::kFloat);

/// FAVOR+ feature maps (src/ops/performer_features.cpp): fq = φ(q) [B, H, T, R], fk = φ(k)
/// [B, H, S, R] (zero rows for padded keys) and, for the causal softmax map, the running key
/// stabiliser m [B, H, S] (non-decreasing; query t weighs key j by exp(m_j − m_t)), else undefined.
/// The stabilisers are constants for autograd.
struct PerformerFeatures {
  at::Tensor fq, fk, m;
};
/// The feature maps of q [B, H, T, D], k [B, H, S, D] under the random features `omega` [R, D].
/// The masking contract as performer_attention (causal, key padding; no explicit pattern).
PerformerFeatures performer_features(const at::Tensor& q, const at::Tensor& k,
                                     const at::Tensor& omega, PerformerKernel kernel,
                                     const AttentionMask& mask = {});
/// The composite LibTorch path of performer_features (same contract): its reference.
PerformerFeatures performer_features_composite(const at::Tensor& q, const at::Tensor& k,
                                               const at::Tensor& omega, PerformerKernel kernel,
                                               const AttentionMask& mask = {});

/// FAVOR+ attention: performer_features, then linear_attention (longseq/linear_attention.h) on
/// them with the key stabiliser. Causal needs T == S; an explicit pattern is an error.
at::Tensor performer_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& omega, const PerformerCoreOptions& opts,
                               const AttentionMask& mask = {});
/// The composite LibTorch path of performer_attention (same contract): its reference.
at::Tensor performer_attention_composite(const at::Tensor& q, const at::Tensor& k,
                                         const at::Tensor& v, const at::Tensor& omega,
                                         const PerformerCoreOptions& opts,
                                         const AttentionMask& mask = {});

/// Causal FAVOR+ continued one position at a time from a running state: `s` [B, H, R, Dv] =
/// Σ_j φ(k_j) v_jᵀ, `z` [B, H, R] = Σ_j φ(k_j) and, for the softmax kernel, `m` [B, H], the
/// running max of the key log-features that both are referenced to (undefined tensors = empty
/// prefix). q, k [B, H, n, D], v [B, H, n, Dv] -> [B, H, n, Dv]: the rows the causal
/// performer_attention gives for these positions on the whole sequence. Updates s, z, m.
at::Tensor performer_causal_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& omega, PerformerKernel kernel, at::Tensor& s,
                                 at::Tensor& z, at::Tensor& m);

/// Reformer LSH attention with shared QK: keys are the queries normalised to unit length.
struct ReformerCoreOptions {
  int64_t buckets = 32;  ///< NB: 1, or an even number >= 2
  int64_t n_hashes = 2;  ///< hashing rounds
  int64_t chunk = 64;    ///< chunk length of the sorted sequence
};

/// Random rotations [n_hashes, D, max(NB/2, 1)] for the hash h(x) = argmax([xR, -xR]).
at::Tensor reformer_draw_rotations(const ReformerCoreOptions& opts, int64_t head_dim, uint64_t seed,
                                   at::ScalarType dtype = at::kFloat);

/// Bucket ids [B, H, n_hashes, T] (int64) of the shared qk under `rotations`.
at::Tensor reformer_hash(const at::Tensor& qk, const at::Tensor& rotations,
                         const ReformerCoreOptions& opts);

/// LSH attention of the shared qk [B, H, T, D] over v [B, H, T, Dv] (self-attention only):
/// queries see keys of their own bucket in their own and the previous chunk of the sorted order
/// (causal: the earlier keys of their chunk window); no query attends to itself unless nothing
/// else is visible. An explicit pattern is an error.
at::Tensor reformer_attention(const at::Tensor& qk, const at::Tensor& v,
                              const at::Tensor& rotations, const ReformerCoreOptions& opts,
                              const AttentionMask& mask = {}, double dropout_p = 0.0,
                              bool train = false);
/// The composite LibTorch path of reformer_attention (same contract): its reference.
at::Tensor reformer_attention_composite(const at::Tensor& qk, const at::Tensor& v,
                                        const at::Tensor& rotations,
                                        const ReformerCoreOptions& opts,
                                        const AttentionMask& mask = {}, double dropout_p = 0.0,
                                        bool train = false);

}  // namespace longseq
