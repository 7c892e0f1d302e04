// JSON experiment configs (longseq/config.h). Every section lists its keys once, in the reader
// below; an unknown key is an error that names the valid ones.
#include <longseq/config.h>
#include <longseq/registry.h>

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <sstream>

namespace longseq {
namespace {

using json = nlohmann::json;

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
    try {
      out = j_.at(key).get<T>();
    } catch (const json::exception& e) {
      TORCH_CHECK(false, "config: `", name_, ".", key, "` has the wrong type (", j_.at(key).dump(),
                  "): ", e.what());
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
    out[item.key()] = item.value().is_string() ? item.value().get<std::string>() : item.value().dump();
  }
  return out;
}

// "a.b.c=value": sets j["a"]["b"]["c"]; value is read as JSON when it parses, else as a string;
// a comma list for `model.mixers` becomes an array.
void apply_override(json& j, const std::string& o) {
  const auto eq = o.find('=');
  TORCH_CHECK(eq != std::string::npos && eq > 0, "config: `--set` expects key=value, got '", o, "'");
  const std::string path = o.substr(0, eq), text = o.substr(eq + 1);
  json value;
  try {
    value = json::parse(text);
  } catch (const json::exception&) {
    value = text;
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
  json j;
  try {
    j = text.empty() ? json::object() : json::parse(text);
  } catch (const json::exception& e) {
    TORCH_CHECK(false, "config: ", source, " is not valid JSON: ", e.what());
  }
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
        mc.mixer_options[item.key()] = string_map(item.value(), "model.mixer_options." + item.key());
      }
    }
    s.get("dim", mc.mixer.dim);
    s.get("heads", mc.mixer.heads);
    s.get("head_dim", mc.mixer.head_dim);
    s.get("causal", mc.mixer.causal);
    s.get("attn_dropout", mc.mixer.dropout);
    s.get("max_len", mc.mixer.max_len);
    s.get("norm", mc.norm);
    s.get("ffn_mult", mc.ffn_mult);
    s.get("ffn_chunk", mc.ffn_chunk);
    s.get("dropout", mc.dropout);
    s.get("positions", mc.positions);
    s.get("pooling", mc.pooling);
    s.get("reversible", mc.reversible);
    s.get("token_shift", mc.token_shift);
    s.finish();
  }
  if (const json* t = root.sub("train")) {
    Section s(*t, "train");
    s.get("steps", c.steps);
    s.get("batch_size", c.batch_size);
    s.get("accumulate", c.accumulate);
    s.get("tbptt", c.tbptt);
    s.get("lr", c.lr);
    s.get("min_lr_ratio", c.min_lr_ratio);
    s.get("warmup", c.warmup);
    s.get("weight_decay", c.weight_decay);
    s.get("beta1", c.beta1);
    s.get("beta2", c.beta2);
    s.get("clip", c.clip);
    s.get("eval_every", c.eval_every);
    s.get("eval_batches", c.eval_batches);
    s.get("max_bad_steps", c.max_bad_steps);
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
    std::ifstream f(path);
    TORCH_CHECK(f.good(), "config: cannot read '", path, "'");
    std::stringstream ss;
    ss << f.rdbuf();
    text = ss.str();
  }
  return parse_train_config(text, overrides, path.empty() ? "defaults" : path);
}

std::string train_config_to_json(const TrainConfig& c) {
  json j;
  j["seed"] = c.seed;
  j["task"] = {{"name", c.task}, {"options", c.task_options}};
  const auto& m = c.model;
  j["model"] = {{"layers", m.layers}, {"mixers", m.mixers}, {"mixer_options", m.mixer_options},
                {"dim", m.mixer.dim}, {"heads", m.mixer.heads}, {"head_dim", m.mixer.head_dim},
                {"causal", m.mixer.causal}, {"attn_dropout", m.mixer.dropout},
                {"max_len", m.mixer.max_len}, {"norm", m.norm}, {"ffn_mult", m.ffn_mult},
                {"ffn_chunk", m.ffn_chunk}, {"dropout", m.dropout}, {"positions", m.positions},
                {"pooling", m.pooling}, {"reversible", m.reversible},
                {"token_shift", m.token_shift}};
  j["train"] = {{"steps", c.steps}, {"batch_size", c.batch_size}, {"accumulate", c.accumulate},
                {"tbptt", c.tbptt},
                {"lr", c.lr}, {"min_lr_ratio", c.min_lr_ratio}, {"warmup", c.warmup},
                {"weight_decay", c.weight_decay}, {"beta1", c.beta1}, {"beta2", c.beta2},
                {"clip", c.clip}, {"eval_every", c.eval_every}, {"eval_batches", c.eval_batches},
                {"max_bad_steps", c.max_bad_steps}};
  return j.dump(2);
}

}  // namespace longseq
