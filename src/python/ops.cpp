// The functional cores as PyTorch operators: TORCH_LIBRARY(longseq) declares one schema per op,
// and torch.ops.longseq.<op> calls it from Python (python/longseq/ops.py wraps them with
// docstrings). Each op is registered as a CompositeImplicitAutograd kernel: the dispatcher calls
// the C++ op with autograd on, the op dispatches to its fused kernel (an autograd::Function whose
// backward is the fused backward) or its composite path, exactly as from C++. So a Python
// backward runs the same fused backward, and there is one implementation of each op.
//
// Schema defaults that are facts of the library (Performer's chunk, Reformer's buckets, ...) are
// read from the core option structs when the schema is built, never written here a second time.
// A bad argument raises the op's own c10::Error, which Python shows as a RuntimeError.
#include "python/registration.h"

#include <longseq/attention.h>
#include <longseq/conv.h>
#include <longseq/linear_attention.h>
#include <longseq/lmu.h>
#include <longseq/rnn.h>
#include <longseq/scan.h>

#include <ATen/ATen.h>
#include <torch/library.h>

#include <fmt/core.h>

#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace longseq::python {
namespace {

using OptTensor = c10::optional<at::Tensor>;

at::Tensor value_or_undefined(const OptTensor& t) { return t.has_value() ? *t : at::Tensor(); }

AttentionMask mask_of(bool causal, const OptTensor& key_padding, const OptTensor& allowed = {}) {
  AttentionMask m;
  m.causal = causal;
  m.key_padding = value_or_undefined(key_padding);
  m.allowed = value_or_undefined(allowed);
  return m;
}

PerformerKernel performer_kernel(const std::string& name) {
  TORCH_CHECK(name == "softmax" || name == "relu",
              "performer_attention: expected `kernel` softmax or relu, got '", name, "'");
  return name == "relu" ? PerformerKernel::kRelu : PerformerKernel::kSoftmax;
}

RnnCell rnn_cell(const std::string& name) {
  if (name == "elman") return RnnCell::kElman;
  if (name == "lstm") return RnnCell::kLstm;
  TORCH_CHECK(name == "gru", "rnn_layer: expected `cell` elman, lstm or gru, got '", name, "'");
  return RnnCell::kGru;
}

// ---- attention -------------------------------------------------------------------------------

at::Tensor exact(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal,
                 const OptTensor& key_padding, const OptTensor& allowed, double dropout_p,
                 bool train, c10::optional<double> scale, bool composite) {
  const auto mask = mask_of(causal, key_padding, allowed);
  std::optional<double> sc;
  if (scale.has_value()) sc = *scale;
  return composite ? exact_attention_composite(q, k, v, mask, dropout_p, train, sc)
                   : exact_attention(q, k, v, mask, dropout_p, train, sc);
}

at::Tensor linformer(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& e_proj, const at::Tensor& f_proj,
                     const OptTensor& key_padding, double dropout_p, bool train, bool composite) {
  const auto mask = mask_of(false, key_padding);
  return composite ? linformer_attention_composite(q, k, v, e_proj, f_proj, mask, dropout_p, train)
                   : linformer_attention(q, k, v, e_proj, f_proj, mask, dropout_p, train);
}

at::Tensor longformer(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t window,
                      std::vector<int64_t> dilation, std::vector<int64_t> global_positions,
                      bool causal, const OptTensor& key_padding, const OptTensor& q_global,
                      const OptTensor& k_global, const OptTensor& v_global, double dropout_p,
                      bool train, int64_t block, bool composite) {
  LongformerPattern p;
  p.window = window;
  p.dilation = std::move(dilation);
  p.global_positions = std::move(global_positions);
  p.block = block;
  const auto mask = mask_of(causal, key_padding);
  const auto qg = value_or_undefined(q_global), kg = value_or_undefined(k_global),
             vg = value_or_undefined(v_global);
  return composite ? longformer_attention_composite(q, k, v, p, mask, qg, kg, vg, dropout_p, train)
                   : longformer_attention(q, k, v, p, mask, qg, kg, vg, dropout_p, train);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> performer_feature_maps(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& omega, const std::string& kernel,
    bool causal, const OptTensor& key_padding, bool composite) {
  const auto mask = mask_of(causal, key_padding);
  const auto f = composite
                     ? performer_features_composite(q, k, omega, performer_kernel(kernel), mask)
                     : performer_features(q, k, omega, performer_kernel(kernel), mask);
  return {f.fq, f.fk, f.m};
}

at::Tensor performer(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& omega, const std::string& kernel, bool causal, int64_t chunk,
                     const OptTensor& key_padding, bool composite) {
  PerformerCoreOptions o;
  o.kernel = performer_kernel(kernel);
  o.chunk = chunk;
  const auto mask = mask_of(causal, key_padding);
  return composite ? performer_attention_composite(q, k, v, omega, o, mask)
                   : performer_attention(q, k, v, omega, o, mask);
}

at::Tensor draw_features(int64_t features, int64_t head_dim, int64_t seed,
                         c10::optional<at::ScalarType> dtype) {
  TORCH_CHECK(seed >= 0, "performer_draw_features: expected `seed` >= 0, got ", seed);
  return performer_draw_features(features, head_dim, static_cast<uint64_t>(seed),
                                 dtype.value_or(at::kFloat));
}

at::Tensor linear(const at::Tensor& fq, const at::Tensor& fk, const at::Tensor& v, bool causal,
                  const OptTensor& key_padding, int64_t chunk, bool composite) {
  const auto mask = mask_of(causal, key_padding);
  return composite ? linear_attention_composite(fq, fk, v, mask, chunk)
                   : linear_attention(fq, fk, v, mask, chunk);
}

ReformerCoreOptions reformer_options(int64_t buckets, int64_t n_hashes, int64_t chunk) {
  ReformerCoreOptions o;
  o.buckets = buckets;
  o.n_hashes = n_hashes;
  o.chunk = chunk;
  return o;
}

at::Tensor reformer(const at::Tensor& qk, const at::Tensor& v, const at::Tensor& rotations,
                    int64_t buckets, int64_t n_hashes, int64_t chunk, bool causal,
                    const OptTensor& key_padding, double dropout_p, bool train, bool composite) {
  const auto o = reformer_options(buckets, n_hashes, chunk);
  const auto mask = mask_of(causal, key_padding);
  return composite ? reformer_attention_composite(qk, v, rotations, o, mask, dropout_p, train)
                   : reformer_attention(qk, v, rotations, o, mask, dropout_p, train);
}

at::Tensor draw_rotations(int64_t head_dim, int64_t buckets, int64_t n_hashes, int64_t seed,
                          c10::optional<at::ScalarType> dtype) {
  TORCH_CHECK(seed >= 0, "reformer_draw_rotations: expected `seed` >= 0, got ", seed);
  return reformer_draw_rotations(reformer_options(buckets, n_hashes, 1), head_dim,
                                 static_cast<uint64_t>(seed), dtype.value_or(at::kFloat));
}

// ---- scans and recurrences -------------------------------------------------------------------

at::Tensor scan(const at::Tensor& a, const at::Tensor& b, const OptTensor& h0, bool composite) {
  const auto h = value_or_undefined(h0);
  return composite ? linear_scan_composite(a, b, h) : linear_scan(a, b, h);
}

at::Tensor min_rnn(const at::Tensor& xp, bool lstm, const OptTensor& valid, const OptTensor& h0,
                   bool composite) {
  const auto vl = value_or_undefined(valid), h = value_or_undefined(h0);
  return composite ? min_rnn_scan_composite(xp, lstm, vl, h) : min_rnn_scan(xp, lstm, vl, h);
}

at::Tensor conv(const at::Tensor& x, const at::Tensor& weight, const OptTensor& bias,
                const OptTensor& prefix, bool composite) {
  const auto b = value_or_undefined(bias), pre = value_or_undefined(prefix);
  return composite ? causal_conv1d_composite(x, weight, b, pre) : causal_conv1d(x, weight, b, pre);
}

std::tuple<at::Tensor, at::Tensor> selective(const at::Tensor& u, const at::Tensor& delta,
                                             const at::Tensor& A, const at::Tensor& Bm,
                                             const at::Tensor& Cm, const OptTensor& D,
                                             const OptTensor& h0, bool composite) {
  const auto d = value_or_undefined(D), h = value_or_undefined(h0);
  return composite ? selective_scan_composite(u, delta, A, Bm, Cm, d, h)
                   : selective_scan(u, delta, A, Bm, Cm, d, h);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> rnn(const std::string& cell, const at::Tensor& x,
                                                   const at::Tensor& w_ih, const at::Tensor& w_hh,
                                                   const OptTensor& b_ih, const OptTensor& b_hh,
                                                   const OptTensor& h0, const OptTensor& c0,
                                                   const OptTensor& valid, bool reverse,
                                                   bool composite) {
  const RnnWeights w{w_ih, w_hh, value_or_undefined(b_ih), value_or_undefined(b_hh)};
  const auto h = value_or_undefined(h0), c = value_or_undefined(c0), vl = value_or_undefined(valid);
  const auto r = composite ? rnn_layer_composite(rnn_cell(cell), x, w, h, c, vl, reverse)
                           : rnn_layer(rnn_cell(cell), x, w, h, c, vl, reverse);
  return {r.out, r.h, r.c};
}

std::tuple<at::Tensor, at::Tensor> lmu_system_op(int64_t order, double window) {
  const auto s = lmu_system(order, window);
  return {s.a_bar, s.b_bar};
}

at::Tensor lmu_recurrent(const at::Tensor& u, const at::Tensor& a_bar, const at::Tensor& b_bar,
                         const OptTensor& m0) {
  return lmu_memory_recurrent(u, a_bar, b_bar, value_or_undefined(m0));
}

}  // namespace

void register_ops(torch::Library& m) {
  const PerformerCoreOptions performer_defaults;
  const ReformerCoreOptions reformer_defaults;
  const LongformerPattern longformer_defaults;
  // Each op twice: `<op>` (the automatic choice) and `<op>_composite` (the reference path).
  for (const bool composite : {false, true}) {
    const std::string c = composite ? "_composite" : "";
    m.def(torch::schema(
              ("exact_attention" + c +
               "(Tensor q, Tensor k, Tensor v, bool causal=False, Tensor? key_padding=None, "
               "Tensor? allowed=None, float dropout_p=0.0, bool train=False, "
               "float? scale=None) -> Tensor")
                  .c_str()),
          [composite](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal,
                      const OptTensor& kp, const OptTensor& allowed, double p, bool train,
                      c10::optional<double> scale) {
            return exact(q, k, v, causal, kp, allowed, p, train, scale, composite);
          });
    m.def(
        torch::schema(("linformer_attention" + c +
                       "(Tensor q, Tensor k, Tensor v, Tensor e_proj, Tensor f_proj, "
                       "Tensor? key_padding=None, float dropout_p=0.0, bool train=False) -> Tensor")
                          .c_str()),
        [composite](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const at::Tensor& e, const at::Tensor& f, const OptTensor& kp, double p,
                    bool train) { return linformer(q, k, v, e, f, kp, p, train, composite); });
    m.def(torch::schema(
              fmt::format("longformer_attention{}(Tensor q, Tensor k, Tensor v, int window={}, "
                          "int[] dilation=[1], int[] global_positions=[], bool causal=False, "
                          "Tensor? key_padding=None, Tensor? q_global=None, "
                          "Tensor? k_global=None, Tensor? v_global=None, float dropout_p=0.0, "
                          "bool train=False, int block={}) -> Tensor",
                          c, longformer_defaults.window, longformer_defaults.block)
                  .c_str()),
          [composite](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t w,
                      std::vector<int64_t> dil, std::vector<int64_t> globals, bool causal,
                      const OptTensor& kp, const OptTensor& qg, const OptTensor& kg,
                      const OptTensor& vg, double p, bool train, int64_t block) {
            return longformer(q, k, v, w, std::move(dil), std::move(globals), causal, kp, qg, kg,
                              vg, p, train, block, composite);
          });
    m.def(torch::schema(("performer_features" + c +
                         "(Tensor q, Tensor k, Tensor omega, str kernel=\"softmax\", "
                         "bool causal=False, Tensor? key_padding=None) -> (Tensor, Tensor, Tensor)")
                            .c_str()),
          [composite](const at::Tensor& q, const at::Tensor& k, const at::Tensor& omega,
                      std::string kernel, bool causal, const OptTensor& kp) {
            return performer_feature_maps(q, k, omega, kernel, causal, kp, composite);
          });
    m.def(torch::schema(
              fmt::format("performer_attention{}(Tensor q, Tensor k, Tensor v, Tensor omega, "
                          "str kernel=\"softmax\", bool causal=False, int chunk={}, "
                          "Tensor? key_padding=None) -> Tensor",
                          c, performer_defaults.chunk)
                  .c_str()),
          [composite](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                      const at::Tensor& omega, std::string kernel, bool causal, int64_t chunk,
                      const OptTensor& kp) {
            return performer(q, k, v, omega, kernel, causal, chunk, kp, composite);
          });
    m.def(torch::schema(
              fmt::format("linear_attention{}(Tensor fq, Tensor fk, Tensor v, "
                          "bool causal=False, Tensor? key_padding=None, int chunk={}) -> Tensor",
                          c, performer_defaults.chunk)
                  .c_str()),
          [composite](const at::Tensor& fq, const at::Tensor& fk, const at::Tensor& v, bool causal,
                      const OptTensor& kp,
                      int64_t chunk) { return linear(fq, fk, v, causal, kp, chunk, composite); });
    m.def(torch::schema(
              fmt::format(
                  "reformer_attention{}(Tensor qk, Tensor v, Tensor rotations, "
                  "int buckets={}, int n_hashes={}, int chunk={}, bool causal=False, "
                  "Tensor? key_padding=None, float dropout_p=0.0, bool train=False) -> Tensor",
                  c, reformer_defaults.buckets, reformer_defaults.n_hashes, reformer_defaults.chunk)
                  .c_str()),
          [composite](const at::Tensor& qk, const at::Tensor& v, const at::Tensor& rot,
                      int64_t buckets, int64_t n_hashes, int64_t chunk, bool causal,
                      const OptTensor& kp, double p, bool train) {
            return reformer(qk, v, rot, buckets, n_hashes, chunk, causal, kp, p, train, composite);
          });
    m.def(torch::schema(
              ("linear_scan" + c + "(Tensor a, Tensor b, Tensor? h0=None) -> Tensor").c_str()),
          [composite](const at::Tensor& a, const at::Tensor& b, const OptTensor& h0) {
            return scan(a, b, h0, composite);
          });
    m.def(torch::schema(
              ("min_rnn_scan" + c +
               "(Tensor xp, bool lstm=False, Tensor? valid=None, Tensor? h0=None) -> Tensor")
                  .c_str()),
          [composite](const at::Tensor& xp, bool lstm, const OptTensor& valid,
                      const OptTensor& h0) { return min_rnn(xp, lstm, valid, h0, composite); });
    m.def(torch::schema(("causal_conv1d" + c +
                         "(Tensor x, Tensor weight, Tensor? bias=None, Tensor? prefix=None) -> "
                         "Tensor")
                            .c_str()),
          [composite](const at::Tensor& x, const at::Tensor& w, const OptTensor& bias,
                      const OptTensor& prefix) { return conv(x, w, bias, prefix, composite); });
    m.def(torch::schema(("selective_scan" + c +
                         "(Tensor u, Tensor delta, Tensor A, Tensor Bm, Tensor Cm, Tensor? D=None, "
                         "Tensor? h0=None) -> (Tensor, Tensor)")
                            .c_str()),
          [composite](const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                      const at::Tensor& Bm, const at::Tensor& Cm, const OptTensor& D,
                      const OptTensor& h0) {
            return selective(u, delta, A, Bm, Cm, D, h0, composite);
          });
    m.def(torch::schema(("rnn_layer" + c +
                         "(str cell, Tensor x, Tensor w_ih, Tensor w_hh, Tensor? b_ih=None, "
                         "Tensor? b_hh=None, Tensor? h0=None, Tensor? c0=None, Tensor? valid=None, "
                         "bool reverse=False) -> (Tensor, Tensor, Tensor)")
                            .c_str()),
          [composite](std::string cell, const at::Tensor& x, const at::Tensor& w_ih,
                      const at::Tensor& w_hh, const OptTensor& b_ih, const OptTensor& b_hh,
                      const OptTensor& h0, const OptTensor& c0, const OptTensor& valid,
                      bool reverse) {
            return rnn(cell, x, w_ih, w_hh, b_ih, b_hh, h0, c0, valid, reverse, composite);
          });
  }
  m.def(torch::schema("performer_draw_features(int features, int head_dim, int seed=0, "
                      "ScalarType? dtype=None) -> Tensor"),
        &draw_features);
  m.def(torch::schema(fmt::format("reformer_draw_rotations(int head_dim, int buckets={}, "
                                  "int n_hashes={}, int seed=0, ScalarType? dtype=None) -> Tensor",
                                  reformer_defaults.buckets, reformer_defaults.n_hashes)
                          .c_str()),
        &draw_rotations);
  // LMU has no fused kernel: lmu_memory is the FFT convolution, lmu_memory_recurrent its
  // step-by-step reference (and what decoding runs).
  m.def(torch::schema("lmu_system(int order, float window) -> (Tensor, Tensor)"), &lmu_system_op);
  m.def(torch::schema("lmu_memory(Tensor u, Tensor a_bar, Tensor b_bar) -> Tensor"),
        [](const at::Tensor& u, const at::Tensor& a, const at::Tensor& b) {
          return lmu_memory(u, a, b);
        });
  m.def(
      torch::schema(
          "lmu_memory_recurrent(Tensor u, Tensor a_bar, Tensor b_bar, Tensor? m0=None) -> Tensor"),
      &lmu_recurrent);
  m.def(torch::schema("padding_mask_from_lengths(Tensor lengths, int max_len) -> Tensor"),
        [](const at::Tensor& lengths, int64_t max_len) {
          return padding_mask_from_lengths(lengths, max_len);
        });
}

}  // namespace longseq::python
