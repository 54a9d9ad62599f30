// What neuroplastic_sparse_bench and its Eigen peer (bench/peers/eigen_spmm.cpp)
// share so that bench/sparse.ts can drive both with one command line and they
// measure the same matrices: the options and their parser, the seeded
// generator, the clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_args.h"

namespace np_bench {

struct SparseOptions {
  std::vector<std::string> shapes{"784x300", "1024x1024", "4096x4096"};
  std::vector<int64_t> batches{128};
  std::vector<double> sparsities{0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99};
  std::vector<std::string> levels;  // empty: the detected level (the Eigen peer ignores it)
  std::vector<int> threads{1};
  int reps = 7;
  double min_ms = 100.0;  // per case and implementation, after warm-up
  bool json = false;
};

[[noreturn]] inline void sparse_usage(const char* program, const char* why) {
  std::fprintf(stderr, "%s: %s\n", program, why);
  std::fprintf(stderr,
               "usage: --shapes OUTxIN,... --batches 1,32,128 --sparsities 0,0.9,... --threads 1,2 "
               "[--levels scalar,avx2,avx512] [--reps N] [--min-ms MS] [--json]\n");
  std::exit(2);
}

inline SparseOptions parse_sparse_options(const char* program, int argc, char** argv) {
  SparseOptions o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) sparse_usage(program, (arg + " needs a value").c_str());
      return argv[++i];
    };
    if (arg == "--shapes") {
      o.shapes = split(value(), ',');
    } else if (arg == "--batches") {
      o.batches = numbers<int64_t>(value());
    } else if (arg == "--sparsities") {
      o.sparsities = numbers<double>(value());
    } else if (arg == "--levels") {
      o.levels = split(value(), ',');
    } else if (arg == "--threads") {
      o.threads = numbers<int>(value());
    } else if (arg == "--reps") {
      o.reps = std::atoi(value().c_str());
    } else if (arg == "--min-ms") {
      o.min_ms = std::atof(value().c_str());
    } else if (arg == "--json") {
      o.json = true;
    } else {
      sparse_usage(program, ("unknown argument " + arg).c_str());
    }
  }
  for (double s : o.sparsities)
    if (!(s >= 0.0 && s < 1.0)) sparse_usage(program, "--sparsities must be in [0, 1)");
  for (int64_t b : o.batches)
    if (b < 1) sparse_usage(program, "--batches must be positive");
  for (int t : o.threads)
    if (t < 1) sparse_usage(program, "--threads must be positive");
  return o;
}

// The layers' generator: both harnesses draw the same matrices from a seed.
struct Lcg {
  uint64_t s;
  uint32_t u32() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(s >> 32);
  }
  float next() { return static_cast<float>(u32() >> 8) / 8388608.0f - 1.0f; }
};

inline double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace np_bench
