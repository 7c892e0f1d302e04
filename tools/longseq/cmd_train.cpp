// `longseq train`: trains a model on a task from a JSON config (+ --set overrides), with a
// progress bar on a terminal (plain periodic lines otherwise) and metrics as JSON lines.
#include "commands.h"
#include "launch.h"

#include <longseq/checkpoint.h>
#include <longseq/config.h>
#include <longseq/distributed.h>
#include <longseq/atomic_file.h>
#include <longseq/memory_tracker.h>
#include <longseq/profile.h>
#include <longseq/train.h>

#include <ATen/Parallel.h>

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
  int nproc = 0;             ///< > 0: launch this many data-parallel ranks here
  double dist_timeout = 60;  ///< seconds a collective waits for a dead or hung rank
  double max_memory_gib = 0;  ///< > 0: tensor memory budget of each process (rank)
  int64_t profile_steps = 0;  ///< > 0: a profiling run of this many steps instead of training
  std::string profile_dir;    ///< where it writes; default <out>/profile or ./longseq-profile
  int profile_top = 25;
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

// Where checkpoints go: --out, else the run directory that --resume continues, else nowhere.
std::string out_dir_of(const TrainArgs& a) {
  return !a.out_dir.empty() ? a.out_dir : !a.resume.empty() ? run_dir_of(a.resume) : std::string();
}

// --config with --set overrides; --resume without --config continues the checkpoint's own config
// (overrides still apply).
TrainConfig config_of(const TrainArgs& a) {
  if (!a.resume.empty() && a.config_path.empty()) {
    return parse_train_config(train_config_to_json(checkpoint_config(a.resume)), a.sets,
                              resolve_checkpoint(a.resume));
  }
  return load_train_config(a.config_path, a.sets);
}

void train_rank(const TrainArgs& a, const std::shared_ptr<Distributed>& dist);

// `--profile-steps K`: the K steps run once untimed (first-touch allocations, lazy
// initialisation), then again from the same step under the op profiler: the same batches, so the
// same shapes, and the allocator has met every size the profile will ask for. (One warm-up step
// of another batch left the first touch of larger tensors in the profile: a ListOps step at
// T = 1997 after a shorter warm-up ran its GELU at 14% of memory bandwidth, the next one, at
// T = 1870, at 55%.) The table goes to stdout; the table, its JSON and the chrome trace to the
// profile directory. Nothing is saved and no evaluation runs: a profiling run, not a training run.
void profile_training(const TrainArgs& a, Trainer& trainer, const std::string& out_dir) {
  const int64_t left = trainer.config().steps - trainer.current_step();
  TORCH_CHECK(a.profile_steps <= left, "train: `--profile-steps` ", a.profile_steps, " needs ",
              a.profile_steps, " steps of the schedule, but train.steps leaves ", left,
              " from step ", trainer.current_step());
  const std::string dir = !a.profile_dir.empty() ? a.profile_dir
                          : !out_dir.empty()     ? out_dir + "/profile"
                                                 : std::string("longseq-profile");
  make_output_directory(dir, "train: `--profile-dir`");
  const MachineLimits limits = measure_machine_limits(at::get_num_threads());
  const int64_t first = trainer.current_step();
  const int64_t skipped = trainer.skipped_steps(), clipped = trainer.clipped_steps();
  for (int64_t i = 0; i < a.profile_steps; ++i) trainer.step();  // warm-up, untimed
  trainer.restore_counters(first, skipped, clipped);
  const ProfileReport report = profile_region(
      [&] {
        for (int64_t i = 0; i < a.profile_steps; ++i) trainer.step();
      },
      limits);
  const std::string table = fmt::format(
      "# profile of training steps {}..{} (each run once untimed first): {:.2f} ms per step; counted "
      "limit {:.2f} ms per step (each op at its own limit), the step takes {:.2f}x it\n{}",
      first + 1, trainer.current_step(), report.wall_ms / a.profile_steps,
      report.limit_ms / a.profile_steps,
      report.limit_ms > 0 ? report.wall_ms / report.limit_ms : 0.0,
      format_profile(report, a.profile_top));
  const MachineLimits after = measure_machine_limits(at::get_num_threads());
  const std::string rates = rates_after_line(limits, after, "steps");
  fmt::print("{}{}", table, rates);
  write_file_atomic(dir + "/profile.txt", table + rates);
  auto json = profile_to_json(report);
  json["sgemm_gflops_after"] = after.sgemm_gflops;
  json["bandwidth_gbs_after"] = after.bandwidth_gbs;
  json["steps"] = a.profile_steps;
  json["first_step"] = first + 1;
  json["machine"] = machine_line();
  write_file_atomic(dir + "/profile.json", json.dump(2) + "\n");
  write_file_atomic(dir + "/trace.json", report.trace_json);
  fmt::print("# wrote {0}/profile.txt, {0}/profile.json and {0}/trace.json (chrome://tracing, "
             "Perfetto); nothing was saved: a profiling run\n",
             dir);
}

void run_train(const TrainArgs& a) {
  TORCH_CHECK(a.save_every >= 0, "train: `--save-every` must be >= 0, got ", a.save_every);
  TORCH_CHECK(a.keep_last >= 0, "train: `--keep` must be >= 0, got ", a.keep_last);
  TORCH_CHECK(a.nproc >= 0 && a.nproc <= 1024, "train: `--nproc` must be in [1, 1024], got ",
              a.nproc);
  TORCH_CHECK(std::isfinite(a.dist_timeout) && a.dist_timeout > 0 && a.dist_timeout <= 86400,
              "train: `--dist-timeout` must be in (0, 86400] seconds, got ", a.dist_timeout);
  TORCH_CHECK(std::isfinite(a.max_memory_gib) && a.max_memory_gib >= 0 &&
                  a.max_memory_gib <= 1 << 20,
              "train: `--max-memory` must be in [0, 1048576] GiB, got ", a.max_memory_gib);
  TORCH_CHECK(a.profile_steps >= 0 && a.profile_steps <= 100000,
              "train: `--profile-steps` must be in [0, 100000], got ", a.profile_steps);
  TORCH_CHECK(a.profile_top > 0, "train: `--profile-top` must be > 0, got ", a.profile_top);
  TORCH_CHECK(a.profile_dir.empty() || a.profile_steps > 0,
              "train: `--profile-dir` is where `--profile-steps` writes: it needs `--profile-steps`");
  TORCH_CHECK(a.profile_steps == 0 || (a.nproc == 0 && !rank_info_from_env()),
              "train: `--profile-steps` profiles one process: drop `--nproc` (or torchrun)");
  TORCH_CHECK(a.max_memory_gib == 0 || a.max_memory_gib >= 1.0 / 1024,
              "train: `--max-memory` must be 0 (no budget) or at least 1 MiB (0.0009765625 GiB), "
              "got ", a.max_memory_gib, " GiB");
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(a.dist_timeout * 1000));
  const auto env = rank_info_from_env();
  if (a.nproc > 0) {
    TORCH_CHECK(!env, "train: `--nproc` starts its own ranks; this process is already rank ",
                env ? env->rank : 0, " of ", env ? env->world_size : 0,
                " (WORLD_SIZE is set, e.g. by torchrun): drop `--nproc`");
    // The config and the output directory are checked once, here, before any rank starts.
    if (!out_dir_of(a).empty()) check_checkpoint_dir(out_dir_of(a), a.keep_last);
    (void)config_of(a);
    const std::string failed =
        launch_ranks(a.nproc, at::get_num_threads(), program_arguments(), timeout);
    TORCH_CHECK(failed.empty(), failed);
    return;
  }
  std::shared_ptr<Distributed> dist;
  if (env && env->world_size > 1) dist = std::make_shared<Distributed>(*env, timeout);
  if (!dist) return train_rank(a, nullptr);
  try {
    train_rank(a, dist);
  } catch (const std::exception& e) {
    const auto* c10 = dynamic_cast<const c10::Error*>(&e);
    const std::string what = c10 ? c10->what_without_backtrace() : e.what();
    // A collective that failed because another rank died or hung says so, naming that rank;
    // a failure of our own is announced to the others.
    const std::string why = dist->explain_failure(what);
    if (why == what) dist->announce_failure(what);
    TORCH_CHECK(false, "rank ", dist->rank(), " of ", dist->size(), ": ", why);
  }
}

void train_rank(const TrainArgs& a, const std::shared_ptr<Distributed>& dist) {
  const bool lead = !dist || dist->rank() == 0;  // prints, writes metrics and checkpoints
  if (a.max_memory_gib > 0) {  // every tensor from here on (model, optimizer, activations)
    MemoryTracker::install();
    MemoryTracker::set_limit(static_cast<int64_t>(a.max_memory_gib * (int64_t{1} << 30)));
  }
  const std::string out_dir = out_dir_of(a);
  // Where checkpoints go is checked now, not found unwritable after the training.
  if (!out_dir.empty() && lead) check_checkpoint_dir(out_dir, a.keep_last);
  const TrainConfig config = config_of(a);
  if (!a.resume.empty() && lead) warn_schedule_changes(checkpoint_config(a.resume), config);
  if (!out_dir.empty() && lead) {
    const int64_t stale = clean_stale_checkpoint_temps(out_dir);
    if (stale > 0) {
      fmt::print("# removed {} temporary checkpoint director{} left by killed saves in {}\n", stale,
                 stale == 1 ? "y" : "ies", out_dir);
    }
  }
  if (dist) dist->barrier();  // stale temporaries are gone before any rank reads the directory
  Trainer trainer(config, dist);
  if (!a.resume.empty()) {
    load_checkpoint(trainer, a.resume);  // every rank reads the same checkpoint
    if (lead) {
      fmt::print("# resumed from {} at step {}; checkpoints go to {}\n",
                 resolve_checkpoint(a.resume), trainer.current_step(), out_dir);
    }
  }

  if (a.profile_steps > 0) return profile_training(a, trainer, out_dir);

  const auto& info = trainer.task().info();
  int64_t params = 0;
  for (const auto& p : trainer.model()->parameters()) params += p.numel();
  if (lead) {
    fmt::print("# {}\n# task {} (T = {}, {}), mixers", machine_line(), config.task, info.seq_len,
               info.baseline_text);
    for (const auto& m : trainer.config().model.mixers) fmt::print(" {}", m);
    fmt::print(", {} layers, dim {}, {} parameters\n", config.model.layers, config.model.mixer.dim,
               params);
    if (dist && trainer.model()->sequence_sharded()) {
      fmt::print("# sequence parallel: {} ranks share each sequence of {} positions (about {} "
                 "each, ring attention), batch {} (Gloo, {}:{})\n",
                 dist->size(), info.seq_len, info.seq_len / dist->size(), config.batch_size,
                 dist->info().master_addr, dist->info().master_port);
    } else if (dist) {
      fmt::print("# data parallel: {} ranks x batch {} = global batch {} (Gloo, {}:{})\n",
                 dist->size(), config.batch_size, dist->size() * config.batch_size,
                 dist->info().master_addr, dist->info().master_port);
    }
  }
  std::ofstream metrics;
  if (!a.metrics_path.empty() && lead) {
    struct stat st {};
    TORCH_CHECK(::stat(a.metrics_path.c_str(), &st) != 0 || S_ISREG(st.st_mode),
                "train: `--metrics` '", a.metrics_path, "' exists and is not a regular file");
    metrics.open(a.metrics_path, std::ios::app);
    TORCH_CHECK(metrics.good(), "train: cannot write `--metrics` file '", a.metrics_path, "'");
  }
  const bool tty = lead && isatty(fileno(stdout));
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
      if (lead) {
        fmt::print("{}checkpoint ({}): step {} is already saved\n", tty ? "\n" : "", why,
                   saved_step);
      }
      return;
    }
    if (lead) {  // one writer; the other ranks hold the same state
      const auto dir = save_checkpoint(trainer, out_dir, a.keep_last);
      if (metrics.is_open()) metrics.flush();  // the metrics up to the checkpoint survive a kill
      fmt::print("{}checkpoint ({}) saved to {}\n", tty ? "\n" : "", why, dir);
    }
    saved_step = trainer.current_step();
    if (dist) dist->barrier();  // no rank runs ahead of a checkpoint
  };
  // Every rank stops at the same step: a signal seen by any rank stops all of them.
  bool interrupted = false;
  auto poll_interrupt = [&] {
    interrupted = dist ? dist->sum({g_interrupted ? 1.0 : 0.0})[0] > 0 : g_interrupted.load();
    return interrupted;
  };
  while (trainer.current_step() < config.steps && !trainer.stopped() && !poll_interrupt()) {
    const auto stats = trainer.step();
    if (lead) on_step(stats);
    const int64_t step = trainer.current_step();
    const bool last = step == config.steps;
    if (config.eval_every > 0 && (step % config.eval_every == 0 || last)) {
      const auto r = evaluate(trainer.model(), trainer.task(), Split::kValidation,
                              trainer.global_batch(), config.eval_batches, dist.get());
      if (lead) on_eval(step, r);
    }
    if (a.save_every > 0 && step % a.save_every == 0 && !last) save("periodic");
  }
  if (tty) fmt::print("\n");
  if (interrupted) {
    save("interrupted");
    if (lead)
      fmt::print("train: interrupted at step {}{}\n", trainer.current_step(),
                 out_dir.empty() ? " (no --out: nothing saved)"
                                 : "; continue with: longseq train --resume " + out_dir);
    return;
  }
  if (trainer.stopped()) {
    save("stopped");
    if (lead) fmt::print("train: {}\n", trainer.stop_reason());
  } else {
    save("final");
  }
  if (dist) {  // the ranks' copies of the model must not have drifted apart
    uint64_t hash = 0;
    const bool same = dist->identical_on_all_ranks(trainer.model()->parameters(), &hash);
    TORCH_CHECK(same, "train: the ranks' parameters differ at step ", trainer.current_step(),
                " (this rank's hash ", fmt::format("{:016x}", hash), ")");
    if (lead) {
      fmt::print("# parameters identical on all {} ranks (hash {:016x})\n", dist->size(), hash);
    }
  }
  const auto final = evaluate(trainer.model(), trainer.task(),
                              a.eval_split == "test" ? Split::kTest : Split::kValidation,
                              trainer.global_batch(), 0, dist.get());
  // Peak resident memory of every rank (a one-hot sum gathers them on every rank).
  std::vector<double> peaks(dist ? dist->size() : 1, 0.0);
  peaks[dist ? dist->rank() : 0] = static_cast<double>(peak_resident_bytes()) / (1 << 20);
  if (dist) peaks = dist->sum(peaks);
  if (!lead) return;
  std::string peak_text;
  for (double p : peaks) peak_text += fmt::format("{}{:.0f}", peak_text.empty() ? "" : ", ", p);
  fmt::print("# peak resident memory{}: {} MiB", dist ? " per rank" : "", peak_text);
  if (MemoryTracker::installed()) {
    fmt::print("; tensors at most {} MiB{} (budget {} MiB, --max-memory)",
               MemoryTracker::peak_bytes() >> 20, dist ? " on rank 0" : "",
               MemoryTracker::limit() >> 20);
  }
  fmt::print("\n");
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
                              {"elapsed_s", elapsed()},
                              {"peak_rss_mib", peaks}}
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
  cmd->add_option("--nproc", a->nproc,
                  "data parallel on this machine: start this many ranks (torchrun's variables, "
                  "--threads split between them); under torchrun, leave it out");
  cmd->add_option("--dist-timeout", a->dist_timeout,
                  "seconds a data-parallel rank waits for a dead or hung one before it stops")
      ->capture_default_str();
  cmd->add_option("--max-memory", a->max_memory_gib,
                  "GiB of tensors each process (rank) may hold; an allocation above it stops the "
                  "run with an out-of-memory error (0 = no budget)");
  cmd->add_option("--profile-steps", a->profile_steps,
                  "a profiling run: this many steps, run once untimed and then again under the op "
                  "profiler (table, JSON and chrome trace in --profile-dir); nothing is saved");
  cmd->add_option("--profile-dir", a->profile_dir,
                  "where --profile-steps writes (default: <--out>/profile, else ./longseq-profile)");
  cmd->add_option("--profile-top", a->profile_top, "ops listed in the profile (the rest summed)")
      ->capture_default_str();
  cmd->add_option("--final-split", a->eval_split, "split of the final evaluation")
      ->check(CLI::IsMember({"validation", "test"}))
      ->capture_default_str();
  return [a] { run_train(*a); };
}

}  // namespace longseq::cli
