// CSR SpMM (forward, transposed) and SDDMM on the GPU against the CPU naive
// references (native/kernels/sparse.h), on awkward shapes: 1 x 1, sizes that
// straddle the 32/64/128-thread groups and the 4-column tiles, empty rows and
// an all-empty matrix, padded row strides (the padding must survive), beta 0
// over NaN and beta 0.5. Tolerance: |gpu - ref| <= 1e-5 * (|W||X| + 1), the
// product on absolute values being what float rounding scales with.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(NP_CUDA_EMULATOR)
#include <cuda_runtime.h>  // the emulator's: launches_of
#endif

#include "cuda/kernels.h"
#include "cuda/runtime.h"
#include "cuda_test.h"
#include "kernels/sparse.h"

namespace {

using np::CsrView;
using namespace np_cuda_test;
namespace nc = np::cuda;

struct Shape {
  int64_t rows, cols, batch, pad;
  double density;
};

const Shape kShapes[] = {
    {1, 1, 1, 0, 1.0},      {7, 13, 5, 3, 0.5},     {130, 67, 33, 0, 0.1},  {33, 129, 128, 7, 0.3},
    {257, 300, 129, 1, 0.05}, {64, 1000, 513, 0, 0.02}, {5, 4, 300, 2, 1.0},   {40, 50, 0, 4, 0.2},
    {100, 17, 1031, 0, 0.0},
};

// W's CSR arrays on the device, and its transpose structure.
struct DeviceCsr {
  nc::DeviceBuffer indptr, indices, values, col_ptr, row_idx, value_pos;
  CsrView view;
  nc::CsrTransposeView t;
  DeviceCsr(const Csr& w, nc::Stream& s)
      : indptr(nc::to_device(w.indptr, s)), indices(nc::to_device(w.indices, s)), values(nc::to_device(w.values, s)) {
    const nc::CsrTranspose host_t = nc::csr_transpose_host(w.view());
    col_ptr = nc::to_device(host_t.col_ptr, s);
    row_idx = nc::to_device(host_t.row_idx, s);
    value_pos = nc::to_device(host_t.value_pos, s);
    view = CsrView{w.rows, w.cols, indptr.as<int64_t>(), indices.as<int32_t>(), values.as<float>()};
    t = nc::CsrTransposeView{w.rows, w.cols, col_ptr.as<int64_t>(), row_idx.as<int32_t>(), value_pos.as<int64_t>()};
  }
};

// Y = beta*Y + op(W) X through the GPU and the reference; returns the worst scaled error.
double check_spmm(const Shape& sh, bool transposed, float beta, uint64_t seed) {
  nc::Stream s;
  Csr w = random_csr(sh.rows, sh.cols, sh.density, seed);
  const int64_t in_rows = transposed ? sh.rows : sh.cols, out_rows = transposed ? sh.cols : sh.rows;
  const int64_t ld = sh.batch + sh.pad;
  const std::vector<float> x = padded_block(in_rows, sh.batch, ld, seed + 1);
  std::vector<float> y0 = padded_block(out_rows, sh.batch, ld, seed + 2);
  if (beta == 0.0f)
    for (int64_t r = 0; r < out_rows; ++r)
      for (int64_t j = 0; j < sh.batch; ++j) y0[r * ld + j] = kNan;
  DeviceCsr dw(w, s);
  nc::DeviceBuffer dx = nc::to_device(x, s), dy = nc::to_device(y0, s);
  if (transposed)
    nc::spmm_t_f32_csr_cuda(dw.view, dw.t, dx.as<float>(), ld, beta, dy.as<float>(), ld, sh.batch, s);
  else
    nc::spmm_f32_csr_cuda(dw.view, dx.as<float>(), ld, beta, dy.as<float>(), ld, sh.batch, s);
  const std::vector<float> got = nc::to_host<float>(dy, y0.size(), s);

  std::vector<float> want = y0, scale = abs_of(y0);
  Csr wa = w;
  wa.values = abs_of(w.values);
  const std::vector<float> xa = abs_of(x);
  if (transposed) {
    np::spmm_t_f32_csr_naive(w.view(), x.data(), ld, beta, want.data(), ld, sh.batch);
    np::spmm_t_f32_csr_naive(wa.view(), xa.data(), ld, beta == 0.0f ? 0.0f : std::fabs(beta), scale.data(), ld, sh.batch);
  } else {
    np::spmm_f32_csr_naive(w.view(), x.data(), ld, beta, want.data(), ld, sh.batch);
    np::spmm_f32_csr_naive(wa.view(), xa.data(), ld, beta == 0.0f ? 0.0f : std::fabs(beta), scale.data(), ld, sh.batch);
  }
  for (int64_t r = 0; r < out_rows; ++r)
    for (int64_t j = sh.batch; j < ld; ++j)
      CHECK_MSG(got[r * ld + j] == kSentinel, "padding overwritten at row %lld col %lld", (long long)r, (long long)j);
  return max_scaled_error(got, want, scale);
}

// dW = beta*dW + dY . X at W's positions through the GPU and the reference;
// returns the worst scaled error. vectors: whether the float4 kernel is the
// one that runs (sddmm_takes_vectors; over the emulator, its launch count).
double check_sddmm(const Shape& sh, float beta, uint64_t seed, bool vectors) {
  nc::Stream s;
  Csr w = random_csr(sh.rows, sh.cols, sh.density, seed);
  const int64_t ld = sh.batch + sh.pad;
  const std::vector<float> dy = padded_block(sh.rows, sh.batch, ld, seed + 1), x = padded_block(sh.cols, sh.batch, ld, seed + 2);
  std::vector<float> g0 = random_vector(w.values.size(), seed + 3);
  if (beta == 0.0f)
    for (float& v : g0) v = kNan;
  DeviceCsr dw(w, s);
  nc::DeviceBuffer ddy = nc::to_device(dy, s), dx = nc::to_device(x, s), dg = nc::to_device(g0, s);
  CHECK_MSG(nc::sddmm_takes_vectors(ddy.as<float>(), ld, dx.as<float>(), ld, sh.batch) == vectors,
            "batch %lld ld %lld: the float4 kernel %s", (long long)sh.batch, (long long)ld, vectors ? "does not apply" : "applies");
#if defined(NP_CUDA_EMULATOR)
  const int64_t before = np::cuda::emulator::launches_of("sddmm_f32_csr_vector_kernel");
#endif
  nc::sddmm_f32_csr_cuda(dw.view, ddy.as<float>(), ld, dx.as<float>(), ld, sh.batch, beta, dg.as<float>(), s);
#if defined(NP_CUDA_EMULATOR)
  if (sh.rows > 0)
    CHECK_MSG(np::cuda::emulator::launches_of("sddmm_f32_csr_vector_kernel") == before + (vectors ? 1 : 0),
              "the float4 kernel %s", vectors ? "did not run" : "ran");
#endif
  const std::vector<float> got = nc::to_host<float>(dg, g0.size(), s);
  std::vector<float> want = g0, scale = abs_of(g0);
  np::sddmm_f32_csr_naive(w.view(), dy.data(), ld, x.data(), ld, sh.batch, beta, want.data());
  const std::vector<float> dya = abs_of(dy), xa = abs_of(x);
  np::sddmm_f32_csr_naive(w.view(), dya.data(), ld, xa.data(), ld, sh.batch, beta, scale.data());
  return max_scaled_error(got, want, scale);
}

}  // namespace

CUDA_TEST(spmm_f32_csr_cuda_matches_naive) {
  uint64_t seed = 10;
  for (const Shape& sh : kShapes)
    for (float beta : {0.0f, 0.5f}) {
      const double e = check_spmm(sh, false, beta, seed++);
      CHECK_MSG(e <= 1e-5, "%lldx%lld batch %lld pad %lld density %.2f beta %.1f: error %g", (long long)sh.rows,
                (long long)sh.cols, (long long)sh.batch, (long long)sh.pad, sh.density, beta, e);
    }
}

CUDA_TEST(spmm_t_f32_csr_cuda_matches_naive) {
  uint64_t seed = 100;
  for (const Shape& sh : kShapes)
    for (float beta : {0.0f, 0.5f}) {
      const double e = check_spmm(sh, true, beta, seed++);
      CHECK_MSG(e <= 1e-5, "%lldx%lld batch %lld pad %lld density %.2f beta %.1f: error %g", (long long)sh.rows,
                (long long)sh.cols, (long long)sh.batch, (long long)sh.pad, sh.density, beta, e);
    }
}

CUDA_TEST(sddmm_f32_csr_cuda_matches_naive) {
  uint64_t seed = 200;
  for (const Shape& sh : kShapes)
    for (float beta : {0.0f, 0.5f}) {
      const double e = check_sddmm(sh, beta, seed, false);
      seed += 4;
      CHECK_MSG(e <= 1e-5, "%lldx%lld batch %lld density %.2f beta %.1f: error %g", (long long)sh.rows,
                (long long)sh.cols, (long long)sh.batch, sh.density, beta, e);
    }
}

// The CSR products equal the dense ones on W densified: the same layer either way.
CUDA_TEST(spmm_f32_csr_cuda_equals_dense_gemm) {
  nc::Stream s;
  const int64_t rows = 96, cols = 70, batch = 45;
  Csr w = random_csr(rows, cols, 0.3, 7);
  std::vector<float> dense(static_cast<size_t>(rows * cols), 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = w.indptr[r]; k < w.indptr[r + 1]; ++k) dense[r * cols + w.indices[k]] = w.values[k];
  const std::vector<float> x = random_vector(static_cast<size_t>(cols * batch), 8);
  DeviceCsr dw(w, s);
  nc::DeviceBuffer dd = nc::to_device(dense, s), dx = nc::to_device(x, s);
  nc::DeviceBuffer ys(rows * batch * sizeof(float)), yd(rows * batch * sizeof(float));
  nc::spmm_f32_csr_cuda(dw.view, dx.as<float>(), batch, 0.0f, ys.as<float>(), batch, batch, s);
  nc::gemm_f32_tiled_cuda(np::Trans::kNo, np::Trans::kNo, rows, batch, cols, dd.as<float>(), cols, dx.as<float>(), batch,
                          0.0f, yd.as<float>(), batch, s);
  const auto a = nc::to_host<float>(ys, rows * batch, s), b = nc::to_host<float>(yd, rows * batch, s);
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::fmax(worst, std::fabs(a[i] - b[i]));
  CHECK_MSG(worst <= 1e-4, "sparse vs dense: max difference %g", worst);
}

// Host-only: the transpose structure lists every entry once, by column, rows sorted.
TEST(csr_transpose_host_lists_each_entry_once_by_column) {
  for (const Shape& sh : kShapes) {
    Csr w = random_csr(sh.rows, sh.cols, sh.density, 5);
    const nc::CsrTranspose t = nc::csr_transpose_host(w.view());
    CHECK_EQ(t.col_ptr.size(), static_cast<size_t>(sh.cols + 1));
    CHECK_EQ(t.col_ptr.back(), static_cast<int64_t>(w.values.size()));
    std::vector<int> seen(w.values.size(), 0);
    for (int64_t c = 0; c < sh.cols; ++c)
      for (int64_t p = t.col_ptr[c]; p < t.col_ptr[c + 1]; ++p) {
        const int64_t k = t.value_pos[p];
        CHECK(k >= 0 && k < static_cast<int64_t>(w.values.size()));
        if (k < 0 || k >= static_cast<int64_t>(w.values.size())) continue;
        ++seen[k];
        CHECK_EQ(w.indices[k], static_cast<int32_t>(c));
        const int32_t r = t.row_idx[p];
        CHECK(w.indptr[r] <= k && k < w.indptr[r + 1]);
        if (p > t.col_ptr[c]) CHECK(t.row_idx[p - 1] < r);
      }
    for (int n : seen) CHECK_EQ(n, 1);
  }
}

// The device build of the transpose structure is the host's exactly (every
// shape above, empty rows and columns, nnz 0, a dense matrix), and also for a
// tall matrix whose columns are long, for more than 1023 columns (the scan's
// threads take chunks), and for a table of cells too large for one row per
// block (blocks then hold several rows, counted and placed in row order).
CUDA_TEST(csr_transpose_cuda_equals_the_host_build) {
  nc::Stream s;
  std::vector<Csr> cases;
  for (const Shape& sh : kShapes) cases.push_back(random_csr(sh.rows, sh.cols, sh.density, 9));
  cases.push_back(random_csr(3000, 3, 0.9, 4));
  // More than 1023 columns: the one-block scan's threads then take chunks of several entries.
  for (const int64_t cols : {1023, 1024, 5000}) cases.push_back(random_csr(6, cols, 0.3, static_cast<uint64_t>(cols)));
  cases.push_back(random_csr(2000, 3000, 0.01, 12));  // 2^22 cells / 3000 columns: 1398 blocks for 2000 rows
  nc::DeviceBuffer scratch;
  for (const Csr& w : cases) {
    const int64_t nnz = static_cast<int64_t>(w.values.size());
    const nc::CsrTranspose want = nc::csr_transpose_host(w.view());
    nc::DeviceBuffer indptr = nc::to_device(w.indptr, s), indices = nc::to_device(w.indices, s);
    nc::DeviceBuffer col_ptr(static_cast<size_t>(w.cols + 1) * sizeof(int64_t)),
        row_idx(static_cast<size_t>(nnz) * sizeof(int32_t)), value_pos(static_cast<size_t>(nnz) * sizeof(int64_t));
    const CsrView view{w.rows, w.cols, indptr.as<int64_t>(), indices.as<int32_t>(), nullptr};
    nc::csr_transpose_cuda(view, nnz, col_ptr.as<int64_t>(), row_idx.as<int32_t>(), value_pos.as<int64_t>(), scratch, s);
    CHECK_MSG(nc::to_host<int64_t>(col_ptr, w.cols + 1, s) == want.col_ptr, "%lld x %lld: column pointers",
              static_cast<long long>(w.rows), static_cast<long long>(w.cols));
    CHECK_MSG(nc::to_host<int32_t>(row_idx, nnz, s) == want.row_idx, "%lld x %lld: row indices",
              static_cast<long long>(w.rows), static_cast<long long>(w.cols));
    CHECK_MSG(nc::to_host<int64_t>(value_pos, nnz, s) == want.value_pos, "%lld x %lld: value positions",
              static_cast<long long>(w.rows), static_cast<long long>(w.cols));
  }
}

namespace {

// op(W) X through one kernel, forced; beta 0 starts from NaN (it must not be read).
std::vector<float> product_with(nc::SpmmKernel kernel, const DeviceCsr& dw, bool transposed, const std::vector<float>& x,
                                const std::vector<float>& y0, int64_t ld, int64_t batch, float beta, nc::Stream& s) {
  nc::DeviceBuffer dx = nc::to_device(x, s), dy = nc::to_device(y0, s);
  if (transposed)
    nc::spmm_t_f32_csr_cuda(dw.view, dw.t, dx.as<float>(), ld, beta, dy.as<float>(), ld, batch, s, kernel);
  else
    nc::spmm_f32_csr_cuda(dw.view, dx.as<float>(), ld, beta, dy.as<float>(), ld, batch, s, kernel);
  return nc::to_host<float>(dy, y0.size(), s);
}

}  // namespace

// The warp kernel (float4 reads, weights passed round by shuffles) and the
// staged kernel (X through shared memory, 64 input rows at a time) add the
// same products in the same order as the rows kernel: equal to the bit,
// forward and transposed, for batches that fill one float4 per lane, leave
// lanes idle (4, 64, 132, 520) and need more column tiles (1100 > 1024, and
// any batch > 128 for the staged kernel); rows with exactly 32 stored weights
// (one shuffle round), 33 (a second, of one), empty rows and an empty matrix;
// row and column counts off the staged kernel's 64 (3, 130, 257 rows; 17, 67,
// 300 columns); padded strides (multiples of 4) whose padding must survive.
// And each against the naive reference.
CUDA_TEST(spmm_cuda_vector_kernels_equal_the_rows_kernel_to_the_bit) {
  const Shape cases[] = {
      {3, 32, 128, 0, 1.0},   {3, 33, 256, 4, 1.0},    {130, 67, 4, 0, 0.1},   {33, 129, 64, 4, 0.3},
      {257, 300, 132, 8, 0.05}, {64, 1000, 520, 0, 0.1}, {9, 70, 1100, 4, 0.4},  {100, 17, 128, 0, 0.0},
      {41, 90, 1024, 0, 0.5},  {3, 300, 256, 0, 0.5},   {257, 129, 384, 0, 0.2},  {70, 128, 256, 0, 0.1},
      {128, 192, 132, 4, 0.2}, {66, 640, 128, 0, 0.15},
  };
  uint64_t seed = 900;
  for (const Shape& c : cases)
    for (bool transposed : {false, true})
      for (float beta : {0.0f, 0.5f}) {
        nc::Stream s;
        Csr w = random_csr(c.rows, c.cols, c.density, seed++);
        const int64_t in_rows = transposed ? c.rows : c.cols, out_rows = transposed ? c.cols : c.rows;
        const int64_t ld = c.batch + c.pad;
        const std::vector<float> x = padded_block(in_rows, c.batch, ld, seed++);
        std::vector<float> y0 = padded_block(out_rows, c.batch, ld, seed++);
        if (beta == 0.0f)
          for (int64_t r = 0; r < out_rows; ++r)
            for (int64_t j = 0; j < c.batch; ++j) y0[r * ld + j] = kNan;
        DeviceCsr dw(w, s);
        const std::vector<float> rows = product_with(nc::SpmmKernel::kRows, dw, transposed, x, y0, ld, c.batch, beta, s);
        std::vector<float> want = y0, scale = abs_of(y0);
        Csr wa = w;
        wa.values = abs_of(w.values);
        const std::vector<float> xa = abs_of(x);
        const auto naive = transposed ? np::spmm_t_f32_csr_naive : np::spmm_f32_csr_naive;
        naive(w.view(), x.data(), ld, beta, want.data(), ld, c.batch);
        naive(wa.view(), xa.data(), ld, beta == 0.0f ? 0.0f : std::fabs(beta), scale.data(), ld, c.batch);
        for (nc::SpmmKernel kernel : {nc::SpmmKernel::kWarp, nc::SpmmKernel::kStaged}) {
          const char* name = kernel == nc::SpmmKernel::kWarp ? "warp" : "staged";
          {
            nc::DeviceBuffer probe_x = nc::to_device(x, s), probe_y = nc::to_device(y0, s);
            CHECK_MSG(nc::spmm_kernel_for(kernel, probe_x.as<float>(), ld, probe_y.as<float>(), ld, c.batch) == kernel,
                      "the %s kernel was not the one to run", name);
          }
#if defined(NP_CUDA_EMULATOR)
          const char* kernel_name = kernel == nc::SpmmKernel::kWarp ? "spmm_f32_csr_warp_kernel" : "spmm_f32_csr_staged_kernel";
          const int64_t launched_before = np::cuda::emulator::launches_of(kernel_name);
#endif
          const std::vector<float> got = product_with(kernel, dw, transposed, x, y0, ld, c.batch, beta, s);
#if defined(NP_CUDA_EMULATOR)
          // The very buffers of the product took that kernel (not a fallback to rows).
          if (out_rows > 0) CHECK_MSG(np::cuda::emulator::launches_of(kernel_name) == launched_before + 1, "the %s kernel did not run", name);
#endif
          size_t differ = 0;
          for (size_t i = 0; i < got.size(); ++i)
            if (std::memcmp(&got[i], &rows[i], sizeof(float)) != 0) ++differ;
          CHECK_MSG(differ == 0, "%lldx%lld batch %lld pad %lld %s beta %.1f: %zu of %zu floats differ between the %s and rows kernels",
                    (long long)c.rows, (long long)c.cols, (long long)c.batch, (long long)c.pad, transposed ? "W^T" : "W", beta,
                    differ, got.size(), name);
          const double e = max_scaled_error(got, want, scale);
          CHECK_MSG(e <= 1e-5, "%lldx%lld batch %lld %s beta %.1f: %s kernel error %g", (long long)c.rows, (long long)c.cols,
                    (long long)c.batch, transposed ? "W^T" : "W", beta, name, e);
          for (int64_t r = 0; r < out_rows; ++r)
            for (int64_t j = c.batch; j < ld; ++j)
              CHECK_MSG(got[r * ld + j] == kSentinel, "%s kernel overwrote padding at row %lld col %lld", name, (long long)r, (long long)j);
        }
      }
}

// Which kernel runs: the warp and staged kernels only where their float4
// accesses are whole and aligned (batch and both strides multiples of 4, both
// pointers 16-byte aligned); on its own (kAuto) only from batch 128, where a
// warp's lanes are all busy, the staged kernel where the density is known and
// at least 1/16.
CUDA_TEST(spmm_cuda_kernel_choice_follows_the_operands) {
  nc::DeviceBuffer buf(4096 * sizeof(float));
  const float* x = buf.as<float>();
  float* y = buf.as<float>() + 2048;
  using K = nc::SpmmKernel;
  const bool env_set = std::getenv("NEUROPLASTIC_CUDA_SPMM") != nullptr;
  if (!env_set) {
    CHECK(nc::spmm_kernel_for(K::kAuto, x, 128, y, 128, 128) == K::kWarp);
    CHECK(nc::spmm_kernel_for(K::kAuto, x, 1024, y, 1024, 1024) == K::kWarp);
    CHECK(nc::spmm_kernel_for(K::kAuto, x, 64, y, 64, 64) == K::kRows);  // half a warp's lanes would idle
    CHECK(nc::spmm_kernel_for(K::kAuto, x, 128, y, 128, 128, 0.1) == K::kStaged);
    CHECK(nc::spmm_kernel_for(K::kAuto, x, 256, y, 256, 256, 1.0 / 16.0) == K::kStaged);
    CHECK(nc::spmm_kernel_for(K::kAuto, x, 128, y, 128, 128, 0.05) == K::kWarp);
    CHECK(nc::spmm_kernel_for(K::kAuto, x, 128, y, 128, 128, -1.0) == K::kWarp);  // density unknown
    // A batch past the staged kernel's grid (65535 tiles of 128 columns) takes the warp kernel.
    CHECK(nc::spmm_kernel_for(K::kAuto, x, 65536 * 128, y, 65536 * 128, 65536 * 128, 0.5) == K::kWarp);
    CHECK(nc::spmm_kernel_for(K::kAuto, x, 64, y, 64, 64, 0.5) == K::kRows);
    CHECK(nc::spmm_kernel_for(K::kAuto, x + 1, 128, y, 128, 128, 0.5) == K::kRows);
  }
  CHECK(nc::spmm_kernel_for(K::kStaged, x, 128, y, 128, 128, 0.001) == K::kStaged);
  CHECK(nc::spmm_kernel_for(K::kStaged, x, 130, y, 130, 130, 0.5) == K::kRows);
  CHECK(nc::spmm_kernel_for(K::kWarp, x, 64, y, 64, 64) == K::kWarp);
  CHECK(nc::spmm_kernel_for(K::kRows, x, 128, y, 128, 128) == K::kRows);
  CHECK(nc::spmm_kernel_for(K::kWarp, x, 130, y, 128, 128) == K::kRows);  // X's stride
  CHECK(nc::spmm_kernel_for(K::kWarp, x, 128, y, 126, 124) == K::kRows);  // Y's stride
  CHECK(nc::spmm_kernel_for(K::kWarp, x, 132, y, 132, 130) == K::kRows);  // the batch (strides fine)
  CHECK(nc::spmm_kernel_for(K::kWarp, x + 1, 128, y, 128, 128) == K::kRows);  // X not 16-byte aligned
  CHECK(nc::spmm_kernel_for(K::kWarp, x, 128, y + 2, 128, 128) == K::kRows);  // Y not 16-byte aligned
  CHECK(nc::spmm_kernel_for(K::kWarp, x + 4, 128, y + 4, 128, 128) == K::kWarp);
}

// SDDMM's float4 kernel (batch 128..1024, aligned operands): against the
// naive reference at the scalar kernel's tolerance, for batches that fill and
// leave idle a lane's float4s (132, 520), padded strides, beta 0 over NaN and
// 0.5, empty rows; and where it applies (sddmm_takes_vectors).
CUDA_TEST(sddmm_f32_csr_cuda_vector_kernel_matches_naive) {
  const Shape shapes[] = {{40, 70, 128, 0, 0.3}, {33, 129, 132, 4, 0.2}, {9, 300, 256, 8, 0.5},
                          {64, 50, 520, 0, 0.1}, {17, 33, 1024, 4, 0.4}, {100, 17, 128, 0, 0.0}};
  uint64_t seed = 1300;
  for (const Shape& sh : shapes)
    for (float beta : {0.0f, 0.5f}) {
      const double e = check_sddmm(sh, beta, seed, true);
      seed += 4;
      CHECK_MSG(e <= 1e-5, "%lldx%lld batch %lld pad %lld beta %.1f: error %g", (long long)sh.rows, (long long)sh.cols,
                (long long)sh.batch, (long long)sh.pad, beta, e);
    }
  nc::DeviceBuffer buf(4096 * sizeof(float));
  const float* a = buf.as<float>();
  const float* b = buf.as<float>() + 2048;
  CHECK(!nc::sddmm_takes_vectors(a, 64, b, 64, 64));        // a warp's lanes would idle: scalar
  CHECK(!nc::sddmm_takes_vectors(a, 1028, b, 1028, 1028));  // past 8 float4s a lane
  CHECK(!nc::sddmm_takes_vectors(a, 130, b, 128, 128));     // dY's stride
  CHECK(!nc::sddmm_takes_vectors(a, 132, b, 132, 130));     // the batch
  CHECK(!nc::sddmm_takes_vectors(a + 2, 128, b, 128, 128)); // dY not 16-byte aligned
  CHECK(!nc::sddmm_takes_vectors(a, 128, b + 1, 128, 128)); // X not 16-byte aligned
  CHECK(nc::sddmm_takes_vectors(a + 4, 1024, b, 1024, 1024));
}
