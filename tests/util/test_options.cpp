// The options machinery (longseq/options.h): defaults read from the struct, text round trips,
// ranges, choices and rules with errors that name the owner and the option.
#include <longseq/options.h>

#include "test_util.h"

namespace longseq {
namespace {

struct Plain {
  int64_t width = 7;
  double rate = 0.25;
  uint64_t seed = 3;
  bool flag = true;
  std::string mode = "a";
};

struct Args {
  explicit Args(Plain common) : common_(common) {}
  TORCH_ARG(Plain, common);
  TORCH_ARG(int64_t, buckets) = 4;
  TORCH_ARG(std::vector<int64_t>, dilation) = {1, 2};
};

const OptionSet<Plain>& plain_options() {
  static const auto set = OptionSet<Plain>(Plain{})
                              .add(option("width", &Plain::width, "w").positive().tests({"3", "2"}))
                              .add(option("rate", &Plain::rate, "r").range(0, 1, false, true))
                              .add(option("seed", &Plain::seed, "s"))
                              .add(option("flag", &Plain::flag, "f"))
                              .add(option("mode", &Plain::mode, "m").choices({"a", "b"}));
  return set;
}

const OptionSet<Args>& args_options() {
  static const auto set =
      OptionSet<Args>(Args(Plain{}))
          .add(option("buckets", &Args::buckets, "NB")
                   .rule([](double b) { return b == 1 || (b >= 2 && std::fmod(b, 2) == 0); },
                         "1 or an even number >= 2"))
          .add(option("dilation", &Args::dilation, "d").positive());
  return set;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "<accepted>";
}

TEST(Options, DefaultsComeFromTheStruct) {
  const auto specs = plain_options().specs();
  ASSERT_EQ(specs.size(), 5u);
  EXPECT_EQ(specs[0].default_value, "7");
  EXPECT_EQ(specs[1].default_value, "0.25");
  EXPECT_EQ(specs[2].default_value, "3");
  EXPECT_EQ(specs[3].default_value, "true");
  EXPECT_EQ(specs[4].default_value, "a");
  EXPECT_EQ(specs[0].kind, OptionKind::kInt);
  EXPECT_EQ(specs[1].kind, OptionKind::kFloat);
  EXPECT_EQ(specs[2].kind, OptionKind::kInt);
  EXPECT_EQ(specs[3].kind, OptionKind::kBool);
  EXPECT_EQ(specs[4].kind, OptionKind::kString);
  EXPECT_EQ(specs[0].test_values, (std::vector<std::string>{"3", "2"}));
  const auto a = args_options().specs();
  EXPECT_EQ(a[0].default_value, "4");
  EXPECT_EQ(a[1].default_value, "1,2");
  EXPECT_EQ(a[1].kind, OptionKind::kIntList);
}

TEST(Options, ApplySetsMembersAndValuesRoundTrip) {
  Plain p;
  plain_options().apply(p, {{"width", "9"}, {"rate", "0.1"}, {"flag", "off"}, {"mode", "b"}},
                        "plain");
  EXPECT_EQ(p.width, 9);
  EXPECT_EQ(p.rate, 0.1);
  EXPECT_FALSE(p.flag);
  EXPECT_EQ(p.mode, "b");
  EXPECT_EQ(p.seed, 3u);  // not given: unchanged
  Plain q;
  plain_options().apply(q, plain_options().values(p), "plain");
  EXPECT_EQ(plain_options().values(q), plain_options().values(p));
  Args args(Plain{});
  args_options().apply(args, {{"dilation", "3,5,7"}}, "args");
  EXPECT_EQ(args.dilation(), (std::vector<int64_t>{3, 5, 7}));
}

TEST(Options, FloatsAreWrittenShortestAndExact) {
  EXPECT_EQ(option_text::format(0.1), "0.1");
  EXPECT_EQ(option_text::format(256.0), "256");
  EXPECT_EQ(option_text::format(1e-3), "0.001");
  const double third = 1.0 / 3.0;
  double back = 0;
  ASSERT_TRUE(option_text::parse(option_text::format(third), back));
  EXPECT_EQ(back, third);
}

TEST(Options, ErrorsNameOwnerOptionExpectationAndValue) {
  auto apply = [](std::map<std::string, std::string> v) {
    return error_of([&] {
      Plain p;
      plain_options().apply(p, v, "plain");
    });
  };
  EXPECT_EQ(apply({{"width", "0"}}), "plain: option `width` must be > 0, got 0");
  EXPECT_EQ(apply({{"width", "x"}}), "plain: option `width` expects an int, got 'x'");
  EXPECT_EQ(apply({{"rate", "1"}}), "plain: option `rate` must be in [0, 1), got 1");
  EXPECT_EQ(apply({{"flag", "maybe"}}),
            "plain: option `flag` expects a bool (true/false), got 'maybe'");
  EXPECT_EQ(apply({{"mode", "c"}}), "plain: option `mode` must be one of a, b, got 'c'");
  EXPECT_EQ(apply({{"wdth", "1"}}),
            "plain: unknown option `wdth`; valid options: width, rate, seed, flag, mode");
  Args args(Plain{});
  EXPECT_EQ(error_of([&] {
              args_options().apply(args, {{"buckets", "3"}}, "args");
            }),
            "args: option `buckets` must be 1 or an even number >= 2, got 3");
  EXPECT_EQ(error_of([&] {
              args_options().apply(args, {{"dilation", "1,0"}}, "args");
            }),
            "args: option `dilation` values must be > 0, got 0");
  EXPECT_EQ(error_of([&] {
              args_options().apply(args, {{"dilation", "1,"}}, "args");
            }),
            "args: option `dilation` expects a comma-separated list of integers, got '1,'");
}

TEST(Options, CheckValidatesStructsBuiltInCode) {
  Plain p;
  EXPECT_NO_THROW(plain_options().check(p, "plain"));
  p.rate = -0.5;
  EXPECT_EQ(error_of([&] { plain_options().check(p, "plain"); }),
            "plain: option `rate` must be in [0, 1), got -0.5");
  Args args(Plain{});
  args.buckets(6);
  EXPECT_NO_THROW(args_options().check(args, "args"));
  args.buckets(0);
  EXPECT_NE(error_of([&] { args_options().check(args, "args"); }).find("`buckets`"),
            std::string::npos);
}

TEST(Options, ResolvedOptionsReadTypedValues) {
  const std::vector<OptionSpec> specs = plain_options().specs();
  ResolvedOptions r("plain", resolve_option_values("plain", specs, {{"width", "12"}}));
  EXPECT_EQ(r.get_int("width"), 12);
  EXPECT_DOUBLE_EQ(r.get_float("rate"), 0.25);
  EXPECT_TRUE(r.get_bool("flag"));
  EXPECT_EQ(r.get_string("mode"), "a");
}

}  // namespace
}  // namespace longseq
