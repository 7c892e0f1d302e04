// Typed access to string-valued mixer options (from the CLI's --opt or a config file), with
// errors that name the mixer, the option, what was expected and what was given.
#include <longseq/registry.h>

#include <c10/util/Exception.h>

#include <cerrno>
#include <cstdlib>
#include <sstream>

namespace longseq {

const char* option_kind_name(OptionKind kind) {
  switch (kind) {
    case OptionKind::kInt: return "int";
    case OptionKind::kFloat: return "float";
    case OptionKind::kBool: return "bool";
    case OptionKind::kString: return "string";
    case OptionKind::kIntList: return "int list";
  }
  return "?";
}

namespace {

bool parse_int(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end != s.c_str() + s.size()) return false;
  out = v;
  return true;
}

bool parse_float(const std::string& s, double& out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || end != s.c_str() + s.size()) return false;
  out = v;
  return true;
}

bool parse_bool(const std::string& s, bool& out) {
  if (s == "true" || s == "1" || s == "on" || s == "yes") return out = true, true;
  if (s == "false" || s == "0" || s == "off" || s == "no") return out = false, true;
  return false;
}

bool parse_int_list(const std::string& s, std::vector<int64_t>& out) {
  out.clear();
  if (s.empty()) return true;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    int64_t v;
    if (!parse_int(item, v)) return false;
    out.push_back(v);
  }
  return !s.empty() && s.back() != ',';
}

void validate_option_value(const std::string& mixer, const OptionSpec& spec,
                           const std::string& value) {
  bool ok = true;
  switch (spec.kind) {
    case OptionKind::kInt: { int64_t v; ok = parse_int(value, v); break; }
    case OptionKind::kFloat: { double v; ok = parse_float(value, v); break; }
    case OptionKind::kBool: { bool v; ok = parse_bool(value, v); break; }
    case OptionKind::kIntList: { std::vector<int64_t> v; ok = parse_int_list(value, v); break; }
    case OptionKind::kString: {
      if (!spec.choices.empty()) {
        ok = false;
        for (const auto& c : spec.choices) ok = ok || c == value;
        if (!ok) {
          std::string valid;
          for (const auto& c : spec.choices) valid += (valid.empty() ? "" : ", ") + c;
          TORCH_CHECK(false, mixer, ": option `", spec.name, "` must be one of {", valid,
                      "}, got '", value, "'");
        }
      }
      break;
    }
  }
  TORCH_CHECK(ok, mixer, ": option `", spec.name, "` expects ",
              spec.kind == OptionKind::kIntList ? "a comma-separated list of integers"
              : spec.kind == OptionKind::kBool  ? "a bool (true/false)"
                                                : option_kind_name(spec.kind),
              ", got '", value, "'");
}

}  // namespace

std::map<std::string, std::string> resolve_option_values(
    const std::string& owner, const std::vector<OptionSpec>& specs,
    const std::map<std::string, std::string>& given) {
  std::map<std::string, std::string> values;
  for (const auto& o : specs) values[o.name] = o.default_value;
  for (const auto& [key, value] : given) {
    const OptionSpec* found = nullptr;
    for (const auto& o : specs) found = o.name == key ? &o : found;
    if (!found) {
      std::string valid;
      for (const auto& o : specs) valid += (valid.empty() ? "" : ", ") + o.name;
      TORCH_CHECK(false, owner, ": unknown option `", key, "`; valid options: ", valid);
    }
    validate_option_value(owner, *found, value);
    values[key] = value;
  }
  return values;
}

ResolvedOptions::ResolvedOptions(std::string mixer, std::map<std::string, std::string> values)
    : mixer_(std::move(mixer)), values_(std::move(values)) {}

const std::string& ResolvedOptions::raw(const std::string& key) const {
  auto it = values_.find(key);
  TORCH_INTERNAL_ASSERT(it != values_.end(), mixer_, ": option `", key, "` was not resolved");
  return it->second;
}

int64_t ResolvedOptions::get_int(const std::string& key) const {
  int64_t v = 0;
  TORCH_CHECK(parse_int(raw(key), v), mixer_, ": option `", key, "` expects an int, got '",
              raw(key), "'");
  return v;
}

double ResolvedOptions::get_float(const std::string& key) const {
  double v = 0;
  TORCH_CHECK(parse_float(raw(key), v), mixer_, ": option `", key, "` expects a float, got '",
              raw(key), "'");
  return v;
}

bool ResolvedOptions::get_bool(const std::string& key) const {
  bool v = false;
  TORCH_CHECK(parse_bool(raw(key), v), mixer_, ": option `", key,
              "` expects a bool (true/false), got '", raw(key), "'");
  return v;
}

const std::string& ResolvedOptions::get_string(const std::string& key) const { return raw(key); }

std::vector<int64_t> ResolvedOptions::get_int_list(const std::string& key) const {
  std::vector<int64_t> v;
  TORCH_CHECK(parse_int_list(raw(key), v), mixer_, ": option `", key,
              "` expects a comma-separated list of integers, got '", raw(key), "'");
  return v;
}

}  // namespace longseq
