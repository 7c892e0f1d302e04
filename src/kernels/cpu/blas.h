#pragma once
// Row-major BLAS GEMM for the CPU kernels (OpenBLAS cblas), float and double, and a scope that
// keeps OpenBLAS on one thread (see flash_attention.cpp for why the attention kernel needs it).

#include <cblas.h>
#include <omp.h>

#include <cstdint>

namespace longseq::cpu {

// C = alpha·op(A)·op(B) + beta·C, row-major.
inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}
inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                 int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

// Keeps OpenBLAS single-threaded for a scope.
class BlasSingleThread {
 public:
  BlasSingleThread() : blas_prev_(openblas_get_num_threads()), omp_prev_(omp_get_max_threads()) {
    if (blas_prev_ != 1) {
      openblas_set_num_threads(1);
      omp_set_num_threads(omp_prev_);
    }
  }
  ~BlasSingleThread() {
    if (blas_prev_ != 1) {
      openblas_set_num_threads(blas_prev_);
      omp_set_num_threads(omp_prev_);
    }
  }
  BlasSingleThread(const BlasSingleThread&) = delete;
  BlasSingleThread& operator=(const BlasSingleThread&) = delete;

 private:
  int blas_prev_, omp_prev_;
};

}  // namespace longseq::cpu
