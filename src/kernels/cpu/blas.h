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
// BlasSingleThread keeps the pthread build's own count at 1 for a kernel's scope. gemm_threaded()
// is for the few large GEMMs that should use every thread.

#include <cblas.h>
#include <omp.h>

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

/// The same with OpenBLAS's own threads (call outside any BlasSingleThread scope).
template <typename scalar_t>
inline void gemm_threaded(bool ta, bool tb, int64_t m, int64_t n, int64_t k, scalar_t alpha,
                          const scalar_t* a, int64_t lda, const scalar_t* b, int64_t ldb,
                          scalar_t beta, scalar_t* c, int64_t ldc) {
  detail::call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

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
