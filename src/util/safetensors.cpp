// safetensors reader and writer (see longseq/safetensors.h). The rules follow the format's README
// and its reference implementation (huggingface/safetensors, safetensors/src/tensor.rs):
// - header length: u64 little-endian, at most 100'000'000 bytes;
// - the header is a JSON object; "__metadata__" maps strings to strings; every other key is a
//   tensor {"dtype", "shape", "data_offsets": [begin, end)} with offsets relative to the buffer;
// - sorted by offset, the tensors tile the buffer exactly: the first starts at 0, each starts where
//   the previous ended, the last ends at the end of the file; end - begin = numel · itemsize;
// - the writer sorts tensors by decreasing dtype alignment, then by name, writes compact JSON with
//   "__metadata__" first, and pads the header with spaces to a multiple of 8 bytes.
#include <longseq/atomic_file.h>
#include <longseq/safetensors.h>

#include "util/json_read.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <torch/nn/module.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <set>
#include <sstream>

namespace longseq {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
  int64_t itemsize;
  int rank;  // position in the reference Dtype enum (increasing alignment); orders the writer
};

// Reference enum order: BOOL U8 I8 F8_E5M2 F8_E4M3 I16 U16 F16 BF16 I32 U32 F32 F64 I64 U64.
constexpr DtypeInfo kDtypes[] = {
    {"BOOL", at::kBool, 1, 0}, {"U8", at::kByte, 1, 1},    {"I8", at::kChar, 1, 2},
    {"I16", at::kShort, 2, 5}, {"F16", at::kHalf, 2, 7},   {"BF16", at::kBFloat16, 2, 8},
    {"I32", at::kInt, 4, 9},   {"F32", at::kFloat, 4, 11}, {"F64", at::kDouble, 8, 12},
    {"I64", at::kLong, 8, 13},
};
// Valid in the format but without a LibTorch 1.13 dtype; named in the error so a user knows the
// file is not corrupt.
constexpr const char* kUnsupportedDtypes[] = {"U16", "U32", "U64", "F8_E5M2", "F8_E4M3"};

const DtypeInfo* dtype_by_type(at::ScalarType t) {
  for (const auto& d : kDtypes) {
    if (d.type == t) return &d;
  }
  return nullptr;
}

const DtypeInfo* dtype_by_name(const std::string& s) {
  for (const auto& d : kDtypes) {
    if (s == d.name) return &d;
  }
  return nullptr;
}

std::string supported_dtype_list() {
  std::string out;
  for (const auto& d : kDtypes) out += std::string(out.empty() ? "" : ", ") + d.name;
  return out;
}

bool host_is_little_endian() {
  const uint16_t one = 1;
  unsigned char first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

std::string errno_text(int err) {
  return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")";
}

struct FileCloser {
  int fd;
  ~FileCloser() {
    if (fd >= 0) ::close(fd);
  }
};

// Reads exactly n bytes at offset; false on a short read (the file shrank) with errno 0.
bool pread_all(int fd, void* dst, size_t n, uint64_t offset, int* err) {
  auto* p = static_cast<char*>(dst);
  *err = 0;
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return false;
    }
    if (r == 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
  return true;
}

struct Entry {
  std::string name;
  const DtypeInfo* dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

// Longest array a valid header holds: a shape (LibTorch allows 64 dims) or data_offsets (2).
constexpr int64_t kMaxHeaderArray = 64;

// Parses the header in one linear pass: duplicate keys at any level refused (nlohmann keeps the
// last silently; the format forbids duplicates), nesting beyond the format's 3 levels and arrays
// longer than a shape refused before they are built, so a hostile header costs neither stack nor
// memory.
nlohmann::json parse_header(const std::string& text, const std::string& where) {
  JsonLimits limits;
  limits.max_depth = 3;  // {"name": {"shape": [..]}}
  limits.max_array = kMaxHeaderArray;
  nlohmann::json header = parse_json_strict(text, where + "header: ", limits);
  TORCH_CHECK(header.is_object(), where, "header must be a JSON object, got ", header.type_name());
  return header;
}

// A JSON value for an error message: scalars and short flat arrays verbatim, anything else by
// type (dumping is recursive, and a hostile header may nest arrays millions deep).
std::string brief(const nlohmann::json& v) {
  if (v.is_primitive()) return v.dump();
  if (v.is_array() && v.size() <= 16 &&
      std::all_of(v.begin(), v.end(), [](const nlohmann::json& x) { return x.is_primitive(); })) {
    return v.dump();
  }
  return std::string("<") + v.type_name() + " of " + std::to_string(v.size()) + ">";
}

// A JSON value that must be a non-negative integer fitting int64 (sizes, offsets).
bool as_count(const nlohmann::json& v, uint64_t* out) {
  if (!v.is_number_unsigned()) return false;
  const uint64_t x = v.get<uint64_t>();
  if (x > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
  *out = x;
  return true;
}

Entry parse_entry(const std::string& name, const nlohmann::json& v, const std::string& where) {
  const std::string what = where + "tensor \"" + name + "\": ";
  TORCH_CHECK(v.is_object(), what, "expected an object {dtype, shape, data_offsets}, got ",
              v.type_name());
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    TORCH_CHECK(v.contains(field), what, "missing field \"", field, "\"");
  }
  Entry e;
  e.name = name;
  const auto& dt = v["dtype"];
  TORCH_CHECK(dt.is_string(), what, "\"dtype\" must be a string, got ", brief(dt));
  const auto& dts = dt.get_ref<const std::string&>();
  e.dtype = dtype_by_name(dts);
  if (e.dtype == nullptr) {
    const bool known = std::any_of(std::begin(kUnsupportedDtypes), std::end(kUnsupportedDtypes),
                                   [&](const char* s) { return dts == s; });
    TORCH_CHECK(false, what,
                known ? "dtype \"" + dts + "\" is not supported by longseq"
                      : "unknown dtype \"" + dts + "\"",
                " (supported: ", supported_dtype_list(), ")");
  }
  const auto& shape = v["shape"];
  TORCH_CHECK(shape.is_array(), what, "\"shape\" must be an array, got ", brief(shape));
  // numel and the largest contiguous stride must fit int64 (LibTorch computes both).
  uint64_t numel = 1, span = 1;
  for (const auto& d : shape) {
    uint64_t n = 0;
    TORCH_CHECK(as_count(d, &n), what, "shape ", brief(shape),
                " must hold non-negative integers, got ", brief(d));
    TORCH_CHECK(!__builtin_mul_overflow(numel, n, &numel) &&
                    !__builtin_mul_overflow(span, std::max<uint64_t>(n, 1), &span) &&
                    span <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                what, "shape ", brief(shape), " is too large");
    e.shape.push_back(static_cast<int64_t>(n));
  }
  const auto& off = v["data_offsets"];
  TORCH_CHECK(
      off.is_array() && off.size() == 2 && as_count(off[0], &e.begin) && as_count(off[1], &e.end),
      what, "\"data_offsets\" must be [begin, end] with non-negative integers, got ", brief(off));
  TORCH_CHECK(e.end >= e.begin, what, "data_offsets [", e.begin, ", ", e.end, "] end before begin");
  uint64_t nbytes = 0;
  TORCH_CHECK(!__builtin_mul_overflow(numel, static_cast<uint64_t>(e.dtype->itemsize), &nbytes),
              what, "shape ", brief(shape), " is too large");
  TORCH_CHECK(nbytes == e.end - e.begin, what, "shape ", brief(shape), " of ", e.dtype->name,
              " needs ", nbytes, " bytes but data_offsets [", e.begin, ", ", e.end, "] hold ",
              e.end - e.begin);
  return e;
}

}  // namespace

void write_safetensors(std::ostream& os, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  TORCH_CHECK(host_is_little_endian(), "write_safetensors: big-endian hosts are not supported");
  auto meta_it = metadata.find("format");
  TORCH_CHECK(meta_it == metadata.end() || meta_it->second == "pt",
              "write_safetensors: metadata key `format` is reserved for \"pt\", got \"",
              meta_it == metadata.end() ? "" : meta_it->second, "\"");
  struct Item {
    const std::string* name;
    const at::Tensor* tensor;
    const DtypeInfo* dtype;
  };
  std::vector<Item> items;
  std::set<std::string> seen;
  for (const auto& [name, t] : tensors) {
    TORCH_CHECK(name != "__metadata__",
                "write_safetensors: tensor name `__metadata__` is reserved");
    TORCH_CHECK(seen.insert(name).second, "write_safetensors: duplicate tensor name `", name, "`");
    TORCH_CHECK(t.defined(), "write_safetensors: tensor `", name, "` is undefined");
    const DtypeInfo* d = dtype_by_type(t.scalar_type());
    TORCH_CHECK(d != nullptr, "write_safetensors: tensor `", name, "` has unsupported dtype ",
                t.scalar_type(), " (supported: ", supported_dtype_list(), ")");
    TORCH_CHECK(t.dim() <= kMaxHeaderArray, "write_safetensors: tensor `", name, "` has ", t.dim(),
                " dimensions, more than the ", kMaxHeaderArray, " a header may hold");
    items.push_back({&name, &t, d});
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    if (a.dtype->rank != b.dtype->rank) return a.dtype->rank > b.dtype->rank;
    return *a.name < *b.name;
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  std::map<std::string, std::string> meta = metadata;
  meta["format"] = "pt";
  header["__metadata__"] = nlohmann::ordered_json::object();
  for (const auto& [k, v] : meta) header["__metadata__"][k] = v;
  uint64_t offset = 0;
  for (const auto& it : items) {
    const uint64_t nbytes = static_cast<uint64_t>(it.tensor->numel()) * it.dtype->itemsize;
    header[*it.name] = {{"dtype", it.dtype->name},
                        {"shape", it.tensor->sizes().vec()},
                        {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(
        false, "write_safetensors: a tensor name or metadata entry is not valid UTF-8: ", e.what());
  }
  // Never write what load_safetensors would refuse.
  TORCH_CHECK(text.size() <= kMaxHeaderBytes, "write_safetensors: the header would be ",
              text.size(), " bytes, above the readers' limit of ", kMaxHeaderBytes);
  text.append((8 - text.size() % 8) % 8, ' ');
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(uint64_t{text.size()} >> (8 * i));
  os.write(reinterpret_cast<const char*>(len), 8);
  os.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& it : items) {
    const at::Tensor t = it.tensor->detach().to(at::kCPU).contiguous();
    const auto nbytes = static_cast<std::streamsize>(t.numel() * it.dtype->itemsize);
    if (nbytes > 0) os.write(static_cast<const char*>(t.data_ptr()), nbytes);
  }
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, [&](std::ostream& os) { write_safetensors(os, tensors, metadata); });
}

NamedTensors load_safetensors(const std::string& path,
                              std::map<std::string, std::string>* metadata) {
  const std::string where = "load_safetensors: `" + path + "`: ";
  TORCH_CHECK(host_is_little_endian(), where, "big-endian hosts are not supported");
  // O_NONBLOCK: a FIFO given as a checkpoint file must be refused, not wait for a writer (the
  // flag changes nothing for the regular files read below).
  FileCloser file{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (file.fd < 0) {
    const int err = errno;
    TORCH_CHECK(false, where, "cannot open: ", errno_text(err));
  }
  struct stat st {};
  TORCH_CHECK(::fstat(file.fd, &st) == 0, where, "cannot stat: ", errno_text(errno));
  TORCH_CHECK(S_ISREG(st.st_mode), where, "not a regular file");
  const auto size = static_cast<uint64_t>(st.st_size);
  TORCH_CHECK(
      size >= 8, where, "file is ", size,
      " bytes, shorter than the 8-byte header length (truncated or not a safetensors file)");
  int err = 0;
  unsigned char len[8];
  TORCH_CHECK(pread_all(file.fd, len, 8, 0, &err), where, "read failed: ", errno_text(err));
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(len[i]) << (8 * i);
  TORCH_CHECK(n <= kMaxHeaderBytes, where, "header length ", n, " is absurdly large (limit ",
              kMaxHeaderBytes, " bytes); not a safetensors file?");
  TORCH_CHECK(n <= size - 8, where, "header length ", n, " runs past the end of the file (", size,
              " bytes; truncated?)");
  std::string text(n, '\0');
  TORCH_CHECK(pread_all(file.fd, text.data(), n, 8, &err), where,
              "read failed: ", err ? errno_text(err) : std::string("file shrank while reading"));
  const nlohmann::json header = parse_header(text, where);

  std::vector<Entry> entries;
  std::map<std::string, std::string> meta;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      TORCH_CHECK(value.is_object(), where, "\"__metadata__\" must be an object, got ",
                  value.type_name());
      for (const auto& [mk, mv] : value.items()) {
        TORCH_CHECK(mv.is_string(), where, "\"__metadata__\" value of \"", mk,
                    "\" must be a string, got ", brief(mv));
        meta[mk] = mv.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(key, value, where));
  }
  // Sorted by offset, the tensors must tile [0, buffer size) with no gap and no overlap.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  const Entry* prev = nullptr;
  for (const auto& e : entries) {
    if (e.begin < pos) {
      TORCH_CHECK(false, where, "tensor \"", e.name, "\" data_offsets [", e.begin, ", ", e.end,
                  "] overlap tensor \"", prev->name, "\" [", prev->begin, ", ", prev->end, "]");
    }
    TORCH_CHECK(e.begin == pos, where, "gap in the byte buffer: bytes [", pos, ", ", e.begin,
                ") belong to no tensor (next is \"", e.name,
                "\"); the format requires the "
                "buffer to be fully indexed");
    pos = e.end;
    prev = &e;
  }
  const uint64_t buffer = size - 8 - n;
  TORCH_CHECK(pos <= buffer, where, "truncated: the header indexes ", pos,
              " bytes of tensor data but the file holds ", buffer);
  TORCH_CHECK(pos == buffer, where, "the byte buffer has ", buffer, " bytes but the tensors cover ",
              pos, "; the format requires the buffer to be fully indexed");

  NamedTensors out;
  out.reserve(entries.size());
  for (const auto& e : entries) {
    at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.dtype->type));
    const uint64_t nbytes = e.end - e.begin;
    if (nbytes > 0) {
      TORCH_CHECK(pread_all(file.fd, t.data_ptr(), nbytes, 8 + n + e.begin, &err), where,
                  "reading tensor \"", e.name,
                  "\" failed: ", err ? errno_text(err) : std::string("file shrank while reading"));
    }
    if (e.dtype->type == at::kBool) {
      const auto* b = static_cast<const unsigned char*>(t.data_ptr());
      const bool ok = std::all_of(b, b + nbytes, [](unsigned char c) { return c <= 1; });
      TORCH_CHECK(ok, where, "tensor \"", e.name, "\": BOOL bytes must be 0 or 1");
    }
    out.emplace_back(e.name, std::move(t));
  }
  if (metadata != nullptr) *metadata = std::move(meta);
  return out;
}

void save_module_safetensors(const torch::nn::Module& module, const std::string& path,
                             const std::map<std::string, std::string>& metadata) {
  NamedTensors tensors;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    if (p.value().defined()) tensors.emplace_back(p.key(), p.value());
  }
  for (const auto& b : module.named_buffers(/*recurse=*/true)) {
    if (b.value().defined()) tensors.emplace_back(b.key(), b.value());
  }
  save_safetensors(path, tensors, metadata);
}

void load_module_safetensors(torch::nn::Module& module, const std::string& path,
                             std::map<std::string, std::string>* metadata) {
  std::map<std::string, std::string> meta;
  load_module_tensors(module, load_safetensors(path, &meta), path);
  if (metadata != nullptr) *metadata = std::move(meta);
}

void load_module_tensors(torch::nn::Module& module, const NamedTensors& loaded,
                         const std::string& path) {
  std::map<std::string, at::Tensor> want;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    if (p.value().defined()) want.emplace(p.key(), p.value());
  }
  for (const auto& b : module.named_buffers(/*recurse=*/true)) {
    if (b.value().defined()) want.emplace(b.key(), b.value());
  }
  std::map<std::string, const at::Tensor*> got;
  for (const auto& [name, t] : loaded) got.emplace(name, &t);

  std::vector<std::string> problems;
  for (const auto& [name, dst] : want) {
    auto it = got.find(name);
    if (it == got.end()) {
      problems.push_back("missing `" + name + "`");
      continue;
    }
    const at::Tensor& src = *it->second;
    std::ostringstream os;
    if (src.sizes() != dst.sizes()) {
      os << "`" << name << "` has shape " << src.sizes() << " in the file, " << dst.sizes()
         << " in the module";
      problems.push_back(os.str());
    } else if (src.scalar_type() != dst.scalar_type()) {
      os << "`" << name << "` has dtype " << src.scalar_type() << " in the file, "
         << dst.scalar_type() << " in the module";
      problems.push_back(os.str());
    }
  }
  for (const auto& [name, t] : got) {
    if (want.count(name) == 0) problems.push_back("unexpected `" + name + "`");
  }
  if (!problems.empty()) {
    std::string msg;
    const size_t shown = std::min<size_t>(problems.size(), 10);
    for (size_t i = 0; i < shown; ++i) msg += (i ? "; " : "") + problems[i];
    if (problems.size() > shown)
      msg += "; and " + std::to_string(problems.size() - shown) + " more";
    TORCH_CHECK(false, "load_module_safetensors: `", path, "` does not match the module (",
                problems.size(), " problem", problems.size() == 1 ? "" : "s", "): ", msg);
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, dst] : want) dst.copy_(*got.at(name));
}

}  // namespace longseq
