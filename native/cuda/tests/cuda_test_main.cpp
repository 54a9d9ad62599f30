// Runs the CUDA tests (or those whose name contains argv[1]): host-only TESTs
// always; CUDA_TESTs when a device is there, else one "SKIP: no CUDA device
// (<why>)" line each, and the run still passes (CI has nvcc but no GPU).
// NEUROPLASTIC_REQUIRE_GPU=1 turns a missing device into a failure (the GPU
// machine's script, scripts/test-gpu.sh, sets it).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/kernels.h"
#include "cuda/runtime.h"
#include "cuda_test.h"

namespace {

struct Entry {
  const char* name;
  np_test::TestFn fn;
  bool needs_device;
};

std::vector<Entry>& registry() {
  static std::vector<Entry> tests;
  return tests;
}

int g_failures_in_test = 0;

}  // namespace

namespace np_test {

int register_test(const char* name, TestFn fn) {
  registry().push_back({name, fn, false});
  return 0;
}

void report_failure(const char* file, int line, const char* message) {
  if (g_failures_in_test < 10) std::printf("    %s:%d: CHECK failed: %s\n", file, line, message);
  if (g_failures_in_test == 10) std::printf("    (further failures of this test not shown)\n");
  ++g_failures_in_test;
}

}  // namespace np_test

namespace np_cuda_test {

int register_device_test(const char* name, np_test::TestFn fn) {
  registry().push_back({name, fn, true});
  return 0;
}

}  // namespace np_cuda_test

int main(int argc, char** argv) {
  const char* filter = argc > 1 ? argv[1] : nullptr;
  const np::cuda::Probe probe = np::cuda::probe();
  std::string no_device;
  if (probe.error_code != 0)
    no_device = probe.error + ", " + probe.error_name;
  else if (probe.device_count == 0)
    no_device = "cudaGetDeviceCount found 0 devices";
  if (no_device.empty()) {
    const auto list = np::cuda::devices();
    std::printf("CUDA device 0: %s, compute capability %d.%d, %.1f GiB; runtime %d, driver %d; gemm: %s\n",
                list[0].name.c_str(), list[0].major, list[0].minor, list[0].total_memory / 1073741824.0,
                probe.runtime_version, probe.driver_version, np::cuda::gemm_backend().c_str());
  }
  const char* require = std::getenv("NEUROPLASTIC_REQUIRE_GPU");
  const bool required = require && std::strcmp(require, "1") == 0;

  int passed = 0, failed = 0, skipped = 0;
  for (const auto& t : registry()) {
    if (filter != nullptr && std::strstr(t.name, filter) == nullptr) continue;
    if (t.needs_device && !no_device.empty()) {
      std::printf("%s no CUDA device (%s): %s\n", required ? "FAIL:" : "SKIP:", no_device.c_str(), t.name);
      (required ? failed : skipped) += 1;
      continue;
    }
    g_failures_in_test = 0;
    const auto start = std::chrono::steady_clock::now();
    try {
      t.fn();
    } catch (const std::exception& e) {
      np_test::report_failure(__FILE__, __LINE__, (std::string("exception: ") + e.what()).c_str());
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const bool ok = g_failures_in_test == 0;
    std::printf("%s %s (%.0f ms)\n", ok ? "ok  " : "FAIL", t.name, ms);
    std::fflush(stdout);
    (ok ? passed : failed) += 1;
  }
  std::printf("%d passed, %d failed, %d skipped (no CUDA device)\n", passed, failed, skipped);
  return failed == 0 ? 0 : 1;
}
