// Runs every registered TEST (or those whose name contains argv[1]), prints
// one line per test and "N passed, N failed" last; exits 1 if any failed.
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "test.h"

namespace np_test {

namespace {
struct Entry {
  const char* name;
  TestFn fn;
};

std::vector<Entry>& registry() {
  static std::vector<Entry> tests;  // function-local: safe across TUs' static init
  return tests;
}

int g_failures_in_test = 0;
}  // namespace

int register_test(const char* name, TestFn fn) {
  registry().push_back({name, fn});
  return 0;
}

void report_failure(const char* file, int line, const char* message) {
  // Print only the first few failures of a test: a broken kernel fails
  // thousands of cases, and the first ones say what is wrong.
  if (g_failures_in_test < 10) std::printf("    %s:%d: CHECK failed: %s\n", file, line, message);
  if (g_failures_in_test == 10) std::printf("    (further failures of this test not shown)\n");
  ++g_failures_in_test;
}

}  // namespace np_test

int main(int argc, char** argv) {
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int passed = 0, failed = 0;
  for (const auto& t : np_test::registry()) {
    if (filter != nullptr && std::strstr(t.name, filter) == nullptr) continue;
    np_test::g_failures_in_test = 0;
    const auto start = std::chrono::steady_clock::now();
    t.fn();
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const bool ok = np_test::g_failures_in_test == 0;
    std::printf("%s %s (%.0f ms)\n", ok ? "ok  " : "FAIL", t.name, ms);
    std::fflush(stdout);
    (ok ? passed : failed) += 1;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
