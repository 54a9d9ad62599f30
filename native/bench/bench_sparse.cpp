// CSR kernels against our dense GEMM on the same layer: median ms of the
// forward product (spmm vs gemm NN) and of a whole training step's products
// (spmm + W^T product + sddmm vs gemm NN + TN + NT; the W^T product as training runs it, a gather over the cached transpose), plus bytes per stored weight.
// bench/sparse.ts runs it interleaved with the Eigen harness
// (bench/peers/eigen_spmm.cpp), which takes the same flags and prints the
// same lines.
//
//   neuroplastic_sparse_bench --shapes 784x300,1024x1024,4096x4096 --batches 1,32,128
//       --sparsities 0,0.5,0.7,0.8,0.9,0.95,0.98,0.99 --threads 1,2
//       [--levels scalar,avx2,avx512] [--reps 7] [--min-ms 100] [--json]
//
// A shape is OUTxIN: W has rows = OUT (outputs) and cols = IN (inputs); X is
// IN x batch and Y OUT x batch (feature-major). --json writes one JSON object
// per line; otherwise a table.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/simd_level.h"
#include "kernels/sparse.h"
#include "kernels/thread_pool.h"
#include "model/csr_param.h"
#include "bench/sparse_bench_common.h"

namespace {

using np::Trans;

using Options = np_bench::SparseOptions;
using np_bench::Lcg;
using np_bench::now_ms;
using np_bench::split;

[[noreturn]] void usage(const char* why) { np_bench::sparse_usage("neuroplastic_sparse_bench", why); }


struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
using Matrix = std::unique_ptr<float[], AlignedFree>;

Matrix alloc(int64_t floats) {
  const size_t bytes = (static_cast<size_t>(std::max<int64_t>(floats, 1)) * 4 + 63) / 64 * 64;
  Matrix m(static_cast<float*>(std::aligned_alloc(64, bytes)));
  std::memset(m.get(), 0, bytes);
  return m;
}

// The layer: a dense W with exact zeros and the CSR of its nonzeros (an
// unstructured magnitude-pruned layer: uniform random positions).
struct Layer {
  int64_t rows, cols;
  Matrix dense;
  std::vector<int64_t> indptr;
  std::vector<int32_t> indices;
  std::vector<float> values;
  np::CsrView view(int64_t rows_used) const {
    return np::CsrView{rows_used, cols, indptr.data(), indices.data(), values.data()};
  }
};

Layer make_layer(int64_t rows, int64_t cols, double density, uint64_t seed) {
  Layer l{rows, cols, alloc(rows * cols), {0}, {}, {}};
  Lcg rng{seed};
  const double cut = density * 4294967296.0;
  l.indices.reserve(static_cast<size_t>(rows * cols * density * 1.05) + 16);
  l.values.reserve(l.indices.capacity());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      if (density >= 1.0 || rng.u32() < cut) {
        const float v = rng.next();
        l.dense[r * cols + c] = v;
        l.indices.push_back(static_cast<int32_t>(c));
        l.values.push_back(v);
      }
    }
    l.indptr.push_back(static_cast<int64_t>(l.indices.size()));
  }
  return l;
}

// Worst |fast - naive| / (1 + |naive|) over the three products on the first
// rows_used rows (a reduced problem, so 4096-wide layers check in milliseconds).
double check(np::SimdLevel level, const Layer& l, int64_t rows_used, int64_t batch, const float* x, const float* dy,
             np::ThreadPool* pool) {
  const np::CsrView w = l.view(rows_used);
  const int64_t nnz = w.nnz();
  std::vector<float> y(rows_used * batch), yr(y.size()), dx(l.cols * batch), dxr(dx.size()), g(nnz), gr(nnz);
  np::spmm_f32_csr_at(level, w, x, batch, 0.0f, y.data(), batch, batch, pool);
  np::spmm_f32_csr_naive(w, x, batch, 0.0f, yr.data(), batch, batch);
  np::spmm_t_f32_csr_at(level, w, dy, batch, 0.0f, dx.data(), batch, batch, pool);
  np::spmm_t_f32_csr_naive(w, dy, batch, 0.0f, dxr.data(), batch, batch);
  np::sddmm_f32_csr_at(level, w, dy, batch, x, batch, batch, 0.0f, g.data(), pool);
  np::sddmm_f32_csr_naive(w, dy, batch, x, batch, batch, 0.0f, gr.data());
  // The W^T product as training runs it, through the blocked transpose.
  np::CsrTranspose t;
  np::build_csr_transpose(w, &t, np::blocked_csr_block_cols_at(level, l.cols, rows_used, nnz, batch));
  std::vector<float> gathered(nnz), dxt(dx.size());
  for (int64_t j = 0; j < nnz; ++j) gathered[j] = w.values[t.perm[j]];
  np::spmm_f32_csr_transpose_at(level, t, gathered.data(), dy, batch, 0.0f, dxt.data(), batch, batch, pool);
  double worst = 0.0;
  auto cmp = [&](const std::vector<float>& a, const std::vector<float>& b) {
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]) / (1.0 + std::fabs(b[i])));
  };
  cmp(y, yr);
  cmp(dx, dxr);
  cmp(dxt, dxr);
  cmp(g, gr);
  return worst;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = np_bench::parse_sparse_options("neuroplastic_sparse_bench", argc, argv);
  std::vector<np::SimdLevel> levels;
  if (o.levels.empty()) levels.push_back(np::detected_simd_level());
  for (const auto& name : o.levels) {
    np::SimdLevel level;
    if (!np::parse_simd_level(name.c_str(), &level)) usage(("unknown level " + name).c_str());
    if (static_cast<int>(level) > static_cast<int>(np::detected_simd_level())) {
      std::fprintf(stderr, "neuroplastic_sparse_bench: %s not supported by this CPU, skipped\n", name.c_str());
      continue;
    }
    levels.push_back(level);
  }
  if (!o.json)
    std::printf("%-6s %-10s %5s %8s %3s %-7s %10s %10s %8s %10s %10s %8s %7s\n", "impl", "shape", "batch", "sparsity",
                "thr", "simd", "dense ms", "spmm ms", "x dense", "dstep ms", "sstep ms", "x dense", "B/w");

  for (const auto& shape : o.shapes) {
    const auto dims = split(shape, 'x');
    if (dims.size() != 2) usage(("shape " + shape + " is not OUTxIN").c_str());
    const int64_t rows = std::atoll(dims[0].c_str()), cols = std::atoll(dims[1].c_str());
    if (rows < 1 || cols < 1) usage(("shape " + shape + " has a zero dimension").c_str());
    for (int64_t batch : o.batches) {
      Lcg rng{static_cast<uint64_t>(rows * 31 + cols * 7 + batch)};
      Matrix x = alloc(cols * batch), dy = alloc(rows * batch), y = alloc(rows * batch), dx = alloc(cols * batch);
      Matrix gd = alloc(rows * cols);
      for (int64_t i = 0; i < cols * batch; ++i) x[i] = rng.next();
      for (int64_t i = 0; i < rows * batch; ++i) dy[i] = rng.next();
      for (double sparsity : o.sparsities) {
        const Layer l = make_layer(rows, cols, 1.0 - sparsity, 0xbe5c + static_cast<uint64_t>(sparsity * 1e4));
        const int64_t nnz = static_cast<int64_t>(l.values.size());
        std::vector<float> grad(static_cast<size_t>(std::max<int64_t>(nnz, 1)));
        const np::CsrView w = l.view(rows);
        std::vector<float> t_values(static_cast<size_t>(std::max<int64_t>(nnz, 1)));
        const double bytes_per_weight =
            nnz ? (8.0 * static_cast<double>(nnz) + 8.0 * static_cast<double>(rows + 1)) / static_cast<double>(nnz) : 0.0;
        for (int threads : o.threads) {
          np::ThreadPool pool(threads);
          np::ThreadPool* pp = threads > 1 ? &pool : nullptr;
          for (np::SimdLevel level : levels) {
            // W^T's pattern, blocked for this level's batch tiles as training builds it.
            np::CsrTranspose t;
            np::build_csr_transpose(w, &t, np::blocked_csr_block_cols_at(level, cols, rows, nnz, batch));
            // Reduced check: about 2^24 naive multiply-adds at most.
            const int64_t per_row = std::max<int64_t>(1, (nnz / rows + 1) * batch * 2);
            const int64_t rows_used = std::clamp<int64_t>((int64_t{1} << 24) / per_row, 1, rows);
            const double err = check(level, l, rows_used, batch, x.get(), dy.get(), pp);
            if (!(err <= 1e-3)) {
              std::fprintf(stderr, "neuroplastic_sparse_bench: %s batch %ld sparsity %g: error %g against naive\n",
                           shape.c_str(), (long)batch, sparsity, err);
              return 1;
            }
            auto dense_fwd = [&] {
              np::gemm_f32_at(level, Trans::kNo, Trans::kNo, rows, batch, cols, l.dense.get(), cols, x.get(), batch,
                              0.0f, y.get(), batch, pp);
            };
            auto dense_step = [&] {
              dense_fwd();
              np::gemm_f32_at(level, Trans::kYes, Trans::kNo, cols, batch, rows, l.dense.get(), cols, dy.get(), batch,
                              0.0f, dx.get(), batch, pp);
              np::gemm_f32_at(level, Trans::kNo, Trans::kYes, rows, cols, batch, dy.get(), batch, x.get(), batch,
                              0.0f, gd.get(), cols, pp);
            };
            auto sparse_fwd = [&] { np::spmm_f32_csr_at(level, w, x.get(), batch, 0.0f, y.get(), batch, batch, pp); };
            // The backward data product as training runs it (model/training.cpp):
            // W's values gathered into W^T's order (the pattern's transpose is
            // cached across steps), then a forward product over the transpose.
            auto sparse_step = [&] {
              sparse_fwd();
              for (int64_t j = 0; j < nnz; ++j) t_values[j] = l.values[t.perm[j]];
              np::spmm_f32_csr_transpose_at(level, t, t_values.data(), dy.get(), batch, 0.0f, dx.get(), batch, batch, pp);
              np::sddmm_f32_csr_at(level, w, dy.get(), batch, x.get(), batch, batch, 0.0f, grad.data(), pp);
            };
            // Interleaved A B A B: one round times each of the four once
            // (each repeated to >= 1 ms), reps rounds, then the median.
            auto timed = [&](auto& fn, int inner) {
              const double t0 = now_ms();
              for (int i = 0; i < inner; ++i) fn();
              return (now_ms() - t0) / inner;
            };
            int inner[4];
            {
              double t;
              t = timed(dense_fwd, 1);
              inner[0] = std::max(1, static_cast<int>(1.0 / std::max(t, 1e-4)));
              t = timed(sparse_fwd, 1);
              inner[1] = std::max(1, static_cast<int>(1.0 / std::max(t, 1e-4)));
              t = timed(dense_step, 1);
              inner[2] = std::max(1, static_cast<int>(1.0 / std::max(t, 1e-4)));
              t = timed(sparse_step, 1);
              inner[3] = std::max(1, static_cast<int>(1.0 / std::max(t, 1e-4)));
            }
            std::vector<double> ms[4];
            const double start = now_ms();
            for (int r = 0; r < o.reps || (now_ms() - start < o.min_ms && r < 1000); ++r) {
              ms[0].push_back(timed(dense_fwd, inner[0]));
              ms[1].push_back(timed(sparse_fwd, inner[1]));
              ms[2].push_back(timed(dense_step, inner[2]));
              ms[3].push_back(timed(sparse_step, inner[3]));
            }
            double med[4];
            for (int i = 0; i < 4; ++i) {
              std::sort(ms[i].begin(), ms[i].end());
              med[i] = ms[i][ms[i].size() / 2];
            }
            if (o.json) {
              std::printf(
                  "{\"impl\":\"neuroplastic\",\"shape\":\"%s\",\"rows\":%ld,\"cols\":%ld,\"batch\":%ld,"
                  "\"sparsity\":%g,\"nnz\":%ld,\"threads\":%d,\"simd\":\"%s\",\"dense_ms\":%.6f,\"spmm_ms\":%.6f,"
                  "\"dense_step_ms\":%.6f,\"sparse_step_ms\":%.6f,\"bytes_per_weight\":%.4f,\"max_err\":%.3g}\n",
                  shape.c_str(), (long)rows, (long)cols, (long)batch, sparsity, (long)nnz, threads,
                  np::simd_level_name(level), med[0], med[1], med[2], med[3], bytes_per_weight, err);
            } else {
              std::printf("%-6s %-10s %5ld %8.3f %3d %-7s %10.4f %10.4f %7.2fx %10.4f %10.4f %7.2fx %7.3f\n", "ours",
                          shape.c_str(), (long)batch, sparsity, threads, np::simd_level_name(level), med[0], med[1],
                          med[0] / med[1], med[2], med[3], med[2] / med[3], bytes_per_weight);
            }
            std::fflush(stdout);
          }
        }
      }
    }
  }
  return 0;
}
