// The blocked loops around the micro-kernels (BLIS's five loops), the
// split of C between threads, dispatch by SIMD level, and the naive reference.
//
//   ic: mc rows of C         A block mc x kc packed (L2)
//    pc: kc steps of k        first block applies beta, the rest accumulate
//     jc: nc columns of C     B block kc x nc packed (L2)
//      jr: nr columns         B panel kc x nr stays in L1 across ir
//       ir: mr rows           micro-kernel on one mr x nr tile of C
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "gemm_internal.h"
#include "thread_pool.h"

namespace np {

namespace {

// Grow-only, 64-byte aligned packing space, one pair per thread: the hot path
// never allocates once a thread has seen its largest block.
class PackBuffer {
 public:
  ~PackBuffer() { std::free(data_); }
  float* get(size_t floats) {
    if (floats > capacity_) {
      std::free(data_);
      const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
      data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (data_ == nullptr) std::abort();  // out of memory mid-kernel: nothing sane to return
      capacity_ = bytes / sizeof(float);
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  size_t capacity_ = 0;
};

thread_local PackBuffer t_pack_a;
thread_local PackBuffer t_pack_b;

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

struct Problem {
  Trans ta, tb;
  int64_t m, n, k;
  const float* a;
  int64_t lda;
  const float* b;
  int64_t ldb;
  float beta;
  float* c;
  int64_t ldc;
};

// Prefetches part `slice` of `slices` of the source of B block (p0, kc, j0,
// nc) into cache. B is the one operand read from DRAM (a 4096x4096 B is 64 MB
// and each element is used in one block only); spreading the next block's
// prefetches over the current block's micro-kernels hides that read behind
// arithmetic instead of stalling the packing routine on it.
void prefetch_b_slice(const Problem& pr, int64_t p0, int64_t kc, int64_t j0, int64_t nc, int64_t slice,
                      int64_t slices) {
  if (pr.tb == Trans::kNo) {  // kc rows of nc contiguous floats
    for (int64_t p = p0 + kc * slice / slices; p < p0 + kc * (slice + 1) / slices; ++p)
      for (int64_t j = 0; j < nc; j += 16) __builtin_prefetch(pr.b + p * pr.ldb + j0 + j);
  } else {  // nc rows of kc contiguous floats
    for (int64_t j = j0 + nc * slice / slices; j < j0 + nc * (slice + 1) / slices; ++j)
      for (int64_t p = 0; p < kc; p += 16) __builtin_prefetch(pr.b + j * pr.ldb + p0 + p);
  }
}

// One thread's share: rows [i0, i1) and columns [j0, j1) of C, over all of k.
//
// Loop order (outer to inner): ic, pc, jc, jr, ir. A block of up to mc rows is
// packed once per k block and stays in L2 while every column of the share
// streams past it in nc-wide B blocks (also L2-sized), so for layers up to mc
// rows (every M in the acceptance shapes) A is packed exactly once and B is
// packed once, panel row by panel row, just before its columns are used.
void gemm_block(const GemmKernel& kr, const Problem& pr, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  // Row tiles: ceil(rows / mr) of them; balanced ones differ by at most a row.
  const int64_t rows = i1 - i0;
  const int64_t tiles = (rows + kr.mr - 1) / kr.mr;
  const int64_t base = kr.balanced_rows ? rows / tiles : kr.mr;
  const int64_t extra = kr.balanced_rows ? rows % tiles : 0;
  auto tile_start = [&](int64_t t) { return i0 + t * base + std::min(t, extra); };
  auto tile_rows = [&](int64_t t) {
    return static_cast<int>(std::min(i1, tile_start(t + 1)) - tile_start(t));
  };
  const int64_t tiles_per_block = std::max<int64_t>(1, kr.mc / kr.mr);

  const int64_t kc_max = std::min(kr.kc, pr.k);
  float* pa = t_pack_a.get(static_cast<size_t>(std::min(tiles, tiles_per_block) * kr.mr * kc_max));
  float* pb = t_pack_b.get(static_cast<size_t>(std::min(kr.nc, round_up(j1 - j0, kr.nr)) * kc_max));

  for (int64_t tb = 0; tb < tiles; tb += tiles_per_block) {
    const int64_t te = std::min(tiles, tb + tiles_per_block);
    for (int64_t pc = 0; pc < pr.k; pc += kr.kc) {
      const int64_t kc = std::min(kr.kc, pr.k - pc);
      const float beta = pc == 0 ? pr.beta : 1.0f;  // later k blocks accumulate
      for (int64_t t = tb; t < te; ++t)
        kr.pack_a(pr.ta, pr.a, pr.lda, tile_start(t), tile_rows(t), pc, kc, pa + (t - tb) * kr.mr * kc);
      for (int64_t jc = j0; jc < j1; jc += kr.nc) {
        const int64_t nc = std::min(kr.nc, j1 - jc);
        kr.pack_b(pr.tb, pr.b, pr.ldb, pc, kc, jc, nc, pb);
        // The B block after this one: next columns, else the next k block.
        int64_t next_p = pc, next_j = jc + nc;
        if (next_j >= j1) {
          next_p = pc + kr.kc;
          next_j = j0;
        }
        const bool prefetch = next_p < pr.k;
        const int64_t next_kc = prefetch ? std::min(kr.kc, pr.k - next_p) : 0;
        const int64_t next_nc = std::min(kr.nc, j1 - next_j);
        const int64_t panels = (nc + kr.nr - 1) / kr.nr;
        for (int64_t jr = 0; jr < nc; jr += kr.nr) {
          const int nr = static_cast<int>(std::min<int64_t>(kr.nr, nc - jr));
          if (prefetch) prefetch_b_slice(pr, next_p, next_kc, next_j, next_nc, jr / kr.nr, panels);
          const float* bp = pb + jr * kc;
          float* cj = pr.c + jc + jr;
          for (int64_t t = tb; t < te; ++t)
            kr.ukernel(kc, pa + (t - tb) * kr.mr * kc, bp, cj + tile_start(t) * pr.ldc, pr.ldc,
                       tile_rows(t), nr, beta);
        }
      }
    }
  }
}

// C = beta * C, for k == 0 (no micro-kernel runs then).
void scale_c(const Problem& pr) {
  for (int64_t i = 0; i < pr.m; ++i) {
    float* ci = pr.c + i * pr.ldc;
    if (pr.beta == 0.0f) {
      std::memset(ci, 0, static_cast<size_t>(pr.n) * sizeof(float));
    } else if (pr.beta != 1.0f) {
      for (int64_t j = 0; j < pr.n; ++j) ci[j] *= pr.beta;
    }
  }
}

// Below this many multiply-adds (about 10 microseconds of work) a product runs
// on the calling thread: waking a worker and joining it costs a few
// microseconds, which ate half of a 784-32-10 step at batch 8.
constexpr int64_t kMinParallelMnk = 1 << 20;

// Splits C into a tm x tn grid of blocks, one per thread. Each block packs its
// own A rows and B columns (no sharing, no synchronisation inside the loops),
// so the choice trades the slowest block's compute against that redundant
// packing: a wide C (training batches of 128+ against 128-row layers) splits
// columns, a tall thin one splits rows.
struct Grid {
  int tm = 1, tn = 1;
};

Grid choose_grid(const GemmKernel& kr, int64_t m, int64_t n, int64_t k, int threads) {
  const int64_t nu = std::min(kr.nr, 16);  // column split granularity: one vector
  const int64_t units_m = (m + kr.mr - 1) / kr.mr;
  const int64_t units_n = (n + nu - 1) / nu;
  Grid best;
  double best_cost = -1.0;
  for (int tm = 1; tm <= threads; ++tm) {
    for (int tn = 1; tm * tn <= threads; ++tn) {
      if (tm > units_m || tn > units_n) continue;
      const double rows = static_cast<double>(std::min(m, (units_m + tm - 1) / tm * kr.mr));
      const double cols = static_cast<double>(std::min(n, (units_n + tn - 1) / tn * nu));
      // ~32 multiply-adds per cycle at peak vs ~1 packed float per cycle.
      const double cost = rows * cols * static_cast<double>(k) / 32.0 + (rows + cols) * static_cast<double>(k);
      if (best_cost < 0 || cost < best_cost) {
        best_cost = cost;
        best.tm = tm;
        best.tn = tn;
      }
    }
  }
  return best;
}

// [begin, end) of part `index` of `parts` when [0, size) is cut at multiples of unit.
void split_range(int64_t size, int64_t unit, int parts, int index, int64_t* begin, int64_t* end) {
  const int64_t units = (size + unit - 1) / unit;
  *begin = std::min(size, units * index / parts * unit);
  *end = std::min(size, units * (index + 1) / parts * unit);
}

void gemm_run(const GemmKernel& kr, const Problem& pr, ThreadPool* pool) {
  if (pr.m <= 0 || pr.n <= 0) return;
  if (pr.k <= 0) {
    scale_c(pr);
    return;
  }
  int threads = pool != nullptr ? pool->size() : 1;
  if (pr.m * pr.n * pr.k < kMinParallelMnk) threads = 1;
  const Grid grid = threads > 1 ? choose_grid(kr, pr.m, pr.n, pr.k, threads) : Grid{};
  if (grid.tm * grid.tn == 1) {
    gemm_block(kr, pr, 0, pr.m, 0, pr.n);
    return;
  }
  const int64_t nu = std::min(kr.nr, 16);
  pool->parallel_for(grid.tm * grid.tn, [&](int64_t t) {
    int64_t i0, i1, j0, j1;
    split_range(pr.m, kr.mr, grid.tm, static_cast<int>(t / grid.tn), &i0, &i1);
    split_range(pr.n, nu, grid.tn, static_cast<int>(t % grid.tn), &j0, &j1);
    if (i0 < i1 && j0 < j1) gemm_block(kr, pr, i0, i1, j0, j1);
  });
}

}  // namespace

const GemmKernel& gemm_kernel_for(SimdLevel level) {
  // A function-local table, so a caller during static initialisation is safe.
  static const GemmKernel* const registry[] = {
#define NP_GEMM_KERNEL(isa, level, MR, NR) &gemm_kernel_##isa(),
#include "kernels.inc"
#undef NP_GEMM_KERNEL
  };
  // The best registered kernel not above `level` (the scalar one always is).
  const GemmKernel* best = registry[0];
  for (const GemmKernel* kr : registry)
    if (static_cast<int>(kr->level) <= static_cast<int>(level) &&
        static_cast<int>(kr->level) >= static_cast<int>(best->level))
      best = kr;
  return *best;
}

void gemm_f32_with(const GemmKernel& kernel, Trans trans_a, Trans trans_b, int64_t m, int64_t n,
                   int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                   float* c, int64_t ldc, ThreadPool* pool) {
  const Problem pr{trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc};
  gemm_run(kernel, pr, pool);
}

void gemm_f32_at(SimdLevel level, Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                 int64_t ldc, ThreadPool* pool) {
  // Never run an instruction set the CPU lacks, whatever the caller asked.
  if (static_cast<int>(level) > static_cast<int>(detected_simd_level())) level = detected_simd_level();
  const Problem pr{trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc};
  gemm_run(gemm_kernel_for(level), pr, pool);
}

void gemm_f32(Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
              const float* b, int64_t ldb, float beta, float* c, int64_t ldc, ThreadPool* pool) {
  const Problem pr{trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc};
  gemm_run(gemm_kernel_for(active_simd_level()), pr, pool);
}

void gemm_f32_naive(Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k, const float* a,
                    int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  // C[m x n] = beta * C + op(A)[m x k] * op(B)[k x n]
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (int64_t p = 0; p < k; ++p) {
        const float av = trans_a == Trans::kNo ? a[i * lda + p] : a[p * lda + i];
        const float bv = trans_b == Trans::kNo ? b[p * ldb + j] : b[j * ldb + p];
        acc += static_cast<double>(av) * bv;
      }
      float& cij = c[i * ldc + j];
      cij = beta == 0.0f ? static_cast<float>(acc) : static_cast<float>(beta * cij + acc);
    }
  }
}

}  // namespace np
