// Eigen peer for the sparse bench: Eigen::SparseMatrix<float, RowMajor> times a
// dense matrix, on the same layers, batches and sparsities as
// neuroplastic_sparse_bench (same generator and seeds, so the same matrices),
// printing the same JSON lines. bench/sparse.ts builds it with
//   g++ -O3 -march=native -fopenmp -I/usr/include/eigen3 eigen_spmm.cpp
// when /usr/include/eigen3 exists.
//
// Layout: the dense operands are RowMajor (features x batch), our own layout
// and Eigen's fast one for a RowMajor sparse left operand: each nonzero becomes
// a vectorised axpy of a batch row (res.row(i) += w * X.row(j)); with ColMajor
// operands Eigen runs one scalar gather-dot per row and column instead. Threads
// via OpenMP (Eigen::setNbThreads), which Eigen uses for the RowMajor product.
//
// The training step is Y = W X, dX = W^T dY (Eigen's transposed view: a
// scatter of axpys) and dW at the stored positions, which Eigen has no kernel
// for: one vectorised dY.row(r).dot(X.row(c)) per nonzero (an OpenMP loop over rows).
#include <Eigen/Dense>
#include <Eigen/Sparse>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include "../../native/bench/sparse_bench_common.h"

namespace {

using SpMat = Eigen::SparseMatrix<float, Eigen::RowMajor, int32_t>;
using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

using Options = np_bench::SparseOptions;
using np_bench::Lcg;  // the generator of native/bench/bench_sparse.cpp, value for value
using np_bench::now_ms;
using np_bench::split;

[[noreturn]] void usage(const char* why) { np_bench::sparse_usage("eigen_spmm", why); }

SpMat make_layer(long rows, long cols, double density, uint64_t seed) {
  Lcg rng{seed};
  const double cut = density * 4294967296.0;
  std::vector<Eigen::Triplet<float, int32_t>> t;
  t.reserve(static_cast<size_t>(rows * cols * density * 1.05) + 16);
  for (long r = 0; r < rows; ++r)
    for (long c = 0; c < cols; ++c)
      if (density >= 1.0 || rng.u32() < cut) t.emplace_back(static_cast<int32_t>(r), static_cast<int32_t>(c), rng.next());
  SpMat w(rows, cols);
  w.setFromTriplets(t.begin(), t.end());
  w.makeCompressed();
  return w;
}

const char* simd_name() {
#if defined(__AVX512F__)
  return "eigen-avx512";
#elif defined(__AVX2__)
  return "eigen-avx2";
#else
  return "eigen-sse";
#endif
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = np_bench::parse_sparse_options("eigen_spmm", argc, argv);
  if (!o.json)
    std::printf("%-6s %-10s %5s %8s %3s %-12s %10s %10s %7s\n", "impl", "shape", "batch", "sparsity", "thr", "simd",
                "spmm ms", "sstep ms", "B/w");
  for (const auto& shape : o.shapes) {
    const auto dims = split(shape, 'x');
    if (dims.size() != 2) usage(("shape " + shape + " is not OUTxIN").c_str());
    const long rows = std::atol(dims[0].c_str()), cols = std::atol(dims[1].c_str());
    for (long batch : o.batches) {
      Lcg rng{static_cast<uint64_t>(rows * 31 + cols * 7 + batch)};
      Mat x(cols, batch), dy(rows, batch), y(rows, batch), dx(cols, batch);
      for (long i = 0; i < cols; ++i)
        for (long j = 0; j < batch; ++j) x(i, j) = rng.next();
      for (long i = 0; i < rows; ++i)
        for (long j = 0; j < batch; ++j) dy(i, j) = rng.next();
      for (double sparsity : o.sparsities) {
        const SpMat w = make_layer(rows, cols, 1.0 - sparsity, 0xbe5c + static_cast<uint64_t>(sparsity * 1e4));
        const long nnz = static_cast<long>(w.nonZeros());
        std::vector<float> grad(static_cast<size_t>(std::max(nnz, 1L)));
        // Eigen's CSR: 4-byte values, 4-byte indices (StorageIndex int32), 4-byte outer index.
        const double bytes_per_weight = nnz ? (8.0 * nnz + 4.0 * (rows + 1)) / nnz : 0.0;
        for (int threads : o.threads) {
          Eigen::setNbThreads(threads);
          auto fwd = [&] { y.noalias() = w * x; };
          auto step = [&] {
            y.noalias() = w * x;
            dx.noalias() = w.transpose() * dy;
            const int32_t* outer = w.outerIndexPtr();
            const int32_t* inner = w.innerIndexPtr();
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads) if (threads > 1)
            for (long r = 0; r < rows; ++r)
              for (int32_t k = outer[r]; k < outer[r + 1]; ++k) grad[k] = dy.row(r).dot(x.row(inner[k]));
          };
          // Check the forward product on a few entries against a plain loop.
          fwd();
          double worst = 0.0;
          for (int t = 0; t < 16; ++t) {
            const long i = (t * 7919L) % rows, j = (t * 104729L) % batch;
            double want = 0.0, mag = 0.0;
            for (SpMat::InnerIterator it(w, i); it; ++it) {
              want += static_cast<double>(it.value()) * x(it.index(), j);
              mag += std::fabs(static_cast<double>(it.value()) * x(it.index(), j));
            }
            worst = std::max(worst, std::fabs(y(i, j) - want) / (1.0 + mag));
          }
          if (worst > 1e-4) {
            std::fprintf(stderr, "eigen_spmm: %s batch %ld sparsity %g: error %g\n", shape.c_str(), batch, sparsity, worst);
            return 1;
          }
          auto timed = [&](auto& fn, int inner) {
            const double t0 = now_ms();
            for (int i = 0; i < inner; ++i) fn();
            return (now_ms() - t0) / inner;
          };
          int inner[2];
          inner[0] = std::max(1, static_cast<int>(1.0 / std::max(timed(fwd, 1), 1e-4)));
          inner[1] = std::max(1, static_cast<int>(1.0 / std::max(timed(step, 1), 1e-4)));
          std::vector<double> ms[2];
          const double start = now_ms();
          for (int r = 0; r < o.reps || (now_ms() - start < o.min_ms && r < 1000); ++r) {
            ms[0].push_back(timed(fwd, inner[0]));
            ms[1].push_back(timed(step, inner[1]));
          }
          double med[2];
          for (int i = 0; i < 2; ++i) {
            std::sort(ms[i].begin(), ms[i].end());
            med[i] = ms[i][ms[i].size() / 2];
          }
          if (o.json) {
            std::printf(
                "{\"impl\":\"eigen\",\"shape\":\"%s\",\"rows\":%ld,\"cols\":%ld,\"batch\":%ld,\"sparsity\":%g,"
                "\"nnz\":%ld,\"threads\":%d,\"simd\":\"%s\",\"spmm_ms\":%.6f,\"sparse_step_ms\":%.6f,"
                "\"bytes_per_weight\":%.4f,\"max_err\":%.3g,\"version\":\"%d.%d.%d\",\"layout\":\"rowmajor\"}\n",
                shape.c_str(), rows, cols, batch, sparsity, nnz, threads, simd_name(), med[0], med[1],
                bytes_per_weight, worst, EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION);
          } else {
            std::printf("%-6s %-10s %5ld %8.3f %3d %-12s %10.4f %10.4f %7.3f\n", "eigen", shape.c_str(), batch,
                        sparsity, threads, simd_name(), med[0], med[1], bytes_per_weight);
          }
          std::fflush(stdout);
        }
      }
    }
  }
  return 0;
}
