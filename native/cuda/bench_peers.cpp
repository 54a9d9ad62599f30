// bench_peers.h: timing loops, and cuSPARSE through dlopen with hand-declared
// prototypes (the toolkit's headers and libraries are not needed at build
// time, as for cuBLAS in gemm.cu). The enum values are cusparse.h's.
#include "cuda/bench_peers.h"


#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "cuda/kernels.h"
#include "cuda/runtime.h"

namespace np::cuda {

namespace {

template <typename Fn>
double time_ms(Stream& s, int reps, Fn&& fn) {
  fn();  // warm-up: first-launch costs, cuBLAS heuristics, cuSPARSE buffers
  s.synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) fn();
  s.synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
}

DeviceBuffer random_device(int64_t count, uint32_t seed, Stream& s) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(count));
  for (float& x : v) x = u(rng);
  return to_device(v, s);
}

struct HostCsr {
  std::vector<int64_t> indptr;
  std::vector<int32_t> indices;
  std::vector<float> values;
};

HostCsr random_csr(int64_t rows, int64_t cols, double density, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  HostCsr w;
  w.indptr.push_back(0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c)
      if (u(rng) < density) {
        w.indices.push_back(static_cast<int32_t>(c));
        w.values.push_back(u(rng) - 0.5f);
      }
    w.indptr.push_back(static_cast<int64_t>(w.indices.size()));
  }
  return w;
}

// ---- cuSPARSE, loaded at run time ----------------------------------------------
using Status = int;
using Handle = void*;
using SpMat = void*;
using DnMat = void*;
constexpr int kIndex32 = 2;        // CUSPARSE_INDEX_32I
constexpr int kBaseZero = 0;       // CUSPARSE_INDEX_BASE_ZERO
constexpr int kR32F = 0;           // CUDA_R_32F
constexpr int kOrderRow = 2;       // CUSPARSE_ORDER_ROW
constexpr int kNonTranspose = 0;   // CUSPARSE_OPERATION_NON_TRANSPOSE
constexpr int kSpmmDefault = 0;    // CUSPARSE_SPMM_ALG_DEFAULT

struct Cusparse {
  void* lib = nullptr;
  std::string name, error;
  Status (*create)(Handle*) = nullptr;
  Status (*destroy)(Handle) = nullptr;
  Status (*set_stream)(Handle, void*) = nullptr;
  Status (*create_csr)(SpMat*, int64_t, int64_t, int64_t, void*, void*, void*, int, int, int, int) = nullptr;
  Status (*create_dn)(DnMat*, int64_t, int64_t, int64_t, void*, int, int) = nullptr;
  Status (*destroy_sp)(SpMat) = nullptr;
  Status (*destroy_dn)(DnMat) = nullptr;
  Status (*buffer_size)(Handle, int, int, const void*, SpMat, DnMat, const void*, DnMat, int, int, size_t*) = nullptr;
  Status (*spmm)(Handle, int, int, const void*, SpMat, DnMat, const void*, DnMat, int, int, void*) = nullptr;
};

const Cusparse& cusparse() {
  static Cusparse* c = [] {
    auto* out = new Cusparse();
    // By soname, then from the toolkit's folders (open_cuda_library, runtime.h).
    std::string why;
    out->lib = open_cuda_library({"libcusparse.so.13", "libcusparse.so.12", "libcusparse.so.11", "libcusparse.so"}, {},
                                 // CUDA 13's cuSPARSE keeps the soname libcusparse.so.12 but links
                                 // libnvJitLink.so.13, which the ".12" suffix alone would miss.
                                 &out->name, &why, {"libnvJitLink.so", "libnvJitLink.so.13"});
    if (!out->lib) {
      out->error = "libcusparse.so.{13,12,11} not found: " + why;
      return out;
    }
    auto sym = [&](auto& fn, const char* s) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(cuda_library_symbol(out->lib, s));
      if (!fn && out->error.empty()) out->error = std::string("missing symbol ") + s;
    };
    sym(out->create, "cusparseCreate");
    sym(out->destroy, "cusparseDestroy");
    sym(out->set_stream, "cusparseSetStream");
    sym(out->create_csr, "cusparseCreateCsr");
    sym(out->create_dn, "cusparseCreateDnMat");
    sym(out->destroy_sp, "cusparseDestroySpMat");
    sym(out->destroy_dn, "cusparseDestroyDnMat");
    sym(out->buffer_size, "cusparseSpMM_bufferSize");
    sym(out->spmm, "cusparseSpMM");
    return out;
  }();
  return *c;
}

}  // namespace

std::string cusparse_status() {
  const Cusparse& c = cusparse();
  if (!c.lib || !c.error.empty()) return "unavailable (" + c.error + ")";
  return "cusparse (" + c.name + ")";
}

double bench_gemm_ms(int64_t m, int64_t n, int64_t k, int reps, bool tiled) {
  Stream s;
  DeviceBuffer a = random_device(m * k, 1, s), b = random_device(k * n, 2, s), c(static_cast<size_t>(m * n) * sizeof(float));
  return time_ms(s, reps, [&] {
    if (tiled)
      gemm_f32_tiled_cuda(Trans::kNo, Trans::kNo, m, n, k, a.as<float>(), k, b.as<float>(), n, 0.0f, c.as<float>(), n, s);
    else
      gemm_f32_cuda(Trans::kNo, Trans::kNo, m, n, k, a.as<float>(), k, b.as<float>(), n, 0.0f, c.as<float>(), n, s);
  });
}

double bench_spmm_ms(int64_t rows, int64_t cols, double density, int64_t batch, int reps, SpmmBenchImpl impl) {
  // The bench times several implementations on one matrix in a row: drawn once (4096 x 4096 at
  // 50% is 16.7M draws on the host).
  static struct {
    int64_t rows = -1, cols = -1;
    double density = -1.0;
    HostCsr w;
  } last;
  if (last.rows != rows || last.cols != cols || last.density != density) {
    last.w = random_csr(rows, cols, density, 3);
    last.rows = rows;
    last.cols = cols;
    last.density = density;
  }
  const HostCsr& w = last.w;
  const int64_t nnz = static_cast<int64_t>(w.indices.size());
  Stream s;
  DeviceBuffer x = random_device(cols * batch, 4, s), y(static_cast<size_t>(rows * batch) * sizeof(float));
  DeviceBuffer values = to_device(w.values, s), indices = to_device(w.indices, s);
  if (impl != SpmmBenchImpl::kCusparse) {
    DeviceBuffer indptr = to_device(w.indptr, s);
    const CsrView v{rows, cols, indptr.as<int64_t>(), indices.as<int32_t>(), values.as<float>()};
    const SpmmKernel kernel = impl == SpmmBenchImpl::kOursRows    ? SpmmKernel::kRows
                              : impl == SpmmBenchImpl::kOursWarp  ? SpmmKernel::kWarp
                              : impl == SpmmBenchImpl::kOursStaged ? SpmmKernel::kStaged
                                                                  : SpmmKernel::kAuto;
    // A forced kernel that cannot run on these operands (spmm_kernel_for would fall back to rows)
    // is not timed under its name.
    if (kernel != SpmmKernel::kAuto && spmm_kernel_for(kernel, x.as<float>(), batch, y.as<float>(), batch, batch) != kernel)
      return -1.0;
    return time_ms(s, reps, [&] { spmm_f32_csr_cuda(v, x.as<float>(), batch, 0.0f, y.as<float>(), batch, batch, s, kernel, nnz); });
  }
  const Cusparse& c = cusparse();
  if (!c.lib || !c.error.empty()) return -1.0;
  // cuSPARSE's SpMM wants one index type for both arrays: int32 row offsets here.
  std::vector<int32_t> indptr32(w.indptr.begin(), w.indptr.end());
  DeviceBuffer indptr = to_device(indptr32, s);
  Handle h = nullptr;
  SpMat a = nullptr;
  DnMat bx = nullptr, cy = nullptr;
  double ms = -1.0;
  if (c.create(&h) == 0 && c.set_stream(h, s.handle()) == 0 &&
      c.create_csr(&a, rows, cols, nnz, indptr.data(), indices.data(), values.data(), kIndex32, kIndex32, kBaseZero, kR32F) == 0 &&
      c.create_dn(&bx, cols, batch, batch, x.data(), kR32F, kOrderRow) == 0 &&
      c.create_dn(&cy, rows, batch, batch, y.data(), kR32F, kOrderRow) == 0) {
    const float alpha = 1.0f, beta = 0.0f;
    size_t bytes = 0;
    if (c.buffer_size(h, kNonTranspose, kNonTranspose, &alpha, a, bx, &beta, cy, kR32F, kSpmmDefault, &bytes) == 0) {
      DeviceBuffer work(bytes ? bytes : 1);
      bool ok = true;
      ms = time_ms(s, reps, [&] {
        ok = ok && c.spmm(h, kNonTranspose, kNonTranspose, &alpha, a, bx, &beta, cy, kR32F, kSpmmDefault, work.data()) == 0;
      });
      if (!ok) ms = -1.0;
    }
  }
  if (cy) c.destroy_dn(cy);
  if (bx) c.destroy_dn(bx);
  if (a) c.destroy_sp(a);
  if (h) c.destroy(h);
  return ms;
}

}  // namespace np::cuda
