// report.json in and out, and the analysis shared by `report` and `recommend` (report_io.h).
#include "report_io.h"

#include "util/json_read.h"

#include <c10/util/Exception.h>
#include <fmt/core.h>

#include <cctype>
#include <cmath>

namespace longseq::cli {
namespace {

nlohmann::json fit_json(const PowerFit& f) {
  return {{"offset", f.offset},
          {"coef", f.coef},
          {"exponent", f.exponent},
          {"exponent_stderr", f.exponent_stderr},
          {"points", f.points}};
}

template <typename T>
T field(const nlohmann::json& j, const char* key, const std::string& where) {
  TORCH_CHECK(j.is_object() && j.contains(key), where, ": missing field `", key, "`");
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    TORCH_CHECK(false, where, ": field `", key, "` has the wrong type (", j.at(key).type_name(),
                ")");
  }
}

}  // namespace

void analyse(Report& r, int64_t t_min, int64_t t_max, const std::vector<double>& budgets) {
  r.crossovers.clear();
  r.budget_lengths.clear();
  for (const auto& s : r.series) {
    if (s.points.empty()) continue;
    for (double b : budgets) {
      BudgetLength l{s.mixer, s.mode, s.causal, b, 0, false};
      l.t = longest_within(s, b, t_max, &l.extrapolated);
      r.budget_lengths.push_back(l);
    }
    if (s.mixer == "exact") continue;
    for (const auto& ref : r.series) {
      if (ref.mixer != "exact" || ref.causal != s.causal || ref.mode != s.mode ||
          ref.points.empty()) {
        continue;
      }
      for (const char* q : {"time", "memory"}) {
        r.crossovers.push_back(find_crossover(s, ref, q, t_min, t_max));
      }
    }
  }
}

nlohmann::json report_to_json(const Report& r) {
  nlohmann::json j;
  j["schema"] = kReportSchema;
  j["machine"] = r.machine;
  j["settings"] = r.settings;
  j["series"] = nlohmann::json::array();
  for (const auto& s : r.series) {
    nlohmann::json pts = nlohmann::json::array();
    for (const auto& p : s.points) {
      pts.push_back({{"t", p.t},
                     {"ms", p.ms},
                     {"ms_min", p.ms_min},
                     {"ms_max", p.ms_max},
                     {"bytes", p.bytes}});
    }
    j["series"].push_back({{"mixer", s.mixer},
                           {"causal", s.causal},
                           {"mode", s.mode},
                           {"stop_reason", s.stop_reason},
                           {"points", pts},
                           {"time_fit", fit_json(s.time_fit)},
                           {"memory_fit", fit_json(s.memory_fit)},
                           {"time_tail", fit_json(s.time_tail)},
                           {"memory_tail", fit_json(s.memory_tail)}});
  }
  j["crossovers"] = nlohmann::json::array();
  for (const auto& c : r.crossovers) {
    j["crossovers"].push_back({{"mixer", c.mixer},
                               {"causal", c.causal},
                               {"mode", c.mode},
                               {"quantity", c.quantity},
                               {"t", c.t},
                               {"extrapolated", c.extrapolated},
                               {"from_start", c.from_start}});
  }
  j["memory_budget_lengths"] = nlohmann::json::array();
  for (const auto& l : r.budget_lengths) {
    j["memory_budget_lengths"].push_back({{"mixer", l.mixer},
                                          {"causal", l.causal},
                                          {"mode", l.mode},
                                          {"budget_bytes", l.budget_bytes},
                                          {"t", l.t},
                                          {"extrapolated", l.extrapolated}});
  }
  j["errors"] = {{"inputs", r.error_inputs}, {"points", nlohmann::json::array()}};
  for (const auto& e : r.errors) {
    j["errors"]["points"].push_back({{"mixer", e.mixer},
                                     {"setting", e.setting},
                                     {"causal", e.causal},
                                     {"t", e.t},
                                     {"rel_error", e.rel_error}});
  }
  j["quality"] = nlohmann::json::array();
  for (const auto& q : r.quality) {
    j["quality"].push_back({{"mixer", q.mixer},
                            {"task", q.task},
                            {"accuracy", q.accuracy},
                            {"loss", q.loss},
                            {"seconds", q.seconds},
                            {"steps", q.steps}});
  }
  return j;
}

Report report_from_json(const std::string& text, const std::string& source) {
  const nlohmann::json j = parse_json_strict(text, "report: '" + source + "': ");
  TORCH_CHECK(j.is_object() && j.value("schema", "") == kReportSchema, "report: '", source,
              "' is not a longseq report (expected `schema` \"", kReportSchema, "\")");
  Report r;
  r.machine = j.value("machine", nlohmann::json::object());
  r.settings = j.value("settings", nlohmann::json::object());
  const auto series = j.value("series", nlohmann::json::array());
  TORCH_CHECK(series.is_array(), "report: '", source, "': `series` must be an array");
  for (size_t i = 0; i < series.size(); ++i) {
    const std::string where = fmt::format("report: '{}': series[{}]", source, i);
    Series s;
    s.mixer = field<std::string>(series[i], "mixer", where);
    s.causal = field<bool>(series[i], "causal", where);
    s.mode = field<std::string>(series[i], "mode", where);
    s.stop_reason = series[i].value("stop_reason", "");
    const auto pts = field<nlohmann::json>(series[i], "points", where);
    int64_t prev = 0;
    for (size_t k = 0; k < pts.size(); ++k) {
      const std::string pw = fmt::format("{}.points[{}]", where, k);
      SweepPoint p;
      p.t = field<int64_t>(pts[k], "t", pw);
      p.ms = field<double>(pts[k], "ms", pw);
      p.ms_min = pts[k].value("ms_min", p.ms);
      p.ms_max = pts[k].value("ms_max", p.ms);
      p.bytes = field<double>(pts[k], "bytes", pw);
      TORCH_CHECK(
          p.t > prev && p.ms > 0 && p.bytes > 0 && std::isfinite(p.ms) && std::isfinite(p.bytes),
          pw, ": expected increasing t > 0 and positive, finite ms and bytes, got t=", p.t,
          " ms=", p.ms, " bytes=", p.bytes);
      prev = p.t;
      s.points.push_back(p);
    }
    set_complexity_classes(s);
    fit_series(s);
    r.series.push_back(s);
  }
  const auto errors = j.value("errors", nlohmann::json::object());
  r.error_inputs = errors.value("inputs", "");
  for (const auto& e : errors.value("points", nlohmann::json::array())) {
    const std::string where = fmt::format("report: '{}': errors.points", source);
    r.errors.push_back({field<std::string>(e, "mixer", where),
                        field<std::string>(e, "setting", where), field<bool>(e, "causal", where),
                        field<int64_t>(e, "t", where), field<double>(e, "rel_error", where)});
  }
  for (const auto& q : j.value("quality", nlohmann::json::array())) {
    const std::string where = fmt::format("report: '{}': quality", source);
    r.quality.push_back({field<std::string>(q, "mixer", where), q.value("task", ""),
                         field<double>(q, "accuracy", where), q.value("loss", 0.0),
                         q.value("seconds", 0.0), q.value("steps", int64_t{0})});
  }
  for (const auto& c : j.value("crossovers", nlohmann::json::array())) {
    const std::string where = fmt::format("report: '{}': crossovers", source);
    Crossover x;
    x.mixer = field<std::string>(c, "mixer", where);
    x.quantity = field<std::string>(c, "quantity", where);
    x.causal = field<bool>(c, "causal", where);
    x.mode = field<std::string>(c, "mode", where);
    x.t = field<int64_t>(c, "t", where);
    x.extrapolated = c.value("extrapolated", false);
    x.from_start = c.value("from_start", false);
    r.crossovers.push_back(x);
  }
  return r;
}

std::string format_bytes(double bytes) {
  if (bytes >= double(1ll << 30)) return fmt::format("{:.1f} GiB", bytes / double(1ll << 30));
  return fmt::format("{:.0f} MiB", bytes / double(1 << 20));
}

double parse_bytes(const std::string& text, const std::string& what) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  for (auto& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  if (unit == "K" || unit == "KB" || unit == "KIB") scale = 1024.0;
  if (unit == "M" || unit == "MB" || unit == "MIB") scale = 1024.0 * 1024;
  if (unit == "G" || unit == "GB" || unit == "GIB") scale = 1024.0 * 1024 * 1024;
  if (unit == "T" || unit == "TB" || unit == "TIB") scale = 1024.0 * 1024 * 1024 * 1024;
  TORCH_CHECK(used > 0 && scale > 0 && v > 0 && std::isfinite(v), what,
              " expects a positive size such as 8G, 512M or 1.5GiB, got '", text, "'");
  return v * scale;
}

}  // namespace longseq::cli
