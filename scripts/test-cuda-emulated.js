#!/usr/bin/env node
// Runs the GPU tests of the JS API (test/65.cuda.test.ts) over the CUDA
// emulator: the CUDA addon built against native/cuda/emulator
// (build/Release/cuda-emulator/neuroplastic_cuda.node, made by
// `npm run build:native`), which runs every kernel on the CPU. So the device
// path behind `device: 'cuda'` (training, restructuring, checkpoints) is
// exercised on every machine, GPU or not. It checks logic only: timings and
// the real driver, cuBLAS and hardware need a GPU (`npm run test:gpu`).
// With NEUROPLASTIC_REQUIRE_GPU=1 no GPU test may skip. Extra arguments go to mocha;
// without any, the 'cuda:N' tests run a second time over two emulated GPUs.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const buildDir = process.env.NEUROPLASTIC_BUILD_DIR || path.join(root, 'build');
const addon = path.join(buildDir, 'Release', 'cuda-emulator', 'neuroplastic_cuda.node');
if (!fs.existsSync(addon)) {
  console.error(`test-cuda-emulated: ${addon} not found; build it with \`npm run build:native\`.`);
  process.exit(1);
}
console.log(`test-cuda-emulated: test/65.cuda.test.ts over the CUDA emulator (${path.relative(root, addon)})`);
const mocha = path.join(root, 'node_modules', 'mocha', 'bin', 'mocha.js');
const run = (args, env) => {
  const res = spawnSync(process.execPath, [mocha, '--no-config', '-n', 'import=tsx', '--timeout', '300000', 'test/65.cuda.test.ts', ...args], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, NEUROPLASTIC_CUDA_ADDON_PATH: addon, NEUROPLASTIC_REQUIRE_GPU: '1', ...env },
  });
  if (res.error) {
    console.error(`test-cuda-emulated: could not run mocha: ${res.error.message}`);
    process.exit(1);
  }
  return res.status === null ? 1 : res.status;
};
const extra = process.argv.slice(2);
let status = run(extra, {});
if (extra.length === 0 && status === 0) {
  // Again with two emulated GPUs, the tests that place a model by ordinal ('cuda:N'): a kernel
  // given the other GPU's memory, or launched into its stream, fails there as on hardware.
  console.log('test-cuda-emulated: the cuda:N tests again over two emulated GPUs (NP_CUDA_EMULATOR_DEVICES=2)');
  status = run(['-g', 'cuda:N'], { NP_CUDA_EMULATOR_DEVICES: '2' });
}
process.exit(status);
