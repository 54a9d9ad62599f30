#!/usr/bin/env node
// The install story end to end: `npm pack` (which builds dist/ and a linux-x64
// prebuild, with the CUDA addon where it is built), then `npm install
// ./neuroplastic-x.y.z.tgz` in an empty folder with no compiler on PATH, then
// load, train, load the CUDA prebuild and run the CLI from there.
// Works on a copy of the package so the checkout's build/ is left alone.
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.resolve(__dirname, '..');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'neuroplastic-pack-'));
const log = (msg) => console.log(`test-pack: ${msg}`);

function run(cmd, args, options = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...options });
}

try {
  // 1. A copy of the package sources, sharing the checkout's node_modules.
  const src = path.join(work, 'src');
  fs.mkdirSync(src);
  for (const entry of ['native', 'lib', 'scripts', 'package.json', 'package-lock.json', 'tsconfig.json',
    'tsconfig.build.json', 'binding.gyp', 'CMakeLists.txt', 'README.md']) {
    if (fs.existsSync(path.join(root, entry))) fs.cpSync(path.join(root, entry), path.join(src, entry), { recursive: true });
  }
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(src, 'node_modules'), 'dir');
  // Where the checkout's build found nvcc (it built the CUDA addon), the package must carry a
  // CUDA prebuild too (scripts/prebuild-cuda.js, run by prepack, compiles it).
  const withCuda = fs.existsSync(path.join(root, 'build', 'Release', 'cuda', 'neuroplastic_cuda.node'));
  log(`npm pack (builds dist/ and the prebuild${withCuda ? ', and the CUDA prebuild' : '; no nvcc here, so no CUDA prebuild'})`);
  run('npm', ['pack', '--pack-destination', work], { cwd: src, stdio: ['ignore', 'pipe', 'pipe'] });
  const tarball = fs.readdirSync(work).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error('npm pack wrote no tarball');
  const listing = run('tar', ['-tzf', path.join(work, tarball)]);
  const musts = ['package/prebuilds/linux-x64/', 'package/dist/index.js', 'package/dist/index.mjs', 'package/dist/index.d.ts'];
  if (withCuda) musts.push('package/prebuilds/linux-x64/cuda/neuroplastic_cuda.node');
  for (const must of musts) {
    if (!listing.includes(must)) throw new Error(`the tarball lacks ${must}`);
  }
  log(`${tarball}: ${(fs.statSync(path.join(work, tarball)).size / 1024).toFixed(0)} KiB`);

  // 2. An empty project whose PATH holds node, npm and sh only: no compiler,
  // no cmake, no make, no python. CC/CXX point at false for good measure.
  const app = path.join(work, 'app');
  const bin = path.join(work, 'bin');
  fs.mkdirSync(app);
  fs.mkdirSync(bin);
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  fs.symlinkSync('/bin/sh', path.join(bin, 'sh')); // npm runs lifecycle scripts through sh
  // The npm on PATH is a link to npm's bin/npm-cli.js; find that file.
  const npmOnPath = run('sh', ['-c', 'command -v npm']).trim();
  const npmCli = path.join(path.dirname(fs.realpathSync(npmOnPath)), 'npm-cli.js');
  if (!fs.existsSync(npmCli)) throw new Error(`cannot find npm-cli.js next to ${npmOnPath}`);
  fs.writeFileSync(path.join(bin, 'npm'), `#!/bin/sh\nexec "${process.execPath}" "${npmCli}" "$@"\n`, { mode: 0o755 });
  fs.writeFileSync(path.join(bin, 'npx'), `#!/bin/sh\nexec "${process.execPath}" "${npmCli}" exec -- "$@"\n`, { mode: 0o755 });
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  const env = { ...process.env, PATH: bin, CC: '/bin/false', CXX: '/bin/false' };
  for (const key of Object.keys(env)) if (key.startsWith('npm_')) delete env[key];
  log('npm install <tarball> with no compiler on PATH');
  run(path.join(bin, 'npm'), ['install', '--no-audit', '--no-fund', path.join(work, tarball)], { cwd: app, env });

  // 3. Load and train from CommonJS and ESM, then the CLI.
  const cjs = run(process.execPath, ['-e', `
    const np = require('neuroplastic');
    const { train, test } = np.data.loadMnistSplits({ limit: 2000 });
    const m = new np.Sequential({ inputSize: 784, seed: 1 });
    m.add(np.layers.dense({ units: 64, activation: 'relu' })).add(np.layers.dense({ units: 10 }));
    m.compile({ optimizer: np.optimizers.sgd({ learningRate: 0.05, momentum: 0.9 }), loss: 'softmaxCrossEntropy' });
    m.fit(train.x, train.y, { epochs: 3, batchSize: 32 }).then(() => m.evaluate(test.x, test.y)).then((r) => console.log(JSON.stringify(r)));
  `], { cwd: app, env });
  const accuracy = JSON.parse(cjs.trim()).accuracy;
  if (!(accuracy > 0.8)) throw new Error(`training from the installed package reached only ${accuracy}`);
  log(`CommonJS: trained, held-out accuracy ${accuracy.toFixed(3)}`);
  const esm = run(process.execPath, ['--input-type=module', '-e', `
    import { Sequential, layers, runtime } from 'neuroplastic';
    const m = new Sequential({ inputSize: 3 }).add(layers.dense({ units: 2 }));
    const out = await m.predict(new Float32Array(6));
    console.log(out.length, runtime().simd);
  `], { cwd: app, env });
  if (!esm.startsWith('4 ')) throw new Error(`ESM import printed ${esm}`);
  log(`ESM: loaded (${esm.trim()})`);
  // The prebuilt CUDA addon loads from the installed package (no toolkit here): its runtime answers
  // the probe, and without a driver or a GPU it says why it is not available.
  if (withCuda) {
    const s = JSON.parse(run(process.execPath, ['-e', 'console.log(JSON.stringify(require("neuroplastic").cuda.status()))'], { cwd: app, env }).trim());
    const expected = path.join('node_modules', 'neuroplastic', 'prebuilds', `${process.platform}-${process.arch}`, 'cuda', 'neuroplastic_cuda.node');
    if (!s.addonPath || !s.addonPath.endsWith(expected)) throw new Error(`cuda.status() found the CUDA addon at ${s.addonPath}, not the prebuild`);
    if (!s.runtimeVersion) throw new Error(`the prebuilt CUDA addon did not load: ${s.reason}`);
    log(`CUDA prebuild: loaded (runtime ${s.runtimeVersion}; ${s.available ? `${s.deviceCount} device(s)` : s.reason})`);
  }
  const cli = run(path.join(bin, 'npx'), ['neuroplastic', 'train', '--epochs', '1', '--json'], { cwd: app, env });
  const last = JSON.parse(cli.trim().split('\n').pop());
  if (!(last.accuracy > 0.8)) throw new Error(`CLI accuracy ${last.accuracy}`);
  log(`CLI: npx neuroplastic train --epochs 1 --json -> accuracy ${last.accuracy.toFixed(3)}`);
  log('ok');
} finally {
  if (!process.env.KEEP_PACK_DIR) fs.rmSync(work, { recursive: true, force: true });
}
