// A tiny self-contained test framework for the native kernels: no gtest to
// fetch or build, one binary, output that scripts/run-native-tests.js streams.
//
//   TEST(gemm_nn_matches_naive) { CHECK(x == 1); CHECK_NEAR(a, b, 1e-5); }
//
// A failed CHECK prints file:line and the expression, marks the test failed and
// carries on, so one run shows every broken case.
#pragma once

#include <cmath>
#include <cstdio>

namespace np_test {

using TestFn = void (*)();

// Registers a test at static-initialisation time; returns a dummy value.
int register_test(const char* name, TestFn fn);

// Records a failed check in the running test.
void report_failure(const char* file, int line, const char* message);

}  // namespace np_test

#define TEST(name)                                                                    \
  static void np_test_##name();                                                       \
  static const int np_test_reg_##name = np_test::register_test(#name, np_test_##name); \
  static void np_test_##name()

#define CHECK(cond)                                                    \
  do {                                                                 \
    if (!(cond)) np_test::report_failure(__FILE__, __LINE__, #cond);   \
  } while (0)

// Checks and, on failure, prints a printf-style explanation.
#define CHECK_MSG(cond, ...)                                           \
  do {                                                                 \
    if (!(cond)) {                                                     \
      char np_test_buf[512];                                           \
      std::snprintf(np_test_buf, sizeof np_test_buf, __VA_ARGS__);     \
      np_test::report_failure(__FILE__, __LINE__, np_test_buf);        \
    }                                                                  \
  } while (0)

#define CHECK_EQ(a, b) CHECK_MSG((a) == (b), "%s == %s", #a, #b)

#define CHECK_NEAR(a, b, tol)                                                              \
  do {                                                                                     \
    const double np_a = (a), np_b = (b);                                                   \
    CHECK_MSG(std::fabs(np_a - np_b) <= (tol), "%s = %g, %s = %g, tolerance %g", #a, np_a, #b, \
              np_b, static_cast<double>(tol));                                             \
  } while (0)
