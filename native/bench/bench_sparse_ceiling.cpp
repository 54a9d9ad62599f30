// How fast can a CSR SpMM be on this core? The forward product reads, per
// stored weight, one index, one value (broadcast) and one batch tile of a
// random X row (64 floats with AVX2, 128 with AVX-512), and does one FMA per
// vector of that tile. This bench runs that access pattern alone (no rows, no
// stores, no blocking) from buffers of X rows that fit L1, L2, and neither,
// and our dense GEMM on a 1024 x 128 x 1024 product, both as a fraction of the
// core's FMA peak (register operands only, measured in the same run). So the
// figures do not depend on the clock, and their ratio bounds what any CSR
// kernel of this shape can gain over the dense path:
//
//   speed-up at density d <= (pattern fraction / dense fraction) / d
//
//   neuroplastic_sparse_ceiling [--levels avx2,avx512] [--rounds 7] [--json]
//
// Rounds interleave every measurement and keep each one's best, which on a
// shared machine is the least disturbed.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_args.h"
#include "kernels/cache_info.h"
#include "kernels/gemm.h"
#include "kernels/simd_level.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Pattern {
  std::vector<int32_t> rows;  // the random X row of each "stored weight"
  std::vector<float> values;
  float* x = nullptr;  // X rows, row_floats apart
  int64_t row_floats = 0;
};

Pattern make_pattern(int64_t buffer_bytes, int64_t row_floats, int64_t count) {
  Pattern p;
  p.row_floats = row_floats;
  const int64_t nrows = std::max<int64_t>(1, buffer_bytes / (row_floats * 4));
  p.x = static_cast<float*>(std::aligned_alloc(4096, static_cast<size_t>((nrows * row_floats * 4 + 4095) / 4096 * 4096)));
  for (int64_t i = 0; i < nrows * row_floats; ++i) p.x[i] = 1e-3f * static_cast<float>(i % 13);
  uint64_t s = 0x9e3779b97f4a7c15ULL;
  for (int64_t k = 0; k < count; ++k) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    p.rows.push_back(static_cast<int32_t>((s >> 33) % static_cast<uint64_t>(nrows)));
    p.values.push_back(0.5f);
  }
  return p;
}

#if defined(__x86_64__)
// One function per instruction set, as in the kernels: the intrinsics and the
// target attribute differ, and a template cannot carry the attribute.
constexpr int kPasses = 128;  // over 2^14 weights (128 KB of index and value, in L2): ~20 ms a measurement

// Ten independent FMA chains from registers: the core's FMA peak.
__attribute__((target("avx2,fma"))) double peak_fma_per_s_avx2() {
  __m256 a[10];
  for (int i = 0; i < 10; ++i) a[i] = _mm256_set1_ps(1e-3f * static_cast<float>(i));
  const __m256 b = _mm256_set1_ps(0.9999f), c = _mm256_set1_ps(1e-4f);
  const int64_t n = 20000000;
  const double t0 = now_s();
  for (int64_t i = 0; i < n; ++i) {
#pragma GCC unroll 10
    for (int j = 0; j < 10; ++j) a[j] = _mm256_fmadd_ps(a[j], b, c);
  }
  const double t = now_s() - t0;
  float sink[8];
  __m256 sum = a[0];
  for (int j = 1; j < 10; ++j) sum = _mm256_add_ps(sum, a[j]);
  _mm256_storeu_ps(sink, sum);
  if (sink[0] == 12345.0f) std::puts("");  // keeps the chains alive
  return static_cast<double>(n) * 10 * 8 * 2 / t;  // flop/s
}

// The CSR forward product's inner loop, X rows read in the order the
// micro-kernel reads them: top vector down in sparse_avx2.cpp, bottom up in
// sparse_avx512.cpp.
__attribute__((target("avx2,fma"))) double pattern_flop_per_s_avx2(const Pattern& p) {
  const int32_t* rows = p.rows.data();
  const float* values = p.values.data();
  const float* x = p.x;
  const int64_t ld = p.row_floats, n = static_cast<int64_t>(p.rows.size());
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  const double t0 = now_s();
  for (int pass = 0; pass < kPasses; ++pass) {
    for (int64_t k = 0; k < n; ++k) {
      const float* r = x + static_cast<int64_t>(rows[k]) * ld;
      const __m256 w = _mm256_broadcast_ss(values + k);
      a7 = _mm256_fmadd_ps(w, _mm256_loadu_ps(r + 56), a7);
      a6 = _mm256_fmadd_ps(w, _mm256_loadu_ps(r + 48), a6);
      a5 = _mm256_fmadd_ps(w, _mm256_loadu_ps(r + 40), a5);
      a4 = _mm256_fmadd_ps(w, _mm256_loadu_ps(r + 32), a4);
      a3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(r + 24), a3);
      a2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(r + 16), a2);
      a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(r + 8), a1);
      a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(r), a0);
    }
  }
  const double t = now_s() - t0;
  float sink[8];
  _mm256_storeu_ps(sink, _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                                       _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7))));
  if (sink[0] == 12345.0f) std::puts("");
  return static_cast<double>(n) * kPasses * 64 * 2 / t;
}

__attribute__((target("avx512f"))) double peak_fma_per_s_avx512() {
  __m512 a[10];
  for (int i = 0; i < 10; ++i) a[i] = _mm512_set1_ps(1e-3f * static_cast<float>(i));
  const __m512 b = _mm512_set1_ps(0.9999f), c = _mm512_set1_ps(1e-4f);
  const int64_t n = 20000000;
  const double t0 = now_s();
  for (int64_t i = 0; i < n; ++i) {
#pragma GCC unroll 10
    for (int j = 0; j < 10; ++j) a[j] = _mm512_fmadd_ps(a[j], b, c);
  }
  const double t = now_s() - t0;
  float sink[16];
  __m512 sum = a[0];
  for (int j = 1; j < 10; ++j) sum = _mm512_add_ps(sum, a[j]);
  _mm512_storeu_ps(sink, sum);
  if (sink[0] == 12345.0f) std::puts("");
  return static_cast<double>(n) * 10 * 16 * 2 / t;
}

__attribute__((target("avx512f"))) double pattern_flop_per_s_avx512(const Pattern& p) {
  const int32_t* rows = p.rows.data();
  const float* values = p.values.data();
  const float* x = p.x;
  const int64_t ld = p.row_floats, n = static_cast<int64_t>(p.rows.size());
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  const double t0 = now_s();
  for (int pass = 0; pass < kPasses; ++pass) {
    for (int64_t k = 0; k < n; ++k) {
      const float* r = x + static_cast<int64_t>(rows[k]) * ld;
      const __m512 w = _mm512_set1_ps(values[k]);
      a0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(r), a0);
      a1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(r + 16), a1);
      a2 = _mm512_fmadd_ps(w, _mm512_loadu_ps(r + 32), a2);
      a3 = _mm512_fmadd_ps(w, _mm512_loadu_ps(r + 48), a3);
      a4 = _mm512_fmadd_ps(w, _mm512_loadu_ps(r + 64), a4);
      a5 = _mm512_fmadd_ps(w, _mm512_loadu_ps(r + 80), a5);
      a6 = _mm512_fmadd_ps(w, _mm512_loadu_ps(r + 96), a6);
      a7 = _mm512_fmadd_ps(w, _mm512_loadu_ps(r + 112), a7);
    }
  }
  const double t = now_s() - t0;
  float sink[16];
  _mm512_storeu_ps(sink, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                                       _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7))));
  if (sink[0] == 12345.0f) std::puts("");
  return static_cast<double>(n) * kPasses * 128 * 2 / t;
}
#endif

double dense_flop_per_s(np::SimdLevel level) {
  const int64_t m = 1024, n = 128, k = 1024;
  static std::vector<float> a(m * k, 0.01f), b(k * n, 0.02f), c(m * n);
  np::set_simd_level(level);
  double best = 0.0;
  for (int rep = 0; rep < 5; ++rep) {
    const double t0 = now_s();
    np::gemm_f32(np::Trans::kNo, np::Trans::kNo, m, n, k, a.data(), k, b.data(), n, 0.0f, c.data(), n, nullptr);
    best = std::max(best, 2.0 * m * n * k / (now_s() - t0));
  }
  return best;
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "neuroplastic_sparse_ceiling: %s\nusage: [--levels avx2,avx512] [--rounds N] [--json]\n", why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
#if !defined(__x86_64__)
  std::puts("neuroplastic_sparse_ceiling: x86-64 only");
  return 0;
#else
  std::vector<np::SimdLevel> levels;
  int rounds = 7;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json") {
      json = true;
    } else if (arg == "--rounds" && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
      if (rounds < 1) usage("--rounds must be >= 1");
    } else if (arg == "--levels" && i + 1 < argc) {
      for (const auto& name : np_bench::split(argv[++i], ',')) {
        np::SimdLevel l;
        if (!np::parse_simd_level(name.c_str(), &l) || l == np::SimdLevel::kScalar) usage("--levels takes avx2, avx512");
        levels.push_back(l);
      }
    } else {
      usage(("unknown argument " + arg).c_str());
    }
  }
  const np::SimdLevel detected = np::detected_simd_level();
  if (levels.empty()) {
    if (detected >= np::SimdLevel::kAvx2) levels.push_back(np::SimdLevel::kAvx2);
    if (detected >= np::SimdLevel::kAvx512) levels.push_back(np::SimdLevel::kAvx512);
  }
  const np::CacheSizes caches = np::cache_sizes();
  struct Place {
    const char* name;
    const char* key;  // the JSON field prefix
    int64_t bytes;
  };
  // Half of L1 and of L2 leave room for the index and value streams.
  const Place places[] = {
      {"L1", "l1", caches.l1d / 2}, {"L2", "l2", caches.l2 / 2}, {"beyond L2", "beyond", caches.l2 * 8}};
  if (!json)
    std::printf("caches: L1d %lld KB, L2 %lld KB; best of %d interleaved rounds, 1 thread\n",
                static_cast<long long>(caches.l1d / 1024), static_cast<long long>(caches.l2 / 1024), rounds);
  for (np::SimdLevel level : levels) {
    if (level > detected) {
      std::printf("%s: not supported by this CPU, skipped\n", np::simd_level_name(level));
      continue;
    }
    const bool wide = level == np::SimdLevel::kAvx512;
    const int64_t tile = wide ? 128 : 64;
    std::vector<Pattern> patterns;
    for (const Place& pl : places) patterns.push_back(make_pattern(pl.bytes, tile, 1 << 14));
    double peak = 0.0, dense = 0.0;
    std::vector<double> best(patterns.size(), 0.0);
    for (int r = 0; r < rounds; ++r) {
      peak = std::max(peak, wide ? peak_fma_per_s_avx512() : peak_fma_per_s_avx2());
      dense = std::max(dense, dense_flop_per_s(level));
      for (size_t i = 0; i < patterns.size(); ++i)
        best[i] = std::max(best[i], wide ? pattern_flop_per_s_avx512(patterns[i]) : pattern_flop_per_s_avx2(patterns[i]));
    }
    const double dense_frac = dense / peak;
    if (json) {
      std::printf("{\"level\":\"%s\",\"tile\":%lld,\"peak_gflops\":%.2f,\"dense_fraction\":%.4f", np::simd_level_name(level),
                  static_cast<long long>(tile), peak / 1e9, dense_frac);
      for (size_t i = 0; i < patterns.size(); ++i)
        std::printf(",\"%s_kb\":%lld,\"%s_fraction\":%.4f", places[i].key,
                    static_cast<long long>(places[i].bytes / 1024), places[i].key,
                    best[i] / peak);
      std::printf("}\n");
    } else {
      std::printf("%s (batch tile %lld floats): FMA peak %.1f GFLOP/s; dense GEMM 1024x128x1024 at %.0f%% of it\n",
                  np::simd_level_name(level), static_cast<long long>(tile), peak / 1e9, 100.0 * dense_frac);
      for (size_t i = 0; i < patterns.size(); ++i) {
        const double frac = best[i] / peak;
        std::printf("  X rows from %-9s (%6lld KB): %3.0f%% of peak -> CSR at most %.1fx dense at 90%% sparsity, %.0fx at 99%%\n",
                    places[i].name, static_cast<long long>(places[i].bytes / 1024), 100.0 * frac,
                    frac / dense_frac / 0.1, frac / dense_frac / 0.01);
      }
    }
    for (Pattern& p : patterns) std::free(p.x);
  }
  np::set_simd_level(detected);
  return 0;
#endif
}
