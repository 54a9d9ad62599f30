// AVX-512 CSR micro-kernels, batch tile 128 (8 zmm). Compiled with
// -mavx512f/vl/bw/dq (native/sources.json "avx512"); only called after the
// dispatcher checked the CPU.
//
// Each is a template on NV, the number of 16-float vectors in the tile (1..8),
// so a narrow batch (1, 7, 33) runs only the vectors it needs; the last vector
// is masked when n is not a multiple of 16 (MASKED), so no lane outside the
// tile is read or written (ld padding may hold NaN). A batch of one takes
// gathers (spmm, sddmm) or a scalar loop (spmm_t) instead.
//
// Per nonzero at the full tile: 8 FMAs with their X loads folded in, one index
// load and one broadcast. From L1 that runs at ~180 GFLOP/s on Zen 5; from L2
// (512 bytes per nonzero) at ~100, which is why sparse.cpp blocks columns.
#if defined(__x86_64__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "sparse_internal.h"

namespace np {

namespace {

constexpr int kTile = 128;

inline __mmask16 tail_mask(int n, int nv) {
  const int last = n - 16 * (nv - 1);
  return last >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << last) - 1u);
}

inline __m512 load(bool masked, const float* p, __mmask16 m) {
  return masked ? _mm512_maskz_loadu_ps(m, p) : _mm512_loadu_ps(p);
}

inline void store(bool masked, float* p, __mmask16 m, __m512 v) {
  if (masked) {
    _mm512_mask_storeu_ps(p, m, v);
  } else {
    _mm512_storeu_ps(p, v);
  }
}

// Two accumulator sets (even and odd nonzeros): 2*NV independent FMA chains,
// and the X loads of the next pair issue while this pair's FMAs wait.
template <int NV, bool MASKED>
__attribute__((always_inline)) inline void spmm_row(int64_t nnz, const float* vals, const int32_t* idx, const float* x, int64_t ldx, float beta,
               float* y, __mmask16 m) {
  __m512 a0[NV], a1[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) a0[v] = a1[v] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 2 <= nnz; k += 2) {
    const float* x0 = x + static_cast<int64_t>(idx[k]) * ldx;
    const float* x1 = x + static_cast<int64_t>(idx[k + 1]) * ldx;
    const __m512 w0 = _mm512_set1_ps(vals[k]);
    const __m512 w1 = _mm512_set1_ps(vals[k + 1]);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const bool mv = MASKED && v == NV - 1;
      a0[v] = _mm512_fmadd_ps(w0, mv ? _mm512_maskz_loadu_ps(m, x0 + 16 * v) : _mm512_loadu_ps(x0 + 16 * v), a0[v]);
      a1[v] = _mm512_fmadd_ps(w1, mv ? _mm512_maskz_loadu_ps(m, x1 + 16 * v) : _mm512_loadu_ps(x1 + 16 * v), a1[v]);
    }
  }
  if (k < nnz) {
    const float* x0 = x + static_cast<int64_t>(idx[k]) * ldx;
    const __m512 w0 = _mm512_set1_ps(vals[k]);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const bool mv = MASKED && v == NV - 1;
      a0[v] = _mm512_fmadd_ps(w0, mv ? _mm512_maskz_loadu_ps(m, x0 + 16 * v) : _mm512_loadu_ps(x0 + 16 * v), a0[v]);
    }
  }
  if (beta == 0.0f) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) store(MASKED && v == NV - 1, y + 16 * v, m, _mm512_add_ps(a0[v], a1[v]));
  } else {
    const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const __m512 old = load(MASKED && v == NV - 1, y + 16 * v, m);
      store(MASKED && v == NV - 1, y + 16 * v, m, _mm512_fmadd_ps(vb, old, _mm512_add_ps(a0[v], a1[v])));
    }
  }
}

template <int NV, bool MASKED>
__attribute__((always_inline)) inline void spmm_t_row(int64_t nnz, const float* vals, const int32_t* idx, const float* dy, float* dx, int64_t lddx,
                 __mmask16 m) {
  __m512 d[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) d[v] = load(MASKED && v == NV - 1, dy + 16 * v, m);
  int64_t k = 0;
  for (; k + 2 <= nnz; k += 2) {
    float* p0 = dx + static_cast<int64_t>(idx[k]) * lddx;
    float* p1 = dx + static_cast<int64_t>(idx[k + 1]) * lddx;
    const __m512 w0 = _mm512_set1_ps(vals[k]);
    const __m512 w1 = _mm512_set1_ps(vals[k + 1]);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const bool mv = MASKED && v == NV - 1;
      const __m512 o0 = mv ? _mm512_maskz_loadu_ps(m, p0 + 16 * v) : _mm512_loadu_ps(p0 + 16 * v);
      const __m512 o1 = mv ? _mm512_maskz_loadu_ps(m, p1 + 16 * v) : _mm512_loadu_ps(p1 + 16 * v);
      const __m512 r0 = _mm512_fmadd_ps(w0, d[v], o0);
      const __m512 r1 = _mm512_fmadd_ps(w1, d[v], o1);
      if (mv) {
        _mm512_mask_storeu_ps(p0 + 16 * v, m, r0);
        _mm512_mask_storeu_ps(p1 + 16 * v, m, r1);
      } else {
        _mm512_storeu_ps(p0 + 16 * v, r0);
        _mm512_storeu_ps(p1 + 16 * v, r1);
      }
    }
  }
  if (k < nnz) {
    float* p0 = dx + static_cast<int64_t>(idx[k]) * lddx;
    const __m512 w0 = _mm512_set1_ps(vals[k]);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const bool mv = MASKED && v == NV - 1;
      const __m512 o0 = mv ? _mm512_maskz_loadu_ps(m, p0 + 16 * v) : _mm512_loadu_ps(p0 + 16 * v);
      const __m512 r0 = _mm512_fmadd_ps(w0, d[v], o0);
      if (mv) {
        _mm512_mask_storeu_ps(p0 + 16 * v, m, r0);
      } else {
        _mm512_storeu_ps(p0 + 16 * v, r0);
      }
    }
  }
}

// Eight dot-product vectors -> their eight sums, in order, in one ymm: 12
// shuffles and 11 adds for 8 nonzeros instead of 8 full horizontal reductions.
inline __m256 reduce8(const __m512 a[8]) {
  const __m512 s01 = _mm512_add_ps(_mm512_unpacklo_ps(a[0], a[1]), _mm512_unpackhi_ps(a[0], a[1]));
  const __m512 s23 = _mm512_add_ps(_mm512_unpacklo_ps(a[2], a[3]), _mm512_unpackhi_ps(a[2], a[3]));
  const __m512 s45 = _mm512_add_ps(_mm512_unpacklo_ps(a[4], a[5]), _mm512_unpackhi_ps(a[4], a[5]));
  const __m512 s67 = _mm512_add_ps(_mm512_unpacklo_ps(a[6], a[7]), _mm512_unpackhi_ps(a[6], a[7]));
  // per 128-bit lane: s01 = [a0, b0, a1, b1] partials -> t = [A, B, C, D] partials
  const __m512 t0 = _mm512_add_ps(_mm512_shuffle_ps(s01, s23, _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm512_shuffle_ps(s01, s23, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 t1 = _mm512_add_ps(_mm512_shuffle_ps(s45, s67, _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm512_shuffle_ps(s45, s67, _MM_SHUFFLE(3, 2, 3, 2)));
  // lanes [t0.0+t0.1, t0.2+t0.3, t1.0+t1.1, t1.2+t1.3]
  const __m512 u = _mm512_add_ps(_mm512_shuffle_f32x4(t0, t1, _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_f32x4(t0, t1, _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 w = _mm512_add_ps(_mm512_shuffle_f32x4(u, u, _MM_SHUFFLE(3, 1, 2, 0)),
                                 _mm512_shuffle_f32x4(u, u, _MM_SHUFFLE(2, 0, 3, 1)));
  return _mm512_castps512_ps256(w);
}

template <int NV, bool MASKED>
__attribute__((always_inline)) inline void sddmm_row(int64_t nnz, const int32_t* idx, const float* dy, const float* x, int64_t ldx, float beta,
                float* out, __mmask16 m) {
  __m512 d[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) d[v] = load(MASKED && v == NV - 1, dy + 16 * v, m);
  const __m256 vb = _mm256_set1_ps(beta);
  int64_t k = 0;
  for (; k + 8 <= nnz; k += 8) {
    __m512 acc[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      const float* xr = x + static_cast<int64_t>(idx[k + j]) * ldx;
      acc[j] = _mm512_mul_ps(d[0], load(MASKED && NV == 1, xr, m));
#pragma GCC unroll 8
      for (int v = 1; v < NV; ++v) acc[j] = _mm512_fmadd_ps(d[v], load(MASKED && v == NV - 1, xr + 16 * v, m), acc[j]);
    }
    const __m256 s = reduce8(acc);
    _mm256_storeu_ps(out + k, beta == 0.0f ? s : _mm256_fmadd_ps(vb, _mm256_loadu_ps(out + k), s));
  }
  for (; k < nnz; ++k) {
    const float* xr = x + static_cast<int64_t>(idx[k]) * ldx;
    __m512 acc = _mm512_mul_ps(d[0], load(MASKED && NV == 1, xr, m));
#pragma GCC unroll 8
    for (int v = 1; v < NV; ++v) acc = _mm512_fmadd_ps(d[v], load(MASKED && v == NV - 1, xr + 16 * v, m), acc);
    const float s = _mm512_reduce_add_ps(acc);
    out[k] = beta == 0.0f ? s : beta * out[k] + s;
  }
}

// Switch on the vector count and the edge once per row, not per nonzero.
// csr_block_run with the scan for the block's end done 16 indices per compare:
// sorted indices make the "< col_end" mask a prefix, so its popcount is the
// run length, and a run under 16 nonzeros costs one predictable branch rather
// than a mispredicted loop exit.
inline int64_t block_run(const CsrBlock& b, int64_t r, int64_t* start) {
  if (b.cursor == nullptr) {
    *start = b.ptr[r];
    return b.ptr[r + 1];
  }
  const int64_t s = b.cursor[r], end = b.ptr[r + 1];
  const __m512i lim = _mm512_set1_epi32(b.col_end);
  // Chunk j starts at s + 16*j whatever the earlier chunks held, so the loads
  // of a long run issue in parallel instead of one cache miss after another.
  int64_t e = s;
  for (int64_t c = s;; c += 16) {
    const int64_t left = end - c;
    const __mmask16 valid = left >= 16 ? static_cast<__mmask16>(0xFFFF)
                                       : static_cast<__mmask16>((1u << (left > 0 ? left : 0)) - 1u);
    const __m512i v = _mm512_maskz_loadu_epi32(valid, b.indices + c);
    const int n = __builtin_popcount(_mm512_mask_cmplt_epi32_mask(valid, v, lim));
    if (n < 16) {
      e = c + n;
      break;
    }
  }
  b.cursor[r] = e;
  *start = s;
  return e;
}

// The loops over a block's rows: the tile width was dispatched once, above them.
template <int NV, bool MASKED>
void spmm_block(const CsrBlock& b, const float* x, int64_t ldx, float beta, float* y, int64_t ldy, __mmask16 m) {
  for_each_block_row(b, beta == 1.0f, block_run, [&](int64_t r, int64_t s, int64_t e) NP_INLINE_LAMBDA {
    spmm_row<NV, MASKED>(e - s, b.values + s, b.indices + s, x, ldx, beta, y + r * ldy, m);
  });
}

template <int NV, bool MASKED>
void spmm_t_block(const CsrBlock& b, const float* dy, int64_t lddy, float* dx, int64_t lddx, __mmask16 m) {
  for_each_block_row(b, true, block_run, [&](int64_t r, int64_t s, int64_t e) NP_INLINE_LAMBDA {
    spmm_t_row<NV, MASKED>(e - s, b.values + s, b.indices + s, dy + r * lddy, dx, lddx, m);
  });
}

template <int NV, bool MASKED>
void sddmm_block(const CsrBlock& b, const float* dy, int64_t lddy, const float* x, int64_t ldx, float beta,
                 float* grad, __mmask16 m) {
  for_each_block_row(b, true, block_run, [&](int64_t r, int64_t s, int64_t e) NP_INLINE_LAMBDA {
    sddmm_row<NV, MASKED>(e - s, b.indices + s, dy + r * lddy, x, ldx, beta, grad + s, m);
  });
}

// A batch of one: each X "row" is a single float (ldx apart), so a masked
// vector load per nonzero wastes 15 lanes. Gather 8 per instruction instead
// (64-bit offsets: idx * ldx may pass 2^31).
inline __mmask8 mask8(int64_t left) {
  return left >= 8 ? static_cast<__mmask8>(0xFF) : static_cast<__mmask8>((1u << left) - 1u);
}

inline __m256 gather8(const int32_t* idx, __mmask8 m, const float* x, int64_t ldx) {
  const __m512i off = _mm512_mullo_epi64(_mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(m, idx)), _mm512_set1_epi64(ldx));
  return _mm512_mask_i64gather_ps(_mm256_setzero_ps(), m, off, x, 4);
}

inline float hsum8(__m256 v) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

void spmm_block_1(const CsrBlock& b, const float* x, int64_t ldx, float beta, float* y, int64_t ldy) {
  for_each_block_row(b, beta == 1.0f, block_run, [&](int64_t r, int64_t s, int64_t e) NP_INLINE_LAMBDA {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t k = s;
    for (; k + 16 <= e; k += 16) {
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(b.values + k), gather8(b.indices + k, 0xFF, x, ldx), a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(b.values + k + 8), gather8(b.indices + k + 8, 0xFF, x, ldx), a1);
    }
    for (; k < e; k += 8) {
      const __mmask8 m = mask8(e - k);
      a0 = _mm256_fmadd_ps(_mm256_maskz_loadu_ps(m, b.values + k), gather8(b.indices + k, m, x, ldx), a0);
    }
    const float sum = hsum8(_mm256_add_ps(a0, a1));
    float& out = y[r * ldy];
    out = beta == 0.0f ? sum : beta * out + sum;
  });
}

void sddmm_block_1(const CsrBlock& b, const float* dy, int64_t lddy, const float* x, int64_t ldx, float beta,
                   float* grad) {
  const __m256 vb = _mm256_set1_ps(beta);
  for_each_block_row(b, true, block_run, [&](int64_t r, int64_t s, int64_t e) NP_INLINE_LAMBDA {
    const __m256 d = _mm256_set1_ps(dy[r * lddy]);
    for (int64_t k = s; k < e; k += 8) {
      const __mmask8 m = mask8(e - k);
      const __m256 prod = _mm256_mul_ps(d, gather8(b.indices + k, m, x, ldx));
      const __m256 out = beta == 0.0f ? prod : _mm256_fmadd_ps(vb, _mm256_maskz_loadu_ps(m, grad + k), prod);
      _mm256_mask_storeu_ps(grad + k, m, out);
    }
  });
}

#define NP_SPARSE_DISPATCH(fn, n, ...)                  \
  do {                                                   \
    const int nv = ((n) + 15) / 16;                      \
    const __mmask16 m = tail_mask((n), nv);              \
    NP_SPARSE_SWITCH(fn, nv, ((n) & 15) != 0, m, __VA_ARGS__); \
  } while (0)

}  // namespace

void spmm_f32_csr_ukernel_128_avx512(const CsrBlock& b, const float* x, int64_t ldx, float beta, float* y,
                                  int64_t ldy, int n) {
  if (n == 1) {
    spmm_block_1(b, x, ldx, beta, y, ldy);
    return;
  }
  NP_SPARSE_DISPATCH(spmm_block, n, b, x, ldx, beta, y, ldy);
}

void spmm_t_f32_csr_ukernel_128_avx512(const CsrBlock& b, const float* dy, int64_t lddy, float* dx,
                                    int64_t lddx, int n) {
  if (n == 1) {
    for (int64_t r = 0; r < b.nrows; ++r) {
      int64_t s;
      const int64_t e = block_run(b, r, &s);
      spmm_t_run_1(e - s, b.values + s, b.indices + s, dy[r * lddy], dx, lddx);
    }
    return;
  }
  NP_SPARSE_DISPATCH(spmm_t_block, n, b, dy, lddy, dx, lddx);
}

void sddmm_f32_csr_ukernel_128_avx512(const CsrBlock& b, const float* dy, int64_t lddy, const float* x,
                                   int64_t ldx, float beta, float* grad, int n) {
  if (n == 1) {
    sddmm_block_1(b, dy, lddy, x, ldx, beta, grad);
    return;
  }
  NP_SPARSE_DISPATCH(sddmm_block, n, b, dy, lddy, x, ldx, beta, grad);
}

const SparseKernel& sparse_kernel_avx512() {
  static const SparseKernel kernel = {"avx512", SimdLevel::kAvx512, kTile, spmm_f32_csr_ukernel_128_avx512,
                                      spmm_t_f32_csr_ukernel_128_avx512, sddmm_f32_csr_ukernel_128_avx512};
  return kernel;
}

}  // namespace np
#endif  // __x86_64__
