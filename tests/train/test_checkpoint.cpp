// Checkpoints: exact resume, refusal of corrupt or mismatched checkpoints, keep-last-k.
#include <longseq/checkpoint.h>
#include <longseq/safetensors.h>

#include "test_util.h"

#include <sys/stat.h>
#include <cstdio>
#include <fstream>

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
  std::system(("rm -rf '" + d + "'").c_str());
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

}  // namespace
}  // namespace longseq
