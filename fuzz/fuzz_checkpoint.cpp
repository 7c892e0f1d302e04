// Fuzzes longseq::load_checkpoint (src/train/checkpoint.cpp): state.json, model.safetensors and
// optimizer.safetensors of a checkpoint directory. Once per process a tiny Trainer (fuzz/tiny_trainer.h) takes one step
// and saves a checkpoint: the template. Per input, byte 0 picks the file (0/3: state.json,
// 1: model.safetensors, 2: optimizer.safetensors) that the rest of the input replaces; the
// others keep the template's bytes; then load_checkpoint(trainer, dir). Rejection by c10::Error
// is expected.
#include "fuzz_util.h"
#include "tiny_trainer.h"

#include <longseq/checkpoint.h>
#include <longseq/train.h>

#include <fstream>
#include <sstream>

namespace {

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const char* const kFiles[3] = {"state.json", "model.safetensors", "optimizer.safetensors"};

struct Fixture {
  longseq::Trainer trainer{longseq_fuzz::tiny_trainer_config()};
  std::string dir;
  std::string original[3];
  Fixture() {
    trainer.step();
    dir = longseq::save_checkpoint(trainer, longseq_fuzz::scratch_dir() + "/run");
    for (int i = 0; i < 3; ++i) original[i] = read_all(dir + "/" + kFiles[i]);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* fx = new Fixture();  // never destroyed: the trainer lives for the process
  static int dirty = -1;
  if (size < 1) return 0;
  const int which = (data[0] & 3) == 3 ? 0 : (data[0] & 3);
  if (dirty >= 0 && dirty != which) {
    longseq_fuzz::write_file(fx->dir + "/" + kFiles[dirty], fx->original[dirty]);
  }
  dirty = which;
  longseq_fuzz::write_file(fx->dir + "/" + kFiles[which], data + 1, size - 1);
  longseq_fuzz::expect_c10_errors_only([&] { longseq::load_checkpoint(fx->trainer, fx->dir); });
  return 0;
}
