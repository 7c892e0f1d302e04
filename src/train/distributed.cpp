// Data parallel on c10d: torchrun's environment, the TCP store and Gloo process group, parameter
// broadcast, bucketed gradient averaging that overlaps backward (as DDP's Reducer, whose header
// Debian's libtorch-dev cannot compile: it includes torch/csrc/distributed/autograd, which the
// package does not ship), and errors that name the rank at fault. The contract is in
// include/longseq/distributed.h, the behaviour in docs/distributed.md.
//
// Failure detection. Gloo reports a dead peer as a closed connection and a hung one as a timeout,
// naming addresses, not ranks. So every rank also beats a counter in the store once a second
// (heartbeat/<rank>, from its own thread and its own store connection) and, when it fails on its
// own, sets failed/<rank> to its message. A rank whose collective fails asks the store which
// rank announced a failure or stopped beating, and says so.
#include <longseq/distributed.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/nn/module.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

namespace longseq {
namespace {

// An integer environment variable in [lo, hi]; `fallback` when unset.
int env_int(const char* name, int fallback, int lo, int hi) {
  const char* v = std::getenv(name);
  if (v == nullptr) return fallback;
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(v, &end, 10);
  TORCH_CHECK(*v != '\0' && *end == '\0' && errno == 0 && x >= lo && x <= hi,
              "distributed: environment variable ", name, " must be an integer in [", lo, ", ", hi,
              "], got '", v, "'");
  return static_cast<int>(x);
}

bool is_loopback(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) return false;
  bool loop = false;
  for (addrinfo* p = res; p != nullptr; p = p->ai_next) {
    if (p->ai_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(p->ai_addr);
      loop = loop || (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    } else if (p->ai_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(p->ai_addr);
      loop = loop || IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
    }
  }
  ::freeaddrinfo(res);
  return loop;
}

// A store connection as torch.distributed's env:// rendezvous makes it: rank 0 hosts the server
// unless torchrun's agent does (then all are clients, under /worker/attempt_<n>).
c10::intrusive_ptr<c10d::Store> connect_store(const RankInfo& info, bool host,
                                              std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<std::uint16_t>(info.master_port);
  o.isServer = host && !info.agent_store && info.rank == 0;
  o.numWorkers = c10::nullopt;
  o.waitWorkers = false;
  o.timeout = timeout;
  o.multiTenant = true;
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(info.master_addr, o);
  if (info.agent_store) {
    store = c10::make_intrusive<c10d::PrefixStore>(
        "/worker/attempt_" + std::to_string(info.restart_count), store);
  }
  return store;
}

std::string text(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

void wait_work(const c10::intrusive_ptr<c10d::Work>& work) { work->wait(); }

}  // namespace

std::optional<RankInfo> rank_info_from_env() {
  if (std::getenv("WORLD_SIZE") == nullptr) {
    TORCH_CHECK(std::getenv("RANK") == nullptr,
                "distributed: RANK is set but WORLD_SIZE is not; set both (torchrun does)");
    return std::nullopt;
  }
  RankInfo r;
  r.world_size = env_int("WORLD_SIZE", 1, 1, 1 << 16);
  r.rank = env_int("RANK", 0, 0, r.world_size - 1);
  r.local_world_size = env_int("LOCAL_WORLD_SIZE", 1, 1, r.world_size);
  r.local_rank = env_int("LOCAL_RANK", 0, 0, r.local_world_size - 1);
  r.master_port = env_int("MASTER_PORT", 29500, 1, 65535);
  if (const char* a = std::getenv("MASTER_ADDR")) {
    TORCH_CHECK(*a != '\0', "distributed: environment variable MASTER_ADDR is empty");
    r.master_addr = a;
  }
  if (const char* s = std::getenv("TORCHELASTIC_USE_AGENT_STORE")) {
    r.agent_store = std::string(s) == "True";
    if (r.agent_store) r.restart_count = env_int("TORCHELASTIC_RESTART_COUNT", 0, 0, 1 << 20);
  }
  return r;
}

struct Distributed::Heartbeat {
  c10::intrusive_ptr<c10d::Store> store;
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
};

Distributed::Distributed(const RankInfo& info, std::chrono::milliseconds timeout) : info_(info) {
  TORCH_CHECK(info.world_size >= 1 && info.rank >= 0 && info.rank < info.world_size,
              "distributed: rank ", info.rank, " is outside 0..", info.world_size - 1);
  TORCH_CHECK(timeout.count() > 0, "distributed: the timeout must be > 0 ms, got ",
              timeout.count());
  try {
    store_ = connect_store(info, /*host=*/true, timeout);
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "distributed: rank ", info.rank, " cannot reach the store at ",
                info.master_addr, ":", info.master_port, " (MASTER_ADDR:MASTER_PORT) within ",
                timeout.count() / 1000.0, " s: ", e.what());
  }
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME")) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  } else if (is_loopback(info.master_addr)) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  opts->threads = 2;
  try {
    group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("gloo", store_), info.rank, info.world_size, opts);
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "distributed: rank ", info.rank, " could not connect to the other ",
                info.world_size - 1, " rank(s) within ", timeout.count() / 1000.0,
                " s: ", e.what());
  }
  heartbeat_ = std::make_unique<Heartbeat>();
  heartbeat_->store = connect_store(info, /*host=*/false, timeout);
  heartbeat_->thread = std::thread([this] { heartbeat_loop(); });
}

Distributed::~Distributed() {
  if (heartbeat_ && heartbeat_->thread.joinable()) {
    {
      std::lock_guard<std::mutex> lock(heartbeat_->mu);
      heartbeat_->stop = true;
    }
    heartbeat_->cv.notify_all();
    heartbeat_->thread.join();
  }
}

void Distributed::heartbeat_loop() {
  const std::string key = "heartbeat/" + std::to_string(info_.rank);
  std::unique_lock<std::mutex> lock(heartbeat_->mu);
  while (!heartbeat_->stop) {
    lock.unlock();
    try {
      heartbeat_->store->add(key, 1);
    } catch (const std::exception&) {
      // The store is gone (rank 0 exited or died): collectives will say so; stop beating.
      return;
    }
    lock.lock();
    heartbeat_->cv.wait_for(lock, std::chrono::seconds(1), [&] { return heartbeat_->stop; });
  }
}

void Distributed::announce_failure(const std::string& what) noexcept {
  try {
    const std::string key = "failed/" + std::to_string(info_.rank);
    heartbeat_->store->set(key, std::vector<uint8_t>(what.begin(), what.end()));
  } catch (...) {
  }
}

std::string Distributed::explain_failure(const std::string& what) noexcept {
  try {
    auto store = connect_store(info_, /*host=*/false, std::chrono::seconds(5));
    for (int r = 0; r < info_.world_size; ++r) {
      const std::string key = "failed/" + std::to_string(r);
      if (r != info_.rank && store->check({key})) {
        return "rank " + std::to_string(r) + " failed: " + text(store->get(key));
      }
    }
    // Who stopped beating: counters that do not move in 3 s.
    auto counts = [&] {
      std::vector<int64_t> c(info_.world_size);
      for (int r = 0; r < info_.world_size; ++r)
        c[r] = store->add("heartbeat/" + std::to_string(r), 0);
      return c;
    };
    const auto before = counts();
    std::this_thread::sleep_for(std::chrono::seconds(3));
    const auto after = counts();
    std::string silent;
    for (int r = 0; r < info_.world_size; ++r) {
      if (r != info_.rank && after[r] == before[r])
        silent += (silent.empty() ? "" : ", ") + std::to_string(r);
    }
    if (!silent.empty()) {
      return "rank " + silent + " stopped responding (no heartbeat for 3 s: dead or hung); " + what;
    }
  } catch (const std::exception&) {
    if (info_.rank != 0 && !info_.agent_store) {
      return "rank 0 (the host of the store at " + info_.master_addr + ":" +
             std::to_string(info_.master_port) + ") is gone; " + what;
    }
  }
  return what;
}

void Distributed::broadcast_module(torch::nn::Module& module) {
  // One flat buffer per dtype, as DDP's _sync_module_states (broadcast_coalesced) does.
  std::map<at::ScalarType, std::vector<at::Tensor>> by_dtype;
  for (const auto& p : module.parameters(/*recurse=*/true)) by_dtype[p.scalar_type()].push_back(p);
  for (const auto& b : module.buffers(/*recurse=*/true)) by_dtype[b.scalar_type()].push_back(b);
  torch::NoGradGuard no_grad;
  for (auto& [dtype, tensors] : by_dtype) {
    std::vector<at::Tensor> flat{at::flatten_dense_tensors(tensors)};
    c10d::BroadcastOptions o;
    o.rootRank = 0;
    wait_work(group_->broadcast(flat, o));
    const auto parts = at::unflatten_dense_tensors(flat[0], tensors);
    for (size_t i = 0; i < tensors.size(); ++i) tensors[i].copy_(parts[i]);
  }
}

void Distributed::allreduce_sum(at::Tensor& t) {
  TORCH_CHECK(t.is_contiguous() && t.device().is_cpu(),
              "distributed: allreduce needs a contiguous CPU tensor");
  std::vector<at::Tensor> v{t};
  wait_work(group_->allreduce(v));
}

std::vector<double> Distributed::sum(std::vector<double> values) {
  auto t = at::tensor(values, at::TensorOptions().dtype(at::kDouble));
  allreduce_sum(t);
  const double* p = t.data_ptr<double>();
  return std::vector<double>(p, p + t.numel());
}

void Distributed::barrier() { wait_work(group_->barrier()); }

Distributed::Transfer::Transfer() = default;
Distributed::Transfer::~Transfer() = default;
Distributed::Transfer::Transfer(Transfer&&) noexcept = default;
Distributed::Transfer& Distributed::Transfer::operator=(Transfer&&) noexcept = default;

void Distributed::Transfer::wait() {
  // Gloo bounds each wait by the group's timeout (ProcessGroupGloo::Options::timeout).
  if (send_) wait_work(std::exchange(send_, {}));
  if (recv_) wait_work(std::exchange(recv_, {}));
}

Distributed::Transfer Distributed::ring_exchange(const at::Tensor& to_next, at::Tensor& from_prev) {
  const int n = info_.world_size, r = info_.rank;
  TORCH_CHECK(n > 1, "distributed: ring_exchange needs at least 2 ranks");
  TORCH_CHECK(to_next.is_contiguous() && to_next.device().is_cpu(),
              "distributed: ring_exchange needs a contiguous CPU `to_next`");
  TORCH_CHECK(from_prev.is_contiguous() && from_prev.device().is_cpu(),
              "distributed: ring_exchange needs a contiguous CPU `from_prev`");
  const int tag = static_cast<int>(ring_tag_++ & 0x7fffffffu);
  Transfer t;
  std::vector<at::Tensor> recv{from_prev}, send{to_next};
  // Receive first: the matching send of the previous rank may already be on its way.
  t.recv_ = group_->recv(recv, (r + n - 1) % n, tag);
  t.send_ = group_->send(send, (r + 1) % n, tag);
  return t;
}

bool Distributed::identical_on_all_ranks(const std::vector<at::Tensor>& tensors, uint64_t* hash) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a, 64 bits
  for (const auto& t : tensors) {
    const auto c = t.detach().contiguous();
    const auto* p = static_cast<const unsigned char*>(c.data_ptr());
    const size_t n = c.numel() * c.element_size();
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
  if (hash != nullptr) *hash = h;
  int64_t as_signed = 0;
  std::memcpy(&as_signed, &h, sizeof(h));
  auto lo = at::full({1}, as_signed, at::TensorOptions().dtype(at::kLong));
  auto hi = lo.clone();
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::MIN;
  std::vector<at::Tensor> vlo{lo}, vhi{hi};
  wait_work(group_->allreduce(vlo, o));
  o.reduceOp = c10d::ReduceOp::MAX;
  wait_work(group_->allreduce(vhi, o));
  return lo.item<int64_t>() == hi.item<int64_t>();
}

struct GradientSync::Hook : torch::autograd::FunctionPostHook {
  Hook(GradientSync* sync, size_t index) : sync(sync), index(index) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    sync->ready(index);
    return outputs;
  }
  GradientSync* sync;
  size_t index;
};

GradientSync::GradientSync(Distributed& dist, std::vector<at::Tensor> params, int64_t bucket_bytes)
    : dist_(dist), params_(std::move(params)) {
  TORCH_CHECK(bucket_bytes > 0, "GradientSync: `bucket_bytes` must be > 0, got ", bucket_bytes);
  // Reverse parameter order, a 1 MiB first bucket, then bucket_bytes; one dtype per bucket.
  int64_t limit = std::min<int64_t>(int64_t{1} << 20, bucket_bytes), used = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const auto& p = params_[k];
    const int64_t bytes = p.numel() * p.element_size();
    const bool fits = !buckets_.empty() && used + bytes <= limit &&
                      params_[buckets_.back().front()].scalar_type() == p.scalar_type();
    if (!fits) {
      if (!buckets_.empty()) limit = bucket_bytes;
      buckets_.emplace_back();
      used = 0;
    }
    buckets_.back().push_back(k);
    used += bytes;
  }
  bucket_of_.assign(params_.size(), 0);
  for (size_t b = 0; b < buckets_.size(); ++b) {
    for (size_t k : buckets_[b]) bucket_of_[k] = b;
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    TORCH_CHECK(params_[k].requires_grad() && params_[k].is_leaf(), "GradientSync: parameter ", k,
                " is not a leaf that requires grad");
    auto acc = torch::autograd::impl::grad_accumulator(params_[k]);
    hook_keys_.push_back(acc->add_post_hook(std::make_unique<Hook>(this, k)));
    accumulators_.push_back(std::move(acc));
  }
}

GradientSync::~GradientSync() {
  for (size_t k = 0; k < accumulators_.size(); ++k) accumulators_[k]->del_post_hook(hook_keys_[k]);
}

void GradientSync::arm() {
  armed_ = true;
  pending_.resize(buckets_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) pending_[b] = buckets_[b].size();
  seen_.assign(params_.size(), false);
  flat_.assign(buckets_.size(), at::Tensor());
  work_.assign(buckets_.size(), {});
  next_ = 0;
}

void GradientSync::ready(size_t k) {
  if (!armed_ || seen_[k]) return;
  seen_[k] = true;
  --pending_[bucket_of_[k]];
  while (next_ < buckets_.size() && pending_[next_] == 0) launch(next_++);
}

void GradientSync::launch(size_t b) {
  std::vector<at::Tensor> grads;
  for (size_t k : buckets_[b]) {
    const auto& g = params_[k].grad();
    grads.push_back(g.defined() ? g.reshape({-1})
                                : at::zeros({params_[k].numel()}, params_[k].options()));
  }
  flat_[b] = at::flatten_dense_tensors(grads);
  std::vector<at::Tensor> v{flat_[b]};
  work_[b] = dist_.group()->allreduce(v);
}

void GradientSync::finish() {
  if (!armed_) arm();  // nothing started during backward: reduce every bucket now
  while (next_ < buckets_.size()) launch(next_++);
  armed_ = false;
  torch::NoGradGuard no_grad;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    wait_work(work_[b]);
    std::vector<at::Tensor> grads;
    for (size_t k : buckets_[b]) {
      auto& p = params_[k];
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
      grads.push_back(p.grad());
    }
    const auto parts = at::unflatten_dense_tensors(flat_[b], grads);
    for (size_t i = 0; i < grads.size(); ++i) grads[i].copy_(parts[i]).div_(dist_.size());
    flat_[b] = at::Tensor();
    work_[b] = {};
  }
}

}  // namespace longseq
