// Every config shipped in configs/ parses, validates, and describes a model that can be built
// (mixer names, options, sizes), so a typo in one fails the tests instead of a user's run.
#include <longseq/config.h>
#include <longseq/model.h>
#include <longseq/train.h>

#include "test_util.h"

#include <filesystem>

namespace longseq {
namespace {

namespace fs = std::filesystem;

// configs/ of the source tree: searched upward from the test binary (build/tests/...).
fs::path find_configs() {
  for (fs::path dir = fs::read_symlink("/proc/self/exe").parent_path(); !dir.empty();
       dir = dir.parent_path()) {
    if (fs::exists(dir / "configs" / "mqar.json")) return dir / "configs";
    if (dir == dir.root_path()) break;
  }
  return {};
}

TEST(ShippedConfigs, EveryConfigParsesAndBuildsItsModel) {
  const fs::path dir = find_configs();
  ASSERT_FALSE(dir.empty()) << "configs/ not found above the test binary";
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().string());
    TrainConfig c;
    ASSERT_NO_THROW(c = load_train_config(entry.path().string(), {}));
    EXPECT_NO_THROW(c.validate());
    // The task fills sizes and head; a stand-in keeps this test fast (no ListOps pool, no data).
    ModelConfig m = c.model;
    if (m.vocab_size == 0 && m.input_dim == 0) m.vocab_size = 16;
    if (m.head != "lm" && m.num_outputs == 0) m.num_outputs = 4;
    m.mixer.max_len = std::min<int64_t>(m.mixer.max_len, 4096);
    EXPECT_NO_THROW(SequenceModel model(m));
    ++checked;
  }
  EXPECT_GE(checked, 8);
}

}  // namespace
}  // namespace longseq
