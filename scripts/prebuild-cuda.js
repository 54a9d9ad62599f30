#!/usr/bin/env node
// npm pack (prepack, after prebuildify): put a prebuilt CUDA addon in the
// package, so users with an NVIDIA GPU need no CUDA toolkit, only a driver.
//
// prebuildify builds the CPU addon with node-gyp, which cannot compile CUDA.
// This builds the CUDA addon with cmake-js (every architecture CMakeLists.txt
// lists, the CUDA runtime linked statically; cuBLAS is opened at run time) and
// copies it to prebuilds/<platform>-<arch>/cuda/neuroplastic_cuda.node. The
// subfolder matters: node-gyp-build loads a .node file found directly in
// prebuilds/<platform>-<arch>/ as the CPU addon. lib/cuda.ts looks there after
// a local build (build/Release/cuda).
//
// No nvcc: the package ships without the CUDA addon, and says so (a machine
// with nvcc builds it at install time instead).
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const ADDON = 'neuroplastic_cuda.node';
const log = (msg) => console.log(`prebuild-cuda: ${msg}`);

/** nvcc as CMake's check_language(CUDA) finds it: CUDACXX, PATH, then the default toolkit folder. */
function findNvcc() {
  const candidates = [process.env.CUDACXX, 'nvcc', path.join(process.env.CUDA_HOME || '/usr/local/cuda', 'bin', 'nvcc')];
  for (const c of candidates) {
    if (c && spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0) return c;
  }
  return null;
}

function main() {
  const target = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'cuda', ADDON);
  fs.rmSync(path.dirname(target), { recursive: true, force: true });
  if (!findNvcc()) {
    log('nvcc not found: the package ships without the CUDA addon (installs with nvcc build it from source)');
    return;
  }
  const out = path.join(root, 'build-cuda-prebuild');
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
  log('building the CUDA addon (every listed GPU architecture; about a minute on 2 cores)');
  const r = spawnSync(process.execPath, [cmakeJs, 'build', '--out', out, '--target', 'neuroplastic_cuda',
    '--CDNEUROPLASTIC_TESTS=OFF', '--CDNEUROPLASTIC_CUDA_EMULATOR=OFF'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('cmake-js could not build the CUDA addon');
  const built = path.join(out, 'Release', 'cuda', ADDON);
  if (!fs.existsSync(built)) throw new Error(`the build left no ${built}`);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.copyFileSync(built, target);
  log(`${path.relative(root, target)} (${(fs.statSync(target).size / 1e6).toFixed(1)} MB)`);
}

try {
  main();
} catch (err) {
  console.error(`prebuild-cuda: ${err.message}`);
  process.exit(1);
}
