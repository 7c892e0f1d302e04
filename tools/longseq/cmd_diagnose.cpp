// `longseq diagnose`: gradient flow through time for a model (fresh from a config, or from a
// checkpoint) on one task batch: ‖∂L/∂x_t‖ per step and layer, its per-step decay, σ_max of the
// one-step state Jacobian of recurrent layers; JSON plus a gnuplot plot (log scale against t).
#include "commands.h"
#include "plot.h"

#include <longseq/checkpoint.h>
#include <longseq/config.h>
#include <longseq/diagnose.h>
#include <longseq/train.h>

#include <fmt/core.h>

#include <cmath>
#include <fstream>

namespace longseq::cli {
namespace {

struct DiagnoseArgs {
  std::string checkpoint;
  std::string config;
  std::vector<std::string> sets;
  std::string split = "validation";
  int64_t batch_size = 8;
  int64_t power_iters = 20;
  int64_t loss_last = 0;
  std::string out = "diagnose";
  std::string title;
  bool no_plot = false;
};

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  TORCH_CHECK(f.good(), "diagnose: cannot write '", path, "'");
  f << text;
}

void plot(const GradientProfile& p, const DiagnoseArgs& a, const std::string& title) {
  std::string dat = "# t";
  for (const auto& l : p.layers) dat += fmt::format(" layer{}", l.layer);
  dat += "\n";
  for (int64_t t = 0; t < p.seq_len; ++t) {
    dat += std::to_string(t);
    for (const auto& l : p.layers) dat += fmt::format(" {:.6e}", l.grad_norm[t]);
    dat += "\n";
  }
  write_file(a.out + ".dat", dat);
  // The script names files relative to the output's directory, where gnuplot runs: no path is
  // ever written into a script or a command line.
  const auto slash = a.out.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : a.out.substr(0, slash);
  const std::string base = slash == std::string::npos ? a.out : a.out.substr(slash + 1);
  std::string gp = fmt::format(
      "set terminal pngcairo size 900,560\nset output {}\nset logscale y\n"
      "set format y '10^{{%L}}'\nset xlabel 'step t'\nset ylabel '||dL/dx_t|| (mean over batch)'\n"
      "set title {} noenhanced\nset key outside right\nplot ",
      gnuplot_quoted(base + ".png"), gnuplot_quoted(title));
  for (size_t i = 0; i < p.layers.size(); ++i) {
    const auto& l = p.layers[i];
    const std::string name =
        l.mixer.empty() ? "output stream" : fmt::format("layer {} input ({})", l.layer, l.mixer);
    gp += fmt::format("{}{} using 1:{} with lines lw 2 title {} noenhanced", i ? ", " : "",
                      gnuplot_quoted(base + ".dat"), i + 2, gnuplot_quoted(name));
  }
  gp += "\n";
  write_file(a.out + ".gp", gp);
  run_gnuplot(dir, base + ".gp", "diagnose");
}

void run_diagnose(const DiagnoseArgs& a) {
  TORCH_CHECK(a.batch_size > 0, "diagnose: `--batch-size` must be > 0, got ", a.batch_size);
  std::unique_ptr<Trainer> trainer;
  std::string source;
  if (!a.checkpoint.empty()) {
    TORCH_CHECK(a.config.empty() && a.sets.empty(),
                "diagnose: give a checkpoint or --config/--set for a fresh model, not both");
    const std::string dir = resolve_checkpoint(a.checkpoint);
    trainer = std::make_unique<Trainer>(checkpoint_config(dir));
    load_checkpoint(*trainer, dir);
    source = dir;
  } else {
    trainer = std::make_unique<Trainer>(load_train_config(a.config, a.sets));
    source = "fresh model";
  }
  const Split split = a.split == "test"         ? Split::kTest
                      : a.split == "validation" ? Split::kValidation
                                                : Split::kTrain;
  auto batch = trainer->task().batch(split, 0, a.batch_size);
  const auto p = diagnose_gradients(trainer->model(), trainer->task().info(), batch, a.power_iters,
                                    {}, a.loss_last);
  write_file(a.out + ".json", gradient_profile_json(p));
  const auto& cfg = trainer->config();
  std::string mixers;
  for (const auto& m : cfg.model.mixers) mixers += (mixers.empty() ? "" : ",") + m;
  const std::string title = a.title.empty() ? fmt::format("{} T={} {} ({}), loss {:.4f}", cfg.task,
                                                          p.seq_len, mixers, source, p.loss)
                                            : a.title;
  fmt::print("{}\n", title);
  fmt::print("{:>5} {:<10} {:>12} {:>12} {:>14} {}\n", "layer", "mixer", "|g| at t=0", "|g| at T-1",
             "per step back", "sigma_max(ds_t+1/ds_t) at t");
  for (const auto& l : p.layers) {
    std::string sig;
    for (const auto& ts : l.sigma_max) sig += fmt::format("{}:{:.3f} ", ts.first, ts.second);
    if (sig.empty()) sig = l.sigma_note.empty() ? "-" : "- (" + l.sigma_note + ")";
    fmt::print("{:>5} {:<10} {:>12.3e} {:>12.3e} {:>14.4f} {}\n", l.layer,
               l.mixer.empty() ? "(output)" : l.mixer, l.grad_norm.front(), l.grad_norm.back(),
               l.backward_factor, sig);
  }
  if (!a.no_plot) plot(p, a, title);
  fmt::print("wrote {0}.json{1}\n", a.out,
             a.no_plot ? "" : fmt::format(", {0}.dat, {0}.gp, {0}.png", a.out));
}

}  // namespace

Runner add_diagnose_command(CLI::App& app) {
  auto a = std::make_shared<DiagnoseArgs>();
  auto* cmd = app.add_subcommand(
      "diagnose",
      "gradient flow through time: |dL/dx_t| per layer, its decay, sigma_max of ds_t+1/ds_t");
  cmd->add_option("checkpoint", a->checkpoint,
                  "checkpoint directory (omit for a fresh model from --config)");
  cmd->add_option("--config", a->config, "experiment config for a fresh model");
  cmd->add_option("--set", a->sets, "override a config key (as in `longseq train`)");
  cmd->add_option("--split", a->split, "split the batch comes from")
      ->check(CLI::IsMember({"train", "validation", "test"}))
      ->capture_default_str();
  cmd->add_option("--batch-size", a->batch_size, "sequences in the batch")->capture_default_str();
  cmd->add_option("--power-iters", a->power_iters, "power iterations for sigma_max (0 = skip)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--loss-last", a->loss_last,
                  "count the loss on the last N positions only (copy task: 10), so earlier "
                  "gradients are those carried back through time; 0 = the task's loss")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--out", a->out, "output prefix: PREFIX.json, .dat, .gp, .png")
      ->capture_default_str();
  cmd->add_option("--title", a->title, "plot title");
  cmd->add_flag("--no-plot", a->no_plot, "write the JSON only");
  return [a] { run_diagnose(*a); };
}

}  // namespace longseq::cli
