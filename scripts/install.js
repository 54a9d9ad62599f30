#!/usr/bin/env node
// npm install hook: use a prebuilt addon when one loads on this machine,
// otherwise build from source, preferring cmake-js (Node-API headers come from
// the node-api-headers package, so nothing is downloaded) and falling back to
// the node-gyp that ships with npm.
'use strict';
const { spawnSync } = require('child_process');
const path = require('path');

const root = path.resolve(__dirname, '..');

function prebuildLoads() {
  try {
    require('node-gyp-build')(root);
    return true;
  } catch {
    return false;
  }
}

function run(cmd, args) {
  console.log(`neuroplastic: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  return r.status === 0;
}

function has(cmd) {
  return spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
}

if (process.env.NEUROPLASTIC_FORCE_BUILD !== '1' && prebuildLoads()) process.exit(0);

let cmakeJs = null;
try {
  cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
} catch {
  /* not installed: users of the published package build with node-gyp */
}
if (cmakeJs && has('cmake') && run(process.execPath, [cmakeJs, 'compile'])) process.exit(0);

const npmNodeGyp = process.env.npm_config_node_gyp;
const ok = npmNodeGyp ? run(process.execPath, [npmNodeGyp, 'rebuild']) : run('node-gyp', ['rebuild']);
if (!ok) {
  console.error(
    'neuroplastic: no prebuilt binary for ' + `${process.platform}-${process.arch}` +
      ' and building from source failed.\n' +
      'Building needs a C++17 compiler (g++ >= 9 or clang >= 10) and either cmake >= 3.19 or python3 + make.\n' +
      'See the "Building from source" section of the README.'
  );
  process.exit(1);
}
