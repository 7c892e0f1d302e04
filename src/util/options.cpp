// Options declared once (longseq/options.h): text <-> value of each option type, and the checks
// whose errors name the owner (mixer, task, config section), the option, what was expected and
// what was given.
#include <longseq/options.h>

#include <c10/util/Exception.h>

#include <cerrno>
#include <cstdio>
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

namespace option_text {

bool parse(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end != s.c_str() + s.size()) return false;
  out = v;
  return true;
}

bool parse(const std::string& s, uint64_t& out) {
  // Written and read as a signed int, as the command line has always taken seeds.
  int64_t v = 0;
  if (!parse(s, v)) return false;
  out = static_cast<uint64_t>(v);
  return true;
}

bool parse(const std::string& s, double& out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || end != s.c_str() + s.size()) return false;
  out = v;
  return true;
}

bool parse(const std::string& s, bool& out) {
  if (s == "true" || s == "1" || s == "on" || s == "yes") return out = true, true;
  if (s == "false" || s == "0" || s == "off" || s == "no") return out = false, true;
  return false;
}

bool parse(const std::string& s, std::string& out) {
  out = s;
  return true;
}

bool parse(const std::string& s, std::vector<int64_t>& out) {
  out.clear();
  if (s.empty()) return true;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    int64_t v;
    if (!parse(item, v)) return false;
    out.push_back(v);
  }
  return s.back() != ',';
}

std::string format(int64_t v) { return std::to_string(v); }
std::string format(uint64_t v) { return std::to_string(static_cast<int64_t>(v)); }

std::string format(double v) {
  // The shortest of %.15g / %.17g that reads back as the same double: 0.1 stays "0.1".
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.15g", v);
  if (std::strtod(buf, nullptr) != v) std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

std::string format(bool v) { return v ? "true" : "false"; }
std::string format(const std::string& v) { return v; }

std::string format(const std::vector<int64_t>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + std::to_string(v[i]);
  return out;
}

}  // namespace option_text

bool OptionRange::contains(double v) const {
  if (lo && (lo_open ? !(v > *lo) : !(v >= *lo))) return false;
  if (hi && (hi_open ? !(v < *hi) : !(v <= *hi))) return false;
  return true;
}

std::string OptionRange::text() const {
  auto num = [](double v) { return option_text::format(v); };
  if (lo && hi) {
    return "in " + std::string(lo_open ? "(" : "[") + num(*lo) + ", " + num(*hi) +
           (hi_open ? ")" : "]");
  }
  if (lo) return (lo_open ? "> " : ">= ") + num(*lo);
  if (hi) return (hi_open ? "< " : "<= ") + num(*hi);
  return "";
}

namespace {

std::string join(const std::vector<std::string>& items, const char* sep = ", ") {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

void check_number(const std::string& owner, const OptionSpec& spec, double v,
                  const std::string& shown) {
  TORCH_CHECK(spec.range.contains(v), owner, ": option `", spec.name, "` ",
              spec.kind == OptionKind::kIntList ? "values " : "", "must be ", spec.range.text(),
              ", got ", shown);
  TORCH_CHECK(!spec.rule || spec.rule(v), owner, ": option `", spec.name, "` must be ",
              spec.rule_text, ", got ", shown);
}

}  // namespace

void check_option_value(const std::string& owner, const OptionSpec& spec,
                        const std::string& value) {
  bool ok = true;
  switch (spec.kind) {
    case OptionKind::kInt: {
      int64_t v;
      ok = option_text::parse(value, v);
      if (ok) check_number(owner, spec, static_cast<double>(v), value);
      break;
    }
    case OptionKind::kFloat: {
      double v;
      ok = option_text::parse(value, v);
      if (ok) check_number(owner, spec, v, value);
      break;
    }
    case OptionKind::kBool: {
      bool v;
      ok = option_text::parse(value, v);
      break;
    }
    case OptionKind::kIntList: {
      std::vector<int64_t> v;
      ok = option_text::parse(value, v);
      if (ok) {
        for (int64_t x : v) check_number(owner, spec, static_cast<double>(x), std::to_string(x));
      }
      break;
    }
    case OptionKind::kString: {
      if (spec.choices.empty()) break;
      bool known = false;
      for (const auto& c : spec.choices) known = known || c == value;
      TORCH_CHECK(known, owner, ": option `", spec.name, "` must be one of ", join(spec.choices),
                  ", got '", value, "'");
      break;
    }
  }
  TORCH_CHECK(ok, owner, ": option `", spec.name, "` expects ",
              spec.kind == OptionKind::kIntList ? "a comma-separated list of integers"
              : spec.kind == OptionKind::kBool  ? "a bool (true/false)"
              : spec.kind == OptionKind::kInt   ? "an int"
                                                : "a float",
              ", got '", value, "'");
}

std::map<std::string, std::string> resolve_option_values(
    const std::string& owner, const std::vector<OptionSpec>& specs,
    const std::map<std::string, std::string>& given) {
  std::map<std::string, std::string> values;
  for (const auto& o : specs) values[o.name] = o.default_value;
  for (const auto& [key, value] : given) {
    const OptionSpec* found = nullptr;
    for (const auto& o : specs) found = o.name == key ? &o : found;
    if (!found) {
      std::vector<std::string> names;
      for (const auto& o : specs) names.push_back(o.name);
      TORCH_CHECK(false, owner, ": unknown option `", key, "`; valid options: ", join(names));
    }
    check_option_value(owner, *found, value);
    values[key] = value;
  }
  return values;
}

ResolvedOptions::ResolvedOptions(std::string owner, std::map<std::string, std::string> values)
    : owner_(std::move(owner)), values_(std::move(values)) {}

const std::string& ResolvedOptions::raw(const std::string& key) const {
  auto it = values_.find(key);
  TORCH_INTERNAL_ASSERT(it != values_.end(), owner_, ": option `", key, "` was not resolved");
  return it->second;
}

namespace {

template <class T>
T get_as(const std::string& owner, const std::string& key, const std::string& text,
         const char* expected) {
  T v{};
  TORCH_CHECK(option_text::parse(text, v), owner, ": option `", key, "` expects ", expected,
              ", got '", text, "'");
  return v;
}

}  // namespace

int64_t ResolvedOptions::get_int(const std::string& key) const {
  return get_as<int64_t>(owner_, key, raw(key), "an int");
}

double ResolvedOptions::get_float(const std::string& key) const {
  return get_as<double>(owner_, key, raw(key), "a float");
}

bool ResolvedOptions::get_bool(const std::string& key) const {
  return get_as<bool>(owner_, key, raw(key), "a bool (true/false)");
}

const std::string& ResolvedOptions::get_string(const std::string& key) const { return raw(key); }

std::vector<int64_t> ResolvedOptions::get_int_list(const std::string& key) const {
  return get_as<std::vector<int64_t>>(owner_, key, raw(key), "a comma-separated list of integers");
}

}  // namespace longseq
