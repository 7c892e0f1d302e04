// `longseq report`: which mechanism for my length, memory and quality, measured on this machine.
// Sweeps every mixer's time and peak memory (causal or not, inference and training) within a time
// budget, fits and compares them with exact attention, measures each approximation's error, and
// writes report.json, report.md, index.html and gnuplot plots (SVG and PNG) into a directory.
#include "commands.h"
#include "plot.h"
#include "report_io.h"

#include <longseq/atomic_file.h>
#include <longseq/checkpoint.h>
#include <longseq/registry.h>
#include <longseq/report.h>
#include <longseq/train.h>

#include <c10/util/Exception.h>
#include <fmt/core.h>

#include <unistd.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

namespace longseq::cli {
namespace {

struct ReportArgs {
  std::string out = "report";
  std::vector<std::string> mixers = mixer_names();
  double budget_minutes = 4;
  bool quality = false;
  std::vector<std::string> memory_budgets = {"1G", "4G", "16G"};
  int64_t batch = 1, heads = 8, head_dim = 64;
  int64_t t_max = 1 << 20;
  bool no_plot = false;
  std::string from_checkpoint;
};

using Clock = std::chrono::steady_clock;

std::string duration(double s) {
  const int64_t v = static_cast<int64_t>(std::max(0.0, s));
  return v >= 60 ? fmt::format("{}m{:02d}s", v / 60, v % 60) : fmt::format("{}s", v);
}

// One progress line: a bar on a terminal, plain lines every 10% otherwise.
class Progress {
 public:
  Progress(double budget_s) : budget_s_(budget_s), start_(Clock::now()), tty_(isatty(2)) {}
  void update(const std::string& phase, double fraction, const std::string& what) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    const double overall = std::min(1.0, elapsed / budget_s_);
    const double eta = std::max(0.0, budget_s_ - elapsed);
    if (tty_) {
      const int width = 24, filled = static_cast<int>(width * overall);
      fmt::print(stderr, "\r[{}{}] {} {:3.0f}% {:<40.40} elapsed {} ETA <= {}   ",
                 std::string(filled, '#'), std::string(width - filled, '.'), phase, 100 * fraction,
                 what, duration(elapsed), duration(eta));
    } else if (static_cast<int>(fraction * 10) != last_decile_ || phase != last_phase_) {
      fmt::print(stderr, "report: {} {:3.0f}% ({}), elapsed {}, ETA <= {}\n", phase, 100 * fraction,
                 what, duration(elapsed), duration(eta));
    }
    last_decile_ = static_cast<int>(fraction * 10);
    last_phase_ = phase;
  }
  void done() {
    if (tty_) fmt::print(stderr, "\n");
  }
  double elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  double budget_s_;
  Clock::time_point start_;
  bool tty_;
  int last_decile_ = -1;
  std::string last_phase_;
};

std::string setting_name(const std::string& mode, bool causal) {
  return std::string(mode == "fwd" ? "infer" : "train") + (causal ? "_causal" : "");
}

std::string setting_text(const std::string& mode, bool causal) {
  return std::string(mode == "fwd" ? "inference (forward)" : "training (forward + backward)") +
         (causal ? ", causal" : ", non-causal");
}

// Time and memory plots of one setting: measured points joined by solid lines, the tail fit
// dashed past the measured lengths, and each mixer's crossover with exact marked on exact's curve.
void plot_setting(const Report& r, const std::string& dir, const std::string& mode, bool causal,
                  double t_plot_max, int& data_index) {
  const std::string name = setting_name(mode, causal);
  for (const char* quantity : {"time", "memory"}) {
    const bool time = std::string(quantity) == "time";
    std::string plots, marks;
    int color = 0;
    const Series* exact = nullptr;
    for (const auto& s : r.series) {
      if (s.mixer == "exact" && s.mode == mode && s.causal == causal) exact = &s;
    }
    for (const auto& s : r.series) {
      if (s.mode != mode || s.causal != causal || s.points.empty()) continue;
      ++color;
      const std::string dat = fmt::format("data/{}.dat", data_index++);
      std::string rows = "# t ms bytes\n";
      for (const auto& p : s.points) rows += fmt::format("{} {:.6g} {:.6g}\n", p.t, p.ms, p.bytes);
      write_file_atomic(dir + "/" + dat, rows);
      const PowerFit& f = time ? s.time_tail : s.memory_tail;
      const double scale = time ? 1.0 : 1.0 / (1 << 20);
      plots += fmt::format(
          "{}'{}' using 1:(${}*{}) with linespoints lw 2 pt 7 ps 0.6 lc {} title '{}', "
          "(x >= {} ? {:.6g} + {:.6g}*x**{:.6g} : 1/0) with lines dt 2 lw 1.5 lc {} notitle",
          plots.empty() ? "" : ", ", dat, time ? 2 : 3, scale, color, s.mixer, s.points.back().t,
          f.offset * scale, f.coef * scale, f.exponent, color);
      if (exact && s.mixer != "exact") {
        for (const auto& c : r.crossovers) {
          if (c.mixer == s.mixer && c.mode == mode && c.causal == causal &&
              c.quantity == quantity && c.t > 0 && !c.from_start && c.t <= t_plot_max) {
            const double y =
                time ? exact->time_at(double(c.t)) : exact->memory_at(double(c.t)) * scale;
            marks +=
                fmt::format("set label front at {},{:.6g} point pt 6 ps 1.6 lc {} ", c.t, y, color);
            marks += fmt::format("'{}' offset 0.6,0.6 font ',8'\n", s.mixer);
          }
        }
      }
    }
    if (plots.empty()) continue;
    const std::string ylabel =
        time ? "ms per iteration" : "peak memory, MiB (inputs and weights included)";
    const std::string title = fmt::format(
        "{} vs T, {}; dashed: fitted tail (extrapolated); circles: "
        "crossover with exact",
        time ? "time" : "memory", setting_text(mode, causal));
    std::string gp = fmt::format(
        "set terminal svg size 1000,620 dynamic font 'sans,11'\nset output '{0}_{1}.svg'\n"
        "set logscale xy\nset grid\nset key outside right\nset xrange [*:{2}]\n"
        "set format x '%.0s%c'\nset xlabel 'sequence length T'\nset ylabel '{3}'\n"
        "set title {4} noenhanced\n{5}plot {6}\n"
        "set terminal pngcairo size 1000,620 font 'sans,10'\nset output '{0}_{1}.png'\nreplot\n",
        quantity, name, t_plot_max, ylabel, gnuplot_quoted(title), marks, plots);
    const std::string script = fmt::format("{}_{}.gp", quantity, name);
    write_file_atomic(dir + "/" + script, gp);
    run_gnuplot(dir, script, "report");
  }
}

void plot_errors(const Report& r, const std::string& dir) {
  // Non-causal errors where measured (a trained causal model's activations give causal only).
  const bool causal =
      std::none_of(r.errors.begin(), r.errors.end(), [](const ErrorPoint& e) { return !e.causal; });
  std::map<std::string, std::string> rows;  // "performer features=64" -> "t err" lines
  for (const auto& e : r.errors) {
    if (e.causal != causal) continue;
    rows[e.mixer + " " + e.setting] +=
        fmt::format("{} {:.6g}\n", e.t, std::max(e.rel_error, 1e-12));
  }
  if (rows.empty()) return;
  std::string plots;
  int i = 0;
  for (const auto& [name, text] : rows) {
    const std::string dat = fmt::format("data/error_{}.dat", i);
    write_file_atomic(dir + "/" + dat, "# t rel_error\n" + text);
    plots += fmt::format("{}'{}' using 1:2 with linespoints lw 2 pt 7 lc {} title '{}'",
                         plots.empty() ? "" : ", ", dat, ++i, name);
  }
  const std::string gp = fmt::format(
      "set terminal svg size 1000,620 dynamic font 'sans,11'\nset output 'error.svg'\n"
      "set logscale xy\nset grid\nset key outside right\nset xlabel 'sequence length T'\n"
      "set ylabel '||y - y_exact|| / ||y_exact||'\n"
      "set title {} noenhanced\n"
      "plot {}\nset terminal pngcairo size 1000,620 font 'sans,10'\nset output 'error.png'\n"
      "replot\n",
      gnuplot_quoted(fmt::format("approximation error against exact attention ({}; {})",
                                 causal ? "causal" : "non-causal", r.error_inputs)),
      plots);
  write_file_atomic(dir + "/error.gp", gp);
  run_gnuplot(dir, "error.gp", "report");
}

void plot_quality(const Report& r, const std::string& dir) {
  if (r.quality.empty()) return;
  std::string rows = "# ms_per_step accuracy mixer\n";
  for (const auto& q : r.quality) {
    rows += fmt::format("{:.6g} {:.6g} {}\n", 1000 * q.seconds / std::max<int64_t>(1, q.steps),
                        q.accuracy, q.mixer);
  }
  write_file_atomic(dir + "/data/quality.dat", rows);
  const std::string gp =
      "set terminal svg size 900,560 dynamic font 'sans,11'\nset output 'quality.svg'\n"
      "set logscale x\nset grid\nset xlabel 'ms per training step'\n"
      "set ylabel 'validation accuracy'\nset yrange [0:1.05]\n"
      "set title 'quality against cost: MQAR probe (equal time budget per mixer)' noenhanced\n"
      "plot 'data/quality.dat' using 1:2 with points pt 7 ps 1.2 notitle, '' using 1:2:3 with "
      "labels offset 0,1 font ',9' notitle\n"
      "set terminal pngcairo size 900,560 font 'sans,10'\nset output 'quality.png'\nreplot\n";
  write_file_atomic(dir + "/quality.gp", gp);
  run_gnuplot(dir, "quality.gp", "report");
}

std::string t_text(int64_t t, bool extrapolated) {
  if (t <= 0) return "never";
  return fmt::format("{}{}", t, extrapolated ? " (extrapolated)" : "");
}

// report.md and index.html from the same tables.
void write_documents(const Report& r, const std::string& dir,
                     const std::vector<std::string>& plots) {
  struct Table {
    std::string title, note;
    std::vector<std::string> head;
    std::vector<std::vector<std::string>> rows;
  };
  std::vector<Table> tables;
  Table sweep{"Time and memory against T",
              "Exponents are least-squares slopes in log-log over every measured length, with "
              "their standard error; the sweep of each stopped for the reason given.",
              {"mixer", "setting", "T measured", "time exponent", "memory exponent",
               "ms at largest T", "memory at largest T", "stopped"},
              {}};
  for (const auto& s : r.series) {
    if (s.points.empty()) continue;
    sweep.rows.push_back(
        {s.mixer, setting_text(s.mode, s.causal),
         fmt::format("{}..{}", s.points.front().t, s.points.back().t),
         fmt::format("{:.2f} ± {:.2f}", s.time_fit.exponent, s.time_fit.exponent_stderr),
         fmt::format("{:.2f} ± {:.2f}", s.memory_fit.exponent, s.memory_fit.exponent_stderr),
         fmt::format("{:.1f}", s.points.back().ms), format_bytes(s.points.back().bytes),
         s.stop_reason});
  }
  tables.push_back(sweep);
  Table cross{"Crossovers with exact attention",
              "The length from which a mixer is faster (smaller) than exact in the same setting "
              "for good; 'always' when it is from the first measured length, 'never' when not up "
              "to T = 2^20. Lengths past either sweep are extrapolated from the fitted tails.",
              {"mixer", "setting", "faster than exact from T", "smaller than exact from T"},
              {}};
  std::map<std::string, std::vector<std::string>> by_key;
  for (const auto& c : r.crossovers) {
    const std::string key = c.mixer + "|" + setting_text(c.mode, c.causal);
    auto& row = by_key[key];
    if (row.empty()) row = {c.mixer, setting_text(c.mode, c.causal), "", ""};
    row[c.quantity == "time" ? 2 : 3] = c.from_start ? "always" : t_text(c.t, c.extrapolated);
  }
  for (auto& [k, row] : by_key) cross.rows.push_back(row);
  tables.push_back(cross);
  Table budget{"Longest sequence within a memory budget",
               "Batch as in the settings; peak "
               "memory including inputs and weights.",
               {"mixer", "setting"},
               {}};
  std::vector<double> budgets;
  for (const auto& l : r.budget_lengths) {
    if (std::find(budgets.begin(), budgets.end(), l.budget_bytes) == budgets.end()) {
      budgets.push_back(l.budget_bytes);
      budget.head.push_back(format_bytes(l.budget_bytes));
    }
  }
  std::map<std::string, std::vector<std::string>> blen;
  std::vector<std::string> order;
  for (const auto& l : r.budget_lengths) {
    const std::string key = l.mixer + "|" + setting_text(l.mode, l.causal);
    if (!blen.count(key)) {
      blen[key] = {l.mixer, setting_text(l.mode, l.causal)};
      order.push_back(key);
    }
    blen[key].push_back(t_text(l.t, l.extrapolated));
  }
  for (const auto& k : order) budget.rows.push_back(blen[k]);
  tables.push_back(budget);
  Table err{"Approximation error against exact attention",
            r.error_inputs,
            {"mixer", "setting", "causal", "T", "relative error"},
            {}};
  for (const auto& e : r.errors) {
    err.rows.push_back({e.mixer, e.setting, e.causal ? "yes" : "no", std::to_string(e.t),
                        fmt::format("{:.4f}", e.rel_error)});
  }
  tables.push_back(err);
  if (!r.quality.empty()) {
    Table q{"Quality probe",
            "Each mixer trained on the same task for the same time budget.",
            {"mixer", "task", "accuracy", "loss", "steps", "seconds"},
            {}};
    for (const auto& p : r.quality) {
      q.rows.push_back({p.mixer, p.task, fmt::format("{:.3f}", p.accuracy),
                        fmt::format("{:.4f}", p.loss), std::to_string(p.steps),
                        fmt::format("{:.1f}", p.seconds)});
    }
    tables.push_back(q);
  }

  const std::string machine = fmt::format(
      "{} ({} logical CPUs), {} threads; BLAS {} ({}), sgemm {:.0f} GFLOP/s, memcpy {:.1f} GB/s",
      r.machine["cpu"].value("model", "?"), r.machine["cpu"].value("logical_cpus", 0),
      r.machine["libtorch"].value("threads", 0), r.machine["blas"].value("core", "?"),
      r.machine["blas"].value("threading", "?"),
      r.machine.value("measured", nlohmann::json::object()).value("sgemm_gflops_all_threads", 0.0),
      r.machine.value("measured", nlohmann::json::object()).value("copy_gbs", 0.0));
  std::string md = "# longseq report\n\n";
  md += fmt::format("Machine: {}.\n\nSettings: `{}`\n\n", machine, r.settings.dump());
  for (const auto& p : plots) md += fmt::format("![{0}]({0}.png)\n\n", p);
  std::string html =
      "<!doctype html><html><head><meta charset='utf-8'><title>longseq report</title><style>"
      "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
      "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}img{max-width:100%}"
      "</style></head><body><h1>longseq report</h1>";
  auto esc = [](const std::string& s) {
    std::string o;
    for (char c : s) {
      if (c == '<')
        o += "&lt;";
      else if (c == '>')
        o += "&gt;";
      else if (c == '&')
        o += "&amp;";
      else
        o += c;
    }
    return o;
  };
  html += "<p>Machine: " + esc(machine) + "</p><p>Settings: <code>" + esc(r.settings.dump()) +
          "</code></p>";
  for (const auto& p : plots) html += fmt::format("<p><img src='{}.svg' alt='{}'></p>", p, p);
  for (const auto& t : tables) {
    md += "## " + t.title + "\n\n" + t.note + "\n\n|";
    html += "<h2>" + esc(t.title) + "</h2><p>" + esc(t.note) + "</p><table><tr>";
    for (const auto& h : t.head) {
      md += " " + h + " |";
      html += "<th>" + esc(h) + "</th>";
    }
    md += "\n|";
    html += "</tr>";
    for (size_t i = 0; i < t.head.size(); ++i) md += "---|";
    md += "\n";
    for (const auto& row : t.rows) {
      md += "|";
      html += "<tr>";
      for (const auto& cell : row) {
        md += " " + cell + " |";
        html += "<td>" + esc(cell) + "</td>";
      }
      md += "\n";
      html += "</tr>";
    }
    md += "\n";
    html += "</table>";
  }
  html += "</body></html>\n";
  write_file_atomic(dir + "/report.md", md);
  write_file_atomic(dir + "/index.html", html);
}

void run_report(const ReportArgs& a) {
  TORCH_CHECK(a.budget_minutes > 0, "report: `--budget-minutes` must be > 0, got ",
              a.budget_minutes);
  TORCH_CHECK(a.t_max >= 256, "report: `--t-max` must be >= 256, got ", a.t_max);
  for (const auto& m : a.mixers) find_mixer(m);  // unknown names fail before any work
  std::vector<double> budgets;
  for (const auto& b : a.memory_budgets)
    budgets.push_back(parse_bytes(b, "report: `--memory-budgets`"));
  std::filesystem::create_directories(a.out + "/data");

  Report r;
  r.machine = machine_json(true);
  const double total = a.budget_minutes * 60;
  const double sweep_share = a.quality ? 0.5 : 0.75, error_share = a.quality ? 0.15 : 0.2;
  Progress progress(total);
  SweepOptions so;
  so.mixers = a.mixers;
  so.batch = a.batch;
  so.heads = a.heads;
  so.head_dim = a.head_dim;
  so.t_max = a.t_max;
  so.seconds = total * sweep_share;
  r.series = run_sweep(so, [&](int done, int n, const std::string& what) {
    progress.update("sweep", double(done) / n, what);
  });
  analyse(r, so.t_start, a.t_max, budgets);

  ErrorOptions eo;
  eo.heads = a.heads;
  eo.head_dim = a.head_dim;
  eo.settings = default_error_settings();
  for (auto it = eo.settings.begin(); it != eo.settings.end();) {
    it = std::find(a.mixers.begin(), a.mixers.end(), it->first) == a.mixers.end()
             ? eo.settings.erase(it)
             : std::next(it);
  }
  eo.seconds = std::max(1.0, total * (sweep_share + error_share) - progress.elapsed());
  if (a.from_checkpoint.empty()) {
    r.error_inputs = fmt::format(
        "x ~ N(0, {}^2) of shape [1, T, {}] (attention logits of std ~2), default "
        "initialisation, the same Q/K/V/output weights for exact and the approximation, eval "
        "mode; {} heads of {}",
        kErrorInputScale, a.heads * a.head_dim, a.heads, a.head_dim);
    r.errors = measure_errors(eo, [&](int done, int n, const std::string& what) {
      progress.update("error", n ? double(done) / n : 1.0, what);
    });
  } else {
    // A trained model's activations: the input of its first exact layer on a validation batch.
    const std::string dir = resolve_checkpoint(a.from_checkpoint);
    Trainer trainer(checkpoint_config(dir));
    load_checkpoint(trainer, dir);
    const Batch batch = trainer.task().batch(Split::kValidation, 0, 8);
    progress.update("error", 0, "activations of " + dir);
    r.errors = measure_errors_on_activations(trainer.model(), batch.inputs, batch.key_padding,
                                             eo.settings);
    r.error_inputs = fmt::format(
        "activations of checkpoint {} (task {}): the input of its first exact layer on "
        "validation batch 0 (8 sequences), against that layer, approximations sharing its "
        "projections",
        dir, trainer.config().task);
  }
  if (a.quality) {
    const double each = std::max(2.0, (total - progress.elapsed()) / a.mixers.size());
    r.quality =
        measure_quality(a.mixers, each, 2000, [&](int done, int n, const std::string& what) {
          progress.update("quality", n ? double(done) / n : 1.0, what);
        });
  }
  progress.done();
  r.settings = {{"mixers", a.mixers},
                {"batch", a.batch},
                {"heads", a.heads},
                {"head_dim", a.head_dim},
                {"t_start", so.t_start},
                {"t_max", a.t_max},
                {"budget_minutes", a.budget_minutes},
                {"warmup", so.warmup},
                {"repeats", so.repeats},
                {"memory_budgets_bytes", budgets},
                {"quality", a.quality},
                {"seconds", progress.elapsed()}};
  write_file_atomic(a.out + "/report.json", report_to_json(r).dump(1) + "\n");

  std::vector<std::string> plots;
  if (!a.no_plot) {
    double measured_max = 256;
    for (const auto& s : r.series) {
      if (!s.points.empty()) measured_max = std::max(measured_max, double(s.points.back().t));
    }
    const double t_plot_max = std::min(double(a.t_max), measured_max * 8);
    int index = 0;
    for (const char* mode : {"fwd+bwd", "fwd"}) {
      for (bool causal : {false, true}) {
        plot_setting(r, a.out, mode, causal, t_plot_max, index);
        for (const char* q : {"time", "memory"}) {
          const std::string name = fmt::format("{}_{}", q, setting_name(mode, causal));
          if (std::filesystem::exists(a.out + "/" + name + ".svg")) plots.push_back(name);
        }
      }
    }
    plot_errors(r, a.out);
    if (std::filesystem::exists(a.out + "/error.svg")) plots.push_back("error");
    plot_quality(r, a.out);
    if (std::filesystem::exists(a.out + "/quality.svg")) plots.push_back("quality");
  }
  write_documents(r, a.out, plots);
  fmt::print("report: {} series, {} error points{} in {}; open {}/index.html (or {}/report.md)\n",
             r.series.size(), r.errors.size(),
             r.quality.empty() ? "" : fmt::format(", {} quality probes", r.quality.size()),
             duration(progress.elapsed()), a.out, a.out);
}

}  // namespace

Runner add_report_command(CLI::App& app) {
  auto a = std::make_shared<ReportArgs>();
  auto* cmd = app.add_subcommand(
      "report",
      "measure every mixer's time, memory and error against exact attention on this "
      "machine, within a time budget, and write a report directory (JSON, Markdown, "
      "HTML, plots)");
  cmd->add_option("--out", a->out, "report directory")->capture_default_str();
  cmd->add_option("--mixers", a->mixers, "comma-separated mixer names")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--budget-minutes", a->budget_minutes, "bound on the whole run")
      ->capture_default_str();
  cmd->add_flag("--quality", a->quality, "add a short MQAR training probe per mixer");
  cmd->add_option("--memory-budgets", a->memory_budgets,
                  "budgets for the longest-sequence table (comma list: 1G,4G,16G)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--batch", a->batch, "batch size B")->capture_default_str();
  cmd->add_option("--heads", a->heads, "heads H")->capture_default_str();
  cmd->add_option("--head-dim", a->head_dim, "head dim D")->capture_default_str();
  cmd->add_option("--t-max", a->t_max, "longest length swept or extrapolated to")
      ->capture_default_str();
  cmd->add_flag("--no-plot", a->no_plot, "skip the gnuplot plots");
  cmd->add_option("--from-checkpoint", a->from_checkpoint,
                  "measure the approximation errors on this trained model's activations (its "
                  "first exact layer) instead of synthetic inputs");
  return [a] { run_report(*a); };
}

}  // namespace longseq::cli
