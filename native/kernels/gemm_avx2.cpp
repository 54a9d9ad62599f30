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

// In-register transpose of an 8x8 block: r[i] holds row i on entry and column
// i on return (unpack within 128-bit lanes, shuffle, then swap lanes).
inline void transpose_8x8(__m256 r[8]) {
  __m256 t[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  __m256 u[8];
  for (int i = 0; i < 2; ++i) {
    u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
    r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
  }
}

// Reads `rows` (<= 8) rows of `len` contiguous floats (row stride lds) and
// writes them transposed, `width` (6 or 8) floats per k step: element (row i,
// step p) goes to dst[p * dst_stride + i], and rows rows..width-1 get zeros.
// With width 6 (an A panel, dst_stride 6) each step's 8-float store runs two
// floats into the next step, which that step's store then overwrites; the
// last step of a group of 8 stores exactly 6, so nothing past the group is
// touched.
void transpose_rows(const float* src, int64_t lds, int rows, int64_t len, float* dst, int64_t dst_stride,
                    int width) {
  int64_t p = 0;
  for (; p + 8 <= len; p += 8) {
    __m256 r[8];
    for (int i = 0; i < 8; ++i) r[i] = i < rows ? _mm256_loadu_ps(src + i * lds + p) : _mm256_setzero_ps();
    transpose_8x8(r);
    float* d = dst + p * dst_stride;
    if (width == 8) {
      for (int q = 0; q < 8; ++q) _mm256_storeu_ps(d + q * dst_stride, r[q]);
    } else {
      for (int q = 0; q < 7; ++q) _mm256_storeu_ps(d + q * dst_stride, r[q]);
      _mm_storeu_ps(d + 7 * dst_stride, _mm256_castps256_ps128(r[7]));
      _mm_storel_pi(reinterpret_cast<__m64*>(d + 7 * dst_stride + 4), _mm256_extractf128_ps(r[7], 1));
    }
  }
  for (; p < len; ++p)
    for (int i = 0; i < width; ++i) dst[p * dst_stride + i] = i < rows ? src[i * lds + p] : 0.0f;
}

// Packing: a row-major A (forward W X, and dY in the weight gradient dY X^T)
// and a transposed B (X^T there) are transposed 8x8 in registers; the generic
// copies wrote one float at a time with a stride, which took 16% (A) and 5%
// (B) of a 784-1024-1024-10 training step on Zen 3.
void pack_a(Trans trans, const float* a, int64_t lda, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
            float* out) {
  if (trans == Trans::kYes) {
    // Already k-major: each k step is one contiguous run of the block's rows,
    // dealt out 6 floats (a 16-byte and an 8-byte move) to each panel; rows
    // are read once, in order. The edge panel takes the generic copy.
    const int64_t full = mc / kMr * kMr;
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = a + (p0 + p) * lda + i0;
      float* dst = out + p * kMr;
      for (int64_t ir = 0; ir < full; ir += kMr) {
        float* d = dst + ir * kc;
        _mm_storeu_ps(d, _mm_loadu_ps(src + ir));
        _mm_storel_pi(reinterpret_cast<__m64*>(d + 4), _mm_loadl_pi(_mm_setzero_ps(), reinterpret_cast<const __m64*>(src + ir + 4)));
      }
    }
    if (full < mc) gemm_pack_a_generic<kMr>(trans, a, lda, i0 + full, mc - full, p0, kc, out + full * kc);
    return;
  }
  for (int64_t ir = 0; ir < mc; ir += kMr) {
    const int mr = mc - ir < kMr ? static_cast<int>(mc - ir) : kMr;
    transpose_rows(a + (i0 + ir) * lda + p0, lda, mr, kc, out + ir * kc, kMr, kMr);
  }
}

void pack_b(Trans trans, const float* b, int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int64_t nc,
            float* out) {
  if (trans == Trans::kNo) {
    // Eight rows of B at a time, panel by panel: each panel gets a contiguous
    // 512-byte run per group, and the group's rows (read across all panels)
    // stay in L1. (Row by row, as the AVX-512 packer does, measured the same
    // on Zen 3; the generic panel-by-panel copy read one row per k step.)
    const int64_t full = nc / kNr * kNr;
    for (int64_t pg = 0; pg < kc; pg += 8) {
      const int64_t pe = pg + 8 < kc ? pg + 8 : kc;
      for (int64_t j = 0; j < full; j += kNr) {
        float* dst = out + j * kc;
        for (int64_t p = pg; p < pe; ++p) {
          const float* src = b + (p0 + p) * ldb + j0 + j;
          _mm256_store_ps(dst + p * kNr, _mm256_loadu_ps(src));
          _mm256_store_ps(dst + p * kNr + 8, _mm256_loadu_ps(src + 8));
        }
      }
    }
    if (full < nc) {
      float* dst = out + full * kc;
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = b + (p0 + p) * ldb + j0 + full;
        int64_t c = 0;
        for (; c < nc - full; ++c) dst[p * kNr + c] = src[c];
        for (; c < kNr; ++c) dst[p * kNr + c] = 0.0f;
      }
    }
    return;
  }
  // Transposed: panel columns are stored rows; two 8-row halves per panel.
  for (int64_t jr = 0; jr < nc; jr += kNr) {
    const int nr = nc - jr < kNr ? static_cast<int>(nc - jr) : kNr;
    float* dst = out + jr * kc;
    for (int h = 0; h < 2; ++h) {
      const int cols = nr - 8 * h < 0 ? 0 : (nr - 8 * h < 8 ? nr - 8 * h : 8);
      // An empty half (nr <= 8) only writes zeros: its source is never read,
      // so point it at b rather than past B's last row.
      const float* src = cols > 0 ? b + (j0 + jr + 8 * h) * ldb + p0 : b;
      transpose_rows(src, ldb, cols, kc, dst + 8 * h, kNr, 8);
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
                                    pack_a, pack_b, false};
  return kernel;
}

}  // namespace np
#endif  // __x86_64__
