#pragma once
/// The registry: the one list of sequence mixers, with their options, defaults and descriptions.
/// Tests, benchmarks and the CLI iterate it; adding a mixer is one entry in src/mixers/registry.cpp.

#include <longseq/mixer.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace longseq {

enum class OptionKind { kInt, kFloat, kBool, kString, kIntList };
const char* option_kind_name(OptionKind kind);

struct OptionSpec {
  std::string name;
  OptionKind kind;
  std::string default_value;  ///< as it would be written on the command line
  std::string help;
  std::vector<std::string> choices;  ///< for kString: the accepted values (empty = any)
};

/// Defaults of `specs` overridden by `given`. An unknown key or a malformed value throws naming
/// `owner` (a mixer or task), the key and the valid keys. Shared by mixers and tasks.
std::map<std::string, std::string> resolve_option_values(
    const std::string& owner, const std::vector<OptionSpec>& specs,
    const std::map<std::string, std::string>& given);

/// Mechanism options after validation against a mixer's OptionSpecs, defaults filled in.
class ResolvedOptions {
 public:
  ResolvedOptions(std::string mixer, std::map<std::string, std::string> values);
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  std::vector<int64_t> get_int_list(const std::string& key) const;

 private:
  const std::string& raw(const std::string& key) const;
  std::string mixer_;
  std::map<std::string, std::string> values_;
};

struct MixerSpec {
  std::string name;
  std::string description;  ///< one line
  std::vector<OptionSpec> options;  ///< mechanism options (common ones: common_option_specs())
  bool supports_causal = true;
  /// How peak memory grows with T (2 = quadratic, 1 = linear); used to predict and skip.
  int memory_exponent = 1;
  /// The same when the fused CPU kernel runs (0 = as memory_exponent).
  int fused_memory_exponent = 0;
  std::function<SequenceMixer(const MixerConfig&, const ResolvedOptions&)> make;
};

/// Every registered mixer, in a stable order.
const std::vector<MixerSpec>& mixer_registry();
std::vector<std::string> mixer_names();
/// Throws naming the valid mixers when `name` is unknown.
const MixerSpec& find_mixer(const std::string& name);
/// Options every mixer takes (dim, heads, head_dim, causal, dropout, max_len, seed, bias).
const std::vector<OptionSpec>& common_option_specs();

/// Builds a mixer. `options` may hold common keys (overriding `config`) and mechanism keys; an
/// unknown key or a malformed value throws naming the mixer, the key and the valid keys.
SequenceMixer make_mixer(const std::string& name, const MixerConfig& config,
                         const std::map<std::string, std::string>& options = {});

/// Validates `options` against `name`'s specs without building (for the CLI's early errors).
ResolvedOptions resolve_options(const std::string& name, MixerConfig& config,
                                const std::map<std::string, std::string>& options);

}  // namespace longseq
