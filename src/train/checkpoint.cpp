// Checkpoints (longseq/checkpoint.h).
#include <longseq/atomic_file.h>
#include <longseq/checkpoint.h>
#include <longseq/config.h>
#include <longseq/safetensors.h>

#include "util/json_read.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <torch/optim/adamw.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <type_traits>

namespace longseq {
namespace {

using json = nlohmann::json;

bool is_dir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void fsync_path(const std::string& p, bool dir) {
  const int fd = ::open(p.c_str(), dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  TORCH_CHECK(fd >= 0, "checkpoint: cannot open '", p, "' to sync: ", std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  TORCH_CHECK(rc == 0, "checkpoint: fsync of '", p, "' failed: ", std::strerror(errno));
}

// Removes `p` and what it contains, deciding with lstat: a symbolic link is removed as a link,
// never followed, so a link inside a pruned checkpoint cannot delete its target's files.
void remove_tree(const std::string& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return;
  if (!S_ISDIR(st.st_mode)) {
    ::unlink(p.c_str());
    return;
  }
  if (DIR* d = ::opendir(p.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      remove_tree(p + "/" + name);
    }
    ::closedir(d);
  }
  ::rmdir(p.c_str());
}

// state.json is a few KB (the RNG state is the bulk); `latest` one line.
constexpr int64_t kMaxStateBytes = int64_t{64} << 20;

std::string read_text(const std::string& path, int64_t max_bytes = kMaxStateBytes) {
  return read_regular_file(path, "checkpoint", max_bytes);
}

// The step number of a checkpoint directory name "step_<digits>", or -1.
int64_t step_of(const std::string& name) {
  if (name.rfind("step_", 0) != 0 || name.size() == 5 || name.size() > 5 + 18) return -1;
  int64_t v = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
    v = v * 10 + (name[i] - '0');
  }
  return v;
}

std::string hex(const at::Tensor& bytes) {
  static const char* digits = "0123456789abcdef";
  auto b = bytes.contiguous();
  const auto* p = b.data_ptr<uint8_t>();
  std::string out;
  for (int64_t i = 0; i < b.numel(); ++i) out += {digits[p[i] >> 4], digits[p[i] & 15]};
  return out;
}

at::Tensor unhex(const std::string& s, const std::string& where) {
  TORCH_CHECK(s.size() % 2 == 0, "checkpoint: malformed RNG state in ", where);
  auto t = at::empty({static_cast<int64_t>(s.size() / 2)}, at::TensorOptions().dtype(at::kByte));
  auto* p = t.data_ptr<uint8_t>();
  auto val = [&](char c) {
    TORCH_CHECK(std::isxdigit(static_cast<unsigned char>(c)), "checkpoint: malformed RNG state in ",
                where);
    return std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : std::tolower(c) - 'a' + 10;
  };
  for (size_t i = 0; i < s.size() / 2; ++i)
    p[i] = static_cast<uint8_t>(val(s[2 * i]) * 16 + val(s[2 * i + 1]));
  return t;
}

// Key of a parameter in the optimizer's state map: LibTorch 1.13 keys by the TensorImpl address
// printed to a string, later versions by the address itself.
template <typename Map>
typename Map::key_type state_key(const Map&, const at::Tensor& p) {
  using Key = typename Map::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream os;
    os << p.unsafeGetTensorImpl();
    return os.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

std::vector<std::string> step_dirs(const std::string& out_dir) {
  std::vector<std::string> dirs;
  if (DIR* d = ::opendir(out_dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (step_of(name) >= 0) dirs.push_back(name);
    }
    ::closedir(d);
  }
  // By step number: names sort wrongly once steps outgrow the zero padding (10^8).
  std::sort(dirs.begin(), dirs.end(),
            [](const std::string& a, const std::string& b) { return step_of(a) < step_of(b); });
  return dirs;
}

}  // namespace

int64_t clean_stale_checkpoint_temps(const std::string& out_dir) {
  int64_t removed = 0;
  DIR* d = ::opendir(out_dir.c_str());
  if (d == nullptr) return 0;
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    const auto at = name.find(".tmp.");
    if (at == std::string::npos || step_of(name.substr(0, at)) < 0) continue;
    const std::string pid_text = name.substr(at + 5);
    if (pid_text.empty() || pid_text.size() > 9 ||
        !std::all_of(pid_text.begin(), pid_text.end(), ::isdigit)) {
      continue;
    }
    const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
    // A save in progress in a live process (another rank, another run) is left alone.
    const bool alive = pid != ::getpid() && (::kill(pid, 0) == 0 || errno == EPERM);
    if (!alive) stale.push_back(name);
  }
  ::closedir(d);
  for (const auto& name : stale) {
    remove_tree(out_dir + "/" + name);
    ++removed;
  }
  // A kill while `latest` was being replaced leaves write_file_atomic's latest.tmp.<pid>.
  removed += remove_stale_temp_files(out_dir + "/latest");
  return removed;
}

void check_checkpoint_dir(const std::string& out_dir, int64_t keep_last) {
  TORCH_CHECK(keep_last >= 0, "checkpoint: `keep` must be >= 0, got ", keep_last);
  TORCH_CHECK(!out_dir.empty(), "checkpoint: the checkpoint directory is empty");
  struct stat st {};
  if (::stat(out_dir.c_str(), &st) == 0) {
    TORCH_CHECK(S_ISDIR(st.st_mode), "checkpoint: '", out_dir, "' exists and is not a directory");
    TORCH_CHECK(::access(out_dir.c_str(), W_OK | X_OK) == 0, "checkpoint: cannot write into '",
                out_dir, "': ", std::strerror(errno));
    TORCH_CHECK(::access((out_dir + "/state.json").c_str(), F_OK) != 0, "checkpoint: '", out_dir,
                "' is a checkpoint (it holds state.json), not a run's directory; give its parent");
    return;
  }
  const auto slash = out_dir.find_last_of('/');
  const std::string parent = slash == std::string::npos ? "." : out_dir.substr(0, slash + 1);
  TORCH_CHECK(::access(parent.c_str(), W_OK | X_OK) == 0, "checkpoint: cannot create '", out_dir,
              "': its parent '", parent, "' is not a writable directory");
}

std::string save_checkpoint(Trainer& trainer, const std::string& out_dir, int64_t keep_last) {
  check_checkpoint_dir(out_dir, keep_last);
  if (!is_dir(out_dir)) {
    TORCH_CHECK(::mkdir(out_dir.c_str(), 0755) == 0 || errno == EEXIST,
                "checkpoint: cannot create '", out_dir, "': ", std::strerror(errno));
  }
  char name[32];
  std::snprintf(name, sizeof(name), "step_%08lld", static_cast<long long>(trainer.current_step()));
  const std::string final_dir = out_dir + "/" + name;
  const std::string tmp_dir = final_dir + ".tmp." + std::to_string(::getpid());
  remove_tree(tmp_dir);
  TORCH_CHECK(::mkdir(tmp_dir.c_str(), 0755) == 0, "checkpoint: cannot create '", tmp_dir,
              "': ", std::strerror(errno));
  try {
    const std::map<std::string, std::string> meta = {
        {"step", std::to_string(trainer.current_step())}};
    save_module_safetensors(*trainer.model(), tmp_dir + "/model.safetensors", meta);
    // AdamW state by parameter index (the order of model->parameters(), fixed by the config).
    NamedTensors opt;
    const auto params = trainer.model()->parameters();
    auto& state = trainer.optimizer().state();
    for (size_t i = 0; i < params.size(); ++i) {
      auto it = state.find(state_key(state, params[i]));
      if (it == state.end()) continue;
      const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
      const std::string p = "param." + std::to_string(i) + ".";
      opt.emplace_back(p + "step", at::scalar_tensor(static_cast<int64_t>(s.step()), at::kLong));
      opt.emplace_back(p + "exp_avg", s.exp_avg());
      opt.emplace_back(p + "exp_avg_sq", s.exp_avg_sq());
      if (s.max_exp_avg_sq().defined()) opt.emplace_back(p + "max_exp_avg_sq", s.max_exp_avg_sq());
    }
    save_safetensors(tmp_dir + "/optimizer.safetensors", opt, meta);
    const json st = {{"step", trainer.current_step()},
                     {"skipped_steps", trainer.skipped_steps()},
                     {"clipped_steps", trainer.clipped_steps()},
                     {"rng_state", hex(at::detail::getDefaultCPUGenerator().get_state())},
                     {"config", json::parse(train_config_to_json(trainer.config()))}};
    write_file_atomic(tmp_dir + "/state.json", st.dump(2));
    fsync_path(tmp_dir, true);
    if (is_dir(final_dir)) {
      // Re-saving a step (a resume that saves at the step it started from): swap the new
      // directory into place atomically, so `latest` never names a missing directory, then
      // remove the old one from the temporary name.
      TORCH_CHECK(
          ::renameat2(AT_FDCWD, tmp_dir.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) == 0,
          "checkpoint: cannot replace '", final_dir, "': ", std::strerror(errno));
      remove_tree(tmp_dir);
    } else {
      TORCH_CHECK(::rename(tmp_dir.c_str(), final_dir.c_str()) == 0, "checkpoint: cannot rename '",
                  tmp_dir, "' to '", final_dir, "': ", std::strerror(errno));
    }
    fsync_path(out_dir, true);
  } catch (...) {
    remove_tree(tmp_dir);
    throw;
  }
  write_file_atomic(out_dir + "/latest", std::string(name) + "\n");
  if (keep_last > 0) {
    // The oldest by step go; never the one just saved (a resume from an older step can leave
    // newer-numbered directories of an earlier run behind).
    auto dirs = step_dirs(out_dir);
    dirs.erase(std::remove(dirs.begin(), dirs.end(), std::string(name)), dirs.end());
    for (size_t i = 0; i + (keep_last - 1) < dirs.size(); ++i) {
      remove_tree(out_dir + "/" + dirs[i]);
    }
  }
  return final_dir;
}

std::string resolve_checkpoint(const std::string& path) {
  TORCH_CHECK(is_dir(path), "checkpoint: '", path, "' is not a directory");
  if (::access((path + "/state.json").c_str(), F_OK) == 0) return path;
  TORCH_CHECK(::access((path + "/latest").c_str(), F_OK) == 0, "checkpoint: '", path,
              "' holds neither a checkpoint (state.json) nor a `latest` pointer");
  std::string name = read_text(path + "/latest", 4096);
  while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
  TORCH_CHECK(step_of(name) >= 0, "checkpoint: '", path, "/latest' is malformed (expected a name ",
              "step_<number>, got '", name.substr(0, 64), "')");
  const std::string dir = path + "/" + name;
  TORCH_CHECK(is_dir(dir), "checkpoint: '", path, "/latest' names '", name, "', which is missing");
  return dir;
}

namespace {

// The parsed state.json of checkpoint directory `dir` (depth-limited, duplicate keys refused).
json read_state(const std::string& dir) {
  const std::string file = dir + "/state.json";
  json st = parse_json_strict(read_text(file), "checkpoint: '" + file + "': ");
  TORCH_CHECK(st.is_object(), "checkpoint: '", file, "' must hold a JSON object, got ",
              st.type_name());
  return st;
}

// A non-negative integer field of state.json.
int64_t state_count(const json& st, const char* key, const std::string& file) {
  TORCH_CHECK(st.contains(key), "checkpoint: '", file, "' has no `", key, "`");
  const json& v = st.at(key);
  TORCH_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0, "checkpoint: '", file, "': `", key,
              "` must be an integer >= 0, got ", v.is_primitive() ? v.dump() : v.type_name());
  return v.get<int64_t>();
}

// Throws naming `file` and `name` unless every element of a floating tensor is finite.
void check_finite(const at::Tensor& t, const std::string& file, const std::string& name) {
  if (!at::isFloatingType(t.scalar_type()) || t.numel() == 0) return;
  const auto bad = t.isfinite().logical_not().sum().item<int64_t>();
  TORCH_CHECK(bad == 0, "checkpoint: '", file, "': tensor `", name, "` holds ", bad,
              " non-finite values (NaN or Inf)");
}

}  // namespace

TrainConfig checkpoint_config(const std::string& path) {
  const std::string dir = resolve_checkpoint(path);
  const json st = read_state(dir);
  TORCH_CHECK(st.contains("config") && st.at("config").is_object(), "checkpoint: '", dir,
              "/state.json' has no `config` object");
  return parse_train_config(st.at("config").dump(), {}, dir + "/state.json");
}

void load_checkpoint(Trainer& trainer, const std::string& path) {
  const std::string dir = resolve_checkpoint(path);
  const std::string state_file = dir + "/state.json";
  const json st = read_state(dir);
  const int64_t step = state_count(st, "step", state_file);
  const int64_t skipped = state_count(st, "skipped_steps", state_file);
  const int64_t clipped = state_count(st, "clipped_steps", state_file);
  TORCH_CHECK(st.contains("rng_state") && st.at("rng_state").is_string(), "checkpoint: '",
              state_file, "' has no `rng_state` text");
  const at::Tensor rng = unhex(st.at("rng_state").get<std::string>(), state_file);
  {
    // Validated on a scratch generator: set_state checks its size and content.
    auto scratch = at::make_generator<at::CPUGeneratorImpl>();
    try {
      scratch.set_state(rng);
    } catch (const c10::Error& e) {
      TORCH_CHECK(false, "checkpoint: '", state_file, "': `rng_state` is not a CPU generator ",
                  "state (", rng.numel(), " bytes): ", e.what_without_backtrace());
    }
  }
  // The model must be the one this trainer builds: compare the resolved configs' model sections.
  const auto saved = json::parse(train_config_to_json(checkpoint_config(dir)));
  const auto mine = json::parse(train_config_to_json(trainer.config()));
  for (const char* section : {"model", "task"}) {
    TORCH_CHECK(saved.at(section) == mine.at(section), "checkpoint: '", dir,
                "' was trained with a different `", section,
                "` config:\n  checkpoint: ", saved.at(section).dump(),
                "\n  this run:   ", mine.at(section).dump());
  }
  TORCH_CHECK(step <= trainer.config().steps, "checkpoint: step ", step,
              " is outside this run's 0..", trainer.config().steps, " steps");
  // Read and check everything before touching the trainer: weights (names, shapes and dtypes
  // are checked by load_module_tensors before it copies; finiteness here), then the
  // optimizer state, complete per parameter.
  const std::string model_file = dir + "/model.safetensors";
  const NamedTensors weights = load_safetensors(model_file);
  for (const auto& [name, t] : weights) check_finite(t, model_file, name);
  const std::string opt_file = dir + "/optimizer.safetensors";
  auto opt = load_safetensors(opt_file);
  std::map<std::string, at::Tensor> opt_map(opt.begin(), opt.end());
  const auto params = trainer.model()->parameters();
  std::vector<bool> has_state(params.size(), false);
  for (const auto& [name, t] : opt_map) {
    const auto dot = name.find('.', 6);
    const std::string index = dot == std::string::npos ? "" : name.substr(6, dot - 6);
    TORCH_CHECK(name.rfind("param.", 0) == 0 && !index.empty() && index.size() < 10 &&
                    std::all_of(index.begin(), index.end(), ::isdigit),
                "checkpoint: '", opt_file, "': unexpected entry `", name, "`");
    const size_t i = static_cast<size_t>(std::stoll(index));
    TORCH_CHECK(i < params.size(), "checkpoint: '", opt_file, "': entry `", name,
                "` names parameter ", i, " of ", params.size());
    const std::string field = name.substr(dot + 1);
    if (field == "step") {
      TORCH_CHECK(t.numel() == 1 && !at::isFloatingType(t.scalar_type()) &&
                      t.item<int64_t>() >= 0 && t.item<int64_t>() <= std::max<int64_t>(step, 0),
                  "checkpoint: '", opt_file, "': `", name, "` must be an integer step in [0, ",
                  step, "]");
      continue;
    }
    TORCH_CHECK(field == "exp_avg" || field == "exp_avg_sq" || field == "max_exp_avg_sq",
                "checkpoint: '", opt_file, "': unexpected entry `", name, "`");
    TORCH_CHECK(t.sizes() == params[i].sizes(), "checkpoint: '", opt_file, "': entry `", name,
                "` has shape ", t.sizes(), ", parameter ", i, " has ", params[i].sizes());
    check_finite(t, opt_file, name);
    if (field != "exp_avg") {
      TORCH_CHECK(t.numel() == 0 || t.min().item<double>() >= 0, "checkpoint: '", opt_file, "': `",
                  name, "` holds negative second moments");
    }
    has_state[i] = true;
  }
  for (size_t i = 0; i < params.size(); ++i) {
    if (!has_state[i]) continue;
    const std::string p = "param." + std::to_string(i) + ".";
    for (const char* field : {"step", "exp_avg", "exp_avg_sq"}) {
      TORCH_CHECK(opt_map.count(p + field), "checkpoint: '", opt_file, "': parameter ", i,
                  " has optimizer state but no `", p, field, "`");
    }
  }
  // Commit: weights (all-or-nothing inside), then optimizer state, counters and RNG, none of
  // which can fail now.
  load_module_tensors(*trainer.model(), weights, model_file);
  auto& state = trainer.optimizer().state();
  state.clear();
  for (size_t i = 0; i < params.size(); ++i) {
    if (!has_state[i]) continue;
    const std::string p = "param." + std::to_string(i) + ".";
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(opt_map.at(p + "step").item<int64_t>());
    s->exp_avg(opt_map.at(p + "exp_avg").to(params[i].options()));
    s->exp_avg_sq(opt_map.at(p + "exp_avg_sq").to(params[i].options()));
    if (opt_map.count(p + "max_exp_avg_sq")) {
      s->max_exp_avg_sq(opt_map.at(p + "max_exp_avg_sq").to(params[i].options()));
    }
    state[state_key(state, params[i])] = std::move(s);
  }
  trainer.restore_counters(step, skipped, clipped);
  auto gen = at::detail::getDefaultCPUGenerator();
  gen.set_state(rng);
}

}  // namespace longseq
