// Checkpoints (longseq/checkpoint.h).
#include <longseq/atomic_file.h>
#include <longseq/checkpoint.h>
#include <longseq/config.h>
#include <longseq/safetensors.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <torch/optim/adamw.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
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

void remove_tree(const std::string& p) {
  if (DIR* d = ::opendir(p.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      const std::string child = p + "/" + name;
      if (is_dir(child))
        remove_tree(child);
      else
        ::unlink(child.c_str());
    }
    ::closedir(d);
  }
  ::rmdir(p.c_str());
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  TORCH_CHECK(f.good(), "checkpoint: cannot read '", path, "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
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
      if (name.rfind("step_", 0) == 0 && name.find('.') == std::string::npos) dirs.push_back(name);
    }
    ::closedir(d);
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

}  // namespace

std::string save_checkpoint(Trainer& trainer, const std::string& out_dir, int64_t keep_last) {
  TORCH_CHECK(keep_last >= 0, "checkpoint: `keep_last` must be >= 0, got ", keep_last);
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
    json st = {{"step", trainer.current_step()},
               {"skipped_steps", trainer.skipped_steps()},
               {"clipped_steps", trainer.clipped_steps()},
               {"rng_state", hex(at::detail::getDefaultCPUGenerator().get_state())},
               {"config", json::parse(train_config_to_json(trainer.config()))}};
    write_file_atomic(tmp_dir + "/state.json", st.dump(2));
    fsync_path(tmp_dir, true);
    if (is_dir(final_dir)) remove_tree(final_dir);  // re-saving the same step replaces it
    TORCH_CHECK(::rename(tmp_dir.c_str(), final_dir.c_str()) == 0, "checkpoint: cannot rename '",
                tmp_dir, "' to '", final_dir, "': ", std::strerror(errno));
    fsync_path(out_dir, true);
  } catch (...) {
    remove_tree(tmp_dir);
    throw;
  }
  write_file_atomic(out_dir + "/latest", std::string(name) + "\n");
  if (keep_last > 0) {
    auto dirs = step_dirs(out_dir);
    for (size_t i = 0; i + keep_last < dirs.size(); ++i) remove_tree(out_dir + "/" + dirs[i]);
  }
  return final_dir;
}

std::string resolve_checkpoint(const std::string& path) {
  TORCH_CHECK(is_dir(path), "checkpoint: '", path, "' is not a directory");
  if (std::ifstream(path + "/state.json").good()) return path;
  std::ifstream latest(path + "/latest");
  TORCH_CHECK(latest.good(), "checkpoint: '", path,
              "' holds neither a checkpoint (state.json) nor a `latest` pointer");
  std::string name;
  std::getline(latest, name);
  TORCH_CHECK(!name.empty() && name.find('/') == std::string::npos, "checkpoint: '", path,
              "/latest' is malformed");
  const std::string dir = path + "/" + name;
  TORCH_CHECK(is_dir(dir), "checkpoint: '", path, "/latest' names '", name, "', which is missing");
  return dir;
}

TrainConfig checkpoint_config(const std::string& path) {
  const std::string dir = resolve_checkpoint(path);
  json st;
  try {
    st = json::parse(read_text(dir + "/state.json"));
    return parse_train_config(st.at("config").dump(), {}, dir + "/state.json");
  } catch (const json::exception& e) {
    TORCH_CHECK(false, "checkpoint: '", dir, "/state.json' is corrupt: ", e.what());
  }
}

void load_checkpoint(Trainer& trainer, const std::string& path) {
  const std::string dir = resolve_checkpoint(path);
  json st;
  int64_t step = 0, skipped = 0, clipped = 0;
  at::Tensor rng;
  try {
    st = json::parse(read_text(dir + "/state.json"));
    step = st.at("step").get<int64_t>();
    skipped = st.at("skipped_steps").get<int64_t>();
    clipped = st.at("clipped_steps").get<int64_t>();
    rng = unhex(st.at("rng_state").get<std::string>(), dir + "/state.json");
  } catch (const json::exception& e) {
    TORCH_CHECK(false, "checkpoint: '", dir, "/state.json' is corrupt: ", e.what());
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
  TORCH_CHECK(step >= 0 && step <= trainer.config().steps, "checkpoint: step ", step,
              " is outside this run's 0..", trainer.config().steps, " steps");
  // Read and check everything before touching the trainer.
  auto opt = load_safetensors(dir + "/optimizer.safetensors");
  std::map<std::string, at::Tensor> opt_map(opt.begin(), opt.end());
  const auto params = trainer.model()->parameters();
  for (const auto& [name, t] : opt_map) {
    const auto dot = name.find('.', 6);
    TORCH_CHECK(name.rfind("param.", 0) == 0 && dot != std::string::npos,
                "checkpoint: unexpected optimizer entry '", name, "'");
    const size_t i = std::stoul(name.substr(6, dot - 6));
    TORCH_CHECK(i < params.size(), "checkpoint: optimizer entry '", name, "' names parameter ", i,
                " of ", params.size());
    const std::string field = name.substr(dot + 1);
    if (field != "step") {
      TORCH_CHECK(t.sizes() == params[i].sizes(), "checkpoint: optimizer entry '", name,
                  "' has shape ", t.sizes(), ", parameter ", i, " has ", params[i].sizes());
    }
  }
  load_module_safetensors(*trainer.model(), dir + "/model.safetensors");
  auto& state = trainer.optimizer().state();
  state.clear();
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string p = "param." + std::to_string(i) + ".";
    if (!opt_map.count(p + "exp_avg")) continue;
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
