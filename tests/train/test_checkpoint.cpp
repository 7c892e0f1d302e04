// Checkpoints: exact resume, refusal of corrupt or mismatched checkpoints, keep-last-k.
#include <longseq/checkpoint.h>
#include <longseq/safetensors.h>

#include "test_util.h"

#include <ATen/CPUGeneratorImpl.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

namespace longseq {
namespace {

TrainConfig tiny(const std::string& mixer) {
  TrainConfig c;
  c.task = "copy";
  c.task_options = {{"blanks", "10"}};
  c.model.layers = 2;
  c.model.mixers = {mixer};
  c.model.mixer.dim = 16;
  c.model.mixer.heads = 2;
  c.model.mixer.causal = true;
  c.model.ffn_mult = 2;
  c.model.dropout = 0.1;  // exercises the saved RNG state
  if (mixer == "reformer") c.model.mixer_options["reformer"] = {{"buckets", "4"}, {"chunk", "8"}};
  if (mixer == "performer")
    c.model.mixer_options["performer"] = {{"features", "16"}, {"redraw", "2"}};
  c.steps = 8;
  c.batch_size = 4;
  c.warmup = 2;
  c.eval_every = 0;
  c.seed = 5;
  return c;
}

std::string temp_dir(const std::string& name) {
  const std::string d =
      ::testing::TempDir() + "longseq_ckpt_" + name + "_" + std::to_string(::getpid());
  std::filesystem::remove_all(d);  // links inside are removed as links
  return d;
}

TEST(Checkpoint, ResumeContinuesExactly) {
  // Reformer redraws its rotations every call and Performer every 2: the redraw counters travel
  // too.
  for (const char* mixer : {"exact", "reformer", "performer"}) {
    const auto dir = temp_dir(mixer);
    std::vector<double> straight, resumed;
    {
      Trainer t(tiny(mixer));
      for (int i = 0; i < 8; ++i) straight.push_back(t.step().loss);
    }
    {
      Trainer t(tiny(mixer));
      for (int i = 0; i < 3; ++i) resumed.push_back(t.step().loss);
      save_checkpoint(t, dir);
    }
    torch::manual_seed(12345);  // a different process state: the checkpoint must restore it
    Trainer t(tiny(mixer));
    load_checkpoint(t, dir);
    EXPECT_EQ(t.current_step(), 3);
    for (int i = 3; i < 8; ++i) resumed.push_back(t.step().loss);
    EXPECT_EQ(resumed, straight) << mixer;
  }
}

TEST(Checkpoint, KeepsTheLastKAndPointsAtTheNewest) {
  const auto dir = temp_dir("keep");
  Trainer t(tiny("exact"));
  for (int i = 0; i < 4; ++i) {
    t.step();
    save_checkpoint(t, dir, 2);
  }
  struct stat st;
  EXPECT_NE(::stat((dir + "/step_00000002").c_str(), &st), 0);
  EXPECT_EQ(::stat((dir + "/step_00000003").c_str(), &st), 0);
  EXPECT_EQ(resolve_checkpoint(dir), dir + "/step_00000004");
  // Weights load in Python's layout too: plain safetensors with format pt.
  std::map<std::string, std::string> meta;
  auto tensors = load_safetensors(dir + "/step_00000004/model.safetensors", &meta);
  EXPECT_EQ(meta.at("format"), "pt");
  EXPECT_FALSE(tensors.empty());
}

TEST(Checkpoint, RefusesMismatchedOrCorruptCheckpoints) {
  const auto dir = temp_dir("bad");
  {
    Trainer t(tiny("exact"));
    t.step();
    save_checkpoint(t, dir);
  }
  auto other = tiny("exact");
  other.model.mixer.dim = 32;
  Trainer wider(other);
  try {
    load_checkpoint(wider, dir);
    FAIL() << "accepted a checkpoint of another model";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("different `model` config"),
              std::string::npos);
  }
  const std::string ck = resolve_checkpoint(dir);
  {  // truncate the weights
    std::ofstream f(ck + "/model.safetensors", std::ios::binary | std::ios::trunc);
    f << "12345";
  }
  Trainer t(tiny("exact"));
  const auto before = t.model()->parameters()[0].clone();
  EXPECT_THROW(load_checkpoint(t, dir), c10::Error);
  EXPECT_TRUE(t.model()->parameters()[0].equal(before)) << "a refused load changed the model";
  EXPECT_EQ(t.current_step(), 0);
  {
    std::ofstream f(ck + "/state.json", std::ios::trunc);
    f << "{not json";
  }
  EXPECT_THROW(load_checkpoint(t, dir), c10::Error);
  EXPECT_THROW(load_checkpoint(t, dir + "/nonexistent"), c10::Error);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
}

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Pruning removes a link as a link: the files of its target survive.
TEST(Checkpoint, PruningNeverFollowsSymbolicLinks) {
  const auto dir = temp_dir("links");
  const auto precious = temp_dir("precious");
  ASSERT_EQ(::mkdir(precious.c_str(), 0755), 0);
  write_file(precious + "/data.txt", "keep me");
  Trainer t(tiny("exact"));
  t.step();
  save_checkpoint(t, dir, 1);
  const std::string first = resolve_checkpoint(dir);
  ASSERT_EQ(::symlink(precious.c_str(), (first + "/linked_dir").c_str()), 0);
  ASSERT_EQ(::symlink((precious + "/data.txt").c_str(), (first + "/linked_file").c_str()), 0);
  t.step();
  save_checkpoint(t, dir, 1);  // prunes `first`
  EXPECT_FALSE(exists(first));
  EXPECT_EQ(read_file(precious + "/data.txt"), "keep me");
}

// A refused checkpoint changes nothing: not the weights, the optimizer, the step or the RNG,
// whichever of its parts is bad.
TEST(Checkpoint, LoadingIsAllOrNothing) {
  const auto dir = temp_dir("all_or_nothing");
  {
    Trainer t(tiny("exact"));
    for (int i = 0; i < 2; ++i) t.step();
    save_checkpoint(t, dir);
  }
  const std::string ck = resolve_checkpoint(dir);
  const std::string state = read_file(ck + "/state.json");
  const auto corrupt = [&](const std::string& what, const std::string& from, const std::string& to,
                           const std::string& expect) {
    auto text = state;
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    write_file(ck + "/state.json", text);
    Trainer t(tiny("exact"));
    t.step();  // optimizer state and RNG in use
    const auto weights = t.model()->parameters()[0].clone();
    const auto rng = at::detail::getDefaultCPUGenerator().get_state();
    EXPECT_TRUE(test::throws_with([&] { load_checkpoint(t, dir); }, expect)) << what;
    EXPECT_TRUE(t.model()->parameters()[0].equal(weights)) << what;
    EXPECT_EQ(t.current_step(), 1) << what;
    EXPECT_EQ(t.optimizer().state().size(), t.model()->parameters().size()) << what;
    EXPECT_TRUE(at::detail::getDefaultCPUGenerator().get_state().equal(rng)) << what;
  };
  corrupt("rng", "\"rng_state\": \"", "\"rng_state\": \"00", "`rng_state` is not a CPU generator");
  corrupt("step", "\"step\": 2", "\"step\": -2", "`step` must be an integer >= 0");
  write_file(ck + "/state.json", state);
  // NaN weights: refused with the tensor named, before anything is copied.
  auto tensors = load_safetensors(ck + "/model.safetensors");
  tensors[0].second = tensors[0].second.clone();
  tensors[0].second.view(-1)[0] = std::numeric_limits<float>::quiet_NaN();
  save_safetensors(ck + "/model.safetensors", tensors);
  Trainer t(tiny("exact"));
  const auto weights = t.model()->parameters()[0].clone();
  EXPECT_TRUE(test::throws_with([&] { load_checkpoint(t, dir); }, "non-finite values"));
  EXPECT_TRUE(t.model()->parameters()[0].equal(weights));
}

// Killed saves leave step_*.tmp.<pid>; the next start removes those of dead processes only.
TEST(Checkpoint, StaleTemporariesOfDeadSavesAreRemoved) {
  const auto dir = temp_dir("stale");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  // A pid that cannot exist (above pid_max), and one that does (ours' parent: alive).
  const std::string dead = dir + "/step_00000004.tmp.999999999";
  const std::string live = dir + "/step_00000004.tmp." + std::to_string(::getppid());
  ASSERT_EQ(::mkdir(dead.c_str(), 0755), 0);
  write_file(dead + "/model.safetensors", "partial");
  ASSERT_EQ(::mkdir(live.c_str(), 0755), 0);
  // A kill while `latest` was replaced leaves write_file_atomic's temporary file.
  const std::string dead_latest = dir + "/latest.tmp.999999999";
  write_file(dead_latest, "step_00000004\n");
  EXPECT_EQ(clean_stale_checkpoint_temps(dir), 2);
  EXPECT_FALSE(exists(dead));
  EXPECT_FALSE(exists(dead_latest));
  EXPECT_TRUE(exists(live));
}

// Saving a step that exists swaps the new directory in: `latest` never names a missing one.
TEST(Checkpoint, ResavingAStepReplacesItInPlace) {
  const auto dir = temp_dir("resave");
  Trainer t(tiny("exact"));
  t.step();
  const auto first = save_checkpoint(t, dir);
  write_file(first + "/marker", "old");
  EXPECT_EQ(save_checkpoint(t, dir), first);
  EXPECT_FALSE(exists(first + "/marker"));
  EXPECT_EQ(resolve_checkpoint(dir), first);
  EXPECT_NO_THROW(load_checkpoint(t, dir));
  // Only the step directory remains: no temporary left behind.
  int entries = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) entries += e->d_name[0] != '.';
    ::closedir(d);
  }
  EXPECT_EQ(entries, 2);  // step_00000001, latest
}

// Pruning orders directories by step number, not by name: past 10^8 steps the names outgrow the
// zero padding and would sort the newest first.
TEST(Checkpoint, PruningOrdersByStepNumber) {
  const auto dir = temp_dir("order");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  for (const char* old : {"step_99999998", "step_99999999"}) {
    ASSERT_EQ(::mkdir((dir + "/" + old).c_str(), 0755), 0);
  }
  ASSERT_EQ(::mkdir((dir + "/step_100000000").c_str(), 0755), 0);
  Trainer t(tiny("exact"));
  t.step();  // step 1: the oldest by number, kept because it is the one just saved
  save_checkpoint(t, dir, 2);
  EXPECT_TRUE(exists(dir + "/step_00000001"));
  EXPECT_TRUE(exists(dir + "/step_100000000"));
  EXPECT_FALSE(exists(dir + "/step_99999999"));
  EXPECT_FALSE(exists(dir + "/step_99999998"));
}

TEST(Checkpoint, CheckpointDirectoryIsCheckedBeforeTraining) {
  const auto dir = temp_dir("check");
  EXPECT_NO_THROW(check_checkpoint_dir(dir, 3));  // creatable
  EXPECT_TRUE(test::throws_with([&] { check_checkpoint_dir(dir, -1); }, "`keep` must be >= 0"));
  write_file(dir, "a file");
  EXPECT_TRUE(test::throws_with([&] { check_checkpoint_dir(dir, 3); }, "is not a directory"));
  EXPECT_TRUE(test::throws_with([&] { check_checkpoint_dir("/proc/nonexistent/x", 3); },
                                "is not a writable directory"));
}

}  // namespace
}  // namespace longseq
