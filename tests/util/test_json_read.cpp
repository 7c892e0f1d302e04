// Strict JSON and file reading (util/json_read.h): depth, duplicate keys, array and value caps,
// and files that are not regular files, refused with the place named and without a crash.
#include "util/json_read.h"

#include "test_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace longseq {
namespace {

TEST(JsonRead, ParsesOrdinaryDocuments) {
  const auto j = parse_json_strict(R"({"a": [1, 2.5, "x", true, null], "b": {"c": {}}})", "t: ");
  EXPECT_EQ(j["a"].size(), 5u);
  EXPECT_EQ(j["a"][1].get<double>(), 2.5);
  EXPECT_TRUE(j["b"]["c"].is_object());
  EXPECT_EQ(parse_json_strict("7", "t: ").get<int>(), 7);
}

TEST(JsonRead, RefusesDeepNestingWithoutRecursing) {
  // 10^6 levels: nlohmann's DOM parser would overflow the stack.
  const std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
  EXPECT_TRUE(test::throws_with([&] { parse_json_strict(deep, "doc: "); },
                                "doc: nested deeper than 64 levels"));
  JsonLimits shallow;
  shallow.max_depth = 2;
  EXPECT_NO_THROW(parse_json_strict(R"({"a": [1]})", "doc: ", shallow));
  EXPECT_TRUE(test::throws_with([&] { parse_json_strict(R"({"a": [[1]]})", "doc: ", shallow); },
                                "nested deeper than 2 levels (in \"a\")"));
}

TEST(JsonRead, RefusesDuplicateKeysAtAnyLevel) {
  EXPECT_TRUE(test::throws_with([] { parse_json_strict(R"({"a": 1, "a": 2})", "doc: "); },
                                "doc: duplicate key \"a\""));
  EXPECT_TRUE(test::throws_with([] { parse_json_strict(R"({"t": {"lr": 1, "lr": 2}})", "doc: "); },
                                "duplicate key \"lr\" (in \"t\")"));
  EXPECT_NO_THROW(parse_json_strict(R"({"a": {"x": 1}, "b": {"x": 1}})", "doc: "));
}

TEST(JsonRead, CapsArraysAndValues) {
  JsonLimits limits;
  limits.max_array = 3;
  EXPECT_NO_THROW(parse_json_strict("[1, 2, 3]", "doc: ", limits));
  EXPECT_TRUE(test::throws_with([&] { parse_json_strict("[1, 2, 3, 4]", "doc: ", limits); },
                                "an array longer than 3 elements"));
  limits = {};
  limits.max_values = 4;
  EXPECT_TRUE(test::throws_with([&] { parse_json_strict("[1, 2, 3, 4]", "doc: ", limits); },
                                "more than 4 values"));
}

TEST(JsonRead, ReportsSyntaxErrorsWithThePlace) {
  EXPECT_TRUE(test::throws_with([] { parse_json_strict("{\"a\": ", "cfg: "); },
                                "cfg: not valid JSON at byte"));
  EXPECT_TRUE(test::throws_with([] { parse_json_strict("", "cfg: "); }, "cfg: not valid JSON"));
}

TEST(JsonRead, ReadsOnlyRegularFiles) {
  const std::string dir = ::testing::TempDir() + "longseq_json_read_" + std::to_string(::getpid());
  ::mkdir(dir.c_str(), 0755);
  const std::string file = dir + "/a.json", fifo = dir + "/fifo.json";
  std::ofstream(file) << "{}";
  EXPECT_EQ(read_regular_file(file, "config", 100), "{}");
  EXPECT_TRUE(test::throws_with([&] { read_regular_file(file, "config", 1); },
                                "is 2 bytes, above the limit of 1 bytes"));
  EXPECT_TRUE(test::throws_with([&] { read_regular_file(dir, "config", 100); },
                                "config: '" + dir + "' is a directory, not a file"));
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  // Refused at once: opening a FIFO for reading would wait for a writer forever.
  EXPECT_TRUE(
      test::throws_with([&] { read_regular_file(fifo, "config", 100); }, "is not a regular file"));
  EXPECT_TRUE(test::throws_with([&] { check_regular_file(dir + "/missing", "config"); },
                                "config: cannot read '" + dir + "/missing'"));
  ::unlink(fifo.c_str());
  ::unlink(file.c_str());
  ::rmdir(dir.c_str());
}

}  // namespace
}  // namespace longseq
