// Dense SGEMM: our own tiled kernel, and cuBLAS when the machine has it.
//
// cuBLAS headers and libraries are not needed at build time (CI has neither):
// libcublas.so.* is dlopen'ed (open_cuda_library) on first use with the handful of entry points
// declared below (their C ABI has been stable since CUDA 10). cuBLAS is column
// major, so the row-major C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T,
// which is the same memory. NEUROPLASTIC_CUBLAS=0 forces the own kernel.
//
// The own kernel: a 256-thread block computes a 64x64 tile of C; each k step
// stages op(A)[64 x 16] and op(B)[16 x 64] in shared memory (loads arranged so
// global reads are coalesced for either transpose), and each thread keeps a 4x4
// accumulator for rows ty + 16i and columns tx + 16j. Edges are zero-padded.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

#include "cuda/check.cuh"
#include "cuda/kernels.h"

namespace np::cuda {

// ---- cuBLAS, loaded at run time ---------------------------------------------------

namespace {

using BlasStatus = int;  // cublasStatus_t: 0 = CUBLAS_STATUS_SUCCESS
using BlasCreate = BlasStatus (*)(void** handle);
using BlasDestroy = BlasStatus (*)(void* handle);
using BlasSetStream = BlasStatus (*)(void* handle, cudaStream_t stream);
using BlasSgemm = BlasStatus (*)(void* handle, int transa, int transb, int m, int n, int k, const float* alpha,
                                 const float* a, int lda, const float* b, int ldb, const float* beta, float* c,
                                 int ldc);
constexpr int kBlasOpN = 0, kBlasOpT = 1;

struct Blas {
  void* lib = nullptr;
  std::string name;    // the soname that loaded
  std::string reason;  // why none did
  BlasCreate create = nullptr;
  BlasDestroy destroy = nullptr;
  BlasSetStream set_stream = nullptr;
  BlasSgemm sgemm = nullptr;
};

Blas load_blas() {
  Blas b;
  const char* env = std::getenv("NEUROPLASTIC_CUBLAS");
  if (env && std::strcmp(env, "0") == 0) {
    b.reason = "NEUROPLASTIC_CUBLAS=0";
    return b;
  }
  // By soname, then from the toolkit's folders (open_cuda_library): a toolkit
  // that is not on the loader's path would otherwise never give cuBLAS.
  std::string loaded, why;
  void* lib = open_cuda_library({"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"},
                                {"cublasCreate_v2", "cublasDestroy_v2", "cublasSetStream_v2", "cublasSgemm_v2"},
                                &loaded, &why, {"libcublasLt.so"});
  if (!lib) {
    b.reason = "libcublas.so not found: " + why;
    return b;
  }
  b.create = reinterpret_cast<BlasCreate>(cuda_library_symbol(lib, "cublasCreate_v2"));
  b.destroy = reinterpret_cast<BlasDestroy>(cuda_library_symbol(lib, "cublasDestroy_v2"));
  b.set_stream = reinterpret_cast<BlasSetStream>(cuda_library_symbol(lib, "cublasSetStream_v2"));
  b.sgemm = reinterpret_cast<BlasSgemm>(cuda_library_symbol(lib, "cublasSgemm_v2"));
  b.lib = lib;
  b.name = loaded;
  return b;
}

const Blas& blas() {
  static const Blas b = load_blas();
  return b;
}

// Why the latest attempt to make a cuBLAS handle failed ("" when it worked),
// for gemm_backend(): cuBLAS loaded, but that stream's GEMMs run on the own kernel.
std::mutex g_handle_failure_mutex;
std::string g_handle_failure;

}  // namespace

void* create_blas_handle(void* stream) {
  const Blas& b = blas();
  if (!b.lib) return nullptr;
  void* handle = nullptr;
  std::string failed;
  if (const BlasStatus st = b.create(&handle); st != 0) {  // e.g. no device memory: fall back to the own kernel
    failed = "cublasCreate failed with status " + std::to_string(st);
    handle = nullptr;
  } else if (const BlasStatus st2 = b.set_stream(handle, static_cast<cudaStream_t>(stream)); st2 != 0) {
    failed = "cublasSetStream failed with status " + std::to_string(st2);
    b.destroy(handle);
    handle = nullptr;
  }
  const std::lock_guard<std::mutex> lock(g_handle_failure_mutex);
  g_handle_failure = failed;
  return handle;
}

void release_blas_handle(void* handle) noexcept {
  if (handle && blas().lib) blas().destroy(handle);
}

std::string gemm_backend() {
  const Blas& b = blas();
  if (!b.lib) return "tiled (" + b.reason + ")";
  const std::lock_guard<std::mutex> lock(g_handle_failure_mutex);
  if (!g_handle_failure.empty()) return "tiled (" + b.name + " loaded, but " + g_handle_failure + ")";
  return "cublas (" + b.name + ")";
}

// ---- the own kernel -------------------------------------------------------------

namespace {

constexpr int kTile = 64, kDepth = 16, kThreads = 256;

template <bool kTransA, bool kTransB>
__global__ void __launch_bounds__(kThreads)
    gemm_f32_tiled_64x64_kernel(int64_t m, int64_t n, int64_t k, const float* __restrict__ a, int64_t lda,
                                const float* __restrict__ b, int64_t ldb, float beta, float* __restrict__ c,
                                int64_t ldc, int64_t tile_m0) {
  // C[m x n] = beta*C + op(A)[m x k] op(B)[k x n]; this block: rows m0.., columns n0..
  __shared__ float as[kDepth][kTile + 1];  // as[kk][mm] = op(A)[m0+mm, k0+kk]
  __shared__ float bs[kDepth][kTile + 1];  // bs[kk][nn] = op(B)[k0+kk, n0+nn]
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t m0 = (tile_m0 + static_cast<int64_t>(blockIdx.y)) * kTile, n0 = static_cast<int64_t>(blockIdx.x) * kTile;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < k; k0 += kDepth) {
#pragma unroll
    for (int l = 0; l < kTile * kDepth / kThreads; ++l) {
      const int e = tid + l * kThreads;
      // Consecutive threads walk the dimension that is contiguous in memory.
      const int mm = kTransA ? e % kTile : e / kDepth, ka = kTransA ? e / kTile : e % kDepth;
      const int64_t gm = m0 + mm, gka = k0 + ka;
      as[ka][mm] = gm < m && gka < k ? (kTransA ? a[gka * lda + gm] : a[gm * lda + gka]) : 0.0f;
      const int nn = kTransB ? e / kDepth : e % kTile, kb = kTransB ? e % kDepth : e / kTile;
      const int64_t gn = n0 + nn, gkb = k0 + kb;
      bs[kb][nn] = gn < n && gkb < k ? (kTransB ? b[gn * ldb + gkb] : b[gkb * ldb + gn]) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kDepth; ++kk) {
      float ar[4], br[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) ar[i] = as[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) br[j] = bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += ar[i] * br[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t gm = m0 + ty + 16 * i;
    if (gm >= m) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t gn = n0 + tx + 16 * j;
      if (gn >= n) continue;
      float* out = c + gm * ldc + gn;
      *out = beta == 0.0f ? acc[i][j] : beta * *out + acc[i][j];
    }
  }
}

}  // namespace

void gemm_f32_tiled_cuda(Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                         const float* b, int64_t ldb, float beta, float* c, int64_t ldc, Stream& stream) {
  if (m <= 0 || n <= 0) return;
  const int64_t gx = ceil_div(n, kTile), gy = ceil_div(m, kTile);
  if (gx > kMaxGridX) throw std::length_error("gemm_f32_tiled_cuda: n = " + std::to_string(n) + " exceeds the grid");
  const bool ta = trans_a == Trans::kYes, tb = trans_b == Trans::kYes;
  cudaStream_t s = raw(stream);
  // Rows of tiles in slices of at most 65535 (grid.y's limit). k == 0 still runs: C = beta*C.
  for (int64_t t0 = 0; t0 < gy; t0 += kMaxGridY) {
    const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(std::min(kMaxGridY, gy - t0)));
    if (!ta && !tb) NP_LAUNCH(grid, kThreads, 0, s, gemm_f32_tiled_64x64_kernel<false, false>)(m, n, k, a, lda, b, ldb, beta, c, ldc, t0);
    if (!ta && tb) NP_LAUNCH(grid, kThreads, 0, s, gemm_f32_tiled_64x64_kernel<false, true>)(m, n, k, a, lda, b, ldb, beta, c, ldc, t0);
    if (ta && !tb) NP_LAUNCH(grid, kThreads, 0, s, gemm_f32_tiled_64x64_kernel<true, false>)(m, n, k, a, lda, b, ldb, beta, c, ldc, t0);
    if (ta && tb) NP_LAUNCH(grid, kThreads, 0, s, gemm_f32_tiled_64x64_kernel<true, true>)(m, n, k, a, lda, b, ldb, beta, c, ldc, t0);
  }
  NP_CUDA_CHECK_LAUNCH();
}

void gemm_f32_cuda(Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                   const float* b, int64_t ldb, float beta, float* c, int64_t ldc, Stream& stream) {
  if (m <= 0 || n <= 0) return;
  constexpr int64_t kIntMax = 2147483647;
  void* handle = blas().lib ? stream.blas_handle() : nullptr;
  const bool fits = m <= kIntMax && n <= kIntMax && k <= kIntMax && lda <= kIntMax && ldb <= kIntMax && ldc <= kIntMax;
  if (!handle || !fits || k == 0) {
    gemm_f32_tiled_cuda(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc, stream);
    return;
  }
  const float one = 1.0f;
  // Column-major view: C^T (n x m, ld ldc) = op(B)^T (n x k) * op(A)^T (k x m).
  const int op_b = trans_b == Trans::kYes ? kBlasOpT : kBlasOpN;
  const int op_a = trans_a == Trans::kYes ? kBlasOpT : kBlasOpN;
  const BlasStatus st = blas().sgemm(handle, op_b, op_a, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k),
                                     &one, b, static_cast<int>(ldb), a, static_cast<int>(lda), &beta, c,
                                     static_cast<int>(ldc));
  if (st != 0) throw CudaError(0, "cublasSgemm_v2 failed with cublasStatus_t " + std::to_string(st));
}

}  // namespace np::cuda
