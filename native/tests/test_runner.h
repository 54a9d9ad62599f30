// The test registry and runner shared by the native tests (test_main.cpp) and
// the CUDA tests (native/cuda/tests/cuda_test_main.cpp): TEST and CUDA_TEST
// register here, and run_tests runs them, printing one line per test and a
// summary last.
#pragma once

#include <string>

#include "test.h"

namespace np_test {

// Registers a test that needs something this machine may lack (a GPU).
int register_test_needing_device(const char* name, TestFn fn);

struct RunOptions {
  const char* filter = nullptr;   // run only tests whose name contains it
  std::string device_missing;     // non-empty: why device tests cannot run
  std::string device_label;       // e.g. "no CUDA device", for their lines and the summary
  bool missing_device_fails = false;
};

// Runs the registered tests; returns the process exit code (1 if any failed).
int run_tests(const RunOptions& options);

}  // namespace np_test
