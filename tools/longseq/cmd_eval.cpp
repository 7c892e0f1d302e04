// `longseq eval`: evaluates a checkpoint on a split of its task.
#include "commands.h"

#include <longseq/checkpoint.h>
#include <longseq/config.h>
#include <longseq/train.h>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <cmath>

namespace longseq::cli {
namespace {

struct EvalArgs {
  std::string checkpoint;
  std::string split = "test";
  int64_t batch_size = 0;
  int64_t max_batches = 0;
  bool json = false;
};

void run_eval(const EvalArgs& a) {
  TORCH_CHECK(a.batch_size >= 0, "eval: `--batch-size` must be >= 0 (0 = the run's), got ",
              a.batch_size);
  TORCH_CHECK(a.max_batches >= 0, "eval: `--max-batches` must be >= 0 (0 = all), got ",
              a.max_batches);
  const std::string dir = resolve_checkpoint(a.checkpoint);
  Trainer trainer(checkpoint_config(dir));
  load_checkpoint(trainer, dir);
  const int64_t bs = a.batch_size > 0 ? a.batch_size : trainer.config().batch_size;
  const Split split = a.split == "test"         ? Split::kTest
                      : a.split == "validation" ? Split::kValidation
                                                : Split::kTrain;
  const auto r = evaluate(trainer.model(), trainer.task(), split, bs, a.max_batches);
  const auto& info = trainer.task().info();
  if (a.json) {
    fmt::print("{}\n", nlohmann::json{{"checkpoint", dir},
                                      {"task", trainer.config().task},
                                      {"split", a.split},
                                      {"step", trainer.current_step()},
                                      {"loss", r.loss},
                                      {"accuracy", r.accuracy},
                                      {"count", r.count}}
                           .dump());
    return;
  }
  fmt::print("{} at step {} on {} {}: loss {:.4f}", dir, trainer.current_step(),
             trainer.config().task, a.split, r.loss);
  if (r.accuracy >= 0) fmt::print(" accuracy {:.4f}", r.accuracy);
  if (trainer.config().task == "bytes")
    fmt::print(" ({:.4f} bits per byte)", r.loss / std::log(2.0));
  fmt::print(" over {} {}\n", r.count, info.head == "classify" ? "sequences" : "positions");
}

}  // namespace

Runner add_eval_command(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "evaluate a checkpoint on a split of its task");
  cmd->add_option("checkpoint", a->checkpoint, "checkpoint directory or --out directory of a run")
      ->required();
  cmd->add_option("--split", a->split, "split")
      ->check(CLI::IsMember({"train", "validation", "test"}))
      ->capture_default_str();
  cmd->add_option("--batch-size", a->batch_size, "batch size (default: the run's)");
  cmd->add_option("--max-batches", a->max_batches, "evaluate at most this many batches (0 = all)");
  cmd->add_flag("--json", a->json, "one JSON line");
  return [a] { run_eval(*a); };
}

}  // namespace longseq::cli
