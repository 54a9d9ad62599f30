#include "test_runner.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <vector>

namespace np_test {

namespace {

struct Entry {
  const char* name;
  TestFn fn;
  bool needs_device;
};

std::vector<Entry>& registry() {
  static std::vector<Entry> tests;  // function-local: safe across TUs' static init
  return tests;
}

int g_failures_in_test = 0;

}  // namespace

int register_test(const char* name, TestFn fn) {
  registry().push_back({name, fn, false});
  return 0;
}

int register_test_needing_device(const char* name, TestFn fn) {
  registry().push_back({name, fn, true});
  return 0;
}

void report_failure(const char* file, int line, const char* message) {
  // Print only the first few failures of a test: a broken kernel fails
  // thousands of cases, and the first ones say what is wrong.
  if (g_failures_in_test < 10) std::printf("    %s:%d: CHECK failed: %s\n", file, line, message);
  if (g_failures_in_test == 10) std::printf("    (further failures of this test not shown)\n");
  ++g_failures_in_test;
}

int run_tests(const RunOptions& o) {
  int passed = 0, failed = 0, skipped = 0;
  bool any_device_test = false;
  for (const auto& t : registry()) {
    if (o.filter != nullptr && std::strstr(t.name, o.filter) == nullptr) continue;
    any_device_test |= t.needs_device;
    if (t.needs_device && !o.device_missing.empty()) {
      std::printf("%s %s (%s): %s\n", o.missing_device_fails ? "FAIL:" : "SKIP:", o.device_label.c_str(),
                  o.device_missing.c_str(), t.name);
      (o.missing_device_fails ? failed : skipped) += 1;
      continue;
    }
    g_failures_in_test = 0;
    const auto start = std::chrono::steady_clock::now();
    try {
      t.fn();
    } catch (const std::exception& e) {
      report_failure(__FILE__, __LINE__, (std::string("exception: ") + e.what()).c_str());
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const bool ok = g_failures_in_test == 0;
    std::printf("%s %s (%.0f ms)\n", ok ? "ok  " : "FAIL", t.name, ms);
    std::fflush(stdout);
    (ok ? passed : failed) += 1;
  }
  if (any_device_test)
    std::printf("%d passed, %d failed, %d skipped (%s)\n", passed, failed, skipped, o.device_label.c_str());
  else
    std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace np_test
