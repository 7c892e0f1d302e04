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

/// ds[c] ← p[c] · (ds[c] − d_i)   (the softmax backward dS = P ⊙ (dP − D_i)).
void ds_row(const float* p, float* ds, int64_t n, float d_i);
void ds_row(const double* p, double* ds, int64_t n, double d_i);

/// x[c] ← x[c] · a.
void scale_row(float* x, int64_t n, float a);
void scale_row(double* x, int64_t n, double a);

/// Σ_c x[c]·y[c].
float dot_row(const float* x, const float* y, int64_t n);
double dot_row(const double* x, const double* y, int64_t n);

}  // namespace longseq::cpu
