// gemm_f32 at every SIMD level this CPU runs, for all four transposition
// combinations, against gemm_f32_naive.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/gemm_internal.h"
#include "kernels/simd_level.h"
#include "kernels/thread_pool.h"
#include "test.h"

namespace {

using np::SimdLevel;
using np::Trans;

// Deterministic values in [-1, 1): the tests must not depend on the libc rand.
struct Lcg {
  uint64_t s;
  float next() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<float>((s >> 40) & 0xFFFFFF) / 8388608.0f - 1.0f;
  }
};

std::vector<SimdLevel> supported_levels() {
  std::vector<SimdLevel> levels;
#define NP_GEMM_KERNEL(isa, level, MR, NR) \
  if (static_cast<int>(SimdLevel::level) <= static_cast<int>(np::detected_simd_level())) \
    levels.push_back(SimdLevel::level);
#include "kernels/kernels.inc"
#undef NP_GEMM_KERNEL
  return levels;
}

np::ThreadPool& pool2() {
  static np::ThreadPool pool(2);
  return pool;
}

const float kSentinel = 12345.0f;  // C's padding columns; must survive every call

// One shape and transposition: builds A and B with leading dimensions wider
// than the matrices (odd, so rows are unaligned), the reference product and the
// error bound, then checks every level x {1, 2 threads} x beta.
void check_shape(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k) {
  const int64_t a_rows = ta == Trans::kNo ? m : k, a_cols = ta == Trans::kNo ? k : m;
  const int64_t b_rows = tb == Trans::kNo ? k : n, b_cols = tb == Trans::kNo ? n : k;
  const int64_t lda = a_cols + 3, ldb = b_cols + 5, ldc = n + 7;
  Lcg rng{static_cast<uint64_t>(m * 1000003 + n * 1009 + k * 7 + static_cast<int>(ta) * 2 +
                                static_cast<int>(tb))};
  std::vector<float> a(static_cast<size_t>(std::max<int64_t>(a_rows, 1) * lda));
  std::vector<float> b(static_cast<size_t>(std::max<int64_t>(b_rows, 1) * ldb));
  for (auto& x : a) x = rng.next();
  for (auto& x : b) x = rng.next();
  std::vector<float> abs_a(a.size()), abs_b(b.size());
  for (size_t i = 0; i < a.size(); ++i) abs_a[i] = std::fabs(a[i]);
  for (size_t i = 0; i < b.size(); ++i) abs_b[i] = std::fabs(b[i]);

  // prod = op(A) op(B); mag = |op(A)| |op(B)|, the scale of rounding error.
  std::vector<float> prod(static_cast<size_t>(m * ldc)), mag(prod.size());
  np::gemm_f32_naive(ta, tb, m, n, k, a.data(), lda, b.data(), ldb, 0.0f, prod.data(), ldc);
  np::gemm_f32_naive(ta, tb, m, n, k, abs_a.data(), lda, abs_b.data(), ldb, 0.0f, mag.data(), ldc);

  std::vector<float> c0(prod.size()), c(prod.size());
  for (auto& x : c0) x = rng.next();
  const float nan = std::numeric_limits<float>::quiet_NaN();

  for (SimdLevel level : supported_levels()) {
    for (np::ThreadPool* pool : {static_cast<np::ThreadPool*>(nullptr), &pool2()}) {
      for (float beta : {0.0f, 1.0f, 0.5f}) {
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < ldc; ++j)
            c[i * ldc + j] = j >= n ? kSentinel : beta == 0.0f ? nan : c0[i * ldc + j];
        np::gemm_f32_at(level, ta, tb, m, n, k, a.data(), lda, b.data(), ldb, beta, c.data(), ldc, pool);
        int bad = 0;
        for (int64_t i = 0; i < m && bad < 3; ++i) {
          for (int64_t j = 0; j < ldc && bad < 3; ++j) {
            const size_t at = static_cast<size_t>(i * ldc + j);
            if (j >= n) {
              if (c[at] != kSentinel) ++bad;
              CHECK_MSG(c[at] == kSentinel, "%s %c%c m=%ld n=%ld k=%ld: wrote C padding at (%ld,%ld)",
                        np::simd_level_name(level), "NT"[static_cast<int>(ta)], "NT"[static_cast<int>(tb)],
                        (long)m, (long)n, (long)k, (long)i, (long)j);
              continue;
            }
            const double want = (beta == 0.0f ? 0.0 : beta * static_cast<double>(c0[at])) + prod[at];
            const double tol = 1e-4 * (1.0 + mag[at] + std::fabs(beta * c0[at]));
            const bool ok = std::fabs(c[at] - want) <= tol;  // false for NaN too
            if (!ok) ++bad;
            CHECK_MSG(ok, "%s %c%c m=%ld n=%ld k=%ld beta=%g threads=%d: C(%ld,%ld) = %g, want %g",
                      np::simd_level_name(level), "NT"[static_cast<int>(ta)], "NT"[static_cast<int>(tb)],
                      (long)m, (long)n, (long)k, beta, pool ? pool->size() : 1, (long)i, (long)j, c[at], want);
          }
        }
      }
    }
  }
}

void check_all_trans(int64_t m, int64_t n, int64_t k) {
  for (Trans ta : {Trans::kNo, Trans::kYes})
    for (Trans tb : {Trans::kNo, Trans::kYes}) check_shape(ta, tb, m, n, k);
}

}  // namespace

TEST(simd_level_names_round_trip) {
  for (SimdLevel level : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
    SimdLevel parsed;
    CHECK(np::parse_simd_level(np::simd_level_name(level), &parsed));
    CHECK(parsed == level);
  }
  SimdLevel unused;
  CHECK(!np::parse_simd_level("avx1024", &unused));
  CHECK(!np::parse_simd_level(nullptr, &unused));
}

TEST(simd_level_set_accepts_only_supported_levels) {
  const SimdLevel before = np::active_simd_level();
  CHECK(static_cast<int>(before) <= static_cast<int>(np::detected_simd_level()));
  CHECK(np::set_simd_level(SimdLevel::kScalar));
  CHECK(np::active_simd_level() == SimdLevel::kScalar);
  if (np::detected_simd_level() != SimdLevel::kAvx512) CHECK(!np::set_simd_level(SimdLevel::kAvx512));
  CHECK(np::set_simd_level(before));
  std::printf("    detected %s, %zu GEMM levels under test\n", np::simd_level_name(np::detected_simd_level()),
              supported_levels().size());
}

TEST(gemm_registry_kernels_match_their_levels) {
  for (SimdLevel level : supported_levels()) {
    const np::GemmKernel& kr = np::gemm_kernel_for(level);
    CHECK(kr.level == level);
    CHECK(kr.mc % kr.mr == 0);
    CHECK(kr.nc % kr.nr == 0);
  }
}

TEST(gemm_awkward_shapes_all_trans_match_naive) {
  const int64_t dims[] = {1, 7, 33, 257};
  for (int64_t m : dims)
    for (int64_t n : dims)
      for (int64_t k : dims) check_all_trans(m, n, k);
}

TEST(gemm_blocks_larger_than_cache_blocking_match_naive) {
  // k past kc (beta applied once, later k blocks accumulate), m past mc, n past nc.
  check_all_trans(30, 70, 600);
  check_all_trans(300, 20, 50);
  check_all_trans(3, 4133, 5);
  check_all_trans(128, 128, 300);
}

TEST(gemm_k_zero_scales_c_by_beta) {
  for (SimdLevel level : supported_levels()) {
    float c[6] = {1, 2, std::numeric_limits<float>::quiet_NaN(), 4, 5, 6};
    np::gemm_f32_at(level, Trans::kNo, Trans::kNo, 2, 3, 0, nullptr, 1, nullptr, 3, 0.0f, c, 3, nullptr);
    for (float x : c) CHECK(x == 0.0f);
    float d[4] = {1, 2, 3, 4};
    np::gemm_f32_at(level, Trans::kNo, Trans::kNo, 2, 2, 0, nullptr, 1, nullptr, 2, 0.5f, d, 2, &pool2());
    CHECK(d[0] == 0.5f && d[1] == 1.0f && d[2] == 1.5f && d[3] == 2.0f);
  }
}

TEST(gemm_empty_shapes_touch_nothing) {
  float c[4] = {1, 2, 3, 4};
  const float a[4] = {1, 1, 1, 1};
  np::gemm_f32(Trans::kNo, Trans::kNo, 0, 2, 2, a, 2, a, 2, 0.0f, c, 2, nullptr);
  np::gemm_f32(Trans::kNo, Trans::kNo, 2, 0, 2, a, 2, a, 2, 0.0f, c, 2, &pool2());
  CHECK(c[0] == 1 && c[1] == 2 && c[2] == 3 && c[3] == 4);
}

TEST(gemm_dispatch_follows_set_simd_level) {
  // gemm_f32 (no explicit level) must give the same answer at every level.
  const SimdLevel before = np::active_simd_level();
  const int64_t m = 19, n = 45, k = 70;
  std::vector<float> a(m * k), b(k * n), want(m * n), got(m * n);
  Lcg rng{42};
  for (auto& x : a) x = rng.next();
  for (auto& x : b) x = rng.next();
  np::gemm_f32_naive(Trans::kNo, Trans::kNo, m, n, k, a.data(), k, b.data(), n, 0.0f, want.data(), n);
  for (SimdLevel level : supported_levels()) {
    CHECK(np::set_simd_level(level));
    np::gemm_f32(Trans::kNo, Trans::kNo, m, n, k, a.data(), k, b.data(), n, 0.0f, got.data(), n, &pool2());
    for (int64_t i = 0; i < m * n; ++i) CHECK_NEAR(got[i], want[i], 1e-4 * (1 + k));
  }
  np::set_simd_level(before);
}
