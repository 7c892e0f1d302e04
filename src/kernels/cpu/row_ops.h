#pragma once
// Row helpers of the softmax-attention kernels (flash, longformer, reformer), float and double.
// Float versions are runtime-dispatched clones (AVX-512F, AVX2, baseline); see vec_math.h.

#include <cstdint>

namespace longseq::cpu {

/// max_c x[c] (−inf for n = 0).
float row_max(const float* x, int64_t n);
double row_max(const double* x, int64_t n);

/// x[c] ← exp(x[c] − m); returns Σ_c x[c]. Entries at −inf become exactly 0.
float exp_row(float* x, int64_t n, float m);
double exp_row(double* x, int64_t n, double m);

/// x[c] ← exp(x[c] − m), without the sum (the backward passes' recomputed probabilities).
void exp_shift_row(float* x, int64_t n, float m);
void exp_shift_row(double* x, int64_t n, double m);

/// ds[c] ← p[c] · (ds[c] − d_i)   (the softmax backward dS = P ⊙ (dP − D_i)).
void ds_row(const float* p, float* ds, int64_t n, float d_i);
void ds_row(const double* p, double* ds, int64_t n, double d_i);

/// x[c] ← x[c] · a.
void scale_row(float* x, int64_t n, float a);
void scale_row(double* x, int64_t n, double a);

/// x[c] ← x[c] · exp(m[c] − ref).
void mul_exp_row(float* x, const float* m, float ref, int64_t n);
void mul_exp_row(double* x, const double* m, double ref, int64_t n);

/// y[c] ← y[c] + a · x[c].
void axpy_row(float* y, const float* x, float a, int64_t n);
void axpy_row(double* y, const double* x, double a, int64_t n);

/// y[c] ← y[c] + a[c] · x[c].
void mul_add_row(float* y, const float* a, const float* x, int64_t n);
void mul_add_row(double* y, const double* a, const double* x, int64_t n);

/// x[c] ← x[c] − b; returns min_c x[c] (+inf for n = 0).
float shift_row_min(float* x, int64_t n, float b);
double shift_row_min(double* x, int64_t n, double b);

/// out[c] ← x[c] · y[c]; returns Σ_c out[c].
float mul_row_sum(float* out, const float* x, const float* y, int64_t n);
double mul_row_sum(double* out, const double* x, const double* y, int64_t n);

/// x[c] ← max(x[c], 0) · a + b.
void relu_affine_row(float* x, int64_t n, float a, float b);
void relu_affine_row(double* x, int64_t n, double a, double b);

/// h[c] ← h[c] > 0 ? g[c] · a : 0   (relu's derivative times an incoming gradient).
void relu_grad_row(float* h, const float* g, int64_t n, float a);
void relu_grad_row(double* h, const double* g, int64_t n, double a);

/// Σ_c x[c].
float sum_row(const float* x, int64_t n);
double sum_row(const double* x, int64_t n);

/// Σ_c x[c]·y[c].
float dot_row(const float* x, const float* y, int64_t n);
double dot_row(const double* x, const double* y, int64_t n);

}  // namespace longseq::cpu
