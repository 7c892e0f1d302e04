// The op-level profile of one region (profile.h). LibTorch's profiler (the Kineto-API collector;
// Debian's LibTorch has no libkineto, so its own trace writer is empty and the trace is written
// here from the same events) records every op with its input shapes and, for GEMMs, FLOPs. Self
// time is an op's time minus its direct children's, nested by start and end on each thread.
// Counted work: GEMM FLOPs from LibTorch; fused kernels' FLOPs and bytes from their own counts
// (record_kernel_work); other ops' bytes estimated from input shapes (reads of every input, a
// write of the largest; an in-place op writes its first input; a fill only writes).
#include "bench/profile_state.h"

#include <longseq/profile.h>

#include <ATen/record_function.h>
#include <c10/util/Exception.h>
#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

namespace longseq {
namespace {

namespace prof = torch::autograd::profiler;
namespace impl = torch::profiler::impl;

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

bool is_one_of(const std::string& name, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (name == n) return true;
  return false;
}

std::string category_of(const std::string& name) {
  if (starts_with(name, "longseq::")) return "kernel";
  if (starts_with(name, "autograd::") || name.find("Backward") != std::string::npos ||
      name.find("AccumulateGrad") != std::string::npos)
    return "autograd";
  if (!starts_with(name, "aten::")) return "other";
  const std::string op = name.substr(6);
  if (is_one_of(op, {"mm", "addmm", "bmm", "baddbmm", "addbmm", "mv", "addmv", "dot", "matmul", "linear",
              "einsum", "_convolution", "convolution"}))
    return "gemm";
  if (is_one_of(op, {"empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like",
              "full", "full_like", "resize_", "new_empty", "new_zeros", "new_empty_strided"}))
    return "alloc";
  if (is_one_of(op, {"copy_", "contiguous", "clone", "to", "_to_copy", "cat", "stack", "index_select",
              "gather", "scatter", "scatter_add_", "index_add_", "index", "index_put_", "flip",
              "roll", "repeat", "pad", "constant_pad_nd"}))
    return "copy";
  if (is_one_of(op, {"view", "reshape", "_reshape_alias", "as_strided", "transpose", "t", "permute",
              "expand", "select", "slice", "unsqueeze", "squeeze", "narrow", "split", "chunk",
              "unbind", "detach", "alias", "view_as", "unflatten", "flatten", "resolve_conj",
              "resolve_neg", "lift_fresh", "unfold"}))
    return "view";
  return "elementwise";
}

int64_t dtype_bytes(const std::string& dtype) {
  if (dtype == "float" || dtype == "int") return 4;
  if (dtype == "double" || dtype == "long int" || dtype == "c10::complex<float>") return 8;
  if (dtype == "c10::Half" || dtype == "c10::BFloat16" || dtype == "short int") return 2;
  if (dtype == "bool" || dtype == "unsigned char" || dtype == "signed char") return 1;
  return 0;  // not a tensor (Scalar, int[], ...)
}

std::string shapes_text(const prof::KinetoEvent& e) {
  std::string s;
  if (!e.hasShapes()) return s;
  const auto shapes = e.shapes();
  const auto dtypes = e.hasTypes() ? e.dtypes() : c10::ArrayRef<std::string>();
  for (size_t i = 0; i < shapes.size(); ++i) {
    if (i < dtypes.size() && dtype_bytes(dtypes[i]) == 0) continue;
    if (!s.empty()) s += ", ";
    s += "[";
    for (size_t d = 0; d < shapes[i].size(); ++d) s += (d ? ", " : "") + std::to_string(shapes[i][d]);
    s += "]";
  }
  return s;
}

// Sizes in bytes of an event's tensor inputs, in order, and of its matrix operands.
struct Inputs {
  std::vector<double> bytes;
  std::vector<std::vector<int64_t>> matrices;  // inputs with 2 or more dimensions
  double elem = 4;
};

Inputs inputs_of(const prof::KinetoEvent& e) {
  Inputs in;
  if (!e.hasShapes() || !e.hasTypes()) return in;
  const auto shapes = e.shapes();
  const auto dtypes = e.dtypes();
  for (size_t i = 0; i < shapes.size() && i < dtypes.size(); ++i) {
    const int64_t eb = dtype_bytes(dtypes[i]);
    if (eb == 0) continue;
    double n = 1;
    for (int64_t d : shapes[i]) n *= static_cast<double>(d);
    in.bytes.push_back(n * eb);
    if (shapes[i].size() >= 2) {
      in.matrices.push_back(shapes[i]);
      in.elem = static_cast<double>(eb);
    }
  }
  return in;
}

// Counted work of one ATen op (kernels' work comes from record_kernel_work instead).
Work work_of(const prof::KinetoEvent& e, const std::string& name, const std::string& category) {
  const Inputs in = inputs_of(e);
  Work w;
  if (category == "gemm") {
    w.flops = static_cast<double>(e.flops());
    double reads = 0;
    for (double b : in.bytes) reads += b;
    // The product of the last two matrix operands [..., m, k] x [..., k, n] writes [..., m, n].
    if (in.matrices.size() >= 2) {
      const auto& a = in.matrices[in.matrices.size() - 2];
      const auto& b = in.matrices.back();
      double out = static_cast<double>(b.back()) * in.elem;
      for (size_t d = 0; d + 1 < a.size(); ++d) out *= static_cast<double>(a[d]);
      w.bytes = reads + out;
    }
    return w;
  }
  if (category != "elementwise" && category != "copy") return w;
  if (in.bytes.empty()) return w;
  const std::string op = name.substr(6);
  double sum = 0, largest = 0;
  for (double b : in.bytes) {
    sum += b;
    largest = std::max(largest, b);
  }
  if (is_one_of(op, {"fill_", "zero_", "normal_", "uniform_", "random_", "bernoulli_"})) {
    w.bytes = in.bytes.front();
  } else if (is_one_of(op, {"copy_"})) {
    w.bytes = sum;  // read the source, write the destination
  } else if (is_one_of(op, {"cat", "stack"})) {
    w.bytes = 2 * sum;
  } else if (!op.empty() && op.back() == '_') {
    w.bytes = sum + in.bytes.front();
  } else {
    w.bytes = sum + largest;
  }
  return w;
}

struct Event {
  std::string name, category, shapes;
  uint64_t start = 0, dur = 0, tid = 0;
  uint64_t children = 0;
  Work work;
  uint64_t flops = 0;
};

}  // namespace

ProfileReport profile_region(const std::function<void()>& fn, const MachineLimits& limits) {
  auto& state = profile_state();
  TORCH_CHECK(!state.active.exchange(true),
              "profile_region: a profile is already being taken in this process");
  struct Deactivate {
    ProfileState& s;
    ~Deactivate() { s.active = false; }
  } deactivate{state};
  {
    std::lock_guard<std::mutex> lock(state.mutex);
    state.kernel_work.clear();
  }
  const impl::ProfilerConfig config(impl::ProfilerState::KINETO, /*report_input_shapes=*/true,
                                    /*profile_memory=*/false, /*with_stack=*/false,
                                    /*with_flops=*/true);
  const std::set<impl::ActivityType> activities{impl::ActivityType::CPU};
  prof::prepareProfiler(config, activities);
  prof::enableProfiler(config, activities);
  const uint64_t caller = at::RecordFunction::currentThreadId();
  const auto t0 = std::chrono::steady_clock::now();
  try {
    fn();
  } catch (...) {
    prof::disableProfiler();
    throw;
  }
  ProfileReport report;
  report.wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const auto result = prof::disableProfiler();
  report.limits = limits;
  std::map<std::string, Work> kernel_work;
  {
    std::lock_guard<std::mutex> lock(state.mutex);
    kernel_work.swap(state.kernel_work);
  }

  std::vector<Event> events;
  uint64_t first = UINT64_MAX;
  for (const auto& e : result->events()) {
    Event ev;
    ev.name = e.name();
    ev.category = category_of(ev.name);
    ev.shapes = shapes_text(e);
    ev.start = e.startUs();
    ev.dur = e.durationUs();
    ev.tid = e.startThreadId();
    ev.flops = e.flops();
    ev.work = work_of(e, ev.name, ev.category);
    first = std::min(first, ev.start);
    events.push_back(std::move(ev));
  }
  // Nesting per thread: sorted by start (the longer first at equal starts), an event is a child of
  // the innermost open event that contains it.
  std::vector<size_t> order(events.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto &x = events[a], &y = events[b];
    if (x.tid != y.tid) return x.tid < y.tid;
    if (x.start != y.start) return x.start < y.start;
    return x.dur > y.dur;
  });
  std::vector<size_t> open;
  uint64_t open_tid = UINT64_MAX;
  for (size_t i : order) {
    auto& ev = events[i];
    if (ev.tid != open_tid) {
      open.clear();
      open_tid = ev.tid;
    }
    while (!open.empty() && events[open.back()].start + events[open.back()].dur < ev.start + ev.dur)
      open.pop_back();
    if (open.empty()) {
      if (ev.tid == caller) report.in_ops_ms += ev.dur / 1000.0;
    } else {
      events[open.back()].children += ev.dur;
    }
    open.push_back(i);
  }

  // Rows: the calling thread's events by (name, shapes). Other threads' events (ops a
  // parallel_for body dispatched) are inside a calling-thread op already and go to the trace.
  std::map<std::string, ProfileRow> rows;
  for (const auto& ev : events) {
    if (ev.tid != caller) continue;
    const std::string key = ev.name + "\n" + ev.shapes;
    auto& r = rows[key];
    r.name = ev.name;
    r.category = ev.category;
    r.shapes = ev.shapes;
    r.calls += 1;
    r.self_ms += (ev.dur - std::min(ev.dur, ev.children)) / 1000.0;
    r.work += ev.work;
  }
  for (auto& [key, r] : rows) {
    if (r.category == "kernel") {
      auto it = kernel_work.find(r.name);
      if (it != kernel_work.end()) r.work = it->second;
    }
    r.share = report.wall_ms > 0 ? r.self_ms / report.wall_ms : 0;
    if (r.self_ms > 0) {
      r.gflops = r.work.flops / (r.self_ms * 1e6);
      r.gbs = r.work.bytes / (r.self_ms * 1e6);
      r.pct_of_limit = 100 * limit_ms(r.work, limits) / r.self_ms;
    }
    report.limit_ms += limit_ms(r.work, limits);
    report.rows.push_back(r);
  }
  std::sort(report.rows.begin(), report.rows.end(),
            [](const ProfileRow& a, const ProfileRow& b) { return a.self_ms > b.self_ms; });

  nlohmann::json trace = nlohmann::json::array();
  for (const auto& ev : events) {
    nlohmann::json args = {{"shapes", ev.shapes}, {"category", ev.category}};
    if (ev.flops > 0) args["flops"] = ev.flops;
    if (ev.work.bytes > 0) args["bytes_estimate"] = ev.work.bytes;
    trace.push_back({{"name", ev.name},
                     {"cat", ev.category},
                     {"ph", "X"},
                     {"ts", ev.start - first},
                     {"dur", ev.dur},
                     {"pid", 0},
                     {"tid", ev.tid},
                     {"args", std::move(args)}});
  }
  report.trace_json =
      nlohmann::json{{"traceEvents", std::move(trace)}, {"displayTimeUnit", "ms"}}.dump();
  return report;
}

std::string format_profile(const ProfileReport& r, int top) {
  std::string s = fmt::format(
      "# profile: {:.2f} ms by the clock, {:.2f} ms ({:.1f}%) in ops on the calling thread; the "
      "ops' counted work needs {:.2f} ms at sgemm {:.1f} GFLOP/s and memory {:.1f} GB/s ({:.1f}% "
      "of the clock)\n",
      r.wall_ms, r.in_ops_ms, r.wall_ms > 0 ? 100 * r.in_ops_ms / r.wall_ms : 0, r.limit_ms,
      r.limits.sgemm_gflops, r.limits.bandwidth_gbs,
      r.wall_ms > 0 ? 100 * r.limit_ms / r.wall_ms : 0);
  s += fmt::format("{:>9} {:>6} {:>6}  {:<11} {:>8} {:>7} {:>7}  {}\n", "self_ms", "share", "calls",
                   "category", "GFLOP/s", "GB/s", "%limit", "op [input shapes]");
  auto rate = [](double v) { return v > 0 ? fmt::format("{:.1f}", v) : std::string("-"); };
  double rest_ms = 0;
  int64_t rest_calls = 0;
  for (size_t i = 0; i < r.rows.size(); ++i) {
    const auto& row = r.rows[i];
    if (static_cast<int>(i) >= top) {
      rest_ms += row.self_ms;
      rest_calls += row.calls;
      continue;
    }
    s += fmt::format("{:>9.3f} {:>5.1f}% {:>6}  {:<11} {:>8} {:>7} {:>7}  {}{}\n", row.self_ms,
                     100 * row.share, row.calls, row.category, rate(row.gflops), rate(row.gbs),
                     rate(row.pct_of_limit), row.name,
                     row.shapes.empty() ? "" : " " + row.shapes);
  }
  if (rest_calls > 0) {
    s += fmt::format("{:>9.3f} {:>5.1f}% {:>6}  {:<11} {:>8} {:>7} {:>7}  ({} more ops)\n", rest_ms,
                     r.wall_ms > 0 ? 100 * rest_ms / r.wall_ms : 0, rest_calls, "", "", "", "",
                     r.rows.size() - static_cast<size_t>(top));
  }
  const double outside = std::max(0.0, r.wall_ms - r.in_ops_ms);
  s += fmt::format("{:>9.3f} {:>5.1f}% {:>6}  {:<11} {:>8} {:>7} {:>7}  (outside any op)\n", outside,
                   r.wall_ms > 0 ? 100 * outside / r.wall_ms : 0, "", "", "", "", "");
  return s;
}

nlohmann::json profile_to_json(const ProfileReport& r) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& row : r.rows) {
    rows.push_back({{"name", row.name},
                    {"category", row.category},
                    {"shapes", row.shapes},
                    {"calls", row.calls},
                    {"self_ms", row.self_ms},
                    {"share", row.share},
                    {"flops", row.work.flops},
                    {"bytes", row.work.bytes},
                    {"gflops", row.gflops},
                    {"gbs", row.gbs},
                    {"pct_of_limit", row.pct_of_limit}});
  }
  return {{"wall_ms", r.wall_ms},
          {"in_ops_ms", r.in_ops_ms},
          {"limit_ms", r.limit_ms},
          {"sgemm_gflops", r.limits.sgemm_gflops},
          {"bandwidth_gbs", r.limits.bandwidth_gbs},
          {"ops", std::move(rows)}};
}

}  // namespace longseq
