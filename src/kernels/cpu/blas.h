#pragma once
// Row-major BLAS GEMM for the CPU kernels (OpenBLAS cblas), float and double.
//
// Threads. The kernels call gemm() on small blocks, from inside at::parallel_for or from a
// sequential loop (a recurrence's per-step GEMM, or a parallel_for that runs inline), and each such
// call must run on the calling thread alone: a team forked per block GEMM measured ~400× slower
// than one thread on this loaded 2-core machine, and 30× (forward of an LSTM, T = 512, B = 8)
// when another process held the second core. OpenBLAS's OpenMP build sizes its team at every call
// from the calling thread's omp_get_max_threads() (and runs single-threaded inside a parallel
// region); its pthread build from openblas_set_num_threads(). So gemm() sets the calling thread's
// OpenMP thread count to 1 for the call outside parallel regions (an ICV write, no locking), and
// BlasSingleThread keeps the pthread build's own count at 1 for a kernel's scope.
// gemm_fixed_blocks() is for the few large GEMMs that should use every thread.

#include <ATen/Parallel.h>
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace longseq::cpu {

namespace detail {

inline void call(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}
inline void call(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                 int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

// The calling thread's OpenMP thread count is 1 for a scope (outside parallel regions).
class SerialOmpScope {
 public:
  SerialOmpScope() : prev_(omp_in_parallel() ? 1 : omp_get_max_threads()) {
    if (prev_ > 1) omp_set_num_threads(1);
  }
  ~SerialOmpScope() {
    if (prev_ > 1) omp_set_num_threads(prev_);
  }
  SerialOmpScope(const SerialOmpScope&) = delete;
  SerialOmpScope& operator=(const SerialOmpScope&) = delete;

 private:
  int prev_;
};

}  // namespace detail

/// C = alpha·op(A)·op(B) + beta·C, row-major, on the calling thread only.
template <typename scalar_t>
inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, scalar_t alpha,
                 const scalar_t* a, int64_t lda, const scalar_t* b, int64_t ldb, scalar_t beta,
                 scalar_t* c, int64_t ldc) {
  detail::SerialOmpScope serial;
  detail::call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/// The same for one large product over every thread, with results that do not depend on the
/// thread count: C's rows in kFixedRowBlocks blocks (set by the shape alone, multiples of 16 rows),
/// one single-threaded GEMM per block under at::parallel_for. OpenBLAS's own threads split C by
/// the thread count instead, and how its kernels round a row can depend on where the row falls in
/// a thread's share: with the Haswell core on Zen 5 (family 26), dW_hh of an RNN at H = 260
/// differed in its last bits between 1, 2 and 3 threads (tests/ops/test_rnn.cpp). Each block packs
/// op(B) anew, a few percent of a product this large. Call outside any BlasSingleThread scope.
constexpr int64_t kFixedRowBlocks = 4;
template <typename scalar_t>
inline void gemm_fixed_blocks(bool ta, bool tb, int64_t m, int64_t n, int64_t k, scalar_t alpha,
                              const scalar_t* a, int64_t lda, const scalar_t* b, int64_t ldb,
                              scalar_t beta, scalar_t* c, int64_t ldc) {
  const int64_t rows = std::max<int64_t>(16, (m + 16 * kFixedRowBlocks - 1) /
                                                 (16 * kFixedRowBlocks) * 16);
  const int64_t blocks = (m + rows - 1) / rows;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t i0 = blk * rows, mb = std::min(rows, m - i0);
      gemm(ta, tb, mb, n, k, alpha, ta ? a + i0 : a + i0 * lda, lda, b, ldb, beta, c + i0 * ldc,
           ldc);
    }
  });
}

/// OpenBLAS's AVX-512 cores (SkylakeX, Cooperlake) multiply small products without packing their
/// operands: a row-major call takes that path when M·N·K ≤ kSmallGemmVolume and, with B
/// transposed, also M·N ≤ kSmallGemmTransposedArea (measured with cblas alone, OpenBLAS 0.3.21,
/// docs/performance.md "The small-matrix path"). The kernels size their block GEMMs by these.
constexpr int64_t kSmallGemmVolume = 1000000;
constexpr int64_t kSmallGemmTransposedArea = 1200;

/// C = A·op(B) for a few rows m against a weight of n output columns (a recurrence's per-step
/// GEMM), on the calling thread, as column blocks of C within the small-matrix limits above. One
/// call over the whole weight packs all of it at every step instead. Measured on Zen 4 with the Cooperlake core, one thread, k = 256,
/// n = 1024: m = 4 rows 29 GFLOP/s whole, 95 in blocks of 256 (B transposed); m = 8, B plain,
/// k = 1024, n = 256: 55 whole, 114 in blocks of 64. Elsewhere the blocks cost a few calls per
/// step. The blocks follow the shape alone, so results do not depend on the thread count.
template <typename scalar_t>
inline void gemm_rows(bool tb, int64_t m, int64_t n, int64_t k, const scalar_t* a, int64_t lda,
                      const scalar_t* b, int64_t ldb, scalar_t* c, int64_t ldc) {
  int64_t nb = n;
  if (m > 0 && k > 0) {
    // The largest power of two within the limits, at least 16; all n when they allow it.
    auto fits = [&](int64_t cols) {
      return m * cols * k <= kSmallGemmVolume && (!tb || m * cols <= kSmallGemmTransposedArea);
    };
    nb = 16;
    while (nb * 2 < n && fits(nb * 2)) nb *= 2;
    if (nb * 2 >= n && fits(n)) nb = n;
  }
  detail::SerialOmpScope serial;
  for (int64_t j0 = 0; j0 < n; j0 += nb) {
    const scalar_t* bj = tb ? b + j0 * ldb : b + j0;
    detail::call(false, tb, m, std::min(nb, n - j0), k, scalar_t(1), a, lda, bj, ldb, scalar_t(0),
                 c + j0, ldc);
  }
}

/// Rows per block for a kernel that runs a plain (or Aᵀ) GEMM of rows × n × k per block: the most,
/// up to 256 and down to 16 by halving, that keep rows·n·k within kSmallGemmVolume; `fallback`
/// where even 16 rows exceed it. Shape-only, as the blocks must be.
inline int64_t small_gemm_rows(int64_t n, int64_t k, int64_t fallback) {
  int64_t rows = 256;
  while (rows > 16 && rows * n * k > kSmallGemmVolume) rows /= 2;
  return rows * n * k > kSmallGemmVolume ? fallback : rows;
}

/// Operands for those plain products: dst[c·ldd + i] ← src[i·src_stride + c] for n rows of e
/// columns, i.e. the rows as the columns of an [e, ldd] matrix.
template <typename scalar_t>
inline void transpose_rows(const scalar_t* src, int64_t n, int64_t e, int64_t src_stride,
                           scalar_t* dst, int64_t ldd) {
  for (int64_t i = 0; i < n; ++i) {
    const scalar_t* row = src + i * src_stride;
    for (int64_t c = 0; c < e; ++c) dst[c * ldd + i] = row[c];
  }
}

/// Row stride for a transposed operand of n columns that block GEMMs read a few rows at a time: n
/// rounded up to 16, plus 16, so that the rows (a power-of-two stride apart otherwise) do not all
/// fall into the same cache sets. Measured in flash attention at S = 4096: fwd+bwd 377 / 364 →
/// 352 / 353 ms; the longformer kernel without it was slower than without the transpose.
inline int64_t padded_stride(int64_t n) { return (n + 15) / 16 * 16 + 16; }

/// Keeps OpenBLAS's own thread count at 1 for a scope in its pthread build, and restores it
/// afterwards. A no-op in the OpenMP build, where gemm() already runs on the calling thread and
/// openblas_set_num_threads() would write the caller's OpenMP count: saving that count before
/// LibTorch's lazy per-thread initialisation (inside the kernel's first parallel_for) and
/// restoring it after undid LibTorch's setting, so a process's first recurrence ran with another
/// thread count than every later one (docs/design.md, "Determinism").
class BlasSingleThread {
 public:
  BlasSingleThread()
      : active_(openblas_get_parallel() == 1),
        blas_prev_(active_ ? openblas_get_num_threads() : 1) {
    if (blas_prev_ != 1) openblas_set_num_threads(1);
  }
  ~BlasSingleThread() {
    if (blas_prev_ != 1) openblas_set_num_threads(blas_prev_);
  }
  BlasSingleThread(const BlasSingleThread&) = delete;
  BlasSingleThread& operator=(const BlasSingleThread&) = delete;

 private:
  bool active_;
  int blas_prev_;
};

}  // namespace longseq::cpu
