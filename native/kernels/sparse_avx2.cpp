// AVX2+FMA CSR micro-kernels, batch tile 64 (8 ymm). Compiled with -mavx2
// -mfma (native/sources.json "avx2"); only called after the dispatcher checked
// the CPU. Same structure as sparse_avx512.cpp: a template on NV (1..8 vectors
// of 8 floats), the last vector masked (vmaskmov) when n is not a multiple of 8.
#if defined(__x86_64__)
#include <immintrin.h>

#include "sparse_internal.h"

namespace np {

namespace {

constexpr int kTile = 64;

inline __m256i tail_mask(int n, int nv) {
  const int last = n - 8 * (nv - 1);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(last), lane);
}

inline __m256 load(bool masked, const float* p, __m256i m) {
  return masked ? _mm256_maskload_ps(p, m) : _mm256_loadu_ps(p);
}

inline void store(bool masked, float* p, __m256i m, __m256 v) {
  if (masked) {
    _mm256_maskstore_ps(p, m, v);
  } else {
    _mm256_storeu_ps(p, v);
  }
}

// Accumulators: AVX2 has 16 ymm registers. Up to 4 vectors per tile take two
// sets (even and odd nonzeros), 2*NV independent FMA chains, enough to cover
// the FMA latency; wider tiles take one set, whose NV chains already do, and
// two would spill (2*8 accumulators + 2 broadcasts = 18 registers: three
// accumulators went through the stack on every nonzero; on Zen 3, 784x300 at
// 90% sparsity and batch 128 took 0.25-0.28 ms with the spills, 0.18-0.23
// without, interleaved runs).
// In the one-set loop X rows are read from the top vector down. Read in
// ascending order, a row's lines look like a stream to the L1 prefetcher,
// which (most likely; there is no PMU here to confirm it) then fetches the
// lines after the row: the next X rows, mostly not needed at these densities,
// at the cost of L2 bandwidth, the very thing the sparse product runs short
// of. Measured on Zen 3 (batch 128, 1 thread, best of 8 interleaved rounds):
// 1024 x 1024 at 90% sparsity 1.22x faster, 4096 x 4096 1.14x, 784 x 300
// 1.05x, 1024 x 1024 at 70% 1.20x. The line orders 2,0,3,1 and 1,3,0,2 gained
// the same; prefetching X rows four nonzeros ahead lost 1.2-1.8x. The
// two-set loop (tiles of <= 32 floats, two lines) stays ascending: reversed,
// batch 32 measured 1-8% slower. sddmm's X reads gained nothing reversed.
template <int NV, bool MASKED>
__attribute__((always_inline)) inline void spmm_row(int64_t nnz, const float* vals, const int32_t* idx,
                                                    const float* x, int64_t ldx, float beta, float* y, __m256i m) {
  constexpr bool kTwoSets = NV <= 4;
  __m256 a0[NV], a1[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) a0[v] = a1[v] = _mm256_setzero_ps();
  int64_t k = 0;
  if constexpr (kTwoSets) {
    for (; k + 2 <= nnz; k += 2) {
      const float* x0 = x + static_cast<int64_t>(idx[k]) * ldx;
      const float* x1 = x + static_cast<int64_t>(idx[k + 1]) * ldx;
      const __m256 w0 = _mm256_broadcast_ss(vals + k);
      const __m256 w1 = _mm256_broadcast_ss(vals + k + 1);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        const bool mv = MASKED && v == NV - 1;
        a0[v] = _mm256_fmadd_ps(w0, mv ? _mm256_maskload_ps(x0 + 8 * v, m) : _mm256_loadu_ps(x0 + 8 * v), a0[v]);
        a1[v] = _mm256_fmadd_ps(w1, mv ? _mm256_maskload_ps(x1 + 8 * v, m) : _mm256_loadu_ps(x1 + 8 * v), a1[v]);
      }
    }
  }
  for (; k < nnz; ++k) {
    const float* x0 = x + static_cast<int64_t>(idx[k]) * ldx;
    const __m256 w0 = _mm256_broadcast_ss(vals + k);
#pragma GCC unroll 8
    for (int v = NV - 1; v >= 0; --v) {
      const bool mv = MASKED && v == NV - 1;
      a0[v] = _mm256_fmadd_ps(w0, mv ? _mm256_maskload_ps(x0 + 8 * v, m) : _mm256_loadu_ps(x0 + 8 * v), a0[v]);
    }
  }
  if constexpr (kTwoSets) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) a0[v] = _mm256_add_ps(a0[v], a1[v]);
  }
  if (beta == 0.0f) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) store(MASKED && v == NV - 1, y + 8 * v, m, a0[v]);
  } else {
    const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const __m256 old = load(MASKED && v == NV - 1, y + 8 * v, m);
      store(MASKED && v == NV - 1, y + 8 * v, m, _mm256_fmadd_ps(vb, old, a0[v]));
    }
  }
}

template <int NV, bool MASKED>
__attribute__((always_inline)) inline void spmm_t_row(int64_t nnz, const float* vals, const int32_t* idx, const float* dy, float* dx, int64_t lddx,
                 __m256i m) {
  __m256 d[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) d[v] = load(MASKED && v == NV - 1, dy + 8 * v, m);
  for (int64_t k = 0; k < nnz; ++k) {
    float* p = dx + static_cast<int64_t>(idx[k]) * lddx;
    const __m256 w = _mm256_broadcast_ss(vals + k);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      if (MASKED && v == NV - 1) {
        _mm256_maskstore_ps(p + 8 * v, m, _mm256_fmadd_ps(w, d[v], _mm256_maskload_ps(p + 8 * v, m)));
      } else {
        _mm256_storeu_ps(p + 8 * v, _mm256_fmadd_ps(w, d[v], _mm256_loadu_ps(p + 8 * v)));
      }
    }
  }
}

// Eight dot-product vectors -> their eight sums, in order.
inline __m256 reduce8(const __m256 a[8]) {
  const __m256 h01 = _mm256_hadd_ps(a[0], a[1]);
  const __m256 h23 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 h45 = _mm256_hadd_ps(a[4], a[5]);
  const __m256 h67 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 q0 = _mm256_hadd_ps(h01, h23);  // per 128-bit lane: [a0, a1, a2, a3] partials
  const __m256 q1 = _mm256_hadd_ps(h45, h67);
  return _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31));
}

template <int NV, bool MASKED>
__attribute__((always_inline)) inline void sddmm_row(int64_t nnz, const int32_t* idx, const float* dy, const float* x, int64_t ldx, float beta,
                float* out, __m256i m) {
  __m256 d[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) d[v] = load(MASKED && v == NV - 1, dy + 8 * v, m);
  const __m256 vb = _mm256_set1_ps(beta);
  int64_t k = 0;
  for (; k + 8 <= nnz; k += 8) {
    __m256 acc[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      const float* xr = x + static_cast<int64_t>(idx[k + j]) * ldx;
      acc[j] = _mm256_mul_ps(d[0], load(MASKED && NV == 1, xr, m));
#pragma GCC unroll 8
      for (int v = 1; v < NV; ++v) acc[j] = _mm256_fmadd_ps(d[v], load(MASKED && v == NV - 1, xr + 8 * v, m), acc[j]);
    }
    const __m256 s = reduce8(acc);
    _mm256_storeu_ps(out + k, beta == 0.0f ? s : _mm256_fmadd_ps(vb, _mm256_loadu_ps(out + k), s));
  }
  for (; k < nnz; ++k) {
    const float* xr = x + static_cast<int64_t>(idx[k]) * ldx;
    __m256 acc = _mm256_mul_ps(d[0], load(MASKED && NV == 1, xr, m));
#pragma GCC unroll 8
    for (int v = 1; v < NV; ++v) acc = _mm256_fmadd_ps(d[v], load(MASKED && v == NV - 1, xr + 8 * v, m), acc);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    const float s = _mm_cvtss_f32(h);
    out[k] = beta == 0.0f ? s : beta * out[k] + s;
  }
}

// csr_block_run with the scan for the block's end done 8 indices per compare
// (sorted indices make the "< col_end" mask a prefix: its popcount is the run
// length), as in sparse_avx512.cpp.
inline int64_t block_run(const CsrBlock& b, int64_t r, int64_t* start) {
  if (b.cursor == nullptr) {
    *start = b.ptr[r];
    return b.ptr[r + 1];
  }
  const int64_t s = b.cursor[r], end = b.ptr[r + 1];
  const __m256i lim = _mm256_set1_epi32(b.col_end);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  int64_t e = s;
  for (int64_t c = s;; c += 8) {
    const int64_t left = end - c;
    const __m256i valid = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(left < 8 ? left : 8)), lane);
    const __m256i v = _mm256_maskload_epi32(b.indices + c, valid);
    const __m256i below = _mm256_and_si256(valid, _mm256_cmpgt_epi32(lim, v));
    const int n = __builtin_popcount(static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(below))));
    if (n < 8) {
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
void spmm_block(const CsrBlock& b, const float* x, int64_t ldx, float beta, float* y, int64_t ldy, __m256i m) {
  for_each_block_row(b, beta == 1.0f, block_run, [&](int64_t r, int64_t s, int64_t e) NP_INLINE_LAMBDA {
    spmm_row<NV, MASKED>(e - s, b.values + s, b.indices + s, x, ldx, beta, y + r * ldy, m);
  });
}

template <int NV, bool MASKED>
void spmm_t_block(const CsrBlock& b, const float* dy, int64_t lddy, float* dx, int64_t lddx, __m256i m) {
  for_each_block_row(b, true, block_run, [&](int64_t r, int64_t s, int64_t e) NP_INLINE_LAMBDA {
    spmm_t_row<NV, MASKED>(e - s, b.values + s, b.indices + s, dy + r * lddy, dx, lddx, m);
  });
}

template <int NV, bool MASKED>
void sddmm_block(const CsrBlock& b, const float* dy, int64_t lddy, const float* x, int64_t ldx, float beta,
                 float* grad, __m256i m) {
  for_each_block_row(b, true, block_run, [&](int64_t r, int64_t s, int64_t e) NP_INLINE_LAMBDA {
    sddmm_row<NV, MASKED>(e - s, b.indices + s, dy + r * lddy, x, ldx, beta, grad + s, m);
  });
}

#define NP_SPARSE_DISPATCH(fn, n, ...)                 \
  do {                                                  \
    const int nv = ((n) + 7) / 8;                       \
    const __m256i m = tail_mask((n), nv);               \
    NP_SPARSE_SWITCH(fn, nv, ((n) & 7) != 0, m, __VA_ARGS__); \
  } while (0)

}  // namespace

void spmm_f32_csr_ukernel_64_avx2(const CsrBlock& b, const float* x, int64_t ldx, float beta, float* y,
                                  int64_t ldy, int n) {
  NP_SPARSE_DISPATCH(spmm_block, n, b, x, ldx, beta, y, ldy);
}

void spmm_t_f32_csr_ukernel_64_avx2(const CsrBlock& b, const float* dy, int64_t lddy, float* dx,
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

void sddmm_f32_csr_ukernel_64_avx2(const CsrBlock& b, const float* dy, int64_t lddy, const float* x,
                                   int64_t ldx, float beta, float* grad, int n) {
  NP_SPARSE_DISPATCH(sddmm_block, n, b, dy, lddy, x, ldx, beta, grad);
}

const SparseKernel& sparse_kernel_avx2() {
  static const SparseKernel kernel = {"avx2", SimdLevel::kAvx2, kTile, spmm_f32_csr_ukernel_64_avx2,
                                      spmm_t_f32_csr_ukernel_64_avx2, sddmm_f32_csr_ukernel_64_avx2};
  return kernel;
}

}  // namespace np
#endif  // __x86_64__
