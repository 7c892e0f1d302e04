// The registry: the one list of sequence mixers, one line each. A mixer's .cpp defines its entry,
// `MixerSpec <name>_mixer_spec()` (name, description, options bound to its Options struct,
// factory); adding a mixer = its header, its .cpp, one line here and its test file
// (docs/adding_a_mixer.md). Tests, `longseq list`, `longseq bench` and docs/mixers.md iterate it.
#include <longseq/machine.h>
#include <longseq/registry.h>

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <sstream>

// X(<entry>): the mixers in the order `longseq list` shows them.
#define LONGSEQ_MIXERS(X) \
  X(exact)                \
  X(linformer)            \
  X(longformer)           \
  X(performer)            \
  X(reformer)             \
  X(linear)               \
  X(elman)                \
  X(lstm)                 \
  X(gru)                  \
  X(mingru)               \
  X(minlstm)              \
  X(s6)                   \
  X(lmu)                  \
  X(memory)

namespace longseq {

#define LONGSEQ_DECLARE_MIXER(name) MixerSpec name##_mixer_spec();
LONGSEQ_MIXERS(LONGSEQ_DECLARE_MIXER)
#undef LONGSEQ_DECLARE_MIXER

const std::vector<MixerSpec>& mixer_registry() {
#define LONGSEQ_MIXER_ENTRY(name) name##_mixer_spec(),
  static const std::vector<MixerSpec> table = {LONGSEQ_MIXERS(LONGSEQ_MIXER_ENTRY)};
#undef LONGSEQ_MIXER_ENTRY
  return table;
}

std::map<std::string, std::string> MixerSpec::test_options(bool tiniest) const {
  std::map<std::string, std::string> out;
  for (const auto& o : options) {
    if (!o.test_values.empty())
      out[o.name] = tiniest ? o.test_values.back() : o.test_values.front();
  }
  return out;
}

std::vector<OptionSpec> common_option_specs() { return common_options().specs(); }

Work linear_layer_work(double rows, double in, double out, bool backward) {
  const Work w = gemm_work(rows, in, out);
  return backward ? 2 * w : w;
}

Work attention_projection_work(const MixerConfig& c, int64_t batch, int64_t t, bool shared_qk,
                               bool backward) {
  const double rows = double(batch) * t, inner = double(c.heads) * c.resolved_head_dim();
  const Work one = linear_layer_work(rows, c.dim, inner, backward);
  return (shared_qk ? 3 : 4) * one;
}

Work mixer_work(const std::string& name, const MixerConfig& config,
                const std::map<std::string, std::string>& options, int64_t batch, int64_t t,
                const std::string& mode) {
  TORCH_CHECK(mode == "fwd" || mode == "fwd+bwd", "mixer_work: `mode` must be fwd or fwd+bwd, got '",
              mode, "'");
  MixerConfig c = config;
  const auto values = resolve_options(name, c, options).values();
  const auto& spec = find_mixer(name);
  Work w = spec.work(c, values, batch, t, false);
  if (mode == "fwd+bwd") w += spec.work(c, values, batch, t, true);
  return w;
}

std::vector<std::string> mixer_names() {
  std::vector<std::string> names;
  for (const auto& s : mixer_registry()) names.push_back(s.name);
  return names;
}

const MixerSpec& find_mixer(const std::string& name) {
  for (const auto& s : mixer_registry()) {
    if (s.name == name) return s;
  }
  std::string valid;
  for (const auto& n : mixer_names()) valid += (valid.empty() ? "" : ", ") + n;
  TORCH_CHECK(false, "unknown mixer '", name, "'; valid mixers: ", valid);
}

ResolvedOptions resolve_options(const std::string& name, MixerConfig& config,
                                const std::map<std::string, std::string>& options) {
  const MixerSpec& spec = find_mixer(name);
  // Mechanism options first, then the common ones: the order the error lists them in.
  std::vector<OptionSpec> all = spec.options;
  const auto common = common_option_specs();
  all.insert(all.end(), common.begin(), common.end());
  const auto values = resolve_option_values(name, all, options);
  // Only common options given explicitly override `config`; their defaults must not.
  std::map<std::string, std::string> given_common, mechanism;
  for (const auto& o : common) {
    if (options.count(o.name)) given_common[o.name] = options.at(o.name);
  }
  common_options().apply(config, given_common, name);
  for (const auto& o : spec.options) mechanism[o.name] = values.at(o.name);
  return ResolvedOptions(name, std::move(mechanism));
}

SequenceMixer make_mixer(const std::string& name, const MixerConfig& config,
                         const std::map<std::string, std::string>& options) {
  pin_thread_count();  // the first forward runs on the thread count of every later one
  warn_once_if_blas_below_cpu();
  MixerConfig c = config;
  const ResolvedOptions resolved = resolve_options(name, c, options);
  return find_mixer(name).make(c, resolved.values());
}

namespace {

std::string accepted(const OptionSpec& o) {
  std::string out;
  if (!o.choices.empty()) {
    for (const auto& c : o.choices) out += (out.empty() ? "" : ", ") + ("`" + c + "`");
    return out;
  }
  out = o.range.text();
  if (!o.rule_text.empty()) out += (out.empty() ? "" : "; ") + o.rule_text;
  return out;
}

void options_table(std::ostringstream& md, const std::vector<OptionSpec>& options) {
  if (options.empty()) {
    md << "No mechanism options.\n";
    return;
  }
  md << "| option | type | default | accepted | meaning |\n|---|---|---|---|---|\n";
  for (const auto& o : options) {
    md << "| `" << o.name << "` | " << option_kind_name(o.kind) << " | "
       << (o.default_value.empty() ? "(none)" : "`" + o.default_value + "`") << " | " << accepted(o)
       << " | " << o.help << " |\n";
  }
}

nlohmann::json option_json(const OptionSpec& o) {
  nlohmann::json j = {{"name", o.name},
                      {"type", option_kind_name(o.kind)},
                      {"default", o.default_value},
                      {"help", o.help}};
  if (!o.choices.empty()) j["choices"] = o.choices;
  if (!o.range.text().empty()) j["range"] = o.range.text();
  if (!o.rule_text.empty()) j["rule"] = o.rule_text;
  return j;
}

}  // namespace

std::string mixer_registry_json() {
  nlohmann::json out;
  for (const auto& o : common_option_specs()) out["common_options"].push_back(option_json(o));
  for (const auto& m : mixer_registry()) {
    nlohmann::json j = {{"name", m.name},
                        {"description", m.description},
                        {"supports_causal", m.supports_causal},
                        {"memory_exponent", m.memory_exponent},
                        {"options", nlohmann::json::array()}};
    for (const auto& o : m.options) j["options"].push_back(option_json(o));
    out["mixers"].push_back(j);
  }
  return out.dump(2);
}

std::string mixer_options_markdown() {
  std::ostringstream md;
  md << "### Common options\n\n";
  options_table(md, common_option_specs());
  for (const auto& m : mixer_registry()) {
    md << "\n### " << m.name << "\n\n"
       << m.description << (m.supports_causal ? "" : " (non-causal only)") << ".\n\n";
    options_table(md, m.options);
  }
  return md.str();
}

}  // namespace longseq
