// The registry: the one table of sequence mixers. Adding a mixer = its header, its .cpp, one entry
// here and its test file (docs/adding_a_mixer.md). Tests, `longseq list` and `longseq bench` iterate
// this table.
#include <longseq/mixers/exact.h>
#include <longseq/mixers/linformer.h>
#include <longseq/mixers/lmu.h>
#include <longseq/mixers/memory.h>
#include <longseq/mixers/longformer.h>
#include <longseq/mixers/performer.h>
#include <longseq/mixers/recurrent.h>
#include <longseq/mixers/reformer.h>
#include <longseq/mixers/scan_mixers.h>
#include <longseq/machine.h>
#include <longseq/registry.h>

#include <c10/util/Exception.h>

namespace longseq {

namespace {

std::vector<OptionSpec> recurrent_option_specs() {
  return {{"hidden", OptionKind::kInt, "0", "H, state width per direction; 0 = dim", {}},
          {"bidirectional", OptionKind::kBool, "false", "add a reverse pass (non-causal only)", {}},
          {"init", OptionKind::kString, "default", "recurrent weights",
           {"default", "orthogonal", "identity"}},
          {"readout", OptionKind::kString, "none", "attention over the layer's earlier states",
           {"none", "attention"}}};
}

std::function<SequenceMixer(const MixerConfig&, const ResolvedOptions&)> make_recurrent(
    RnnCell cell) {
  return [cell](const MixerConfig& c, const ResolvedOptions& o) -> SequenceMixer {
    return Recurrent(RecurrentOptions(c, cell)
                         .hidden(o.get_int("hidden"))
                         .bidirectional(o.get_bool("bidirectional"))
                         .init(o.get_string("init"))
                         .readout(o.get_string("readout")))
        .ptr();
  };
}

std::function<SequenceMixer(const MixerConfig&, const ResolvedOptions&)> make_min_rnn(bool lstm) {
  return [lstm](const MixerConfig& c, const ResolvedOptions& o) -> SequenceMixer {
    return MinRnn(MinRnnOptions(c, lstm).hidden(o.get_int("hidden"))).ptr();
  };
}

}  // namespace

const std::vector<MixerSpec>& mixer_registry() {
  static const std::vector<MixerSpec> table = {
      {"exact",
       "softmax(QK^T/sqrt(D) + mask) V; O(T^2) time and memory, the reference",
       {},
       /*supports_causal=*/true,
       /*memory_exponent=*/2,
       /*fused_memory_exponent=*/1,
       [](const MixerConfig& c, const ResolvedOptions&) -> SequenceMixer {
         return ExactAttention(ExactAttentionOptions(c)).ptr();
       }},
      {"linformer",
       "keys/values projected along the sequence to R rows by learned E, F; O(T*R); no causal",
       {{"proj_len", OptionKind::kInt, "256", "R, projected length of keys and values", {}},
        {"share_kv", OptionKind::kBool, "false", "use one projection for keys and values (F = E)",
         {}}},
       /*supports_causal=*/false,
       /*memory_exponent=*/1,
       /*fused_memory_exponent=*/0,
       [](const MixerConfig& c, const ResolvedOptions& o) -> SequenceMixer {
         return Linformer(LinformerOptions(c)
                              .proj_len(o.get_int("proj_len"))
                              .share_kv(o.get_bool("share_kv")))
             .ptr();
       }},
      {"longformer",
       "sliding window (+-W/2, or W previous when causal) with per-head dilation and global "
       "tokens; O(T*W)",
       {{"window", OptionKind::kInt, "256", "W: +-W/2 neighbours, or the W previous when causal",
         {}},
        {"dilation", OptionKind::kIntList, "1", "dilation per head (one value for all heads)", {}},
        {"global_tokens", OptionKind::kInt, "0", "the first k positions attend to and from all", {}},
        {"global_positions", OptionKind::kIntList, "", "explicit global positions (instead of k)",
         {}},
        {"global_proj", OptionKind::kBool, "false", "separate Q/K/V projections for global rows",
         {}},
        {"block", OptionKind::kInt, "0", "queries per block of the banded pass; 0 = auto", {}}},
       /*supports_causal=*/true,
       /*memory_exponent=*/1,
       /*fused_memory_exponent=*/0,
       [](const MixerConfig& c, const ResolvedOptions& o) -> SequenceMixer {
         return Longformer(LongformerOptions(c)
                               .window(o.get_int("window"))
                               .dilation(o.get_int_list("dilation"))
                               .global_tokens(o.get_int("global_tokens"))
                               .global_positions(o.get_int_list("global_positions"))
                               .global_proj(o.get_bool("global_proj"))
                               .block(o.get_int("block")))
             .ptr();
       }},
      {"performer",
       "FAVOR+ positive orthogonal random features for softmax; O(T*R*D); causal by prefix sums",
       {{"features", OptionKind::kInt, "256", "R, number of random features", {}},
        {"kernel", OptionKind::kString, "softmax", "feature map", {"softmax", "relu"}},
        {"redraw", OptionKind::kInt, "0", "redraw features every k training calls; 0 = never", {}},
        {"chunk", OptionKind::kInt, "32", "causal prefix-sum chunk length", {}}},
       /*supports_causal=*/true,
       /*memory_exponent=*/1,
       /*fused_memory_exponent=*/0,
       [](const MixerConfig& c, const ResolvedOptions& o) -> SequenceMixer {
         return Performer(PerformerOptions(c)
                              .features(o.get_int("features"))
                              .kernel(o.get_string("kernel"))
                              .redraw(o.get_int("redraw"))
                              .chunk(o.get_int("chunk")))
             .ptr();
       }},
      {"reformer",
       "LSH attention: shared QK hashed into buckets, sorted, attend within chunk + previous; "
       "O(T*chunk)",
       {{"buckets", OptionKind::kInt, "32", "NB hash buckets (1, or even)", {}},
        {"n_hashes", OptionKind::kInt, "2", "hashing rounds", {}},
        {"chunk", OptionKind::kInt, "64", "chunk length of the sorted sequence", {}},
        {"redraw", OptionKind::kInt, "1", "new rotations every k training calls; 0 = never", {}}},
       /*supports_causal=*/true,
       /*memory_exponent=*/1,
       /*fused_memory_exponent=*/0,
       [](const MixerConfig& c, const ResolvedOptions& o) -> SequenceMixer {
         return Reformer(ReformerOptions(c)
                             .buckets(o.get_int("buckets"))
                             .n_hashes(o.get_int("n_hashes"))
                             .chunk(o.get_int("chunk"))
                             .redraw(o.get_int("redraw")))
             .ptr();
       }},
      {"elman", "tanh RNN: h' = tanh(W x + U h + b); fused cell, O(T) sequential steps",
       recurrent_option_specs(), /*supports_causal=*/true, /*memory_exponent=*/1,
       /*fused_memory_exponent=*/0, make_recurrent(RnnCell::kElman)},
      {"lstm", "LSTM (i, f, g, o gates, cell state); fused cell, O(T) sequential steps",
       recurrent_option_specs(), /*supports_causal=*/true, /*memory_exponent=*/1,
       /*fused_memory_exponent=*/0, make_recurrent(RnnCell::kLstm)},
      {"gru", "GRU (r, z, n gates); fused cell, O(T) sequential steps",
       recurrent_option_specs(), /*supports_causal=*/true, /*memory_exponent=*/1,
       /*fused_memory_exponent=*/0, make_recurrent(RnnCell::kGru)},
      {"mingru", "minGRU: h = (1 - z) h + z g(W x), gates from x only; parallel scan, O(T)",
       {{"hidden", OptionKind::kInt, "0", "H, state width; 0 = dim", {}}},
       /*supports_causal=*/true, /*memory_exponent=*/1, /*fused_memory_exponent=*/0,
       make_min_rnn(false)},
      {"minlstm", "minLSTM: h = f' h + i' g(W x) with normalised f', i'; parallel scan, O(T)",
       {{"hidden", OptionKind::kInt, "0", "H, state width; 0 = dim", {}}},
       /*supports_causal=*/true, /*memory_exponent=*/1, /*fused_memory_exponent=*/0,
       make_min_rnn(true)},
      {"s6",
       "selective SSM (Mamba S6): input-dependent step and B, C, diagonal A, causal conv; "
       "parallel scan, O(T*E*N)",
       {{"state", OptionKind::kInt, "16", "N, state size per channel", {}},
        {"expand", OptionKind::kInt, "2", "inner channels E = expand * dim", {}},
        {"conv", OptionKind::kInt, "4", "causal depthwise convolution width", {}},
        {"dt_rank", OptionKind::kInt, "0", "rank of the step-size projection; 0 = ceil(dim/16)",
         {}}},
       /*supports_causal=*/true, /*memory_exponent=*/1, /*fused_memory_exponent=*/0,
       [](const MixerConfig& c, const ResolvedOptions& o) -> SequenceMixer {
         return SelectiveSsm(SelectiveSsmOptions(c)
                                 .state(o.get_int("state"))
                                 .expand(o.get_int("expand"))
                                 .conv(o.get_int("conv"))
                                 .dt_rank(o.get_int("dt_rank")))
             .ptr();
       }},
      {"lmu",
       "Legendre Memory Unit: the input history over a window held as Legendre coefficients by a "
       "fixed LTI system; FFT convolution, O(T log T)",
       {{"order", OptionKind::kInt, "32", "d, Legendre coefficients per memory channel", {}},
        {"window", OptionKind::kFloat, "256", "theta, history length in steps", {}},
        {"channels", OptionKind::kInt, "8", "U, memorised input signals", {}}},
       /*supports_causal=*/true, /*memory_exponent=*/1, /*fused_memory_exponent=*/0,
       [](const MixerConfig& c, const ResolvedOptions& o) -> SequenceMixer {
         return Lmu(LmuOptions(c)
                        .order(o.get_int("order"))
                        .window(o.get_float("window"))
                        .channels(o.get_int("channels")))
             .ptr();
       }},
      {"memory",
       "recurrent controller with an external memory that allocates slots for new content (up to "
       "max_slots), read by content attention; O(T*slots)",
       {{"slots", OptionKind::kInt, "4", "initial capacity", {}},
        {"max_slots", OptionKind::kInt, "64", "largest capacity", {}},
        {"key_dim", OptionKind::kInt, "32", "width of keys and values", {}},
        {"threshold", OptionKind::kFloat, "0.5", "allocate when max cosine to the slots is below", {}}},
       /*supports_causal=*/true, /*memory_exponent=*/1, /*fused_memory_exponent=*/0,
       [](const MixerConfig& c, const ResolvedOptions& o) -> SequenceMixer {
         return Memory(MemoryOptions(c)
                           .slots(o.get_int("slots"))
                           .max_slots(o.get_int("max_slots"))
                           .key_dim(o.get_int("key_dim"))
                           .threshold(o.get_float("threshold")))
             .ptr();
       }},
  };
  return table;
}

const std::vector<OptionSpec>& common_option_specs() {
  static const std::vector<OptionSpec> specs = {
      {"dim", OptionKind::kInt, "512", "C, model width", {}},
      {"heads", OptionKind::kInt, "8", "H, attention heads", {}},
      {"head_dim", OptionKind::kInt, "0", "D; 0 = dim / heads", {}},
      {"causal", OptionKind::kBool, "false", "query t sees only keys <= t", {}},
      {"dropout", OptionKind::kFloat, "0", "attention dropout while training", {}},
      {"max_len", OptionKind::kInt, "4096", "longest accepted sequence", {}},
      {"seed", OptionKind::kInt, "0", "seed of the mixer's own random draws", {}},
      {"bias", OptionKind::kBool, "false", "bias in the projections", {}},
      {"rotary", OptionKind::kBool, "false", "rotary position embedding on q and k", {}},
  };
  return specs;
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

namespace {

void apply_common(MixerConfig& c, const std::string& key, const ResolvedOptions& o) {
  if (key == "dim") c.dim = o.get_int(key);
  else if (key == "heads") c.heads = o.get_int(key);
  else if (key == "head_dim") c.head_dim = o.get_int(key);
  else if (key == "causal") c.causal = o.get_bool(key);
  else if (key == "dropout") c.dropout = o.get_float(key);
  else if (key == "max_len") c.max_len = o.get_int(key);
  else if (key == "seed") c.seed = static_cast<uint64_t>(o.get_int(key));
  else if (key == "bias") c.bias = o.get_bool(key);
  else if (key == "rotary") c.rotary = o.get_bool(key);
}

}  // namespace

ResolvedOptions resolve_options(const std::string& name, MixerConfig& config,
                                const std::map<std::string, std::string>& options) {
  const MixerSpec& spec = find_mixer(name);
  // Mechanism options first, then the common ones: the order the error lists them in.
  std::vector<OptionSpec> all = spec.options;
  all.insert(all.end(), common_option_specs().begin(), common_option_specs().end());
  const auto values = resolve_option_values(name, all, options);
  // Only common options given explicitly override `config`; their defaults must not.
  const ResolvedOptions resolved(name, values);
  for (const auto& o : common_option_specs()) {
    if (options.count(o.name)) apply_common(config, o.name, resolved);
  }
  std::map<std::string, std::string> mech;
  for (const auto& o : spec.options) mech[o.name] = values.at(o.name);
  return ResolvedOptions(name, std::move(mech));
}

SequenceMixer make_mixer(const std::string& name, const MixerConfig& config,
                         const std::map<std::string, std::string>& options) {
  pin_thread_count();  // the first forward runs on the thread count of every later one
  warn_once_if_blas_below_cpu();
  MixerConfig c = config;
  ResolvedOptions resolved = resolve_options(name, c, options);
  return find_mixer(name).make(c, resolved);
}

}  // namespace longseq
