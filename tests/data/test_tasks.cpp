// Tasks: structure of every generated example, determinism, splits, and errors.
#include <longseq/tasks.h>

#include "test_util.h"

#include <cstdio>
#include <fstream>

namespace longseq {
namespace {

bool same(const Batch& a, const Batch& b) {
  return a.inputs.equal(b.inputs) && a.targets.equal(b.targets);
}

TEST(Tasks, EveryTaskIsDeterministicAndSplitsDiffer) {
  for (const char* name : {"copy", "adding", "selective_copy", "mqar"}) {
    auto t = make_task(name, {}, 7);
    auto a = t->batch(Split::kTrain, 3, 4), b = make_task(name, {}, 7)->batch(Split::kTrain, 3, 4);
    EXPECT_TRUE(same(a, b)) << name;
    EXPECT_FALSE(same(a, t->batch(Split::kTrain, 4, 4))) << name;
    EXPECT_FALSE(same(a, t->batch(Split::kValidation, 3, 4))) << name;
    EXPECT_FALSE(same(a, make_task(name, {}, 8)->batch(Split::kTrain, 3, 4))) << name;
    EXPECT_EQ(a.inputs.size(1), t->info().seq_len) << name;
  }
}

TEST(Tasks, CopyMemoryLayoutAndBaseline) {
  auto t = make_task("copy", {{"blanks", "30"}});
  EXPECT_NEAR(t->info().baseline, 10 * std::log(8.0) / 50, 1e-12);
  auto b = t->batch(Split::kTrain, 0, 5);
  ASSERT_EQ(b.inputs.sizes(), (std::vector<int64_t>{5, 50}));
  auto sym = b.inputs.narrow(1, 0, 10);
  EXPECT_TRUE(sym.ge(1).logical_and(sym.le(8)).all().item<bool>());
  EXPECT_TRUE(b.inputs.select(1, 39).eq(9).all().item<bool>());          // delimiter at T+9
  EXPECT_EQ(b.inputs.narrow(1, 10, 29).abs().sum().item<int64_t>(), 0);  // blanks
  EXPECT_TRUE(b.targets.narrow(1, 40, 10).equal(sym));                   // recall
  EXPECT_EQ(b.targets.narrow(1, 0, 40).abs().sum().item<int64_t>(), 0);
}

TEST(Tasks, AddingProblemMarksOnePerHalfAndSumsThem) {
  auto t = make_task("adding", {{"length", "40"}});
  auto b = t->batch(Split::kTest, 0, 8);
  ASSERT_EQ(b.inputs.sizes(), (std::vector<int64_t>{8, 40, 2}));
  auto markers = b.inputs.select(2, 1);
  EXPECT_TRUE(markers.narrow(1, 0, 20).sum(1).eq(1).all().item<bool>());
  EXPECT_TRUE(markers.narrow(1, 20, 20).sum(1).eq(1).all().item<bool>());
  auto sum = (b.inputs.select(2, 0) * markers).sum(1);
  EXPECT_TRUE(test::all_close(b.targets.select(1, 39), sum, 1e-6, 1e-6));
  EXPECT_EQ(b.loss_mask.sum().item<int64_t>(), 8);
  EXPECT_TRUE(b.loss_mask.select(1, 39).all().item<bool>());
}

TEST(Tasks, SelectiveCopyTargetsAreTheScatteredTokensInOrder) {
  auto t = make_task("selective_copy", {{"length", "64"}, {"tokens", "6"}});
  auto b = t->batch(Split::kTrain, 1, 3);
  for (int64_t r = 0; r < 3; ++r) {
    auto region = b.inputs[r].narrow(0, 0, 64);
    auto data = region.masked_select(region.ne(0));
    ASSERT_EQ(data.numel(), 6);
    EXPECT_TRUE(b.targets[r].narrow(0, 64, 6).equal(data));
    EXPECT_TRUE(b.inputs[r].narrow(0, 64, 6).eq(17).all().item<bool>());
    EXPECT_TRUE(b.targets[r].narrow(0, 0, 64).eq(-100).all().item<bool>());
  }
}

TEST(Tasks, MqarQueriesAskForTheirPairedValue) {
  auto t = make_task("mqar", {{"length", "64"}, {"pairs", "8"}, {"vocab", "100"}});
  auto b = t->batch(Split::kTrain, 0, 4);
  auto in = b.inputs.accessor<int64_t, 2>();
  auto tg = b.targets.accessor<int64_t, 2>();
  for (int64_t r = 0; r < 4; ++r) {
    std::map<int64_t, int64_t> kv;
    for (int64_t i = 0; i < 8; ++i) {
      EXPECT_TRUE(in[r][2 * i] >= 1 && in[r][2 * i] < 50);
      EXPECT_TRUE(in[r][2 * i + 1] >= 50 && in[r][2 * i + 1] < 100);
      EXPECT_TRUE(kv.emplace(in[r][2 * i], in[r][2 * i + 1]).second) << "duplicate key";
    }
    int64_t queries = 0;
    for (int64_t j = 16; j < 64; ++j) {
      if (tg[r][j] == -100) {
        EXPECT_EQ(in[r][j], 0);
        continue;
      }
      ++queries;
      EXPECT_EQ(tg[r][j], kv.at(in[r][j]));
    }
    EXPECT_EQ(queries, 8);
  }
}

TEST(Tasks, ListOpsEvaluatorFollowsTheLraSemantics) {
  // ids: digit d -> d + 1; [MIN 11, [MAX 12, [MED 13, [SM 14, ] 15
  auto d = [](int64_t v) { return v + 1; };
  EXPECT_EQ(listops_evaluate({12, d(2), d(9), 11, d(4), d(7), 15, d(0), 15}), 9);
  EXPECT_EQ(listops_evaluate({13, d(1), d(2), d(3), d(4), 15}), 2);  // int(median 2.5)
  EXPECT_EQ(listops_evaluate({13, d(1), d(7), d(3), 15}), 3);
  EXPECT_EQ(listops_evaluate({14, d(5), d(6), d(7), 15}), 8);  // 18 mod 10
  EXPECT_EQ(listops_evaluate({d(4)}), 4);
  EXPECT_THROW(listops_evaluate({12, d(2)}), c10::Error);
  EXPECT_THROW(listops_evaluate({d(2), d(3)}), c10::Error);
}

TEST(Tasks, ListOpsGeneratorKeepsBoundsLabelsAndUniqueness) {
  auto t = make_task("listops",
                     {{"min_length", "20"},
                      {"max_length", "80"},
                      {"train_size", "200"},
                      {"valid_size", "40"},
                      {"test_size", "40"}},
                     3);
  std::set<std::vector<int64_t>> all;
  for (Split s : {Split::kTrain, Split::kValidation, Split::kTest}) {
    const int64_t n = t->info().split_size(s);
    for (int64_t i = 0; i * 20 < n; ++i) {
      auto b = t->batch(s, i, 20);
      auto lengths = b.key_padding.sum(1);
      for (int64_t r = 0; r < b.inputs.size(0); ++r) {
        const int64_t len = lengths[r].item<int64_t>();
        EXPECT_GT(len, 20);
        EXPECT_LT(len, 80);
        auto row = b.inputs[r].narrow(0, 0, len).contiguous();
        std::vector<int64_t> tokens(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + len);
        EXPECT_EQ(listops_evaluate(tokens), b.targets[r].item<int64_t>());
        all.insert(tokens);
      }
    }
  }
  EXPECT_EQ(all.size(), 280u) << "examples repeat within or across splits";
}

TEST(Tasks, FashionMnistReadsTheDebianPackageOrNamesIt) {
  try {
    make_task("fmnist", {{"dir", "/nonexistent"}});
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("dataset-fashion-mnist"),
              std::string::npos);
  }
  std::ifstream probe("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz");
  if (!probe.good()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  auto t = make_task("fmnist");
  EXPECT_EQ(t->info().test_size, 10000);
  EXPECT_EQ(t->info().train_size + t->info().valid_size, 60000);
  auto b = t->batch(Split::kTrain, 0, 16);
  EXPECT_EQ(b.inputs.sizes(), (std::vector<int64_t>{16, 784, 1}));
  EXPECT_TRUE(b.inputs.ge(0).logical_and(b.inputs.le(1)).all().item<bool>());
  EXPECT_TRUE(b.targets.ge(0).logical_and(b.targets.lt(10)).all().item<bool>());
  auto last = t->batch(Split::kTest, 624, 16);  // 10000 = 625 * 16
  EXPECT_EQ(last.inputs.size(0), 16);
  EXPECT_THROW(t->batch(Split::kTest, 625, 16), c10::Error);
}

TEST(Tasks, BytesPredictTheNextByte) {
  const std::string path = ::testing::TempDir() + "longseq_bytes.txt";
  {
    std::ofstream f(path);
    for (int i = 0; i < 400; ++i) f << "the quick brown fox " << i << "\n";
  }
  auto t = make_task("bytes", {{"file", path}, {"length", "32"}});
  auto b = t->batch(Split::kTrain, 0, 4);
  EXPECT_TRUE(b.inputs.narrow(1, 1, 31).equal(b.targets.narrow(1, 0, 31)));
  EXPECT_GT(t->info().valid_size, 0);
  EXPECT_THROW(make_task("bytes", {{"file", "/nonexistent"}}), c10::Error);
  std::remove(path.c_str());
}

TEST(Tasks, ClearErrors) {
  EXPECT_THROW(make_task("nosuch"), c10::Error);
  EXPECT_THROW(make_task("copy", {{"blank", "3"}}), c10::Error);
  EXPECT_THROW(make_task("copy", {{"blanks", "0"}}), c10::Error);
  EXPECT_THROW(make_task("mqar", {{"length", "20"}, {"pairs", "8"}}), c10::Error);
  EXPECT_THROW(make_task("copy")->batch(Split::kValidation, 1000, 1), c10::Error);
}

}  // namespace
}  // namespace longseq
