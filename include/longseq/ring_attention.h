#pragma once
/// Ring attention: exact attention over a sequence whose positions are spread over the ranks of a
/// run (sequence parallelism; Liu, Zaharia & Abbeel 2023, "Ring Attention with Blockwise
/// Transformers"). Each rank holds its queries, keys and values; the key/value blocks travel
/// around the ring of ranks (c10d send/recv) while each rank runs the fused flash kernel on the
/// block it has, merging the partial results by their log-sum-exp. Backward sends the key/value
/// blocks around again, with their dK/dV accumulators travelling behind them back to their
/// owners. Memory per rank: the rank's own q, k, v, out and lse, plus key/value blocks in flight
/// (two in forward; in backward about five: the block, the next one, and dK/dV accumulators
/// being summed, sent and received), all O(T/N).
/// docs/distributed.md has the cost model.

#include <longseq/distributed.h>

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>

namespace longseq {

/// Which positions of a sequence of `length` each of `ranks` ranks holds: the zig-zag layout.
/// The sequence is cut into 2N chunks, chunk c of ⌊T/2N⌋ positions plus one for c < T mod 2N;
/// rank r holds chunks r and 2N−1−r, in that order. Under a causal mask every rank then has the
/// same number of (query, key) pairs to score, where plain contiguous shards would leave rank 0
/// with 1/(2N−1) of the work of rank N−1 (the zig-zag of ring-flash-attention; Brandon et al. 2023,
/// "Striped Attention", balance by striping instead).
struct SequenceLayout {
  /// Throws unless ranks >= 1 and length >= 2·ranks (every chunk at least one position).
  SequenceLayout(int64_t length, int ranks);
  int64_t length;
  int ranks;
  int64_t chunk_begin(int64_t c) const;
  int64_t chunk_size(int64_t c) const { return chunk_begin(c + 1) - chunk_begin(c); }
  /// The two chunks of `rank`, in the order its positions are stored.
  std::array<int64_t, 2> chunks(int rank) const;
  int64_t local_length(int rank) const;
  /// int64 [local_length(rank)]: the sequence positions `rank` holds, in its local order.
  at::Tensor positions(int rank) const;
};

/// What the attention layers of a sequence-parallel model share during one forward: the ranks,
/// and the sequence whose positions this rank holds (set by the model before its blocks run).
struct SequenceShard {
  std::shared_ptr<Distributed> dist;
  int64_t length = 0;    ///< positions of the whole sequence
  at::Tensor positions;  ///< int64 [T_r]: this rank's, SequenceLayout(length, N).positions(rank)
};

/// Exact attention softmax(q kᵀ · scale + causal mask) v of one sequence of `length` positions
/// laid out over the ranks of `dist` as SequenceLayout(length, dist.size()) says: q, k, v
/// [B, H, T_r, D] are this rank's positions (T_r = local_length(rank)), and so is the result
/// [B, H, T_r, Dv]. Differentiable in q, k, v; its backward is collective too, so every rank
/// must run forward and backward in the same order. CPU float or double; scale defaults to
/// 1/√D. No dropout and no padding mask (a padded batch is refused by the model). `dist` must
/// outlive the backward pass. With one rank it is the fused exact kernel.
at::Tensor ring_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          bool causal, Distributed& dist, int64_t length,
                          std::optional<double> scale = std::nullopt);

}  // namespace longseq
