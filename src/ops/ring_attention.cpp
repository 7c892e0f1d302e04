// Ring attention (Liu et al. 2023) on c10d: exact attention over a sequence spread over N ranks
// in the zig-zag layout (include/longseq/ring_attention.h).
//
// Forward, on rank r, N steps: at step s it holds the key/value block of rank (r − s) mod N,
// starts passing it on to rank r + 1 (and receiving the next one from r − 1), and runs the flash
// kernel on (its queries, that block): for each pair of a query chunk a and a key chunk b, all
// keys when b < a, the causal diagonal when b == a, nothing when b > a (not causal: one call on
// the whole block). Partial results (o, lse) merge by their log-sum-exp:
//   lse = log(e^lse₁ + e^lse₂),  o = o₁·e^(lse₁−lse) + o₂·e^(lse₂−lse).
// Backward, N steps again: the blocks travel the same way; for each pair the flash backward
// kernel, given the final out and lse, gives this pair's share of dQ (kept) and of dK, dV. The
// dK/dV accumulator of each block travels one step behind the block, so after N steps it arrives
// home complete (one send per step; the last one returns it to its owner).
// Communication overlaps computation: each step's transfer is started before its kernel calls and
// waited for after them. Bytes per rank per step: (D + Dv)·B·H·T/N elements forward, twice that
// backward (the block and its gradient).
#include <longseq/attention.h>
#include <longseq/ring_attention.h>

#include "ops/flash.h"
#include "ops/fused.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <cmath>
#include <limits>
#include <vector>

namespace longseq {

SequenceLayout::SequenceLayout(int64_t length_, int ranks_) : length(length_), ranks(ranks_) {
  TORCH_CHECK(ranks >= 1, "sequence layout: expected ranks >= 1, got ", ranks);
  TORCH_CHECK(length >= 2 * static_cast<int64_t>(ranks), "sequence layout: a sequence of ",
              length, " positions cannot be spread over ", ranks,
              " ranks (each rank holds two chunks of at least one position: length >= ",
              2 * ranks, ")");
}

int64_t SequenceLayout::chunk_begin(int64_t c) const {
  const int64_t n = 2 * static_cast<int64_t>(ranks), base = length / n, extra = length % n;
  return c * base + std::min(c, extra);
}

std::array<int64_t, 2> SequenceLayout::chunks(int rank) const {
  return {rank, 2 * static_cast<int64_t>(ranks) - 1 - rank};
}

int64_t SequenceLayout::local_length(int rank) const {
  const auto c = chunks(rank);
  return chunk_size(c[0]) + chunk_size(c[1]);
}

at::Tensor SequenceLayout::positions(int rank) const {
  const auto c = chunks(rank);
  const auto opts = at::TensorOptions().dtype(at::kLong);
  return at::cat({at::arange(chunk_begin(c[0]), chunk_begin(c[0] + 1), opts),
                  at::arange(chunk_begin(c[1]), chunk_begin(c[1] + 1), opts)});
}

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// One chunk of a rank's positions: its global chunk index and where it sits in the local order.
struct Chunk {
  int64_t index, offset, size;
};

std::array<Chunk, 2> chunks_of(const SequenceLayout& layout, int rank) {
  const auto c = layout.chunks(rank);
  const int64_t n0 = layout.chunk_size(c[0]);
  return {Chunk{c[0], 0, n0}, Chunk{c[1], n0, layout.chunk_size(c[1])}};
}

// The work of one step: (query chunk, key chunk, causal) triples, or one whole-block call.
struct Pair {
  Chunk q, k;
  bool causal;
};

std::vector<Pair> pairs(const SequenceLayout& layout, int rank, int owner, bool causal) {
  const auto qs = chunks_of(layout, rank), ks = chunks_of(layout, owner);
  if (!causal) {
    return {Pair{Chunk{-1, 0, qs[0].size + qs[1].size}, Chunk{-1, 0, ks[0].size + ks[1].size},
                 false}};
  }
  std::vector<Pair> out;
  for (const auto& a : qs) {
    for (const auto& b : ks) {
      if (b.index < a.index) out.push_back({a, b, false});
      if (b.index == a.index) out.push_back({a, b, true});
    }
  }
  return out;
}

// [B, H, n, ·] slice of x along T, contiguous (the kernels take dense [B·H, n, ·]).
at::Tensor rows(const at::Tensor& x, const Chunk& c) { return x.narrow(2, c.offset, c.size); }

// A key/value block (or its gradient) as one flat message: [k | v].
at::Tensor pack(const at::Tensor& k, const at::Tensor& v) {
  return at::cat({k.reshape({-1}), v.reshape({-1})});
}
std::pair<at::Tensor, at::Tensor> unpack(const at::Tensor& flat, const at::Tensor& like_k,
                                         const at::Tensor& like_v, int64_t n) {
  const int64_t B = like_k.size(0), H = like_k.size(1), D = like_k.size(3), Dv = like_v.size(3);
  return {flat.narrow(0, 0, B * H * n * D).view({B, H, n, D}),
          flat.narrow(0, B * H * n * D, B * H * n * Dv).view({B, H, n, Dv})};
}
at::Tensor empty_block(const at::Tensor& k, const at::Tensor& v, int64_t n) {
  return at::empty({k.size(0) * k.size(1) * n * (k.size(3) + v.size(3))}, k.options());
}

// Merges a partial result (o, l) into the running (out, lse) views, in place.
void merge(at::Tensor out, at::Tensor lse, const at::Tensor& o, const at::Tensor& l) {
  auto m = at::maximum(lse, l);                            // [B, H, n]
  auto base = m.masked_fill(m == kNegInf, 0.0);            // no key seen yet: e^(−inf) = 0
  auto a = (lse - base).exp(), b = (l - base).exp();       // [B, H, n]
  auto sum = a + b;                                        // 0 only where neither saw a key
  auto denom = at::where(sum > 0, sum, at::ones_like(sum));
  out.copy_((out * a.unsqueeze(-1) + o * b.unsqueeze(-1)) / denom.unsqueeze(-1));
  lse.copy_(base + sum.log());
}

struct RingAttentionFunction : public torch::autograd::Function<RingAttentionFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q_in,
                            const at::Tensor& k_in, const at::Tensor& v_in, bool causal,
                            int64_t dist_address, int64_t length, double scale) {
    auto& dist = *reinterpret_cast<Distributed*>(dist_address);
    const SequenceLayout layout(length, dist.size());
    const int N = dist.size(), r = dist.rank();
    auto q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();  // [B, H, T_r, ·]
    auto out = at::zeros({q.size(0), q.size(1), q.size(2), v.size(3)}, q.options());
    auto lse = at::full({q.size(0), q.size(1), q.size(2)}, kNegInf, q.options());
    at::Tensor block = N > 1 ? pack(k, v) : at::Tensor();
    for (int s = 0; s < N; ++s) {
      const int owner = (r - s + N) % N;
      at::Tensor next;
      Distributed::Transfer transfer;
      if (s + 1 < N) {  // pass this block on while computing with it
        next = empty_block(k, v, layout.local_length((owner - 1 + N) % N));
        transfer = dist.ring_exchange(block, next);
      }
      auto [kb, vb] = N > 1 ? unpack(block, k, v, layout.local_length(owner))
                            : std::pair<at::Tensor, at::Tensor>{k, v};
      for (const auto& pr : pairs(layout, r, owner, causal)) {
        auto qc = rows(q, pr.q).contiguous(), kc = rows(kb, pr.k).contiguous(),
             vc = rows(vb, pr.k).contiguous();
        auto [o, l] = flash_forward(qc, kc, vc, at::Tensor(), pr.causal, scale);
        merge(rows(out, pr.q), lse.narrow(2, pr.q.offset, pr.q.size), o, l);
      }
      if (s + 1 < N) {
        transfer.wait();
        block = next;
      }
    }
    ctx->save_for_backward({q, k, v, out, lse});
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["dist"] = dist_address;
    ctx->saved_data["length"] = length;
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4];
    const bool causal = ctx->saved_data["causal"].toBool();
    auto& dist = *reinterpret_cast<Distributed*>(ctx->saved_data["dist"].toInt());
    const SequenceLayout layout(ctx->saved_data["length"].toInt(), dist.size());
    const double scale = ctx->saved_data["scale"].toDouble();
    const int N = dist.size(), r = dist.rank();
    auto grad_out = incoming_grad(grads[0], out);  // [B, H, T_r, Dv]
    auto grad_q = at::zeros_like(q);
    at::Tensor block = N > 1 ? pack(k, v) : at::Tensor();
    at::Tensor grad_block;  // the dK/dV accumulator arriving for the block held next
    Distributed::Transfer grad_transfer;
    at::Tensor grad_k, grad_v;
    for (int s = 0; s < N; ++s) {
      const int owner = (r - s + N) % N, next_owner = (owner - 1 + N) % N;
      const int64_t n = layout.local_length(owner);
      at::Tensor next;
      Distributed::Transfer transfer;
      if (s + 1 < N) {
        next = empty_block(k, v, layout.local_length(next_owner));
        transfer = dist.ring_exchange(block, next);
      }
      auto [kb, vb] = N > 1 ? unpack(block, k, v, n) : std::pair<at::Tensor, at::Tensor>{k, v};
      auto acc = at::zeros({k.size(0) * k.size(1) * n * (k.size(3) + v.size(3))}, k.options());
      auto [dk_acc, dv_acc] = unpack(acc, k, v, n);
      for (const auto& pr : pairs(layout, r, owner, causal)) {
        auto qc = rows(q, pr.q).contiguous(), kc = rows(kb, pr.k).contiguous(),
             vc = rows(vb, pr.k).contiguous(), oc = rows(out, pr.q).contiguous(),
             gc = rows(grad_out, pr.q).contiguous(),
             lc = lse.narrow(2, pr.q.offset, pr.q.size).contiguous();
        auto [gq, gk, gv] = flash_backward(qc, kc, vc, at::Tensor(), oc, lc, gc, pr.causal, scale);
        rows(grad_q, pr.q).add_(gq);
        rows(dk_acc, pr.k).add_(gk);
        rows(dv_acc, pr.k).add_(gv);
      }
      if (N == 1) {
        grad_k = dk_acc;
        grad_v = dv_acc;
        break;
      }
      if (s > 0) {  // this block's accumulator, from the ranks it visited before
        grad_transfer.wait();
        acc.add_(grad_block);
      }
      grad_block = empty_block(k, v, layout.local_length(next_owner));
      grad_transfer = dist.ring_exchange(acc, grad_block);
      if (s + 1 < N) {
        transfer.wait();
        block = next;
      }
    }
    if (N > 1) {  // the last transfer brought this rank's own block home, complete
      grad_transfer.wait();
      std::tie(grad_k, grad_v) = unpack(grad_block, k, v, k.size(2));
    }
    return {grad_q, grad_k, grad_v, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor ring_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          bool causal, Distributed& dist, int64_t length,
                          std::optional<double> scale) {
  check_qkv("ring_attention", q, k, v);
  const SequenceLayout layout(length, dist.size());
  const int64_t local = layout.local_length(dist.rank());
  TORCH_CHECK(q.size(2) == local && k.size(2) == local, "ring_attention: rank ", dist.rank(),
              " of ", dist.size(), " holds ", local, " of the ", length,
              " positions (SequenceLayout), so q, k and v need T = ", local, ", got q T = ",
              q.size(2), ", k T = ", k.size(2));
  TORCH_CHECK(q.device().is_cpu() && (q.scalar_type() == at::kFloat || q.scalar_type() == at::kDouble),
              "ring_attention: expected CPU float or double tensors, got ", q.scalar_type(), " on ",
              q.device());
  const double sc = scale.value_or(1.0 / std::sqrt(static_cast<double>(q.size(3))));
  return RingAttentionFunction::apply(q, k, v, causal, reinterpret_cast<int64_t>(&dist), length,
                                      sc);
}

}  // namespace longseq
