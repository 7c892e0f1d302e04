#pragma once
/// Options declared once. An `OptionSet<O>` lists the members of an Options struct `O` that can
/// be set by name: for each, the name, the member, a one-line help, the accepted range, choices
/// or rule, and a few small values for tests. Defaults are read from the struct itself. The mixer
/// and task registries, the command line (`--opt`, `longseq list`), the JSON config and the
/// generated option tables of docs/mixers.md all read these declarations.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace longseq {

enum class OptionKind { kInt, kFloat, kBool, kString, kIntList };
const char* option_kind_name(OptionKind kind);

/// Accepted values of a numeric option (of each element of an int list).
struct OptionRange {
  std::optional<double> lo, hi;
  bool lo_open = false, hi_open = false;
  bool contains(double v) const;
  /// "> 0", ">= 0", "in [0, 1)", or empty when unbounded.
  std::string text() const;
};

/// What the command line, the docs and the tests know about one option.
struct OptionSpec {
  std::string name;
  OptionKind kind = OptionKind::kInt;
  std::string default_value;  ///< as written on the command line
  std::string help;
  std::vector<std::string> choices;  ///< kString: the accepted values (empty = any)
  OptionRange range;                 ///< numeric kinds
  /// A rule beyond the range, and the words that state it in errors ("1 or an even number >= 2").
  std::function<bool(double)> rule;
  std::string rule_text;
  /// Small values for tests on tiny shapes: the first for ordinary tests, the last for the
  /// tiniest shapes (gradient checks). Empty: the default is small enough.
  std::vector<std::string> test_values;
};

/// Throws "<owner>: option `<name>` expects ... / must be ..., got ..." unless `value` parses as
/// the option's kind and satisfies its range, choices and rule.
void check_option_value(const std::string& owner, const OptionSpec& spec, const std::string& value);

/// Defaults of `specs` overridden by `given`, each checked. An unknown key throws naming `owner`
/// (a mixer, a task, a config section), the key and the valid keys.
std::map<std::string, std::string> resolve_option_values(
    const std::string& owner, const std::vector<OptionSpec>& specs,
    const std::map<std::string, std::string>& given);

/// Option values (checked, defaults filled in) read by name; for options that are not members of
/// an Options struct (task options).
class ResolvedOptions {
 public:
  ResolvedOptions(std::string owner, std::map<std::string, std::string> values);
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  std::vector<int64_t> get_int_list(const std::string& key) const;
  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  const std::string& raw(const std::string& key) const;
  std::string owner_;
  std::map<std::string, std::string> values_;
};

/// Text <-> value of the option types (the command-line form; floats round-trip exactly).
namespace option_text {
bool parse(const std::string& s, int64_t& out);
bool parse(const std::string& s, uint64_t& out);
bool parse(const std::string& s, double& out);
bool parse(const std::string& s, bool& out);
bool parse(const std::string& s, std::string& out);
bool parse(const std::string& s, std::vector<int64_t>& out);
std::string format(int64_t v);
std::string format(uint64_t v);
std::string format(double v);
std::string format(bool v);
std::string format(const std::string& v);
std::string format(const std::vector<int64_t>& v);
}  // namespace option_text

template <class T>
constexpr OptionKind option_kind_of() {
  if constexpr (std::is_same_v<T, bool>)
    return OptionKind::kBool;
  else if constexpr (std::is_integral_v<T>)
    return OptionKind::kInt;
  else if constexpr (std::is_floating_point_v<T>)
    return OptionKind::kFloat;
  else if constexpr (std::is_same_v<T, std::string>)
    return OptionKind::kString;
  else {
    static_assert(std::is_same_v<T, std::vector<int64_t>>, "unsupported option type");
    return OptionKind::kIntList;
  }
}

/// One member of `O` bound to an option name. Built by option(); the chained calls declare what
/// the option accepts.
template <class O>
class OptionBinder {
 public:
  template <class T>
  OptionBinder(std::string name, std::function<T&(O&)> member, std::string help) {
    spec_.name = std::move(name);
    spec_.kind = option_kind_of<T>();
    spec_.help = std::move(help);
    set_ = [member](O& o, const std::string& text) { option_text::parse(text, member(o)); };
    // The member accessors of TORCH_ARG have no const overload usable here; reading only.
    get_ = [member](const O& o) { return option_text::format(member(const_cast<O&>(o))); };
  }
  /// > 0
  OptionBinder& positive() { return range(0, std::nullopt, /*lo_open=*/true); }
  /// >= 0
  OptionBinder& non_negative() { return range(0, std::nullopt); }
  /// lo <= v (< or <=) hi
  OptionBinder& range(std::optional<double> lo, std::optional<double> hi, bool lo_open = false,
                      bool hi_open = false) {
    spec_.range = OptionRange{lo, hi, lo_open, hi_open};
    return *this;
  }
  OptionBinder& choices(std::vector<std::string> values) {
    spec_.choices = std::move(values);
    return *this;
  }
  OptionBinder& rule(std::function<bool(double)> pred, std::string text) {
    spec_.rule = std::move(pred);
    spec_.rule_text = std::move(text);
    return *this;
  }
  OptionBinder& tests(std::vector<std::string> values) {
    spec_.test_values = std::move(values);
    return *this;
  }

  const OptionSpec& spec() const { return spec_; }
  OptionSpec& spec() { return spec_; }
  /// `text` must have passed check_option_value().
  void set(O& o, const std::string& text) const { set_(o, text); }
  std::string get(const O& o) const { return get_(o); }

 private:
  OptionSpec spec_;
  std::function<void(O&, const std::string&)> set_;
  std::function<std::string(const O&)> get_;
};

/// A member set through a TORCH_ARG accessor: option("features", &PerformerOptions::features, ...).
template <class O, class T>
OptionBinder<O> option(std::string name, T& (O::*accessor)() noexcept, std::string help) {
  return OptionBinder<O>(std::move(name),
                         std::function<T&(O&)>([accessor](O& o) -> T& { return (o.*accessor)(); }),
                         std::move(help));
}

/// A plain data member: option("dim", &MixerConfig::dim, ...).
template <class O, class T>
OptionBinder<O> option(std::string name, T O::*member, std::string help) {
  return OptionBinder<O>(std::move(name),
                         std::function<T&(O&)>([member](O& o) -> T& { return o.*member; }),
                         std::move(help));
}

/// The options of one Options struct, in the order they are listed (and documented).
template <class O>
class OptionSet {
 public:
  explicit OptionSet(O defaults) : defaults_(std::move(defaults)) {}
  OptionSet& add(OptionBinder<O> binder) {
    binder.spec().default_value = binder.get(defaults_);
    binders_.push_back(std::move(binder));
    return *this;
  }

  /// The struct with every default (what a default-constructed Options holds).
  const O& defaults() const { return defaults_; }
  std::vector<OptionSpec> specs() const {
    std::vector<OptionSpec> out;
    for (const auto& b : binders_) out.push_back(b.spec());
    return out;
  }
  const std::vector<OptionBinder<O>>& binders() const { return binders_; }

  /// Sets the members named in `values`, each checked first; an unknown name throws naming
  /// `owner` and the valid names.
  void apply(O& o, const std::map<std::string, std::string>& values,
             const std::string& owner) const {
    const auto all = specs();
    resolve_option_values(owner, all, values);  // checks names and values
    for (const auto& b : binders_) {
      auto it = values.find(b.spec().name);
      if (it != values.end()) b.set(o, it->second);
    }
  }
  /// Checks every declared member of `o` (range, choices, rule), as a constructor does for
  /// Options built in code.
  void check(const O& o, const std::string& owner) const {
    for (const auto& b : binders_) check_option_value(owner, b.spec(), b.get(o));
  }
  /// name -> value of every declared member (the command-line form).
  std::map<std::string, std::string> values(const O& o) const {
    std::map<std::string, std::string> out;
    for (const auto& b : binders_) out[b.spec().name] = b.get(o);
    return out;
  }

 private:
  O defaults_;
  std::vector<OptionBinder<O>> binders_;
};

}  // namespace longseq
