// The built package as users load it: dist/index.js from CommonJS, dist/index.mjs
// from ESM, both through package.json "exports" (a package may import itself by
// name), and the dist/cli/main.js bin. dist/ is rebuilt first when it is missing
// or older than its sources.
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { pathToFileURL } from 'url';

const ROOT = path.resolve(__dirname, '..');
const DIST = path.join(ROOT, 'dist');
const OUTPUTS = ['index.js', 'index.d.ts', 'index.mjs', path.join('cli', 'main.js')].map((f) => path.join(DIST, f));
const SOURCES = [path.join(ROOT, 'lib'), path.join(ROOT, 'scripts', 'write-esm-entry.js'),
  path.join(ROOT, 'tsconfig.json'), path.join(ROOT, 'tsconfig.build.json')];

function newestMtime(p: string): number {
  const stat = fs.statSync(p);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(0, ...fs.readdirSync(p).map((name) => newestMtime(path.join(p, name))));
}

function run(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs a node script and returns the JSON it prints on its last line. */
function nodeJson(args: string[]): any {
  const r = run(args);
  expect(r.code, r.stderr).to.equal(0);
  const lines = r.stdout.trimEnd().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

/** What both entry points run: a tiny model on 32 bundled digits, one epoch. */
const FIT_SCRIPT = `
  const d = data.loadMnist({ limit: 32 });
  const model = new Sequential({ inputSize: d.features, seed: 3 });
  model.add(layers.dense({ units: 8, activation: 'relu' }));
  model.add(layers.dense({ units: 10 }));
  model.compile({ optimizer: optimizers.sgd({ learningRate: 0.1 }), loss: 'softmaxCrossEntropy' });
  const history = await model.fit(d.x, d.y, { epochs: 1, batchSize: 8 });
  const out = await model.predict(d.x);
  console.log(JSON.stringify({ params: model.countParams(), loss: history.history.loss, outputs: out.length }));
`;

function checkFit(r: { params: number; loss: number[]; outputs: number }): void {
  expect(r.params).to.equal(784 * 8 + 8 + 8 * 10 + 10);
  expect(r.loss).to.have.length(1);
  expect(Number.isFinite(r.loss[0]) && r.loss[0] > 0).to.equal(true);
  expect(r.outputs).to.equal(32 * 10);
}

describe('package: the built dist/', function () {
  before(function () {
    const stale = OUTPUTS.some((f) => !fs.existsSync(f)) ||
      Math.min(...OUTPUTS.map((f) => fs.statSync(f).mtimeMs)) < Math.max(...SOURCES.map(newestMtime));
    if (!stale) return;
    this.timeout(300_000);
    const tsc = run([require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json']);
    expect(tsc.code, `tsc -p tsconfig.build.json failed:\n${tsc.stdout}${tsc.stderr}`).to.equal(0);
    const esm = run([path.join('scripts', 'write-esm-entry.js')]);
    expect(esm.code, esm.stderr).to.equal(0);
  });

  it('works from CommonJS: require("./dist/index.js") builds and fits a model', () => {
    checkFit(nodeJson(['-e', `
      const { Sequential, layers, optimizers, data } = require('./dist/index.js');
      (async () => { ${FIT_SCRIPT} })().catch((e) => { console.error(e); process.exit(1); });
    `]));
  });

  it('works from ESM: import { ... } from "<abs>/dist/index.mjs" builds and fits a model', () => {
    const url = pathToFileURL(path.join(DIST, 'index.mjs')).href;
    checkFit(nodeJson(['--input-type=module', '-e', `
      import { Sequential, layers, optimizers, data } from '${url}';
      ${FIT_SCRIPT}
    `]));
  });

  it('dist/index.mjs re-exports every named export of dist/index.js, and a default', () => {
    const cjs = nodeJson(['-e', `console.log(JSON.stringify(Object.keys(require('./dist/index.js')).sort()))`]);
    const url = pathToFileURL(path.join(DIST, 'index.mjs')).href;
    const esm = nodeJson(['--input-type=module', '-e', `
      const ns = await import('${url}');
      console.log(JSON.stringify({ names: Object.keys(ns).filter((k) => k !== 'default').sort(),
                                   hasDefault: typeof ns.default === 'object' }));
    `]);
    expect(cjs).to.include.members(['Sequential', 'layers', 'optimizers', 'data', 'runtime']);
    expect(esm.names).to.deep.equal(cjs);
    expect(esm.hasDefault).to.equal(true);
  });

  it('"exports" sends import to index.mjs and require to index.js, sharing one module instance', () => {
    const r = nodeJson(['--input-type=module', '-e', `
      import { createRequire } from 'module';
      import * as esm from 'neuroplastic';
      const require = createRequire(process.cwd() + '/');
      const cjs = require('neuroplastic');
      console.log(JSON.stringify({
        import: import.meta.resolve('neuroplastic'),
        require: require.resolve('neuroplastic'),
        same: esm.Sequential === cjs.Sequential && esm.data === cjs.data,
      }));
    `]);
    expect(r.import).to.equal(pathToFileURL(path.join(DIST, 'index.mjs')).href);
    expect(r.require).to.equal(path.join(DIST, 'index.js'));
    expect(r.same).to.equal(true);
  });

  it('the bin dist/cli/main.js starts with a shebang and trains', () => {
    const main = path.join(DIST, 'cli', 'main.js');
    expect(fs.readFileSync(main, 'utf8').startsWith('#!/usr/bin/env node\n')).to.equal(true);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(path.resolve(ROOT, pkg.bin.neuroplastic)).to.equal(main);
    const version = run([main, '--version']);
    expect(version.stdout.trim()).to.equal(pkg.version);
    const r = nodeJson([main, 'train', '--hidden', '16', '--epochs', '1', '--json', '--quiet']);
    expect(r.params).to.equal(784 * 16 + 16 + 16 * 10 + 10);
    expect(r.accuracy).to.be.greaterThan(0.8);
  });
});
