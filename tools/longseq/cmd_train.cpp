// `longseq train`: trains a model on a task from a JSON config (+ --set overrides), with a
// progress bar on a terminal (plain periodic lines otherwise) and metrics as JSON lines.
#include "commands.h"

#include <longseq/checkpoint.h>
#include <longseq/config.h>
#include <longseq/train.h>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <sys/stat.h>
#include <unistd.h>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <fstream>

namespace longseq::cli {
namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void on_signal(int) { g_interrupted = true; }

struct TrainArgs {
  std::string out_dir;
  std::string resume;
  int64_t save_every = 0;
  int64_t keep_last = 3;
  std::string config_path;
  std::vector<std::string> sets;
  std::string metrics_path;
  int64_t log_every = 0;
  std::string eval_split = "test";
};

std::string eta(double secs) {
  if (!std::isfinite(secs) || secs < 0) return "?";
  const int64_t s = static_cast<int64_t>(secs);
  return s >= 3600 ? fmt::format("{}h{:02}m", s / 3600, s / 60 % 60)
                   : fmt::format("{}m{:02}s", s / 60, s % 60);
}

// The run directory a --resume path belongs to: the path itself, or the parent of a step
// directory (one holding state.json), so a resumed run saves beside its checkpoints, not inside.
std::string run_dir_of(const std::string& resume) {
  const std::string dir = resolve_checkpoint(resume);
  if (dir != resume) return resume;  // resume named a run directory through its `latest`
  std::string trimmed = resume;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  const auto slash = trimmed.find_last_of('/');
  return slash == std::string::npos ? "." : trimmed.substr(0, slash == 0 ? 1 : slash);
}

// Keys that define the learning-rate schedule: changing them on resume follows another schedule
// than the uninterrupted run would have.
void warn_schedule_changes(const TrainConfig& saved, const TrainConfig& now) {
  auto warn = [](const char* key, const std::string& was, const std::string& is) {
    fmt::print(stderr,
               "warning: train.{} was {} in the checkpoint and is {} now: the resumed run follows "
               "another learning-rate schedule than an uninterrupted one\n",
               key, was, is);
  };
  if (saved.steps != now.steps)
    warn("steps", std::to_string(saved.steps), std::to_string(now.steps));
  if (saved.warmup != now.warmup) {
    warn("warmup", std::to_string(saved.warmup), std::to_string(now.warmup));
  }
  if (saved.lr != now.lr) warn("lr", fmt::format("{}", saved.lr), fmt::format("{}", now.lr));
  if (saved.min_lr_ratio != now.min_lr_ratio) {
    warn("min_lr_ratio", fmt::format("{}", saved.min_lr_ratio),
         fmt::format("{}", now.min_lr_ratio));
  }
}

void run_train(const TrainArgs& a) {
  TORCH_CHECK(a.save_every >= 0, "train: `--save-every` must be >= 0, got ", a.save_every);
  TORCH_CHECK(a.keep_last >= 0, "train: `--keep` must be >= 0, got ", a.keep_last);
  const std::string out_dir = !a.out_dir.empty()  ? a.out_dir
                              : !a.resume.empty() ? run_dir_of(a.resume)
                                                  : std::string();
  // Where checkpoints go is checked now, not found unwritable after the training.
  if (!out_dir.empty()) check_checkpoint_dir(out_dir, a.keep_last);
  // --resume without --config continues the checkpoint's own config (overrides still apply).
  TrainConfig config;
  if (!a.resume.empty() && a.config_path.empty()) {
    config = parse_train_config(train_config_to_json(checkpoint_config(a.resume)), a.sets,
                                resolve_checkpoint(a.resume));
  } else {
    config = load_train_config(a.config_path, a.sets);
  }
  if (!a.resume.empty()) warn_schedule_changes(checkpoint_config(a.resume), config);
  if (!out_dir.empty()) {
    const int64_t stale = clean_stale_checkpoint_temps(out_dir);
    if (stale > 0) {
      fmt::print("# removed {} temporary checkpoint director{} left by killed saves in {}\n", stale,
                 stale == 1 ? "y" : "ies", out_dir);
    }
  }
  Trainer trainer(config);
  if (!a.resume.empty()) {
    load_checkpoint(trainer, a.resume);
    fmt::print("# resumed from {} at step {}; checkpoints go to {}\n", resolve_checkpoint(a.resume),
               trainer.current_step(), out_dir);
  }
  const auto& info = trainer.task().info();
  fmt::print("# {}\n# task {} (T = {}, {}), mixers", machine_line(), config.task, info.seq_len,
             info.baseline_text);
  for (const auto& m : trainer.config().model.mixers) fmt::print(" {}", m);
  int64_t params = 0;
  for (const auto& p : trainer.model()->parameters()) params += p.numel();
  fmt::print(", {} layers, dim {}, {} parameters\n", config.model.layers, config.model.mixer.dim,
             params);
  std::ofstream metrics;
  if (!a.metrics_path.empty()) {
    struct stat st {};
    TORCH_CHECK(::stat(a.metrics_path.c_str(), &st) != 0 || S_ISREG(st.st_mode),
                "train: `--metrics` '", a.metrics_path, "' exists and is not a regular file");
    metrics.open(a.metrics_path, std::ios::app);
    TORCH_CHECK(metrics.good(), "train: cannot write `--metrics` file '", a.metrics_path, "'");
  }
  const bool tty = isatty(fileno(stdout));
  const int64_t log_every = a.log_every > 0 ? a.log_every : std::max<int64_t>(1, config.steps / 20);
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  double loss_avg = NAN;
  auto on_step = [&](const StepStats& s) {
    if (!s.skipped) loss_avg = std::isnan(loss_avg) ? s.loss : 0.95 * loss_avg + 0.05 * s.loss;
    const int64_t done = s.step + 1;
    const double left = elapsed() / done * (config.steps - done);
    if (metrics.is_open()) {
      metrics << nlohmann::json{{"kind", "step"},
                                {"step", done},
                                {"loss", s.loss},
                                {"grad_norm", s.grad_norm},
                                {"clipped", s.clipped},
                                {"skipped", s.skipped},
                                {"lr", s.lr},
                                {"tokens_per_s", s.tokens_per_s},
                                {"elapsed_s", elapsed()}}
                     .dump()
              << "\n";
    }
    if (tty) {
      const int width = 30;
      const int filled = static_cast<int>(width * done / config.steps);
      fmt::print("\r[{}{}] {}/{} loss {:.4f} tok/s {:.0f} ETA {}   ", std::string(filled, '#'),
                 std::string(width - filled, '.'), done, config.steps, loss_avg, s.tokens_per_s,
                 eta(left));
      std::fflush(stdout);
    } else if (done % log_every == 0 || done == config.steps) {
      fmt::print(
          "step {}/{} loss {:.4f} (avg {:.4f}) grad_norm {:.3f} lr {:.2e} tok/s {:.0f} "
          "elapsed {} ETA {}\n",
          done, config.steps, s.loss, loss_avg, s.grad_norm, s.lr, s.tokens_per_s, eta(elapsed()),
          eta(left));
      std::fflush(stdout);
    }
  };
  auto on_eval = [&](int64_t step, const EvalResult& r) {
    fmt::print("{}eval step {} validation loss {:.4f}{}\n", tty ? "\n" : "", step, r.loss,
               r.accuracy >= 0 ? fmt::format(" accuracy {:.4f}", r.accuracy) : "");
    if (metrics.is_open()) {
      metrics << nlohmann::json{{"kind", "eval"}, {"split", "validation"},  {"step", step},
                                {"loss", r.loss}, {"accuracy", r.accuracy}, {"count", r.count}}
                     .dump()
              << "\n";
      metrics.flush();
    }
  };
  // SIGINT/SIGTERM finish the current step, save, and exit cleanly.
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  // A step is saved once: a signal that arrives during a periodic save ends the run after it
  // without writing the same step again.
  int64_t saved_step = -1;
  auto save = [&](const char* why) {
    if (out_dir.empty()) return;
    if (trainer.current_step() == saved_step) {
      fmt::print("{}checkpoint ({}): step {} is already saved\n", tty ? "\n" : "", why, saved_step);
      return;
    }
    const auto dir = save_checkpoint(trainer, out_dir, a.keep_last);
    saved_step = trainer.current_step();
    if (metrics.is_open()) metrics.flush();  // the metrics up to the checkpoint survive a kill
    fmt::print("{}checkpoint ({}) saved to {}\n", tty ? "\n" : "", why, dir);
  };
  while (trainer.current_step() < config.steps && !trainer.stopped() && !g_interrupted) {
    on_step(trainer.step());
    const int64_t step = trainer.current_step();
    const bool last = step == config.steps;
    if (config.eval_every > 0 && (step % config.eval_every == 0 || last)) {
      on_eval(step, evaluate(trainer.model(), trainer.task(), Split::kValidation, config.batch_size,
                             config.eval_batches));
    }
    if (a.save_every > 0 && step % a.save_every == 0 && !last) save("periodic");
  }
  if (tty) fmt::print("\n");
  if (g_interrupted) {
    save("interrupted");
    fmt::print("train: interrupted at step {}{}\n", trainer.current_step(),
               out_dir.empty() ? " (no --out: nothing saved)"
                               : "; continue with: longseq train --resume " + out_dir);
    return;
  }
  if (trainer.stopped()) {
    save("stopped");
    fmt::print("train: {}\n", trainer.stop_reason());
  } else {
    save("final");
  }
  const auto final =
      evaluate(trainer.model(), trainer.task(),
               a.eval_split == "test" ? Split::kTest : Split::kValidation, config.batch_size);
  fmt::print(
      "final {} loss {:.4f}{} ({} counted) after {} steps in {}; {} steps clipped, {} "
      "skipped\n",
      a.eval_split, final.loss,
      final.accuracy >= 0 ? fmt::format(" accuracy {:.4f}", final.accuracy) : "", final.count,
      trainer.current_step(), eta(elapsed()), trainer.clipped_steps(), trainer.skipped_steps());
  if (info.baseline > 0) {
    fmt::print("reference: {} = {:.4f}; final loss is {:.2f}% of it\n", info.baseline_text,
               info.baseline, 100 * final.loss / info.baseline);
  }
  if (metrics.is_open()) {
    metrics << nlohmann::json{{"kind", "final"},
                              {"split", a.eval_split},
                              {"loss", final.loss},
                              {"accuracy", final.accuracy},
                              {"steps", trainer.current_step()},
                              {"elapsed_s", elapsed()}}
                   .dump()
            << "\n";
  }
}

}  // namespace

Runner add_train_command(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "train a model on a task from a JSON config");
  cmd->add_option("--config", a->config_path, "experiment config (configs/*.json)");
  cmd->add_option("--out", a->out_dir,
                  "checkpoint directory (saved at the end, on SIGINT/SIGTERM, "
                  "and every --save-every steps)");
  cmd->add_option("--resume", a->resume,
                  "continue from a checkpoint directory or an --out directory");
  cmd->add_option("--save-every", a->save_every, "steps between checkpoints (0 = only at the end)");
  cmd->add_option("--keep", a->keep_last, "checkpoints to keep (0 = all)")->capture_default_str();
  cmd->add_option("--set", a->sets,
                  "override a config key: train.lr=3e-4, model.mixers=exact,performer");
  cmd->add_option("--metrics", a->metrics_path, "append metrics as JSON lines to this file");
  cmd->add_option("--log-every", a->log_every, "steps between plain progress lines (default: 5%)");
  cmd->add_option("--final-split", a->eval_split, "split of the final evaluation")
      ->check(CLI::IsMember({"validation", "test"}))
      ->capture_default_str();
  return [a] { run_train(*a); };
}

}  // namespace longseq::cli
