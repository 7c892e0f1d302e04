// `longseq generate`: samples from a causal language model checkpoint (temperature, top-k),
// with incremental state where every mixer has one.
#include "commands.h"

#include <longseq/checkpoint.h>
#include <longseq/generate.h>
#include <longseq/train.h>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>

namespace longseq::cli {
namespace {

struct GenerateArgs {
  std::string checkpoint;
  std::string prompt;
  std::string prompt_ids;
  GenerateOptions opts;
  bool no_cache = false;
  bool json = false;
};

std::vector<int64_t> parse_ids(const std::string& text, int64_t vocab) {
  std::vector<int64_t> ids;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    size_t used = 0;
    int64_t id = -1;
    try {
      id = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    TORCH_CHECK(used == item.size() && !item.empty(),
                "generate: `--prompt-ids` expects comma-separated integers, got '", item, "'");
    TORCH_CHECK(id >= 0 && id < vocab, "generate: `--prompt-ids` entry ", id,
                " is outside the model's vocabulary [0, ", vocab, ")");
    ids.push_back(id);
  }
  return ids;
}

void run_generate(GenerateArgs a) {
  const std::string dir = resolve_checkpoint(a.checkpoint);
  Trainer trainer(checkpoint_config(dir));
  load_checkpoint(trainer, dir);
  const bool bytes = trainer.config().task == "bytes";
  const int64_t vocab = trainer.model()->config().vocab_size;
  TORCH_CHECK(a.prompt.empty() != a.prompt_ids.empty(),
              "generate: give exactly one of `--prompt` (text, byte-level models) and "
              "`--prompt-ids` (token ids)");
  std::vector<int64_t> ids;
  if (!a.prompt.empty()) {
    TORCH_CHECK(bytes,
                "generate: `--prompt` takes text for byte-level models (task `bytes`); this "
                "checkpoint's task is `",
                trainer.config().task, "`: use `--prompt-ids`");
    for (unsigned char ch : a.prompt) ids.push_back(ch);
  } else {
    ids = parse_ids(a.prompt_ids, vocab);
  }
  a.opts.use_cache = !a.no_cache;
  auto prompt = at::tensor(ids, at::kLong).view({1, -1});  // [1, P]
  const auto r = generate(trainer.model(), prompt, a.opts);
  auto out = r.tokens[0].contiguous();
  const auto* p = out.data_ptr<int64_t>();
  std::vector<int64_t> all(p, p + out.numel());
  std::string text;
  if (bytes) {
    for (int64_t id : all) text.push_back(static_cast<char>(id));
  }
  const double rate = r.seconds > 0 ? a.opts.max_new / r.seconds : 0;
  if (a.json) {
    nlohmann::json j{{"checkpoint", dir},  {"tokens", all},        {"prompt_length", ids.size()},
                     {"cached", r.cached}, {"seconds", r.seconds}, {"tokens_per_second", rate}};
    if (!r.cached) j["why_uncached"] = r.why_uncached;
    if (bytes) j["text"] = text;
    fmt::print("{}\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return;
  }
  if (bytes) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
  } else {
    std::string line;
    for (size_t i = 0; i < all.size(); ++i) line += (i ? " " : "") + std::to_string(all[i]);
    fmt::print("{}\n", line);
  }
  fmt::print(stderr, "{} new tokens in {:.2f} s ({:.1f} tokens/s), {}\n", a.opts.max_new, r.seconds,
             rate, r.cached ? "incremental state" : "recomputing the prefix: " + r.why_uncached);
}

}  // namespace

Runner add_generate_command(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "sample from a causal language-model checkpoint");
  cmd->add_option("checkpoint", a->checkpoint, "checkpoint directory or --out directory of a run")
      ->required();
  cmd->add_option("--prompt", a->prompt, "prompt text (byte-level models)");
  cmd->add_option("--prompt-ids", a->prompt_ids, "prompt token ids, comma-separated");
  cmd->add_option("--max-new", a->opts.max_new, "tokens to generate")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--temperature", a->opts.temperature, "softmax temperature; 0 = greedy")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--top-k", a->opts.top_k, "sample among the k most likely tokens; 0 = all")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--seed", a->opts.seed, "sampling seed")->capture_default_str();
  cmd->add_flag("--no-cache", a->no_cache, "recompute the whole prefix for every token");
  cmd->add_flag("--json", a->json, "one JSON line with the token ids (and text for bytes)");
  return [a] { run_generate(*a); };
}

}  // namespace longseq::cli
