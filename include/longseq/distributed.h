#pragma once
/// Data-parallel training across processes on c10d (Gloo): where a process sits among the ranks
/// (torchrun's variables), the process group, and the collectives the trainer needs.
///
/// A run of N ranks trains one model: every rank holds all parameters (rank 0's initial values,
/// broadcast), computes the gradient of its shard of the global batch, and the gradients are
/// averaged by a bucketed allreduce (as PyTorch's DistributedDataParallel does: buckets of about
/// 25 MiB, each reduced as soon as backward has produced all of its gradients, while backward
/// goes on). Every rank then takes the same AdamW step. docs/distributed.md has the details.

#include <ATen/core/Tensor.h>
#include <c10/util/intrusive_ptr.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace torch::nn {
class Module;
}
namespace torch::autograd {
struct Node;
}
namespace c10d {
class ProcessGroupGloo;
class Store;
class Work;
}  // namespace c10d

namespace longseq {

/// Where this process sits among the ranks of a run, in torchrun's words.
struct RankInfo {
  int rank = 0;                           ///< RANK: 0 .. world_size-1
  int world_size = 1;                     ///< WORLD_SIZE
  int local_rank = 0;                     ///< LOCAL_RANK: index among the ranks of this machine
  int local_world_size = 1;               ///< LOCAL_WORLD_SIZE (1 when unset)
  std::string master_addr = "127.0.0.1";  ///< MASTER_ADDR: the host of rank 0's store
  int master_port = 29500;                ///< MASTER_PORT
  /// TORCHELASTIC_USE_AGENT_STORE=True: torchrun's agent hosts the store (every rank is a client,
  /// keys under /worker/attempt_<TORCHELASTIC_RESTART_COUNT>), as torch.distributed does.
  bool agent_store = false;
  int restart_count = 0;
};

/// Reads RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT (and torchrun's
/// agent-store variables). nullopt when WORLD_SIZE is unset; a c10::Error naming the variable
/// when one is malformed or out of range, or RANK is set without WORLD_SIZE.
std::optional<RankInfo> rank_info_from_env();

/// One rank's membership of the run: the TCP store (rank 0 hosts it unless torchrun's agent does)
/// and a Gloo process group. Every collective is bounded by `timeout`: a rank that died or hangs
/// makes the others fail within it, with an error that names the rank (explain_failure()).
class Distributed {
 public:
  Distributed(const RankInfo& info, std::chrono::milliseconds timeout);
  ~Distributed();
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  int rank() const { return info_.rank; }
  int size() const { return info_.world_size; }
  const RankInfo& info() const { return info_; }

  /// Rank 0's parameters and buffers into every rank's `module` (in place).
  void broadcast_module(torch::nn::Module& module);
  /// Sums `t` over the ranks, in place (CPU, contiguous).
  void allreduce_sum(at::Tensor& t);
  /// Every rank's `values` summed, as doubles (a small float64 allreduce).
  std::vector<double> sum(std::vector<double> values);
  void barrier();
  /// Whether `tensors` hold the same bytes on every rank: a 64-bit FNV-1a hash of their bytes,
  /// compared through a MIN and a MAX allreduce. `hash` receives this rank's hash.
  bool identical_on_all_ranks(const std::vector<at::Tensor>& tensors, uint64_t* hash = nullptr);

  /// Tells the others that this rank is failing (the message reaches their errors); best effort.
  void announce_failure(const std::string& what) noexcept;
  /// Rewrites an error from a collective as one that names the rank at fault: a rank that
  /// announced its failure, or one whose heartbeat stopped. Returns `what` when none is known.
  std::string explain_failure(const std::string& what) noexcept;

  /// A pair of point-to-point transfers in flight (ring_exchange()). wait() returns when both
  /// are done; a failure or the run's timeout throws, as a collective does.
  class Transfer {
   public:
    Transfer();
    ~Transfer();
    Transfer(Transfer&&) noexcept;
    Transfer& operator=(Transfer&&) noexcept;
    void wait();

   private:
    friend class Distributed;
    c10::intrusive_ptr<c10d::Work> send_, recv_;
  };
  /// Starts sending `to_next` to rank (r + 1) mod N and receiving `from_prev` from rank
  /// (r − 1) mod N (both contiguous CPU tensors; `from_prev` is allocated by the caller with
  /// the size its sender sends). Every rank must make the same sequence of calls: each call's
  /// message tag is a per-process counter. N = 1 is an error (there is no ring).
  Transfer ring_exchange(const at::Tensor& to_next, at::Tensor& from_prev);

  /// The process group, for the gradient averaging of GradientSync.
  const c10::intrusive_ptr<c10d::ProcessGroupGloo>& group() const { return group_; }

 private:
  void heartbeat_loop();
  RankInfo info_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
  struct Heartbeat;
  std::unique_ptr<Heartbeat> heartbeat_;
  uint32_t ring_tag_ = 0;
};

/// Averages the gradients of `params` over the ranks, in buckets of about `bucket_bytes` (a
/// 1 MiB first bucket, then `bucket_bytes`; parameters in reverse order, since backward produces
/// the last layers' gradients first), as PyTorch's DistributedDataParallel does.
///
/// arm() before the backward pass that completes the step's gradients: a hook on each
/// parameter's gradient accumulator then counts it ready, and each full bucket is flattened and
/// its allreduce started at once (Gloo runs it on its own threads while backward goes on).
/// Buckets start strictly in bucket order, so every rank issues the same collectives in the same
/// order. finish() after the step's last backward: starts what is left (a gradient that was
/// never produced counts as zeros), waits, and writes the averages back into the gradients.
/// Without arm() (several backward passes per micro-batch, as in truncated BPTT, or a model whose
/// backward recomputes), finish() reduces every bucket after backward.
class GradientSync {
 public:
  GradientSync(Distributed& dist, std::vector<at::Tensor> params,
               int64_t bucket_bytes = int64_t{25} << 20);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;
  void arm();
  void finish();

 private:
  struct Hook;
  void ready(size_t param);  // from the hooks
  void launch(size_t bucket);
  Distributed& dist_;
  std::vector<at::Tensor> params_;
  std::vector<std::vector<size_t>> buckets_;  ///< indices into params_
  std::vector<size_t> bucket_of_;             ///< params_ index -> bucket
  std::vector<size_t> pending_;               ///< gradients a bucket still waits for
  std::vector<bool> seen_;                    ///< params_ index: hook fired in this pass
  std::vector<at::Tensor> flat_;
  std::vector<c10::intrusive_ptr<c10d::Work>> work_;
  size_t next_ = 0;  ///< next bucket to launch
  bool armed_ = false;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;  ///< the hooked nodes
  std::vector<uintptr_t> hook_keys_;
};

}  // namespace longseq
