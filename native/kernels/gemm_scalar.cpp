// The portable GEMM micro-kernel: plain C++ for the x86-64-v2 baseline (and
// any other architecture). The fixed 4x8 tile with compile-time trip counts is
// what lets the compiler keep the accumulators in SSE registers.
#include "gemm_internal.h"

namespace np {

namespace {
constexpr int kMr = 4;
constexpr int kNr = 8;

inline void tile_4x8(int64_t kc, const float* a, const float* b, float* out, int64_t ldo) {
  float acc[kMr][kNr] = {};
  for (int64_t p = 0; p < kc; ++p) {
    const float* ap = a + p * kMr;
    const float* bp = b + p * kNr;
    for (int r = 0; r < kMr; ++r)
      for (int j = 0; j < kNr; ++j) acc[r][j] += ap[r] * bp[j];
  }
  for (int r = 0; r < kMr; ++r)
    for (int j = 0; j < kNr; ++j) out[r * ldo + j] = acc[r][j];
}
}  // namespace

void gemm_f32_ukernel_4x8_scalar(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                 int mr, int nr, float beta) {
  // Always compute the whole tile (the packed panels are zero-padded) into a
  // temporary, then merge only the valid part: one code path for every edge.
  float tmp[kMr * kNr];
  tile_4x8(kc, a, b, tmp, kNr);
  gemm_store_tile_edge<kNr>(tmp, c, ldc, mr, nr, beta);
}

const GemmKernel& gemm_kernel_scalar() {
  // kc x nr of B (8 KB at kc=256) stays in L1 while the A block streams from L2.
  static const GemmKernel kernel = {"gemm_f32_ukernel_4x8_scalar", SimdLevel::kScalar, kMr, kNr,
                                    256, 128, 2048, gemm_f32_ukernel_4x8_scalar,
                                    gemm_pack_a_generic<kMr>, gemm_pack_b_generic<kNr>, false};
  return kernel;
}

}  // namespace np
