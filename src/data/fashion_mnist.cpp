// Sequential Fashion-MNIST (Xiao et al. 2017): each 28×28 image read as 784 pixels, one per step,
// from the IDX files Debian's dataset-fashion-mnist installs (gzip-compressed). Train = the
// training file less its last `valid_size` images, validation = those, test = the t10k file.
#include "data/task_impls.h"
#include "util/json_read.h"

#include <ATen/ATen.h>

#include <sys/stat.h>
#include <zlib.h>

#include <cmath>
#include <fstream>

namespace longseq::data {
namespace {

// Reads a whole .gz (or plain) file of at most `max_bytes` once decompressed (a gzip bomb stops
// there); a truncated or corrupt stream is an error. Errors name the file and the Debian package.
std::vector<uint8_t> read_gz(const std::string& path, size_t max_bytes) {
  struct stat st {};
  TORCH_CHECK(::stat(path.c_str(), &st) == 0, "fmnist: cannot open '", path,
              "'; install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) "
              "or set the task option `dir`");
  check_regular_file(path, "fmnist");
  gzFile f = gzopen(path.c_str(), "rb");
  TORCH_CHECK(f, "fmnist: cannot open '", path, "'");
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  int n;
  bool too_big = false;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) {
    if (out.size() + size_t(n) > max_bytes) {
      too_big = true;
      break;
    }
    out.insert(out.end(), buf, buf + n);
  }
  int errnum = Z_OK;
  const char* msg = gzerror(f, &errnum);
  const std::string why = msg ? msg : "";
  gzclose(f);
  TORCH_CHECK(!too_big, "fmnist: '", path, "' decompresses to more than ", max_bytes,
              " bytes, more than an IDX file of Fashion-MNIST holds");
  // A stream cut short (a lost trailer included) ends with Z_BUF_ERROR ("unexpected end of file").
  TORCH_CHECK(n == 0 && (errnum == Z_OK || errnum == Z_STREAM_END), "fmnist: '", path,
              "' is corrupt or truncated (gzip: ", why.empty() ? "read error" : why, ")");
  return out;
}

uint32_t be32(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t(b[at]) << 24) | (uint32_t(b[at + 1]) << 16) | (uint32_t(b[at + 2]) << 8) |
         b[at + 3];
}

// IDX: magic 0x00000803 (images: n, rows, cols) or 0x00000801 (labels: n), big-endian, then bytes.
at::Tensor read_idx(const std::string& path, bool images) {
  // The largest file of the set: 60000 images of 784 bytes and their 16-byte header.
  constexpr size_t kMaxItems = 60000;
  auto b = read_gz(path, images ? 16 + kMaxItems * 784 : 8 + kMaxItems);
  const size_t header = images ? 16 : 8;
  TORCH_CHECK(b.size() >= header, "fmnist: '", path, "' is too short for an IDX header");
  const uint32_t magic = be32(b, 0), n = be32(b, 4);
  TORCH_CHECK(magic == (images ? 0x803u : 0x801u), "fmnist: '", path, "' has IDX magic ", magic,
              ", expected ", images ? 0x803 : 0x801);
  // Both sizes are 32-bit: their product fits in 64 unsigned bits (a signed product could overflow).
  const uint64_t per64 = images ? uint64_t(be32(b, 8)) * be32(b, 12) : 1;
  TORCH_CHECK(!images || per64 == 784, "fmnist: '", path, "' holds images of ", per64,
              " pixels, expected 28x28");
  const int64_t per = static_cast<int64_t>(per64);
  TORCH_CHECK(b.size() == header + size_t(n) * per, "fmnist: '", path, "' holds ", b.size(),
              " bytes, but its header announces ", n, " items (", header + size_t(n) * per,
              " bytes)");
  auto t = at::empty({int64_t(n), per}, at::TensorOptions().dtype(at::kByte));
  if (n > 0) std::memcpy(t.data_ptr<uint8_t>(), b.data() + header, size_t(n) * per);
  if (images) return t;
  const int64_t top = n > 0 ? t.max().item<int64_t>() : 0;
  TORCH_CHECK(top < 10, "fmnist: '", path, "' holds label ", top,
              "; Fashion-MNIST has classes 0-9");
  return t.view({int64_t(n)});
}

// Images and labels of one split must pair up.
void check_pair(const std::string& dir, const char* split, const at::Tensor& x,
                const at::Tensor& y) {
  TORCH_CHECK(x.size(0) == y.size(0), "fmnist: the ", split, " files in '", dir,
              "' disagree: ", x.size(0), " images but ", y.size(0), " labels");
}

class FashionMnist : public Task {
 public:
  FashionMnist(const ResolvedOptions& o, uint64_t seed) : seed_(seed) {
    const std::string dir = o.get_string("dir");
    auto train_x = read_idx(dir + "/train-images-idx3-ubyte.gz", true);
    auto train_y = read_idx(dir + "/train-labels-idx1-ubyte.gz", false);
    test_x_ = read_idx(dir + "/t10k-images-idx3-ubyte.gz", true);
    test_y_ = read_idx(dir + "/t10k-labels-idx1-ubyte.gz", false);
    check_pair(dir, "training", train_x, train_y);
    check_pair(dir, "test", test_x_, test_y_);
    const int64_t n = train_x.size(0), valid = o.get_int("valid_size");
    check_range("fmnist", "valid_size", valid, 1, n - 1);
    train_x_ = train_x.narrow(0, 0, n - valid);
    train_y_ = train_y.narrow(0, 0, n - valid);
    valid_x_ = train_x.narrow(0, n - valid, valid);
    valid_y_ = train_y.narrow(0, n - valid, valid);
    info_.input_dim = 1;
    info_.num_outputs = 10;
    info_.head = "classify";
    info_.loss = "ce";
    info_.seq_len = 784;
    info_.baseline = std::log(10.0);
    info_.baseline_text = "uniform guessing over 10 classes (loss ln 10, accuracy 10%)";
    info_.train_size = n - valid;
    info_.valid_size = valid;
    info_.test_size = test_x_.size(0);
  }

  const TaskInfo& info() const override { return info_; }

  Batch batch(Split split, int64_t index, int64_t batch_size) const override {
    TORCH_CHECK(batch_size > 0 && index >= 0, "fmnist: bad batch request (index ", index, ", size ",
                batch_size, ")");
    const auto& x = split == Split::kTrain ? train_x_ : split == Split::kTest ? test_x_ : valid_x_;
    const auto& y = split == Split::kTrain ? train_y_ : split == Split::kTest ? test_y_ : valid_y_;
    const int64_t size = x.size(0);
    at::Tensor ids;
    if (split == Split::kTrain) {
      auto p = at::arange(index * batch_size, (index + 1) * batch_size, at::kLong);
      const int64_t first = index * batch_size / size, last = ((index + 1) * batch_size - 1) / size;
      std::vector<at::Tensor> parts;
      for (int64_t e = first; e <= last; ++e) {  // a fresh shuffle each epoch
        auto gen = generator_for(seed_, Split::kTrain, -1 - e);
        auto perm = at::randperm(size, gen, at::TensorOptions().dtype(at::kLong));
        auto in_epoch = p.masked_select(p.div(size, "floor").eq(e));
        parts.push_back(perm.index_select(0, in_epoch.remainder(size)));
      }
      ids = at::cat(parts);
    } else {
      TORCH_CHECK(index * batch_size < size, "fmnist: ", split_name(split), " batch ", index,
                  " starts past the split's ", size, " images");
      ids = at::arange(index * batch_size, std::min(size, (index + 1) * batch_size), at::kLong);
    }
    auto pixels = x.index_select(0, ids).to(at::kFloat).div_(255.0).unsqueeze(-1);  // [B, 784, 1]
    return {pixels, y.index_select(0, ids).to(at::kLong), {}, {}};
  }

 private:
  TaskInfo info_;
  uint64_t seed_;
  at::Tensor train_x_, train_y_, valid_x_, valid_y_, test_x_, test_y_;
};

}  // namespace

std::unique_ptr<Task> make_fashion_mnist(const ResolvedOptions& o, uint64_t seed) {
  return std::make_unique<FashionMnist>(o, seed);
}

}  // namespace longseq::data
