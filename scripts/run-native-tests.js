#!/usr/bin/env node
// Runs the native kernel tests (build/native/neuroplastic_native_tests, built
// by `npm run build:native`), streaming their output, then the CUDA kernel
// tests (build/native/neuroplastic_cuda_tests) when they were built (nvcc
// found at build time); without a GPU those print one SKIP line per test and
// pass. Then the same CUDA tests over the CUDA emulator
// (build/native/neuroplastic_cuda_emulated_tests, native/cuda/emulator), which
// runs them on the CPU, so they check the kernels' logic even without a GPU:
// twice, the second time with each block's threads run in reverse order.
// Exits non-zero if any fails. Extra arguments (a test-name filter) are passed
// to all.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const buildDir = process.env.NEUROPLASTIC_BUILD_DIR || path.join(__dirname, '..', 'build');
const exeSuffix = process.platform === 'win32' ? '.exe' : '';
const exe = path.join(buildDir, 'native', 'neuroplastic_native_tests' + exeSuffix);
const cudaExe = path.join(buildDir, 'native', 'neuroplastic_cuda_tests' + exeSuffix);
const emulatedExe = path.join(buildDir, 'native', 'neuroplastic_cuda_emulated_tests' + exeSuffix);

if (!fs.existsSync(exe)) {
  console.error(
    `run-native-tests: ${exe} not found.\n` +
      'Build it first with `npm run build:native` (cmake-js compile --CDNEUROPLASTIC_TESTS=ON).',
  );
  process.exit(1);
}

function run(file, env = process.env) {
  const res = spawnSync(file, process.argv.slice(2), { stdio: 'inherit', env });
  if (res.error) {
    console.error(`run-native-tests: could not run ${file}: ${res.error.message}`);
    return 1;
  }
  if (res.signal) {
    console.error(`run-native-tests: ${path.basename(file)} was killed by ${res.signal}`);
    return 1;
  }
  return res.status === null ? 1 : res.status;
}

let status = run(exe);
if (fs.existsSync(cudaExe)) {
  console.log(`\nrun-native-tests: CUDA kernel tests (${path.basename(cudaExe)})`);
  status = run(cudaExe) || status;
} else {
  console.log(`run-native-tests: no ${path.basename(cudaExe)} (the CUDA tests are built only when nvcc is found)`);
}
if (fs.existsSync(emulatedExe)) {
  console.log(`\nrun-native-tests: CUDA tests on the CPU, over the CUDA emulator (${path.basename(emulatedExe)})`);
  status = run(emulatedExe) || status;
  // Once more with each block's threads run last to first: a missing barrier
  // between one thread's write and another's read shows in one of the orders.
  console.log('\nrun-native-tests: the same, each block\'s threads run in reverse order (NP_CUDA_EMULATOR_ORDER=reverse)');
  status = run(emulatedExe, { ...process.env, NP_CUDA_EMULATOR_ORDER: 'reverse' }) || status;
} else {
  console.log(`run-native-tests: no ${path.basename(emulatedExe)} (built with NEUROPLASTIC_TESTS=ON, outside ThreadSanitizer builds)`);
}
process.exit(status);
