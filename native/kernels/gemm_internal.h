// The pieces of the BLIS-style GEMM shared between the blocked loops
// (gemm.cpp) and the per-ISA files (gemm_scalar/avx2/avx512.cpp).
//
// Packed layouts (both zero-padded to whole panels, so a micro-kernel always
// runs full MR x NR arithmetic and only its stores see the edge):
//   A block  mc x kc: panels of MR rows; panel q at a + q*MR*kc, element (r, p)
//            at [p*MR + r], so one k step reads MR consecutive floats.
//   B block  kc x nc: panels of NR columns; panel q at b + q*NR*kc, element
//            (p, c) at [p*NR + c], so one k step reads NR consecutive floats.
#pragma once

#include <cstdint>

#include "gemm.h"

namespace np {

// c[mr x nr] (row stride ldc) = beta * c + A_panel * B_panel over kc steps, for
// 1 <= mr <= MR and 1 <= nr <= NR. beta == 0 never reads c.
using GemmUkernelFn = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                               int mr, int nr, float beta);

// Packs op(A)[i0 : i0+mc, p0 : p0+kc] into out (ceil(mc/MR) panels).
using GemmPackAFn = void (*)(Trans trans, const float* a, int64_t lda, int64_t i0, int64_t mc,
                             int64_t p0, int64_t kc, float* out);

// Packs op(B)[p0 : p0+kc, j0 : j0+nc] into out (ceil(nc/NR) panels).
using GemmPackBFn = void (*)(Trans trans, const float* b, int64_t ldb, int64_t p0, int64_t kc,
                             int64_t j0, int64_t nc, float* out);

struct GemmKernel {
  const char* name;  // gemm_f32_ukernel_<MR>x<NR>_<isa>
  SimdLevel level;
  int mr, nr;
  // Cache blocking: kc k-steps per packed block, mc rows of A per block (a
  // multiple of mr), nc columns of B per block (a multiple of nr).
  int64_t kc, mc, nc;
  GemmUkernelFn ukernel;
  GemmPackAFn pack_a;
  GemmPackBFn pack_b;
  // True when the micro-kernel runs short tiles (mr < MR) at full speed per
  // row: the loops then spread rows evenly over tiles (128 rows as 8x13 +
  // 2x12, not 9x14 + 2) instead of leaving one thin, slow edge tile.
  bool balanced_rows;
};

#define NP_GEMM_KERNEL(isa, level, MR, NR)                                                             \
  void gemm_f32_ukernel_##MR##x##NR##_##isa(int64_t kc, const float* a, const float* b, float* c,      \
                                            int64_t ldc, int mr, int nr, float beta);                  \
  const GemmKernel& gemm_kernel_##isa();
#include "kernels.inc"
#undef NP_GEMM_KERNEL

// The descriptor for a level (the best registered one not above it).
const GemmKernel& gemm_kernel_for(SimdLevel level);

// gemm_f32 with an explicit descriptor: the bench uses it to try other cache
// blockings (a copy of a registered kernel with kc/mc/nc changed).
void gemm_f32_with(const GemmKernel& kernel, Trans trans_a, Trans trans_b, int64_t m, int64_t n,
                   int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                   float* c, int64_t ldc, ThreadPool* pool);

// Generic packing, templated on the tile so each ISA file instantiates it with
// its own compiler flags (the copies vectorise to that ISA).
template <int MR>
void gemm_pack_a_generic(Trans trans, const float* a, int64_t lda, int64_t i0, int64_t mc,
                         int64_t p0, int64_t kc, float* out) {
  for (int64_t ir = 0; ir < mc; ir += MR) {
    const int mr = mc - ir < MR ? static_cast<int>(mc - ir) : MR;
    float* dst = out + ir * kc;
    if (trans == Trans::kNo) {
      // op(A)(i, p) = a[i*lda + p]: read each row contiguously, write strided.
      for (int r = 0; r < mr; ++r) {
        const float* src = a + (i0 + ir + r) * lda + p0;
        for (int64_t p = 0; p < kc; ++p) dst[p * MR + r] = src[p];
      }
      for (int r = mr; r < MR; ++r)
        for (int64_t p = 0; p < kc; ++p) dst[p * MR + r] = 0.0f;
    } else {
      // op(A)(i, p) = a[p*lda + i]: one k step is a contiguous run of rows.
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = a + (p0 + p) * lda + i0 + ir;
        float* d = dst + p * MR;
        int r = 0;
        for (; r < mr; ++r) d[r] = src[r];
        for (; r < MR; ++r) d[r] = 0.0f;
      }
    }
  }
}

template <int NR>
void gemm_pack_b_generic(Trans trans, const float* b, int64_t ldb, int64_t p0, int64_t kc,
                         int64_t j0, int64_t nc, float* out) {
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int nr = nc - jr < NR ? static_cast<int>(nc - jr) : NR;
    float* dst = out + jr * kc;
    if (trans == Trans::kNo) {
      // op(B)(p, j) = b[p*ldb + j]: one k step is a contiguous run of columns.
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = b + (p0 + p) * ldb + j0 + jr;
        float* d = dst + p * NR;
        int c = 0;
        for (; c < nr; ++c) d[c] = src[c];
        for (; c < NR; ++c) d[c] = 0.0f;
      }
    } else {
      // op(B)(p, j) = b[j*ldb + p]: read each stored row contiguously.
      for (int c = 0; c < nr; ++c) {
        const float* src = b + (j0 + jr + c) * ldb + p0;
        for (int64_t p = 0; p < kc; ++p) dst[p * NR + c] = src[p];
      }
      for (int c = nr; c < NR; ++c)
        for (int64_t p = 0; p < kc; ++p) dst[p * NR + c] = 0.0f;
    }
  }
}

// Adds a full MR x NR tile computed into tmp (row stride NR) into c, for the
// edge tiles of kernels that do not mask their stores.
template <int NR>
inline void gemm_store_tile_edge(const float* tmp, float* c, int64_t ldc, int mr, int nr, float beta) {
  for (int r = 0; r < mr; ++r) {
    float* cr = c + r * ldc;
    const float* t = tmp + r * NR;
    if (beta == 0.0f) {
      for (int j = 0; j < nr; ++j) cr[j] = t[j];
    } else {
      for (int j = 0; j < nr; ++j) cr[j] = beta * cr[j] + t[j];
    }
  }
}

}  // namespace np
