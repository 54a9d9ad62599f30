// Portable CSR micro-kernels, batch tile 16: plain loops over a fixed-size
// accumulator that the x86-64-v2 compiler keeps in four SSE registers. The
// fallback every CPU runs, and the shape the SIMD variants follow.
#include "sparse_internal.h"

namespace np {

namespace {

constexpr int kTile = 16;

void spmm_row(int64_t nnz, const float* vals, const int32_t* idx, const float* x,
                                    int64_t ldx, float beta, float* y, int n) {
  float acc[kTile] = {};
  if (n == kTile) {
    for (int64_t k = 0; k < nnz; ++k) {
      const float w = vals[k];
      const float* xr = x + static_cast<int64_t>(idx[k]) * ldx;
      for (int j = 0; j < kTile; ++j) acc[j] += w * xr[j];
    }
  } else {
    for (int64_t k = 0; k < nnz; ++k) {
      const float w = vals[k];
      const float* xr = x + static_cast<int64_t>(idx[k]) * ldx;
      for (int j = 0; j < n; ++j) acc[j] += w * xr[j];
    }
  }
  if (beta == 0.0f) {
    for (int j = 0; j < n; ++j) y[j] = acc[j];
  } else {
    for (int j = 0; j < n; ++j) y[j] = beta * y[j] + acc[j];
  }
}

void spmm_t_row(int64_t nnz, const float* vals, const int32_t* idx, const float* dy,
                                      float* dx, int64_t lddx, int n) {
  float d[kTile] = {};
  for (int j = 0; j < n; ++j) d[j] = dy[j];
  for (int64_t k = 0; k < nnz; ++k) {
    const float w = vals[k];
    float* p = dx + static_cast<int64_t>(idx[k]) * lddx;
    if (n == kTile) {
      for (int j = 0; j < kTile; ++j) p[j] += w * d[j];
    } else {
      for (int j = 0; j < n; ++j) p[j] += w * d[j];
    }
  }
}

void sddmm_row(int64_t nnz, const int32_t* idx, const float* dy, const float* x,
                                     int64_t ldx, float beta, float* out, int n) {
  float d[kTile] = {};
  for (int j = 0; j < n; ++j) d[j] = dy[j];
  for (int64_t k = 0; k < nnz; ++k) {
    const float* xr = x + static_cast<int64_t>(idx[k]) * ldx;
    // Four partial sums: the order the SSE code adds in, written out so the
    // compiler may vectorise without -ffast-math.
    float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    int j = 0;
    for (; j + 4 <= n; j += 4)
      for (int l = 0; l < 4; ++l) part[l] += d[j + l] * xr[j + l];
    for (; j < n; ++j) part[j & 3] += d[j] * xr[j];
    const float s = (part[0] + part[2]) + (part[1] + part[3]);
    out[k] = beta == 0.0f ? s : beta * out[k] + s;
  }
}

}  // namespace

void spmm_f32_csr_ukernel_16_scalar(const CsrBlock& b, const float* x, int64_t ldx, float beta, float* y,
                                    int64_t ldy, int n) {
  for_each_block_row(b, beta == 1.0f, csr_block_run, [&](int64_t r, int64_t s, int64_t e) NP_INLINE_LAMBDA {
    spmm_row(e - s, b.values + s, b.indices + s, x, ldx, beta, y + r * ldy, n);
  });
}

void spmm_t_f32_csr_ukernel_16_scalar(const CsrBlock& b, const float* dy, int64_t lddy, float* dx, int64_t lddx,
                                      int n) {
  for_each_block_row(b, true, csr_block_run, [&](int64_t r, int64_t s, int64_t e) NP_INLINE_LAMBDA {
    spmm_t_row(e - s, b.values + s, b.indices + s, dy + r * lddy, dx, lddx, n);
  });
}

void sddmm_f32_csr_ukernel_16_scalar(const CsrBlock& b, const float* dy, int64_t lddy, const float* x, int64_t ldx,
                                     float beta, float* grad, int n) {
  for_each_block_row(b, true, csr_block_run, [&](int64_t r, int64_t s, int64_t e) NP_INLINE_LAMBDA {
    sddmm_row(e - s, b.indices + s, dy + r * lddy, x, ldx, beta, grad + s, n);
  });
}

const SparseKernel& sparse_kernel_scalar() {
  static const SparseKernel kernel = {"scalar", SimdLevel::kScalar, kTile, spmm_f32_csr_ukernel_16_scalar,
                                      spmm_t_f32_csr_ukernel_16_scalar, sddmm_f32_csr_ukernel_16_scalar};
  return kernel;
}

}  // namespace np
