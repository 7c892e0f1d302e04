// Autoregressive sampling: prefill the prompt, then one token at a time, through step() when
// every layer has incremental state, else by recomputing forward() over the whole prefix.
#include <longseq/generate.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <chrono>
#include <limits>

namespace longseq {

void GenerateOptions::validate() const {
  TORCH_CHECK(max_new >= 0, "generate: `max_new` must be >= 0, got ", max_new);
  TORCH_CHECK(temperature >= 0, "generate: `temperature` must be >= 0 (0 = greedy), got ",
              temperature);
  TORCH_CHECK(top_k >= 0, "generate: `top_k` must be >= 0 (0 = all tokens), got ", top_k);
}

namespace {

// logits [B, V] -> next tokens [B, 1].
at::Tensor sample(const at::Tensor& logits, const GenerateOptions& o, at::Generator& gen) {
  if (o.temperature == 0) return logits.argmax(-1, /*keepdim=*/true);  // [B, 1]
  auto l = logits.to(at::kDouble) / o.temperature;                     // [B, V]
  if (o.top_k > 0 && o.top_k < l.size(-1)) {
    auto kth = std::get<0>(l.topk(o.top_k, -1)).narrow(-1, o.top_k - 1, 1);  // [B, 1]
    l = l.masked_fill(l < kth, -std::numeric_limits<double>::infinity());
  }
  return at::multinomial(l.softmax(-1), 1, /*replacement=*/false, gen);  // [B, 1]
}

}  // namespace

GenerateResult generate(SequenceModel& model, const at::Tensor& prompt, const GenerateOptions& o) {
  o.validate();
  const auto& mc = model->config();
  TORCH_CHECK(mc.head == "lm" && mc.mixer.causal,
              "generate: needs a causal language model (head `lm`, causal mixers), got head `",
              mc.head, "` with causal = ", mc.mixer.causal);
  TORCH_CHECK(prompt.defined() && prompt.dim() == 2 && prompt.scalar_type() == at::kLong &&
                  prompt.size(1) >= 1,
              "generate: expected int64 prompt token ids [B, P] with P >= 1, got ",
              prompt.defined() ? prompt.sizes() : at::IntArrayRef{});
  TORCH_CHECK(prompt.size(1) + o.max_new <= mc.mixer.max_len, "generate: prompt length ",
              prompt.size(1), " + `max_new` ", o.max_new,
              " exceeds the model's `max_len` = ", mc.mixer.max_len);
  GenerateResult r;
  r.why_uncached = o.use_cache ? model->step_unsupported() : "caching turned off";
  r.cached = r.why_uncached.empty();

  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  const auto start = std::chrono::steady_clock::now();
  std::vector<at::Tensor> pieces{prompt};
  ModelDecodeState state;
  at::Tensor logits = r.cached ? model->step(prompt, state) : model->forward(prompt);  // [B, P, V]
  for (int64_t i = 0; i < o.max_new; ++i) {
    auto next = sample(logits.select(1, logits.size(1) - 1), o, gen);  // [B, 1]
    pieces.push_back(next);
    if (i + 1 == o.max_new) break;
    logits = r.cached ? model->step(next, state) : model->forward(at::cat(pieces, 1));
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.tokens = at::cat(pieces, 1);  // [B, P + max_new]
  if (was_training) model->train();
  return r;
}

}  // namespace longseq
