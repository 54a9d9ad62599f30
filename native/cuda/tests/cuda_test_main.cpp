// Runs the CUDA tests (or those whose name contains argv[1]): host-only TESTs
// always; CUDA_TESTs when a device is there, else one "SKIP: no CUDA device
// (<why>)" line each, and the run still passes (CI has nvcc but no GPU).
// NEUROPLASTIC_REQUIRE_GPU=1 turns a missing device into a failure (the GPU
// machine's script, scripts/test-gpu.sh, sets it).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cuda/kernels.h"
#include "cuda/runtime.h"
#include "cuda_test.h"
#include "../../tests/test_runner.h"

namespace np_cuda_test {

int register_device_test(const char* name, np_test::TestFn fn) {
  return np_test::register_test_needing_device(name, fn);
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

  np_test::RunOptions options;
  options.filter = filter;
  options.device_missing = no_device;
#if defined(NP_CUDA_EMULATOR)
  options.device_label = "over the CUDA emulator, on the CPU";
#else
  options.device_label = "no CUDA device";
#endif
  options.missing_device_fails = required;
  return np_test::run_tests(options);
}
