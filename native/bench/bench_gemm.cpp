// GEMM throughput of our kernels: median ms and GFLOP/s per shape, transposition,
// SIMD level and thread count. bench/gemm.ts runs it interleaved with the
// OpenBLAS harness (bench/peers/openblas_sgemm.c), which takes the same flags.
//
//   neuroplastic_native_bench --shapes 128x784x1024,256x4096x4096 --trans nn,tn,nt
//       --levels scalar,avx2,avx512 --threads 1,2 [--reps 11] [--min-ms 200]
//       [--blocking KC,MC,NC] [--json]
//
// A shape is MxNxK: C[M x N] = op(A)[M x K] * op(B)[K x N], beta = 0.
// --json writes one JSON object per line; otherwise a table.
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
#include "kernels/gemm_internal.h"
#include "kernels/simd_level.h"
#include "kernels/thread_pool.h"
#include "bench/bench_args.h"

namespace {

using np::Trans;

struct Options {
  std::vector<std::string> shapes{"128x784x1024", "128x1024x1024", "256x1024x4096"};
  std::vector<std::string> trans{"nn"};
  std::vector<std::string> levels;  // empty: the detected level
  std::vector<int> threads{1};
  int reps = 11;
  double min_ms = 200.0;
  int64_t kc = 0, mc = 0, nc = 0;  // 0: the kernel's own blocking
  bool json = false;
};

using np_bench::split;

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "neuroplastic_native_bench: %s\n", why);
  std::fprintf(stderr,
               "usage: --shapes MxNxK,... --trans nn,tn,nt,tt --levels scalar,avx2,avx512 --threads 1,2 "
               "[--reps N] [--min-ms MS] [--blocking KC,MC,NC] [--json]\n");
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage((arg + " needs a value").c_str());
      return argv[++i];
    };
    if (arg == "--shapes") o.shapes = split(value(), ',');
    else if (arg == "--trans") o.trans = split(value(), ',');
    else if (arg == "--levels") o.levels = split(value(), ',');
    else if (arg == "--threads") {
      o.threads = np_bench::numbers<decltype(o.threads)::value_type>(value());
    } else if (arg == "--reps") o.reps = std::atoi(value().c_str());
    else if (arg == "--min-ms") o.min_ms = std::atof(value().c_str());
    else if (arg == "--blocking") {
      const auto v = split(value(), ',');
      if (v.size() != 3) usage("--blocking wants KC,MC,NC");
      o.kc = std::atoll(v[0].c_str());
      o.mc = std::atoll(v[1].c_str());
      o.nc = std::atoll(v[2].c_str());
    } else if (arg == "--json") o.json = true;
    else usage(("unknown argument " + arg).c_str());
  }
  return o;
}

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
using Matrix = std::unique_ptr<float[], AlignedFree>;

Matrix alloc(int64_t floats) {
  const size_t bytes = (static_cast<size_t>(std::max<int64_t>(floats, 1)) * 4 + 63) / 64 * 64;
  return Matrix(static_cast<float*>(std::aligned_alloc(64, bytes)));
}

// Largest relative error over a sample of C entries, each recomputed with the
// naive formula (the full naive product of a 4096-wide layer takes seconds).
double sampled_error(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                     const float* b, int64_t ldb, const float* c, int64_t ldc) {
  double worst = 0.0;
  uint64_t s = 12345;
  for (int t = 0; t < 64; ++t) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    const int64_t i = static_cast<int64_t>((s >> 33) % static_cast<uint64_t>(m));
    const int64_t j = static_cast<int64_t>((s >> 13) % static_cast<uint64_t>(n));
    float want = 0.0f;
    np::gemm_f32_naive(ta, tb, 1, 1, k, ta == Trans::kNo ? a + i * lda : a + i, lda,
                       tb == Trans::kNo ? b + j : b + j * ldb, ldb, 0.0f, &want, 1);
    double mag = 0.0;
    for (int64_t p = 0; p < k; ++p) {
      const float av = ta == Trans::kNo ? a[i * lda + p] : a[p * lda + i];
      const float bv = tb == Trans::kNo ? b[p * ldb + j] : b[j * ldb + p];
      mag += std::fabs(static_cast<double>(av) * bv);
    }
    worst = std::max(worst, std::fabs(c[i * ldc + j] - want) / (1.0 + mag));
  }
  return worst;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  std::vector<np::SimdLevel> levels;
  if (o.levels.empty()) levels.push_back(np::active_simd_level());
  for (const auto& name : o.levels) {
    np::SimdLevel level;
    if (!np::parse_simd_level(name.c_str(), &level)) usage(("unknown level " + name).c_str());
    if (static_cast<int>(level) > static_cast<int>(np::detected_simd_level())) {
      std::fprintf(stderr, "skipping %s: not supported by this CPU\n", name.c_str());
      continue;
    }
    levels.push_back(level);
  }
  if (!o.json)
    std::printf("%-16s %-5s %-7s %-7s %10s %10s %10s\n", "shape(MxNxK)", "trans", "simd", "threads",
                "median_ms", "GFLOP/s", "rel_err");
  int failures = 0;
  for (int threads : o.threads) {
    if (threads < 1) usage("--threads wants positive integers");
    np::ThreadPool pool(threads);
    for (const auto& shape : o.shapes) {
      const auto dims = split(shape, 'x');
      if (dims.size() != 3) usage(("shape " + shape + " is not MxNxK").c_str());
      const int64_t m = std::atoll(dims[0].c_str()), n = std::atoll(dims[1].c_str()),
                    k = std::atoll(dims[2].c_str());
      if (m <= 0 || n <= 0 || k <= 0) usage(("shape " + shape + " needs positive sizes").c_str());
      for (const auto& tr : o.trans) {
        if (tr.size() != 2) usage(("trans " + tr + " is not one of nn,tn,nt,tt").c_str());
        const Trans ta = tr[0] == 't' ? Trans::kYes : Trans::kNo;
        const Trans tb = tr[1] == 't' ? Trans::kYes : Trans::kNo;
        const int64_t lda = ta == Trans::kNo ? k : m, ldb = tb == Trans::kNo ? n : k, ldc = n;
        Matrix a = alloc(m * k), b = alloc(k * n), c = alloc(m * n);
        uint64_t s = 7;
        auto rnd = [&] {
          s = s * 6364136223846793005ULL + 1442695040888963407ULL;
          return static_cast<float>((s >> 40) & 0xFFFFFF) / 8388608.0f - 1.0f;
        };
        for (int64_t i = 0; i < m * k; ++i) a[i] = rnd();
        for (int64_t i = 0; i < k * n; ++i) b[i] = rnd();
        for (np::SimdLevel level : levels) {
          np::GemmKernel kr = np::gemm_kernel_for(level);
          if (o.kc > 0) kr.kc = o.kc;
          if (o.mc > 0) kr.mc = (o.mc + kr.mr - 1) / kr.mr * kr.mr;
          if (o.nc > 0) kr.nc = (o.nc + kr.nr - 1) / kr.nr * kr.nr;
          auto run = [&] {
            np::gemm_f32_with(kr, ta, tb, m, n, k, a.get(), lda, b.get(), ldb, 0.0f, c.get(), ldc, &pool);
          };
          run();
          const double err = sampled_error(ta, tb, m, n, k, a.get(), lda, b.get(), ldb, c.get(), ldc);
          if (!(err <= 1e-4)) {
            std::fprintf(stderr, "WRONG RESULT %s %s %s: relative error %g\n", shape.c_str(), tr.c_str(),
                         np::simd_level_name(level), err);
            ++failures;
          }
          run();  // warm up caches and the pool's workers
          std::vector<double> ms;
          double total = 0.0;
          while (static_cast<int>(ms.size()) < o.reps || total < o.min_ms) {
            const auto t0 = std::chrono::steady_clock::now();
            run();
            const double dt =
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            ms.push_back(dt);
            total += dt;
            if (ms.size() >= 10000) break;
          }
          std::sort(ms.begin(), ms.end());
          const double median = ms[ms.size() / 2];
          const double gflops = 2.0 * m * n * k / (median * 1e6);
          if (o.json) {
            std::printf(
                "{\"impl\":\"neuroplastic\",\"shape\":\"%s\",\"m\":%ld,\"n\":%ld,\"k\":%ld,\"trans\":\"%s\","
                "\"threads\":%d,\"simd\":\"%s\",\"kernel\":\"%s\",\"blocking\":[%ld,%ld,%ld],"
                "\"median_ms\":%.6f,\"gflops\":%.3f,\"reps\":%zu,\"rel_err\":%.3g}\n",
                shape.c_str(), (long)m, (long)n, (long)k, tr.c_str(), threads, np::simd_level_name(level),
                kr.name, (long)kr.kc, (long)kr.mc, (long)kr.nc, median, gflops, ms.size(), err);
          } else {
            std::printf("%-16s %-5s %-7s %-7d %10.3f %10.1f %10.2g\n", shape.c_str(), tr.c_str(),
                        np::simd_level_name(level), threads, median, gflops, err);
          }
          std::fflush(stdout);
        }
      }
    }
  }
  return failures == 0 ? 0 : 1;
}
