// Small valid Fashion-MNIST IDX files for fuzz_idx and make_corpora.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace longseq_fuzz {

inline void put_be32(std::string& s, uint32_t v) {
  for (int sh = 24; sh >= 0; sh -= 8) s.push_back(static_cast<char>((v >> sh) & 0xff));
}

// IDX images: magic 0x00000803, n, 28, 28, then n*784 pixel bytes.
inline std::string idx_images(uint32_t n, uint32_t seed) {
  std::string s;
  put_be32(s, 0x00000803);
  put_be32(s, n);
  put_be32(s, 28);
  put_be32(s, 28);
  for (uint32_t i = 0; i < n * 784; ++i) s.push_back(static_cast<char>((i * 31 + seed * 7) & 0xff));
  return s;
}

// IDX labels: magic 0x00000801, n, then n bytes < 10.
inline std::string idx_labels(uint32_t n, uint32_t seed) {
  std::string s;
  put_be32(s, 0x00000801);
  put_be32(s, n);
  for (uint32_t i = 0; i < n; ++i) s.push_back(static_cast<char>((i + seed) % 10));
  return s;
}

inline void write_gz(const std::string& path, const void* data, size_t size) {
  gzFile f = gzopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size > 0 && gzwrite(f, data, static_cast<unsigned>(size)) != static_cast<int>(size))
    std::abort();
  if (gzclose(f) != Z_OK) std::abort();
}

inline const char* const kIdxFiles[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};

// The valid content of file `i` (kIdxFiles order): 3 training and 2 test images.
inline std::string idx_valid(int i) {
  switch (i) {
    case 0: return idx_images(3, 1);
    case 1: return idx_labels(3, 1);
    case 2: return idx_images(2, 2);
    default: return idx_labels(2, 2);
  }
}

}  // namespace longseq_fuzz
