#!/usr/bin/env node
// Runs the native kernel tests (build/native/neuroplastic_native_tests, built
// by `npm run build:native`), streaming their output, and exits with their
// exit code. Extra arguments (a test-name filter) are passed through.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const buildDir = process.env.NEUROPLASTIC_BUILD_DIR || path.join(__dirname, '..', 'build');
const exe = path.join(buildDir, 'native', 'neuroplastic_native_tests' + (process.platform === 'win32' ? '.exe' : ''));

if (!fs.existsSync(exe)) {
  console.error(
    `run-native-tests: ${exe} not found.\n` +
      'Build it first with `npm run build:native` (cmake-js compile --CDNEUROPLASTIC_TESTS=ON).',
  );
  process.exit(1);
}

const res = spawnSync(exe, process.argv.slice(2), { stdio: 'inherit' });
if (res.error) {
  console.error(`run-native-tests: could not run ${exe}: ${res.error.message}`);
  process.exit(1);
}
if (res.signal) {
  console.error(`run-native-tests: ${path.basename(exe)} was killed by ${res.signal}`);
  process.exit(1);
}
process.exit(res.status === null ? 1 : res.status);
