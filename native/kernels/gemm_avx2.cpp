// The AVX2+FMA GEMM micro-kernel, 6x16: 12 ymm accumulators, two B vectors and
// one broadcast fill 15 of the 16 ymm registers, so nothing spills. Compiled
// with -mavx2 -mfma (native/sources.json "avx2" group); only called after the
// dispatcher has checked the CPU.
#if defined(__x86_64__)
#include <immintrin.h>

#include "gemm_internal.h"

namespace np {

namespace {
constexpr int kMr = 6;
constexpr int kNr = 16;

// The full tile: c = beta * c + A * B, with c of row stride ldc. beta == 0
// overwrites c (a NaN already there must not survive).
inline void tile_6x16(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float beta) {
  // Every loop over the accumulators is fully unrolled: one rolled loop makes
  // GCC keep the array in memory and store it on every k step (2.3x slower).
  __m256 acc[kMr][2];
#pragma GCC unroll 6
  for (int r = 0; r < kMr; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(b + p * kNr);
    const __m256 b1 = _mm256_load_ps(b + p * kNr + 8);
#pragma GCC unroll 6
    for (int r = 0; r < kMr; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + p * kMr + r);
      acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
    }
  }
  if (beta == 0.0f) {
#pragma GCC unroll 6
    for (int r = 0; r < kMr; ++r) {
      _mm256_storeu_ps(c + r * ldc, acc[r][0]);
      _mm256_storeu_ps(c + r * ldc + 8, acc[r][1]);
    }
  } else {
    const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
    for (int r = 0; r < kMr; ++r) {
      float* cr = c + r * ldc;
      _mm256_storeu_ps(cr, _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr), acc[r][0]));
      _mm256_storeu_ps(cr + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr + 8), acc[r][1]));
    }
  }
}
}  // namespace

void gemm_f32_ukernel_6x16_avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                int mr, int nr, float beta) {
  if (mr == kMr && nr == kNr) {
    tile_6x16(kc, a, b, c, ldc, beta);
    return;
  }
  // Edge tile: compute the whole (zero-padded) tile into a temporary, merge the
  // valid part. Edges are a small share of any large product.
  alignas(32) float tmp[kMr * kNr];
  tile_6x16(kc, a, b, tmp, kNr, 0.0f);
  gemm_store_tile_edge<kNr>(tmp, c, ldc, mr, nr, beta);
}

const GemmKernel& gemm_kernel_avx2() {
  // kc=256: the B panel (256 x 16 floats = 16 KB) stays in L1 while A panels
  // (6 KB each) stream from the L2-resident A block. mc=258 (43 panels, a
  // 258 KB block) holds every M up to 258 in one block, so B is packed once
  // for them; nc=512 keeps the packed B block (512 KB) near L2 instead of
  // spilling 2 MB to L3. Measured on Zen 3 (512 KB L2) against mc=192,
  // nc=2048, best of 3 interleaved rounds: 256x1024x1024 and 256x784x1024
  // 1.1-1.25x, 128x4096x4096 nn/tn 1.1x, the training shapes (N = 128) within
  // noise.
  static const GemmKernel kernel = {"gemm_f32_ukernel_6x16_avx2", SimdLevel::kAvx2, kMr, kNr,
                                    256, 258, 512, gemm_f32_ukernel_6x16_avx2,
                                    gemm_pack_a_generic<kMr>, gemm_pack_b_generic<kNr>, false};
  return kernel;
}

}  // namespace np
#endif  // __x86_64__
