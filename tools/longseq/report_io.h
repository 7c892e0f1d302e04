#pragma once
// report.json (schema in docs/report.md): written by `longseq report`, read by `longseq recommend`.
#include <longseq/report.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace longseq::cli {

constexpr const char* kReportSchema = "longseq-report/1";

struct BudgetLength {
  std::string mixer, mode;
  bool causal = false;
  double budget_bytes = 0;
  int64_t t = 0;
  bool extrapolated = false;
};

struct Report {
  nlohmann::json machine;   ///< machine_json(true)
  nlohmann::json settings;  ///< what the run was asked
  std::vector<Series> series;
  std::vector<Crossover> crossovers;
  std::vector<BudgetLength> budget_lengths;
  std::string error_inputs;  ///< how the error inputs were drawn
  std::vector<ErrorPoint> errors;
  std::vector<QualityPoint> quality;
};

/// Crossovers of every series against `exact` in the same setting (time and memory, over
/// [t_min, t_max]) and the longest length within each memory budget.
void analyse(Report& r, int64_t t_min, int64_t t_max, const std::vector<double>& budgets);

nlohmann::json report_to_json(const Report& r);
/// Reads and checks a report.json's text; `source` names it in errors. Fits are recomputed.
Report report_from_json(const std::string& text, const std::string& source);

/// "1.5 GiB", "512 MiB"; and the inverse for "8G", "512M", "1.5GiB", "1000000" (bytes).
std::string format_bytes(double bytes);
double parse_bytes(const std::string& text, const std::string& what);

}  // namespace longseq::cli
