// safetensors I/O: round trips of every dtype, the exact byte layout, files written by the
// reference implementation, refusal of malformed files, module save/load, and a save killed by the
// file-size limit leaving the previous checkpoint intact (atomic writes: test_atomic_file.cpp).
#include <longseq/atomic_file.h>
#include <longseq/registry.h>
#include <longseq/safetensors.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "test_util.h"
#include "util/file_test_util.h"

namespace longseq {
namespace {

namespace fs = std::filesystem;
using test::big_checkpoint;
using test::load_fails;
using test::read_bytes;
using test::write_bytes;

class SafetensorsTest : public test::TempDirTest {};

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

// A file with `header` verbatim (no padding) followed by `data`.
std::string make_file(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

std::string bytes_of(std::initializer_list<int> v) {
  std::string s;
  for (int b : v) s.push_back(static_cast<char>(b));
  return s;
}

at::Tensor sample(at::ScalarType type, at::IntArrayRef shape) {
  if (type == at::kBool) return torch::randint(0, 2, shape).to(at::kBool);
  if (at::isFloatingType(type)) return torch::randn(shape, at::kDouble).mul(100).to(type);
  if (type == at::kByte) return torch::randint(0, 256, shape).to(type);
  return torch::randint(-100, 100, shape).to(type);
}

const at::ScalarType kAllTypes[] = {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16, at::kLong,
                                    at::kInt,   at::kShort,  at::kChar, at::kByte,     at::kBool};

TEST_F(SafetensorsTest, RoundTripEveryDtypeAndShape) {
  torch::manual_seed(0);
  NamedTensors in;
  for (auto type : kAllTypes) {
    const std::string t = c10::toString(type);
    in.emplace_back(t + ".matrix", sample(type, {5, 7}));
    in.emplace_back(t + ".scalar", sample(type, {}));  // 0-d
    in.emplace_back(t + ".empty", sample(type, {0}));  // no data
    in.emplace_back(t + ".empty3", sample(type, {3, 0, 2}));
    in.emplace_back(t + ".transposed", sample(type, {4, 6}).t());  // non-contiguous
    in.emplace_back(t + ".strided", sample(type, {9, 5}).slice(0, 0, 9, 2).slice(1, 1, 5, 3));
    in.emplace_back(t + ".expanded", sample(type, {3, 1}).expand({3, 4}));
  }
  in.emplace_back("grad.requires", torch::randn({3}, torch::requires_grad()));
  in.emplace_back("unicode.é", torch::arange(3));
  const auto p = path("all.safetensors");
  save_safetensors(p, in);
  const auto out = load_safetensors(p);
  ASSERT_EQ(out.size(), in.size());
  std::map<std::string, at::Tensor> by_name(out.begin(), out.end());
  for (const auto& [name, t] : in) {
    ASSERT_TRUE(by_name.count(name)) << name;
    const auto& got = by_name.at(name);
    EXPECT_EQ(got.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(got.sizes(), t.sizes()) << name;
    EXPECT_TRUE(got.is_contiguous()) << name;
    EXPECT_FALSE(got.requires_grad()) << name;
    EXPECT_TRUE(torch::equal(got, t.detach())) << name;
  }
  // The header is padded so the data buffer starts at a multiple of 8.
  const std::string bytes = read_bytes(p);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
  EXPECT_EQ(n % 8, 0u);
}

TEST_F(SafetensorsTest, EmptyListRoundTrips) {
  const auto p = path("none.safetensors");
  save_safetensors(p, {});
  std::map<std::string, std::string> meta;
  EXPECT_TRUE(load_safetensors(p, &meta).empty());
  EXPECT_EQ(meta.at("format"), "pt");
}

// The exact bytes, computed here from the format description: u64 LE header length, compact JSON
// with __metadata__ first, tensors ordered by decreasing alignment then name, spaces to a multiple
// of 8, then the little-endian data.
TEST_F(SafetensorsTest, ByteExactLayout) {
  NamedTensors in;
  in.emplace_back("c", torch::tensor({1, 2, 3}, at::kByte));
  in.emplace_back("b", torch::tensor({1, -2}, at::kInt));
  in.emplace_back("a", torch::tensor({{1.0f, 2.5f}}));
  const auto p = path("small.safetensors");
  save_safetensors(p, in, {{"step", "7"}});

  std::string header = R"({"__metadata__":{"format":"pt","step":"7"},)"
                       R"("a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"I32","shape":[2],"data_offsets":[8,16]},)"
                       R"("c":{"dtype":"U8","shape":[3],"data_offsets":[16,19]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  const std::string data = bytes_of({0x00, 0x00, 0x80, 0x3f,  // 1.0f
                                     0x00, 0x00, 0x20, 0x40,  // 2.5f
                                     0x01, 0x00, 0x00, 0x00,  // 1
                                     0xfe, 0xff, 0xff, 0xff,  // -2
                                     0x01, 0x02, 0x03});
  const std::string want = le64(header.size()) + header + data;
  EXPECT_EQ(read_bytes(p), want);
}

// Byte vectors from the reference implementation's own tests (huggingface/safetensors,
// safetensors/src/tensor.rs: test_serialization, test_serialization_forced_alignement,
// test_empty), i.e. files Python's safetensors writes, load here.
TEST_F(SafetensorsTest, LoadsReferenceImplementationBytes) {
  std::string f32 = bytes_of(
      {0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64});
  const auto expected = torch::arange(6, at::kFloat);
  {
    const std::string h = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
    ASSERT_EQ(h.size(), 64u);  // the reference file's header length byte is 64
    write_bytes(path("ref1"), le64(64) + h + f32);
    auto out = load_safetensors(path("ref1"));
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].first, "attn.0");
    EXPECT_TRUE(torch::equal(out[0].second, expected.view({1, 2, 3})));
  }
  {
    const std::string h = R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})" +
                          std::string(7, ' ');
    ASSERT_EQ(h.size(), 72u);
    write_bytes(path("ref2"), le64(72) + h + f32);
    auto out = load_safetensors(path("ref2"));
    EXPECT_TRUE(torch::equal(out.at(0).second, expected.view({1, 1, 2, 3})));
  }
  {
    write_bytes(path("ref3"), le64(8) + "{}      ");
    EXPECT_TRUE(load_safetensors(path("ref3")).empty());
    const std::string h = R"({"__metadata__":{"framework":"pt"}})" + std::string(5, ' ');
    ASSERT_EQ(h.size(), 40u);
    write_bytes(path("ref4"), le64(40) + h);
    std::map<std::string, std::string> meta;
    EXPECT_TRUE(load_safetensors(path("ref4"), &meta).empty());
    EXPECT_EQ(meta, (std::map<std::string, std::string>{{"framework", "pt"}}));
  }
  {
    // Any key order and unpadded headers are valid; empty tensors may share an offset.
    const std::string h = R"({"z":{"data_offsets":[4,4],"shape":[0],"dtype":"F32"},)"
                          R"("y":{"dtype":"I16","shape":[2],"data_offsets":[0,4]},)"
                          R"("x":{"dtype":"BOOL","shape":[0,3],"data_offsets":[4,4]}})";
    write_bytes(path("ref5"), make_file(h, bytes_of({1, 0, 0xff, 0xff})));
    auto out = load_safetensors(path("ref5"));
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[0].first, "y");
    EXPECT_TRUE(torch::equal(out[0].second, torch::tensor({1, -1}, at::kShort)));
  }
}

TEST_F(SafetensorsTest, MetadataRoundTrip) {
  const auto p = path("meta.safetensors");
  const std::map<std::string, std::string> meta_in{
      {"step", "1200"},
      {"config", R"({"mixer": "exact", "note": "héllo \"q\"\n"})"},
      {"", "empty"}};
  save_safetensors(p, {{"w", torch::ones({2})}}, meta_in);
  std::map<std::string, std::string> meta;
  load_safetensors(p, &meta);
  auto want = meta_in;
  want["format"] = "pt";
  EXPECT_EQ(meta, want);
  // An explicit format=pt is fine; another format is refused.
  save_safetensors(p, {}, {{"format", "pt"}});
  EXPECT_TRUE(test::throws_with([&] { save_safetensors(p, {}, {{"format", "np"}}); }, "`format`"));
}

TEST_F(SafetensorsTest, SaveRejectsBadInput) {
  const auto p = path("bad.safetensors");
  EXPECT_TRUE(test::throws_with(
      [&] {
        save_safetensors(p, {{"a", torch::ones(1)}, {"a", torch::ones(1)}});
      },
      "duplicate tensor name `a`"));
  EXPECT_TRUE(test::throws_with(
      [&] {
        save_safetensors(p, {{"__metadata__", torch::ones(1)}});
      },
      "reserved"));
  EXPECT_TRUE(test::throws_with([&] { save_safetensors(p, {{"u", at::Tensor()}}); }, "undefined"));
  EXPECT_TRUE(test::throws_with(
      [&] {
        save_safetensors(p, {{"c", torch::ones(2, at::kComplexFloat)}});
      },
      "unsupported dtype"));
  EXPECT_TRUE(test::throws_with(
      [&] {
        save_safetensors(p, {{std::string("\xff\xfe"), torch::ones(1)}});
      },
      "UTF-8"));
  EXPECT_FALSE(fs::exists(p));
  EXPECT_FALSE(fs::exists(atomic_temp_path(p)));
}

const std::string kF32Pair = bytes_of({0, 0, 128, 63, 0, 0, 0, 64});  // 1.0f, 2.0f

TEST_F(SafetensorsTest, RejectsMalformedFiles) {
  struct Case {
    const char* name;
    std::string bytes;
    const char* want;
  };
  const std::string ok_entry = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  std::vector<Case> cases = {
      {"empty_file", "", "shorter than the 8-byte header length"},
      {"short_file", "abc", "shorter than the 8-byte header length"},
      {"header_past_eof", le64(1000) + "{}", "runs past the end of the file"},
      {"header_absurd", le64(uint64_t{1} << 62) + "{}", "absurdly large"},
      {"header_just_past_eof", le64(3) + "{}", "runs past the end of the file"},
      {"invalid_json", make_file("{abc}", ""), "not valid JSON"},
      {"not_utf8", make_file("{\"\xff\":1}", ""), "not valid JSON"},
      {"not_object", make_file("[1,2]", ""), "must be a JSON object"},
      {"zero_header", le64(0), "not valid JSON"},
      {"unknown_dtype",
       make_file(R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", kF32Pair),
       "unknown dtype \"F33\""},
      {"lowercase_dtype",
       make_file(R"({"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}})", kF32Pair),
       "unknown dtype"},
      {"unsupported_dtype",
       make_file(R"({"a":{"dtype":"U16","shape":[4],"data_offsets":[0,8]}})", kF32Pair),
       "not supported by longseq"},
      {"dtype_not_string",
       make_file(R"({"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", kF32Pair),
       "\"dtype\" must be a string"},
      {"shape_vs_offsets",
       make_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", kF32Pair),
       "needs 12 bytes but data_offsets [0, 8] hold 8"},
      {"dtype_vs_offsets",
       make_file(R"({"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})", kF32Pair),
       "needs 16 bytes"},
      {"negative_dim",
       make_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", kF32Pair),
       "non-negative integers"},
      {"fractional_dim",
       make_file(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}})", kF32Pair),
       "non-negative integers"},
      {"huge_dims",
       make_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                 kF32Pair),
       "too large"},
      {"huge_dim_with_zero",
       make_file(R"({"a":{"dtype":"F32","shape":[0,9223372036854775807,4],"data_offsets":[0,0]}})",
                 ""),
       "too large"},
      {"shape_not_array",
       make_file(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", kF32Pair),
       "\"shape\" must be an array"},
      {"missing_offsets", make_file(R"({"a":{"dtype":"F32","shape":[2]}})", kF32Pair),
       "missing field \"data_offsets\""},
      {"offsets_three",
       make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}})", kF32Pair),
       "must be [begin, end]"},
      {"offsets_negative",
       make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", kF32Pair),
       "must be [begin, end]"},
      {"end_before_begin",
       make_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", kF32Pair),
       "end before begin"},
      {"entry_not_object", make_file(R"({"a":[1,2]})", ""), "expected an object"},
      {"overlapping",
       make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                 kF32Pair + kF32Pair.substr(0, 4)),
       "overlap tensor \"a\""},
      {"same_offsets",
       make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                 kF32Pair),
       "overlap"},
      {"gapped",
       make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                 R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                 kF32Pair + kF32Pair.substr(0, 4)),
       "gap in the byte buffer: bytes [4, 8)"},
      {"not_from_zero",
       make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", kF32Pair),
       "gap in the byte buffer: bytes [0, 4)"},
      {"trailing_bytes",
       make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", kF32Pair),
       "fully indexed"},
      {"truncated_data", make_file("{" + ok_entry + "}", kF32Pair.substr(0, 5)), "truncated"},
      {"no_data", make_file("{" + ok_entry + "}", ""), "truncated"},
      {"duplicate_name", make_file("{" + ok_entry + "," + ok_entry + "}", kF32Pair),
       "duplicate key \"a\""},
      {"duplicate_field",
       make_file(R"({"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                 kF32Pair),
       "duplicate key \"dtype\""},
      {"metadata_not_object", make_file(R"({"__metadata__":"pt"})", ""), "must be an object"},
      {"metadata_not_string", make_file(R"({"__metadata__":{"step":3}})", ""), "must be a string"},
      {"bad_bool",
       make_file(R"({"a":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", bytes_of({1, 7})),
       "BOOL bytes must be 0 or 1"},
  };
  // A hostile header nesting arrays a million deep is refused without exhausting the stack, at the
  // fourth level (the format has three), before anything deeper is built.
  const std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
  cases.push_back(
      {"deep_nesting",
       make_file(R"({"a":{"dtype":"F32","shape":)" + deep + R"(,"data_offsets":[0,0]}})", ""),
       "header: nested deeper than 3 levels (in \"shape\")"});
  for (const auto& c : cases) {
    const auto p = path(std::string(c.name) + ".safetensors");
    write_bytes(p, c.bytes);
    EXPECT_TRUE(load_fails(p, c.want)) << c.name;
  }
  EXPECT_TRUE(load_fails(path("does_not_exist"), "cannot open"));
  EXPECT_TRUE(load_fails(dir_, "not a regular file"));
}

// Every prefix of a valid file and single-byte corruptions of its header are either refused with a
// c10::Error or (for corruptions JSON tolerates, e.g. inside a name) load; nothing crashes. Each
// refusal costs a c10::Error backtrace, so the default run tries a few replacement bytes and the
// slow run all of them.
void check_corruptions(const std::string& dir, const std::string& replacements) {
  const auto p = dir + "/valid.safetensors";
  save_safetensors(
      p, {{"w", torch::randn({3, 4})}, {"b", torch::arange(5)}, {"m", torch::ones({2}, at::kBool)}},
      {{"k", "v"}});
  const std::string good = read_bytes(p);
  const auto q = dir + "/cut.safetensors";
  for (size_t len = 0; len < good.size(); ++len) {
    write_bytes(q, good.substr(0, len));
    EXPECT_THROW(load_safetensors(q), c10::Error) << "prefix of " << len << " bytes loaded";
  }
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) {
    n |= static_cast<uint64_t>(static_cast<unsigned char>(good[i])) << (8 * i);
  }
  for (size_t pos = 0; pos < 8 + n; ++pos) {
    for (char r : replacements) {
      if (good[pos] == r) continue;
      std::string bad = good;
      bad[pos] = r;
      write_bytes(q, bad);
      try {
        load_safetensors(q);
      } catch (const c10::Error&) {
      } catch (const std::exception& e) {
        ADD_FAILURE() << "byte " << pos << " -> " << int(r) << ": not a c10::Error: " << e.what();
      }
    }
  }
}

TEST_F(SafetensorsTest, TruncatedAndCorruptedFilesNeverCrash) {
  check_corruptions(dir_, std::string("9\"", 2));
}

TEST_F(SafetensorsTest, SlowEveryByteCorruptionNeverCrashes) {
  check_corruptions(dir_, std::string("\0\"{}[9-x,\xff", 10));
}

// ---- modules ---------------------------------------------------------------------------------

struct TinyImpl : torch::nn::Module {
  explicit TinyImpl(int64_t width, bool extra = false) {
    proj = register_module("proj", torch::nn::Linear(4, width));
    norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
    table = register_buffer("table", torch::randn({3, width}));
    steps = register_buffer("steps", torch::zeros({}, at::kLong));
    if (extra) register_parameter("extra", torch::zeros({2}));
  }
  torch::nn::Linear proj{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  at::Tensor table, steps;
};
TORCH_MODULE(Tiny);

std::map<std::string, at::Tensor> state_of(const torch::nn::Module& m) {
  std::map<std::string, at::Tensor> s;
  for (const auto& p : m.named_parameters()) s[p.key()] = p.value().detach().clone();
  for (const auto& b : m.named_buffers()) s[b.key()] = b.value().detach().clone();
  return s;
}

bool same_state(const std::map<std::string, at::Tensor>& a,
                const std::map<std::string, at::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [k, v] : a) {
    if (!b.count(k) || !torch::equal(v, b.at(k))) return false;
  }
  return true;
}

TEST_F(SafetensorsTest, ModuleRoundTrip) {
  torch::manual_seed(1);
  Tiny a(5), b(5);
  a->steps.fill_(42);
  ASSERT_FALSE(same_state(state_of(*a), state_of(*b)));
  const auto p = path("tiny.safetensors");
  save_module_safetensors(*a, p, {{"step", "42"}});
  std::map<std::string, std::string> meta;
  load_module_safetensors(*b, p, &meta);
  EXPECT_TRUE(same_state(state_of(*a), state_of(*b)));
  EXPECT_EQ(meta.at("step"), "42");
  EXPECT_EQ(meta.at("format"), "pt");
  EXPECT_TRUE(b->proj->weight.requires_grad());  // loaded in place, still a parameter
  // The names are LibTorch's dotted paths.
  std::set<std::string> names;
  for (const auto& [n, t] : load_safetensors(p)) names.insert(n);
  EXPECT_EQ(names, (std::set<std::string>{"proj.weight", "proj.bias", "norm.weight", "norm.bias",
                                          "table", "steps"}));
}

TEST_F(SafetensorsTest, ModuleMismatchIsRefusedAndLeavesModuleUnchanged) {
  torch::manual_seed(2);
  Tiny a(5);
  const auto p = path("tiny.safetensors");
  save_module_safetensors(*a, p);
  auto refused = [&](torch::nn::Module& m, const std::string& want) {
    const auto before = state_of(m);
    auto r = test::throws_with([&] { load_module_safetensors(m, p); }, want);
    EXPECT_TRUE(same_state(before, state_of(m))) << "module changed by a refused load";
    return r;
  };
  Tiny wider(6);
  EXPECT_TRUE(refused(*wider, "`proj.weight` has shape [5, 4] in the file, [6, 4] in the module"));
  Tiny extra(5, /*extra=*/true);
  EXPECT_TRUE(refused(*extra, "missing `extra`"));
  torch::nn::Linear lin(4, 5);
  EXPECT_TRUE(refused(*lin, "unexpected `table`"));
  Tiny dbl(5);
  dbl->to(at::kDouble);
  EXPECT_TRUE(refused(*dbl, "`proj.weight` has dtype Float in the file, Double in the module"));
  EXPECT_TRUE(refused(*dbl, p));
}

// Every registered mixer's weights and random buffers (features, rotations) survive a round trip:
// a differently seeded copy computes the same outputs after loading.
TEST_F(SafetensorsTest, EveryMixerRoundTrips) {
  MixerConfig cfg;
  cfg.dim = 16;
  cfg.heads = 2;
  cfg.max_len = 32;
  for (const auto& name : mixer_names()) {
    SCOPED_TRACE(name);
    torch::manual_seed(3);
    cfg.seed = 1;
    const auto opts = find_mixer(name).test_options();  // small mechanism options
    auto a = make_mixer(name, cfg, opts);
    torch::manual_seed(4);
    cfg.seed = 2;
    auto b = make_mixer(name, cfg, opts);
    a->eval();
    b->eval();
    const auto p = path(name + ".safetensors");
    save_module_safetensors(*a, p);
    load_module_safetensors(*b, p);
    EXPECT_TRUE(same_state(state_of(*a), state_of(*b)));
    const auto x = torch::randn({2, 32, 16});
    try {
      EXPECT_TRUE(torch::equal(a->forward(x), b->forward(x)));
    } catch (const c10::Error& e) {
      ADD_FAILURE() << name << " forward failed: " << e.what_without_backtrace();
    }
  }
}

// The real save path killed by the kernel part-way (RLIMIT_FSIZE raises SIGXFSZ at half the file):
// the previous checkpoint is untouched.
TEST_F(SafetensorsTest, SaveKilledByFileSizeLimitLeavesPreviousCheckpoint) {
  const auto p = path("ckpt.safetensors");
  save_safetensors(p, {{"w", torch::full({3}, 7.0)}});
  const std::string old_bytes = read_bytes(p);
  const auto big = big_checkpoint();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    rlimit fsize{4 << 20, 4 << 20};
    ::setrlimit(RLIMIT_FSIZE, &fsize);
    try {
      save_safetensors(p, big);
    } catch (...) {
      ::_exit(3);  // SIGXFSZ ignored: write() failed with EFBIG and the save threw
    }
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  const bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ;
  const bool threw = WIFEXITED(status) && WEXITSTATUS(status) == 3;
  EXPECT_TRUE(killed || threw) << "status " << status;
  EXPECT_EQ(read_bytes(p), old_bytes);
  EXPECT_TRUE(torch::equal(load_safetensors(p).at(0).second, torch::full({3}, 7.0)));
  if (threw) EXPECT_FALSE(fs::exists(p + ".tmp." + std::to_string(child)));
}

}  // namespace
}  // namespace longseq
