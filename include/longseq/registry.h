#pragma once
/// The registry: the one list of sequence mixers. Each mixer's .cpp declares its entry (name,
/// description, options bound to its Options struct, factory); src/mixers/registry.cpp lists
/// them, one line each. Tests, benchmarks, the CLI and docs/mixers.md iterate it.

#include <longseq/mixer.h>
#include <longseq/options.h>
#include <longseq/roofline.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace longseq {

struct MixerSpec {
  std::string name;
  std::string description;          ///< one line
  std::vector<OptionSpec> options;  ///< mechanism options (common ones: common_option_specs())
  bool supports_causal = true;
  /// How peak memory grows with T (2 = quadratic, 1 = linear); used to predict and skip.
  int memory_exponent = 1;
  /// The same when the fused CPU kernel runs (0 = as memory_exponent).
  int fused_memory_exponent = 0;
  /// Builds the mixer from the common options and checked mechanism options (name -> value).
  std::function<SequenceMixer(const MixerConfig&, const std::map<std::string, std::string>&)> make;
  /// Counted work (longseq/roofline.h) of one forward, or with `backward` one backward, on
  /// [batch, t, dim]: the projections' GEMMs and the core op's work (longseq/op_work.h). Options
  /// as `make` takes them.
  std::function<Work(const MixerConfig&, const std::map<std::string, std::string>&,
                     int64_t batch, int64_t t, bool backward)>
      work;

  /// Mechanism options small enough for tests on tiny shapes (OptionSpec::test_values): the
  /// first test value of each option, or the last with `tiniest` (gradient checks).
  std::map<std::string, std::string> test_options(bool tiniest = false) const;
};

/// What the registry needs to know beyond the options.
struct MixerTraits {
  bool supports_causal = true;
  int memory_exponent = 1;
  int fused_memory_exponent = 0;
};

/// A registry entry for `Module` (a TORCH_MODULE holder) built from `Options` = O: the defaults
/// of `options`, the common options in O::common, then the given mechanism options.
/// A mixer's roofline function: its counted work from its resolved options (common() included),
/// the batch, the length and the pass.
/// (A member type, so that `O` is deduced from the options alone.)
template <class O>
struct MixerWork {
  using type = std::function<Work(const O&, int64_t batch, int64_t t, bool backward)>;
};

template <class Module, class O>
MixerSpec mixer_spec(std::string name, std::string description, const OptionSet<O>& options,
                     MixerTraits traits, typename MixerWork<O>::type work) {
  MixerSpec s;
  s.name = name;
  s.description = std::move(description);
  s.options = options.specs();
  s.supports_causal = traits.supports_causal;
  s.memory_exponent = traits.memory_exponent;
  s.fused_memory_exponent = traits.fused_memory_exponent;
  s.make = [options, name](const MixerConfig& common,
                           const std::map<std::string, std::string>& values) -> SequenceMixer {
    O o = options.defaults();
    o.common(common);
    options.apply(o, values, name);
    return Module(o).ptr();
  };
  s.work = [options, name, work](const MixerConfig& common,
                                 const std::map<std::string, std::string>& values, int64_t batch,
                                 int64_t t, bool backward) -> Work {
    O o = options.defaults();
    o.common(common);
    options.apply(o, values, name);
    return work(o, batch, t, backward);
  };
  return s;
}

/// The Q/K/V/output projections of a multi-head attention mixer (AttentionMixerImpl) on
/// [batch, t, C]: four GEMMs to and from H·D (three with a shared QK); backward twice the forward
/// (the input's and the weight's gradients).
Work attention_projection_work(const MixerConfig& c, int64_t batch, int64_t t, bool shared_qk,
                               bool backward);

/// A Linear layer [rows, in] -> [rows, out] (weights read once): forward one GEMM, backward two.
Work linear_layer_work(double rows, double in, double out, bool backward);

/// Counted work of `name` on [batch, t, dim] for `mode` "fwd" or "fwd+bwd" (forward plus
/// backward), with `options` as make_mixer takes them.
Work mixer_work(const std::string& name, const MixerConfig& config,
                const std::map<std::string, std::string>& options, int64_t batch, int64_t t,
                const std::string& mode);

/// Every registered mixer, in a stable order.
const std::vector<MixerSpec>& mixer_registry();
std::vector<std::string> mixer_names();
/// Throws naming the valid mixers when `name` is unknown.
const MixerSpec& find_mixer(const std::string& name);
/// Options every mixer takes: the members of MixerConfig (dim, heads, head_dim, causal,
/// attn_dropout, max_len, seed, bias, rotary).
const OptionSet<MixerConfig>& common_options();
std::vector<OptionSpec> common_option_specs();

/// Builds a mixer. `options` may hold common keys (overriding `config`) and mechanism keys; an
/// unknown key or a malformed value throws naming the mixer, the key and the valid keys.
SequenceMixer make_mixer(const std::string& name, const MixerConfig& config,
                         const std::map<std::string, std::string>& options = {});

/// Validates `options` against `name`'s specs without building (for the CLI's early errors):
/// applies the common keys given to `config`, returns the mechanism options with defaults.
ResolvedOptions resolve_options(const std::string& name, MixerConfig& config,
                                const std::map<std::string, std::string>& options);

/// The registry as JSON (`longseq list --json`, and what the Python package builds its modules
/// from): {"common_options": [...], "mixers": [{"name", "description", "supports_causal",
/// "memory_exponent", "options": [{"name", "type", "default", "help", "choices"?, "range"?,
/// "rule"?}]}]}.
std::string mixer_registry_json();

/// The option tables of docs/mixers.md (`longseq list --markdown`): common options, then one
/// table per mixer.
std::string mixer_options_markdown();

}  // namespace longseq
