// Runs every registered TEST (or those whose name contains argv[1]), prints
// one line per test and "N passed, N failed" last; exits 1 if any failed.
#include "test_runner.h"

int main(int argc, char** argv) {
  np_test::RunOptions options;
  options.filter = argc > 1 ? argv[1] : nullptr;
  return np_test::run_tests(options);
}
