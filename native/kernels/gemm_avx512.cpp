// The AVX-512 GEMM micro-kernel, 14x32, and packing routines that transpose
// with 16x16 register shuffles. Compiled with -mavx512f/vl/bw/dq (native/
// sources.json "avx512" group); only called after the dispatcher checked the CPU.
//
// Per k step the full tile does 2 aligned loads of B, 14 broadcasts of A
// (folded into the FMAs as {1to16} memory operands) and 28 FMAs into 28 zmm
// accumulators: 14 cycles of work for two FMA pipes, 16 loads, so the loads
// never limit. Edge tiles instantiate the same template with fewer rows
// (R < 14) or one vector column (NV = 1) and masked stores, so a 128-row layer
// does not pay for the 140 rows of ten full tiles.
#if defined(__x86_64__)
// GCC 12 warns inside its own AVX-512 headers (_mm512_undefined_ps self-init,
// GCC bug 105593) when the shuffles below inline; the warning is spurious.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "gemm_internal.h"

namespace np {

namespace {
constexpr int kMr = 14;
constexpr int kNr = 32;

template <int R, int NV>
void tile(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int nr, float beta) {
  __m512 acc[R][NV];
#pragma GCC unroll 14
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();

  for (int64_t p = 0; p < kc; ++p) {
    __m512 bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + p * kNr + 16 * v);
    const float* ap = a + p * kMr;
#pragma GCC unroll 14
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(ap[r]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }

  // Lanes past nr are masked off: the tile never writes outside C.
  const int last = nr - 16 * (NV - 1);
  const __mmask16 mlast = last >= 16 ? static_cast<__mmask16>(0xFFFF)
                                     : static_cast<__mmask16>((1u << last) - 1u);
  if (beta == 0.0f) {
#pragma GCC unroll 14
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v)
        _mm512_mask_storeu_ps(c + r * ldc + 16 * v, v == NV - 1 ? mlast : 0xFFFF, acc[r][v]);
  } else {
    const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 14
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) {
        float* cp = c + r * ldc + 16 * v;
        const __mmask16 m = v == NV - 1 ? mlast : 0xFFFF;
        const __m512 old = _mm512_maskz_loadu_ps(m, cp);
        _mm512_mask_storeu_ps(cp, m, _mm512_fmadd_ps(vb, old, acc[r][v]));
      }
  }
}

using TileFn = void (*)(int64_t, const float*, const float*, float*, int64_t, int, float);

#define NP_TILE_ROW(R) {tile<R, 1>, tile<R, 2>}
// kTiles[R - 1][NV - 1]
const TileFn kTiles[kMr][2] = {NP_TILE_ROW(1),  NP_TILE_ROW(2),  NP_TILE_ROW(3),  NP_TILE_ROW(4),
                               NP_TILE_ROW(5),  NP_TILE_ROW(6),  NP_TILE_ROW(7),  NP_TILE_ROW(8),
                               NP_TILE_ROW(9),  NP_TILE_ROW(10), NP_TILE_ROW(11), NP_TILE_ROW(12),
                               NP_TILE_ROW(13), NP_TILE_ROW(14)};
#undef NP_TILE_ROW

// In-register transpose of a 16x16 block: r[i] holds row i on entry and
// column i on return. Three rounds of shuffles (within 128-bit lanes, then
// whole lanes), the usual 64-shuffle sequence.
inline void transpose_16x16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // r[4i + j], 128-bit lane L: rows 4i..4i+3 at column 4L + j.
  for (int i = 0; i < 4; ++i) {
    r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  // Column 4L + j is lane L of r[j], r[4+j], r[8+j], r[12+j].
  __m512 out[16];
  for (int j = 0; j < 4; ++j) {
    const __m512 t0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
    const __m512 t1 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xDD);
    const __m512 t2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
    const __m512 t3 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xDD);
    out[j] = _mm512_shuffle_f32x4(t0, t2, 0x88);
    out[8 + j] = _mm512_shuffle_f32x4(t0, t2, 0xDD);
    out[4 + j] = _mm512_shuffle_f32x4(t1, t3, 0x88);
    out[12 + j] = _mm512_shuffle_f32x4(t1, t3, 0xDD);
  }
  for (int i = 0; i < 16; ++i) r[i] = out[i];
}

// Reads `rows` (<= 16) rows of `len` contiguous floats from src (row stride
// lds) and writes them transposed: element (row i, column p) goes to
// dst[p * dst_stride + i]. Rows past `rows` are not written. This is both
// pack-A of a row-major A (rows = panel rows) and pack-B of a transposed B
// (rows = panel columns).
void transpose_rows(const float* src, int64_t lds, int rows, int64_t len, float* dst,
                    int64_t dst_stride) {
  const __mmask16 store_mask = static_cast<__mmask16>((1u << rows) - 1u);
  int64_t p = 0;
  for (; p + 16 <= len; p += 16) {
    __m512 r[16];
    for (int i = 0; i < 16; ++i)
      r[i] = i < rows ? _mm512_loadu_ps(src + i * lds + p) : _mm512_setzero_ps();
    transpose_16x16(r);
    for (int q = 0; q < 16; ++q) _mm512_mask_storeu_ps(dst + (p + q) * dst_stride, store_mask, r[q]);
  }
  for (; p < len; ++p)
    for (int i = 0; i < rows; ++i) dst[p * dst_stride + i] = src[i * lds + p];
}

void pack_a(Trans trans, const float* a, int64_t lda, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
            float* out) {
  if (trans == Trans::kYes) {
    // Already k-major: the generic copy is a run of 14-float memcpys.
    gemm_pack_a_generic<kMr>(trans, a, lda, i0, mc, p0, kc, out);
    return;
  }
  for (int64_t ir = 0; ir < mc; ir += kMr) {
    const int mr = mc - ir < kMr ? static_cast<int>(mc - ir) : kMr;
    float* dst = out + ir * kc;
    transpose_rows(a + (i0 + ir) * lda + p0, lda, mr, kc, dst, kMr);
    for (int64_t p = 0; p < kc && mr < kMr; ++p)
      for (int r = mr; r < kMr; ++r) dst[p * kMr + r] = 0.0f;
  }
}

void pack_b(Trans trans, const float* b, int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int64_t nc,
            float* out) {
  if (trans == Trans::kNo) {
    // Row by row: each row of B is read once, contiguously. (Panel by panel
    // would stride ldb per k step and touch a new page every step of a wide
    // B: 15% of a 256x4096x4096 product went there.)
    const int64_t tail = nc % kNr;
    const __mmask16 m0 = static_cast<__mmask16>(tail >= 16 ? 0xFFFF : (1u << tail) - 1u);
    const __mmask16 m1 = static_cast<__mmask16>(tail > 16 ? (1u << (tail - 16)) - 1u : 0);
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = b + (p0 + p) * ldb + j0;
      float* dst = out + p * kNr;
      int64_t j = 0;
      for (; j + kNr <= nc; j += kNr) {
        _mm512_store_ps(dst + j * kc, _mm512_loadu_ps(src + j));
        _mm512_store_ps(dst + j * kc + 16, _mm512_loadu_ps(src + j + 16));
      }
      if (tail != 0) {
        _mm512_store_ps(dst + j * kc, _mm512_maskz_loadu_ps(m0, src + j));
        _mm512_store_ps(dst + j * kc + 16, _mm512_maskz_loadu_ps(m1, src + j + 16));
      }
    }
    return;
  }
  for (int64_t jr = 0; jr < nc; jr += kNr) {
    const int nr = nc - jr < kNr ? static_cast<int>(nc - jr) : kNr;
    float* dst = out + jr * kc;
    for (int h = 0; h < 2; ++h) {
      const int cols = nr - 16 * h < 16 ? nr - 16 * h : 16;
      if (cols > 0)
        transpose_rows(b + (j0 + jr + 16 * h) * ldb + p0, ldb, cols, kc, dst + 16 * h, kNr);
    }
    for (int64_t p = 0; p < kc && nr < kNr; ++p)
      for (int j = nr; j < kNr; ++j) dst[p * kNr + j] = 0.0f;
  }
}
}  // namespace

void gemm_f32_ukernel_14x32_avx512(int64_t kc, const float* a, const float* b, float* c,
                                   int64_t ldc, int mr, int nr, float beta) {
  kTiles[mr - 1][nr > 16 ? 1 : 0](kc, a, b, c, ldc, nr, beta);
}

const GemmKernel& gemm_kernel_avx512() {
  // kc=256: the B panel (256 x 32 floats = 32 KB) stays in the 48 KB L1 while
  // the A panels (14 KB each) stream from L2. mc=448 keeps a whole 256-row
  // layer in one A block (448 KB) and nc=256 its B block (256 KB) beside it
  // in the 1 MB L2. Measured on Zen 5; kc 192..384, nc 256..1024 are within noise.
  static const GemmKernel kernel = {"gemm_f32_ukernel_14x32_avx512", SimdLevel::kAvx512, kMr, kNr,
                                    256, 448, 256, gemm_f32_ukernel_14x32_avx512, pack_a, pack_b, true};
  return kernel;
}

}  // namespace np
#endif  // __x86_64__
