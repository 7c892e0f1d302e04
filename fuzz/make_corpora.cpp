// Writes the seed corpora in fuzz/corpus/<target>/ with the project's own writers:
//   fuzz_make_corpora <source dir> <corpus dir>
// safetensors: save_safetensors of a few small tensors (every supported dtype, empty and 0-d
// tensors, metadata); config: configs/*.json and a few `--set` lines (fuzz_config's layout);
// checkpoint: the three files of a tiny trainer's checkpoint, each behind its selector byte;
// idx: valid small IDX files, gzip-compressed and raw (fuzz_idx's layout); bytes: text snippets;
// listops: sequences of the task's own generator and a deeply nested expression (token mode), and
// small option sets (option mode).
#include "fuzz_util.h"
#include "idx_util.h"
#include "tiny_trainer.h"

#include <longseq/checkpoint.h>
#include <longseq/config.h>
#include <longseq/safetensors.h>
#include <longseq/tasks.h>
#include <longseq/train.h>

#include <ATen/ATen.h>

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

namespace {

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void mkdirs(const std::string& d) { std::filesystem::create_directories(d); }

void put(const std::string& dir, const std::string& name, const std::string& bytes) {
  longseq_fuzz::write_file(dir + "/" + name, bytes);
}

std::string with_selector(int sel, const std::string& body) {
  return std::string(1, static_cast<char>(sel)) + body;
}

void safetensors_seeds(const std::string& out) {
  using longseq::NamedTensors;
  const std::string tmp = longseq_fuzz::scratch_dir() + "/seed.safetensors";
  auto save = [&](const std::string& name, const NamedTensors& t,
                  const std::map<std::string, std::string>& meta) {
    longseq::save_safetensors(tmp, t, meta);
    put(out, name, read_all(tmp));
  };
  at::manual_seed(0);
  save("f32_i64.safetensors", {{"w", at::randn({2, 3})}, {"idx", at::arange(4, at::kLong)}},
       {{"format", "pt"}});
  NamedTensors all;
  for (auto t : {at::kBool, at::kByte, at::kChar, at::kShort, at::kHalf, at::kBFloat16, at::kInt,
                 at::kFloat, at::kDouble, at::kLong}) {
    all.emplace_back(std::string("t_") + c10::toString(t), at::ones({2}, at::kFloat).to(t));
  }
  save("all_dtypes.safetensors", all, {{"format", "pt"}, {"note", "every dtype"}});
  save("empty_scalar.safetensors",
       {{"empty", at::zeros({0, 4})},
        {"scalar", at::full({}, 3.5)},
        {"b", at::zeros({1, 1, 2}, at::kByte)}},
       {});
  save("none.safetensors", {}, {});
  save("meta_only.safetensors", {}, {{"format", "pt"}, {"step", "7"}});
}

void config_seeds(const std::string& src, const std::string& out) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir((src + "/configs").c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n.size() > 5 && n.substr(n.size() - 5) == ".json") names.push_back(n);
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  for (const auto& n : names) put(out, n, read_all(src + "/configs/" + n));
  const std::string copy = read_all(src + "/configs/copy.json");
  const std::string mqar = read_all(src + "/configs/mqar.json");
  put(out, "set_copy.txt",
      "train.steps=5\nmodel.mixers=exact,linear\ntask.options.blanks=20\n\n" + copy);
  put(out, "set_mqar.txt", "model.dim=32\nseed=3\ntrain.lr=1e-4\n\n" + mqar);
  put(out, "set_empty.txt", "task.name=copy\nmodel.layers=1\n\n{}");
  put(out, "defaults.json", longseq::train_config_to_json(longseq::TrainConfig{}));
}

void checkpoint_seeds(const std::string& out) {
  longseq::Trainer t(longseq_fuzz::tiny_trainer_config());  // fuzz_checkpoint's template
  t.step();
  const std::string dir = longseq::save_checkpoint(t, longseq_fuzz::scratch_dir() + "/run");
  put(out, "state.json.bin", with_selector(0, read_all(dir + "/state.json")));
  put(out, "model.bin", with_selector(1, read_all(dir + "/model.safetensors")));
  put(out, "optimizer.bin", with_selector(2, read_all(dir + "/optimizer.safetensors")));
}

void idx_seeds(const std::string& out) {
  const std::string tmp = longseq_fuzz::scratch_dir() + "/seed.gz";
  for (int i = 0; i < 4; ++i) {
    const std::string v = longseq_fuzz::idx_valid(i);
    longseq_fuzz::write_gz(tmp, v.data(), v.size());
    const std::string gz = read_all(tmp);
    const std::string base = longseq_fuzz::kIdxFiles[i];
    put(out, base + ".gzwrite", with_selector(i, v));     // fuzz_idx gzips it
    put(out, base + ".raw", with_selector(i | 4, v));     // plain IDX
    put(out, base + ".rawgz", with_selector(i | 4, gz));  // a real gzip stream, mutated raw
  }
}

void bytes_seeds(const std::string& src, const std::string& out) {
  std::string readme = read_all(src + "/README.md").substr(0, 2048);
  put(out, "readme.txt", readme);
  std::string min;
  for (int i = 0; i < 180; ++i) min.push_back(static_cast<char>('a' + i % 26));
  put(out, "minimal_180.txt", min);
  std::string bin;
  for (int i = 0; i < 512; ++i) bin.push_back(static_cast<char>(i * 37));
  put(out, "binary_512.bin", bin);
}

void listops_seeds(const std::string& out) {
  const std::map<std::string, std::string> small = {{"min_length", "10"}, {"max_length", "60"},
                                                    {"train_size", "8"}, {"valid_size", "4"},
                                                    {"test_size", "4"}};
  auto task = longseq::make_task("listops", small, 0);
  auto b = task->batch(longseq::Split::kTrain, 0, 4);
  auto lengths = b.key_padding.sum(1);
  for (int64_t r = 0; r < 4; ++r) {
    std::string seq(1, '\0');  // token mode
    for (int64_t i = 0; i < lengths[r].item<int64_t>(); ++i)
      seq.push_back(static_cast<char>(b.inputs[r][i].item<int64_t>()));
    put(out, "generated_" + std::to_string(r) + ".tok", seq);
  }
  // MIN MIN ... 1 END END ...: 8000 levels, the reader's recursion at depth (its limit is 10000).
  std::string deep(1, '\0');
  deep += std::string(8000, static_cast<char>(11)) + std::string(1, static_cast<char>(2)) +
          std::string(8000, static_cast<char>(15));
  put(out, "nested_8000.tok", deep);
  std::string opts = "\x01";
  for (const auto& [k, v] : small) opts += k + "=" + v + "\n";
  put(out, "options_small.txt", opts);
  put(out, "options_deep.txt", opts + "max_depth=20\nmax_args=3\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <source dir> <corpus dir>\n", argv[0]);
    return 2;
  }
  const std::string src = argv[1], out = argv[2];
  for (const char* t : {"safetensors", "config", "checkpoint", "idx", "bytes", "listops"})
    mkdirs(out + "/" + t);
  safetensors_seeds(out + "/safetensors");
  config_seeds(src, out + "/config");
  checkpoint_seeds(out + "/checkpoint");
  idx_seeds(out + "/idx");
  bytes_seeds(src, out + "/bytes");
  listops_seeds(out + "/listops");
  std::filesystem::remove_all(longseq_fuzz::scratch_dir());
  std::printf("seed corpora written to %s\n", out.c_str());
  return 0;
}
