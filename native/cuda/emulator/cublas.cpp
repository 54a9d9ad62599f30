// The part of cuBLAS that gemm.cu uses, emulated (README.md), and the table
// open_cuda_library (runtime.cu) reads instead of dlopen in the emulator build.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "device.h"

namespace np::cuda::emulator {

// ---- cuBLAS, the part gemm.cu uses ----------------------------------------------------------
// Column-major C = alpha op(A) op(B) + beta C with the checks and statuses the
// cuBLAS documentation gives, so our row-major mapping onto it is tested.
namespace {

constexpr int kBlasSuccess = 0, kBlasNotInitialized = 1, kBlasInvalidValue = 7, kBlasExecutionFailed = 13;

// A handle belongs to the device current at cublasCreate, which must be
// current again whenever it is used or destroyed (cuBLAS's documentation);
// its stream and matrices must be that device's too.
struct BlasHandle {
  cudaStream_t stream = nullptr;
  int device = 0;
};

// Whether `h` may be used now: its device is current. Else a fault saying so.
bool on_handle_device(const BlasHandle* h, const char* call) {
  if (h->device == current_device()) return true;
  fault(cudaErrorInvalidResourceHandle, std::string(call) + ": a cuBLAS handle of device " + std::to_string(h->device) +
                                            " used while device " + std::to_string(current_device()) + " is current");
  return false;
}

int blas_create(void** handle) {
  if (!handle) return kBlasInvalidValue;
  *handle = new BlasHandle{nullptr, current_device()};
  return kBlasSuccess;
}

int blas_destroy(void* handle) {
  if (!handle) return kBlasNotInitialized;
  const bool ok = on_handle_device(static_cast<BlasHandle*>(handle), "cublasDestroy_v2");
  delete static_cast<BlasHandle*>(handle);
  return ok ? kBlasSuccess : kBlasExecutionFailed;
}

int blas_set_stream(void* handle, cudaStream_t stream) {
  if (!handle) return kBlasNotInitialized;
  if (!valid_stream(stream) || !on_handle_device(static_cast<BlasHandle*>(handle), "cublasSetStream_v2")) return kBlasInvalidValue;
  if (stream_device(stream) != current_device()) return kBlasInvalidValue;  // another device's stream
  static_cast<BlasHandle*>(handle)->stream = stream;
  return kBlasSuccess;
}

int blas_sgemm(void* handle, int transa, int transb, int m, int n, int k, const float* alpha, const float* a, int lda,
               const float* b, int ldb, const float* beta, float* c, int ldc) {
  if (!handle) return kBlasNotInitialized;
  const auto valid_op = [](int op) { return op == 0 || op == 1 || op == 2; };  // N, T, C (C is T for real numbers)
  if (transa == 2) transa = 1;
  if (transb == 2) transb = 1;
  if (!valid_op(transa) || !valid_op(transb) || m < 0 || n < 0 || k < 0 || !alpha || !beta) return kBlasInvalidValue;
  const int a_rows = transa == 0 ? m : k, b_rows = transb == 0 ? k : n;
  if (lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m)) return kBlasInvalidValue;
  if (m == 0 || n == 0) return kBlasSuccess;
  const size_t a_cols = static_cast<size_t>(transa == 0 ? k : m), b_cols = static_cast<size_t>(transb == 0 ? n : k);
  const bool a_ok = k == 0 || device_range(a, (static_cast<size_t>(lda) * (a_cols - 1) + a_rows) * sizeof(float));
  const bool b_ok = k == 0 || device_range(b, (static_cast<size_t>(ldb) * (b_cols - 1) + b_rows) * sizeof(float));
  const bool c_ok = device_range(c, (static_cast<size_t>(ldc) * (n - 1) + m) * sizeof(float));
  if (!a_ok || !b_ok || !c_ok) {
    fault(cudaErrorIllegalAddress, std::string("cublasSgemm_v2: matrix ") + (!a_ok ? "A" : !b_ok ? "B" : "C") +
                                       " is not device memory of the size its dimensions give");
    return kBlasExecutionFailed;
  }
  if (!on_handle_device(static_cast<BlasHandle*>(handle), "cublasSgemm_v2")) return kBlasExecutionFailed;
  const int here = current_device();
  const bool a_here = k == 0 || allocation_device(a) == here, b_here = k == 0 || allocation_device(b) == here;
  if (!a_here || !b_here || allocation_device(c) != here) {
    fault(cudaErrorIllegalAddress, std::string("cublasSgemm_v2: matrix ") + (!a_here ? "A" : !b_here ? "B" : "C") +
                                       " is memory of another device than the current one (" + std::to_string(here) + ")");
    return kBlasExecutionFailed;
  }
  const std::lock_guard<std::mutex> device(device_mutex());
  // Column by column of C, with op(B)'s column gathered first, so every inner
  // loop reads memory in order (the emulated device model spends most of its
  // time here).
  const float al = *alpha, be = *beta;
  std::vector<float> b_col(static_cast<size_t>(k)), c_col(static_cast<size_t>(m));
  for (int j = 0; j < n; ++j) {
    for (int p = 0; p < k; ++p)
      b_col[p] = transb == 0 ? b[p + static_cast<size_t>(j) * ldb] : b[j + static_cast<size_t>(p) * ldb];
    if (transa == 0) {  // op(A)[:, p] is column p of A: C[:, j] += A[:, p] * B[p, j]
      std::fill(c_col.begin(), c_col.end(), 0.0f);
      for (int p = 0; p < k; ++p) {
        const float* a_col = a + static_cast<size_t>(p) * lda;
        const float bv = b_col[p];
        for (int i = 0; i < m; ++i) c_col[i] += a_col[i] * bv;
      }
    } else {  // op(A)[i, :] is column i of A: C[i, j] = A[:, i] . B[:, j]
      for (int i = 0; i < m; ++i) {
        const float* a_col = a + static_cast<size_t>(i) * lda;
        float s = 0.0f;
        for (int p = 0; p < k; ++p) s += a_col[p] * b_col[p];
        c_col[i] = s;
      }
    }
    float* c_out = c + static_cast<size_t>(j) * ldc;
    for (int i = 0; i < m; ++i) c_out[i] = be == 0.0f ? al * c_col[i] : al * c_col[i] + be * c_out[i];  // beta == 0: C is not read (it may hold NaN)
  }
  return kBlasSuccess;
}

struct Library {
  const char* soname;
  std::map<std::string, void*> symbols;
};

const std::vector<Library>& libraries() {
  static const std::vector<Library> libs = [] {
    std::vector<Library> out;
    for (const char* soname : {"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"}) {
      out.push_back(Library{soname,
                            {{"cublasCreate_v2", reinterpret_cast<void*>(&blas_create)},
                             {"cublasDestroy_v2", reinterpret_cast<void*>(&blas_destroy)},
                             {"cublasSetStream_v2", reinterpret_cast<void*>(&blas_set_stream)},
                             {"cublasSgemm_v2", reinterpret_cast<void*>(&blas_sgemm)}}});
    }
    return out;
  }();
  return libs;
}

}  // namespace

void* open_library(const char* soname) {
  // NEUROPLASTIC_CUBLAS=0 is gemm.cu's own switch; this one hides the
  // emulated libraries altogether, as on a machine without them.
  const char* none = std::getenv("NP_CUDA_EMULATOR_NO_LIBRARIES");
  if (none && std::strcmp(none, "1") == 0) return nullptr;
  for (const Library& lib : libraries())
    if (std::strcmp(lib.soname, soname) == 0) return const_cast<Library*>(&lib);
  return nullptr;
}

void* library_symbol(void* library, const char* name) {
  if (!library) return nullptr;
  const auto& symbols = static_cast<const Library*>(library)->symbols;
  const auto it = symbols.find(name);
  return it == symbols.end() ? nullptr : it->second;
}

}  // namespace np::cuda::emulator
