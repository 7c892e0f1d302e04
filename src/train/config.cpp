// JSON experiment configs (longseq/config.h). The keys of `model` and `train` are the options
// declared beside their structs (common_options(), model_options(), train_options()), read and
// written through them; an unknown key is an error that names the valid ones.
#include <longseq/config.h>
#include <longseq/registry.h>

#include "util/json_read.h"

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <set>
#include <sstream>
#include <type_traits>

namespace longseq {
namespace {

using json = nlohmann::json;

const char* kind_words(OptionKind kind) {
  switch (kind) {
    case OptionKind::kInt: return "an integer";
    case OptionKind::kFloat: return "a number";
    case OptionKind::kBool: return "true or false";
    case OptionKind::kString: return "a string";
    case OptionKind::kIntList: return "an array of integers";
  }
  return "?";
}

// A JSON value as option text (the command-line form); false when its type does not fit.
bool json_to_text(const json& v, OptionKind kind, std::string& out) {
  switch (kind) {
    case OptionKind::kInt:
      if (v.is_number_integer()) return out = v.dump(), true;
      if (v.is_number_float()) {
        // 2.0 is an integer; 1e27 is one too, but beyond int64_t (converting it would be UB).
        const double d = v.get<double>();
        if (std::trunc(d) != d) return false;
        if (!(d >= -0x1p63 && d < 0x1p63)) return out = v.dump(), true;  // parse: out of range
        return out = std::to_string(static_cast<int64_t>(d)), true;
      }
      return false;
    case OptionKind::kFloat: return v.is_number() ? (out = v.dump(), true) : false;
    case OptionKind::kBool: return v.is_boolean() ? (out = v.dump(), true) : false;
    case OptionKind::kString: return v.is_string() ? (out = v.get<std::string>(), true) : false;
    case OptionKind::kIntList:
      if (!v.is_array()) return false;
      out.clear();
      for (const auto& x : v) {
        if (!x.is_number_integer()) return false;
        out += (out.empty() ? "" : ",") + x.dump();
      }
      return true;
  }
  return false;
}

// Option text (already checked) as a JSON value of its kind.
json text_to_json(const std::string& text, OptionKind kind) {
  switch (kind) {
    case OptionKind::kInt: {
      int64_t v = 0;
      option_text::parse(text, v);
      return v;
    }
    case OptionKind::kFloat: {
      double v = 0;
      option_text::parse(text, v);
      return v;
    }
    case OptionKind::kBool: {
      bool v = false;
      option_text::parse(text, v);
      return v;
    }
    case OptionKind::kString: return text;
    case OptionKind::kIntList: {
      std::vector<int64_t> v;
      option_text::parse(text, v);
      return v;
    }
  }
  return nullptr;
}

template <class O>
void put_all(json& j, const OptionSet<O>& set, const O& o, const std::set<std::string>& skip = {}) {
  for (const auto& b : set.binders()) {
    if (!skip.count(b.spec().name)) j[b.spec().name] = text_to_json(b.get(o), b.spec().kind);
  }
}

// The seed of the mixers comes from the root `seed`.
const std::set<std::string> kNotInModelSection = {"seed"};

// Reads keys of one section, remembering which it consumed so leftovers can be reported.
class Section {
 public:
  Section(const json& j, std::string name) : j_(j), name_(std::move(name)) {
    TORCH_CHECK(j_.is_object(), "config: `", name_, "` must be an object, got ", j_.type_name());
  }
  template <typename T>
  void get(const char* key, T& out) {
    known_.insert(key);
    if (!j_.contains(key)) return;
    const json& v = j_.at(key);
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      // nlohmann would truncate 8.9 to 8 and wrap -1 to 2^64 - 1: integers only, in range.
      std::string text;
      TORCH_CHECK(json_to_text(v, OptionKind::kInt, text), "config: `", name_, ".", key,
                  "` must be an integer, got ", v.dump());
      int64_t x = 0;
      TORCH_CHECK(option_text::parse(text, x), "config: `", name_, ".", key,
                  "` is out of range: ", text);
      TORCH_CHECK(std::is_signed_v<T> || x >= 0, "config: `", name_, ".", key,
                  "` must be >= 0, got ", x);
      out = static_cast<T>(x);
    } else {
      try {
        out = v.get<T>();
      } catch (const json::exception& e) {
        TORCH_CHECK(false, "config: `", name_, ".", key, "` has the wrong type (", v.dump(),
                    "): ", e.what());
      }
    }
  }
  /// Every option of `set` (but `skip`) present in the section, checked and set in `out`.
  template <class O>
  void get_all(const OptionSet<O>& set, O& out, const std::set<std::string>& skip = {}) {
    for (const auto& b : set.binders()) {
      const OptionSpec& spec = b.spec();
      if (skip.count(spec.name)) continue;
      known_.insert(spec.name);
      if (!j_.contains(spec.name)) continue;
      const json& v = j_.at(spec.name);
      std::string text;
      TORCH_CHECK(json_to_text(v, spec.kind, text), "config: `", name_, ".", spec.name,
                  "` has the wrong type (", v.dump(), "): expected ", kind_words(spec.kind));
      check_option_value(name_, spec, text);
      b.set(out, text);
    }
  }
  const json* sub(const char* key) {
    known_.insert(key);
    return j_.contains(key) ? &j_.at(key) : nullptr;
  }
  void finish() const {
    for (const auto& item : j_.items()) {
      if (known_.count(item.key())) continue;
      std::string valid;
      for (const auto& k : known_) valid += (valid.empty() ? "" : ", ") + k;
      TORCH_CHECK(false, "config: unknown key `", name_, ".", item.key(), "`; valid keys: ", valid);
    }
  }

 private:
  const json& j_;
  std::string name_;
  std::set<std::string> known_;
};

std::map<std::string, std::string> string_map(const json& j, const std::string& where) {
  TORCH_CHECK(j.is_object(), "config: `", where, "` must be an object of option: value");
  std::map<std::string, std::string> out;
  for (const auto& item : j.items()) {
    out[item.key()] =
        item.value().is_string() ? item.value().get<std::string>() : item.value().dump();
  }
  return out;
}

// UTF-8 as RFC 3629 defines it, the form nlohmann's writer insists on: no lead bytes C0, C1 or
// F5-FF, no overlong forms (E0 80-9F, F0 80-8F), no surrogates (ED A0-BF), nothing past U+10FFFF
// (F4 90-BF). (A check of the bit patterns alone let F6 92 90 92 through, and the config's first
// save then threw nlohmann's type_error; fuzz_config found it.)
bool valid_utf8(const std::string& s) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = byte(i);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int n = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // the range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (i + n > s.size() || byte(i + 1) < lo || byte(i + 1) > hi) return false;
    for (int k = 2; k < n; ++k) {
      if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return false;
    }
    i += n;
  }
  return true;
}

// "a.b.c=value": sets j["a"]["b"]["c"]; value is read as JSON when it parses, else as a string;
// a comma list for `model.mixers` becomes an array.
void apply_override(json& j, const std::string& o) {
  const auto eq = o.find('=');
  TORCH_CHECK(eq != std::string::npos && eq > 0, "config: `--set` expects key=value, got '", o,
              "'");
  const std::string path = o.substr(0, eq), text = o.substr(eq + 1);
  // JSON text is UTF-8: a value in another encoding (a Latin-1 file name) could be read but never
  // written back into a checkpoint's state.json.
  TORCH_CHECK(valid_utf8(o), "config: `--set ", valid_utf8(path) ? path : std::string("?"),
              "`: the text is not valid UTF-8");
  json value;
  try {
    value = parse_json_strict(text, "config: `--set " + path + "`: ");
  } catch (const c10::Error&) {
    value = text;  // not JSON: the text itself (a name, a path)
  }
  if (path == "model.mixers" && value.is_string()) {
    json arr = json::array();
    std::stringstream ss(text);
    for (std::string item; std::getline(ss, item, ',');) arr.push_back(item);
    value = arr;
  }
  json* node = &j;
  std::stringstream ss(path);
  std::vector<std::string> parts;
  for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    json& next = (*node)[parts[i]];
    if (next.is_null()) next = json::object();
    TORCH_CHECK(next.is_object(), "config: `--set ", path, "`: `", parts[i], "` is not a section");
    node = &next;
  }
  (*node)[parts.back()] = value;
}

}  // namespace

TrainConfig parse_train_config(const std::string& text, const std::vector<std::string>& overrides,
                               const std::string& source) {
  // Depth-limited, duplicate keys refused (nlohmann would keep the last one silently).
  json j = text.empty() ? json::object() : parse_json_strict(text, "config: " + source + ": ");
  TORCH_CHECK(j.is_object(), "config: ", source, " must be a JSON object {\"task\": ..., ",
              "\"model\": ..., \"train\": ...}, got ", j.type_name());
  for (const auto& o : overrides) apply_override(j, o);
  TrainConfig c;
  Section root(j, "config");
  root.get("seed", c.seed);
  if (const json* t = root.sub("task")) {
    Section s(*t, "task");
    s.get("name", c.task);
    if (const json* o = s.sub("options")) c.task_options = string_map(*o, "task.options");
    s.finish();
  }
  if (const json* m = root.sub("model")) {
    Section s(*m, "model");
    auto& mc = c.model;
    s.get("layers", mc.layers);
    if (const json* mx = s.sub("mixers")) {
      if (mx->is_string()) {
        mc.mixers = {mx->get<std::string>()};
      } else {
        TORCH_CHECK(mx->is_array(), "config: `model.mixers` must be a name or a list of names");
        mc.mixers = mx->get<std::vector<std::string>>();
      }
    }
    if (const json* mo = s.sub("mixer_options")) {
      TORCH_CHECK(mo->is_object(), "config: `model.mixer_options` must map mixer -> options");
      for (const auto& item : mo->items()) {
        mc.mixer_options[item.key()] =
            string_map(item.value(), "model.mixer_options." + item.key());
      }
    }
    s.get_all(common_options(), mc.mixer, kNotInModelSection);
    s.get_all(model_options(), mc);
    s.finish();
  }
  if (const json* t = root.sub("train")) {
    Section s(*t, "train");
    s.get_all(train_options(), c);
    s.finish();
  }
  root.finish();
  c.model.mixer.seed = c.seed;
  c.validate();
  // Validate what the Trainer would build, with the task's sizes, before any work starts.
  for (const auto& name : c.model.mixers) find_mixer(name);
  return c;
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::string text;
  if (!path.empty()) {
    text = read_regular_file(path, "config", int64_t{16} << 20);  // configs are a few KB
    TORCH_CHECK(text.find_first_not_of(" \t\r\n") != std::string::npos, "config: '", path,
                "' is empty");
  }
  return parse_train_config(text, overrides, path.empty() ? "defaults" : path);
}

std::string train_config_to_json(const TrainConfig& c) {
  json j;
  j["seed"] = c.seed;
  j["task"] = {{"name", c.task}, {"options", c.task_options}};
  const auto& m = c.model;
  json model = {{"mixers", m.mixers}, {"mixer_options", m.mixer_options}};
  put_all(model, common_options(), m.mixer, kNotInModelSection);
  put_all(model, model_options(), m);
  j["model"] = model;
  json train = json::object();
  put_all(train, train_options(), c);
  j["train"] = train;
  return j.dump(2);
}

}  // namespace longseq
