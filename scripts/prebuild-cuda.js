#!/usr/bin/env node
// npm pack (prepack, after prebuildify): put a prebuilt CUDA addon in the
// package, so users with an NVIDIA GPU need no CUDA toolkit, only a driver.
//
// prebuildify builds the CPU addon with node-gyp, which cannot compile CUDA.
// This builds the CUDA addon with cmake-js (every architecture CMakeLists.txt
// lists, the CUDA runtime linked statically; cuBLAS is opened at run time) and
// copies it to prebuilds/<platform>-<arch>/cuda/neuroplastic_cuda.node. The
// subfolder matters: node-gyp-build loads a .node file found directly in
// prebuilds/<platform>-<arch>/ as the CPU addon. lib/cuda.ts loads it only
// beside the prebuilt CPU addon of the same pack (never in a checkout with
// its own build, where it could be stale).
//
// Whether CMake builds it is CMake's decision (CMakeLists.txt: a working nvcc
// >= 11.8 and the toolkit's cudart), read from its cache: without it the
// package ships no CUDA addon, and says so (NEUROPLASTIC_REQUIRE_CUDA_PREBUILD=1
// makes that an error, for release packing). Linux only: the CUDA part of
// CMakeLists.txt is written for GCC and Clang.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const ADDON = 'neuroplastic_cuda.node';
const log = (msg) => console.log(`prebuild-cuda: ${msg}`);

/** No CUDA prebuild: a note, or an error when the packer asked for one. */
function without(why) {
  if (process.env.NEUROPLASTIC_REQUIRE_CUDA_PREBUILD === '1') throw new Error(`${why} (NEUROPLASTIC_REQUIRE_CUDA_PREBUILD=1)`);
  log(`${why}: the package ships without the CUDA addon`);
}

function main() {
  const target = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'cuda', ADDON);
  fs.rmSync(path.dirname(target), { recursive: true, force: true });
  if (process.platform !== 'linux') return without(`no CUDA prebuild on ${process.platform}`);
  // A fresh folder every time: a cached configuration (an nvcc not found then, a toolkit moved
  // since) would otherwise outlive the machine it described.
  const out = path.join(root, 'build-cuda-prebuild');
  fs.rmSync(out, { recursive: true, force: true });
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
  const flags = ['--out', out, '--CDNEUROPLASTIC_TESTS=OFF', '--CDNEUROPLASTIC_CUDA_EMULATOR=OFF'];
  const configure = spawnSync(process.execPath, [cmakeJs, 'configure', ...flags], { cwd: root, stdio: 'inherit' });
  if (configure.status !== 0) throw new Error('cmake-js could not configure the build');
  const cache = fs.readFileSync(path.join(out, 'CMakeCache.txt'), 'utf8');
  if (!/^NP_CUDA_ADDON:INTERNAL=ON$/m.test(cache)) return without('CMake found no usable nvcc and CUDA toolkit (see its messages above)');
  log('building the CUDA addon (every listed GPU architecture; about a minute on 2 cores)');
  const r = spawnSync(process.execPath, [cmakeJs, 'build', ...flags, '--target', 'neuroplastic_cuda'], { cwd: root, stdio: 'inherit' });
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
