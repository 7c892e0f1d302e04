// Experiment configs: defaults, overrides, round trip, and errors that name the valid choices.
#include <longseq/config.h>

#include "test_util.h"

namespace longseq {
namespace {

std::string error_of(const std::string& text, const std::vector<std::string>& sets = {}) {
  try {
    parse_train_config(text, sets);
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "<accepted>";
}

TEST(Config, ReadsSectionsAndOverrides) {
  const std::string text = R"({"seed": 3, "task": {"name": "copy", "options": {"blanks": 50}},
    "model": {"layers": 3, "mixers": ["exact", "performer", "exact"], "dim": 32, "heads": 4,
              "mixer_options": {"performer": {"features": 16}}},
    "train": {"steps": 10, "lr": 0.01}})";
  auto c = parse_train_config(
      text, {"train.lr=0.002", "task.options.blanks=70", "model.mixers=exact,longformer,exact",
             "model.mixer_options.longformer.window=8"});
  EXPECT_EQ(c.seed, 3u);
  EXPECT_EQ(c.task, "copy");
  EXPECT_EQ(c.task_options.at("blanks"), "70");
  EXPECT_EQ(c.model.layers, 3);
  EXPECT_EQ(c.model.mixers, (std::vector<std::string>{"exact", "longformer", "exact"}));
  EXPECT_EQ(c.model.mixer_options.at("longformer").at("window"), "8");
  EXPECT_EQ(c.model.mixer.dim, 32);
  EXPECT_DOUBLE_EQ(c.lr, 0.002);
  EXPECT_EQ(c.steps, 10);
  // Round trip through the JSON saved beside checkpoints.
  auto back = parse_train_config(train_config_to_json(c), {});
  EXPECT_EQ(train_config_to_json(back), train_config_to_json(c));
}

TEST(Config, ErrorsNameTheProblem) {
  EXPECT_NE(error_of("{\"train\": {\"stepz\": 3}}").find("unknown key `train.stepz`; valid keys:"),
            std::string::npos);
  EXPECT_NE(error_of("{\"modle\": {}}").find("unknown key `config.modle`"), std::string::npos);
  EXPECT_NE(error_of("{\"train\": {\"steps\": \"many\"}}").find("`train.steps` has the wrong type"),
            std::string::npos);
  EXPECT_NE(error_of("{", {}).find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of("{}", {"train.steps=-5"}).find("`steps` must be > 0, got -5"),
            std::string::npos);
  EXPECT_NE(error_of("{}", {"model.mixers=exact,nosuch"}).find("valid mixers"), std::string::npos);
  EXPECT_NE(error_of("{}", {"train.lr"}).find("key=value"), std::string::npos);
}

// `--set` text must be UTF-8 as JSON writers know it (a checkpoint's state.json holds the config):
// every malformed form is refused by name, the well-formed 1- to 4-byte forms are kept.
TEST(Config, OverridesMustBeWellFormedUtf8) {
  for (const char* bad : {"c\x91", "c\xf6\x92\x90\x92", "c\xc0\x80", "c\xc1\xbf",
                          "c\xe0\x80\x80", "c\xed\xa0\x80", "c\xf0\x80\x80\x80",
                          "c\xf4\x90\x80\x80", "c\xf8\x88\x80\x80\x80", "c\xe2\x82",
                          "c\xff"}) {
    const std::string set = std::string("task.options.file=") + bad;
    EXPECT_NE(error_of("{}", {set}).find("`--set task.options.file`: the text is not valid UTF-8"),
              std::string::npos)
        << error_of("{}", {set});
  }
  for (const char* good : {"caf\xc3\xa9", "\xe2\x82\xac", "\xed\x9f\xbf", "\xf0\x9f\x98\x80",
                           "\xf4\x8f\xbf\xbf", "\xef\xbf\xbf"}) {
    const auto c = parse_train_config("{}", {std::string("task.options.file=") + good});
    EXPECT_EQ(c.task_options.at("file"), good);
    EXPECT_NO_THROW(train_config_to_json(c));
  }
}

// Integers written as JSON floats: 2.0 is taken, 2.5 and values beyond int64_t are refused by
// name (1e27 once reached an out-of-range double-to-int64 conversion; fuzz_config found it).
TEST(Config, IntegerValuesWrittenAsFloats) {
  EXPECT_EQ(parse_train_config("{\"train\": {\"steps\": 2.0}}", {}).steps, 2);
  for (const char* v : {"1e27", "-1e27", "9.3e18", "1e308"}) {
    for (const char* key : {"steps", "batch_size"}) {
      const std::string text = std::string("{\"train\": {\"") + key + "\": " + v + "}}";
      EXPECT_NE(error_of(text).find(std::string("option `") + key + "` expects an int, got"),
                std::string::npos)
          << text << ": " << error_of(text);
    }
    const std::string seed = std::string("{\"seed\": ") + v + "}";
    EXPECT_NE(error_of(seed).find("seed"), std::string::npos) << seed << ": " << error_of(seed);
  }
  EXPECT_NE(
      error_of("{\"train\": {\"steps\": 2.5}}").find("`train.steps` has the wrong type (2.5)"),
      std::string::npos)
      << error_of("{\"train\": {\"steps\": 2.5}}");
}

}  // namespace
}  // namespace longseq
