// The optional CUDA backend (lib/cuda.ts, native/cuda): the addon loads when
// it was built, reports devices consistently, explains exactly what is missing
// when it cannot run, and is never loaded by the CPU path. Tests that need a
// GPU skip with the reason on machines without one (CI compiles the addon but
// has no GPU); NEUROPLASTIC_REQUIRE_GPU=1 (scripts/test-gpu.sh) makes them fail
// instead. The kernel checks compare with plain JS references.
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as os from 'os';
import { cuda, layers, loadModel, optimizers, plasticity, Sequential, type Device } from '../lib/index';
import { randomArray, randomLabels, writeQuadrantSet } from './helpers';
import { cli, lastJson } from './cli_run';
import { CudaNativeModel } from '../lib/cuda_model';
import { addon, type GradMaxProduct, type MagnitudePlan, type NativeDataset, type NativeModel, type NativeOptimizerConfig } from '../lib/native';

const REQUIRE_GPU = process.env.NEUROPLASTIC_REQUIRE_GPU === '1';

function skipUnless(ctx: Mocha.Context, ok: boolean, why: string): void {
  if (ok) return;
  console.log(`      skipped: ${why}`);
  ctx.skip();
}

/** Skips (or, with NEUROPLASTIC_REQUIRE_GPU=1, fails) the test when no GPU is usable, printing why. */
function needGpu(ctx: Mocha.Context): cuda.CudaAddon {
  const s = cuda.status();
  if (!s.available) {
    if (REQUIRE_GPU) throw new Error(`NEUROPLASTIC_REQUIRE_GPU=1 but CUDA is not available: ${s.reason}`);
    skipUnless(ctx, false, `a CUDA GPU is needed: ${s.reason}`);
  }
  return cuda.require();
}

function addonBuilt(): boolean {
  return cuda.addonCandidates().some((p) => fs.existsSync(p));
}

interface Csr {
  indptr: BigInt64Array;
  indices: Int32Array;
  values: Float32Array;
  rows: number;
  cols: number;
}

function randomCsr(rows: number, cols: number, density: number, seed: number): Csr {
  const u = randomArray(rows * cols, seed);
  const v = randomArray(rows * cols, seed + 1);
  const indptr = new BigInt64Array(rows + 1);
  const indices: number[] = [];
  const values: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if ((u[r * cols + c] + 1) / 2 < density && r % 5 !== 3) {
        indices.push(c);
        values.push(v[r * cols + c]);
      }
    }
    indptr[r + 1] = BigInt(indices.length);
  }
  return { indptr, indices: Int32Array.from(indices), values: Float32Array.from(values), rows, cols };
}

function maxDiff(a: Float32Array | Float64Array, b: Float32Array | Float64Array): number {
  expect(a.length).to.equal(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('cuda: optional GPU backend', () => {
  it('status() never throws and gives a reason exactly when CUDA is unavailable', () => {
    const s = cuda.status();
    expect(s.available).to.equal(s.reason === null);
    expect(cuda.available()).to.equal(s.available);
    if (!s.available) console.log(`      CUDA unavailable: ${s.reason}`);
    else console.log(`      CUDA: ${s.deviceCount} device(s), driver ${s.driverVersion}, runtime ${s.runtimeVersion}`);
  });

  it('the addon loads when it was built', function () {
    skipUnless(this, addonBuilt(), `the CUDA addon is not built (no nvcc at build time?): looked in ${cuda.addonCandidates().join(', ')}`);
    const s = cuda.status();
    expect(s.addonPath).to.be.a('string');
    expect(s.reason ?? '').not.to.match(/could not be loaded|not built/);
    expect(s.runtimeVersion).to.match(/^\d+\.\d+$/);
  });

  it('available() and devices() agree', () => {
    const list = cuda.devices();
    expect(cuda.available()).to.equal(list.length > 0);
    expect(list.length).to.equal(cuda.status().available ? cuda.status().deviceCount : 0);
    list.forEach((d, i) => {
      expect(d.index).to.equal(i);
      expect(d.name).to.be.a('string').and.not.equal('');
      expect(d.totalMemory).to.be.above(0);
      expect(d.computeCapability).to.match(/^\d+\.\d+$/);
    });
  });

  it('without a usable GPU, require() and gemmBackend() throw an Error saying why', function () {
    skipUnless(this, !cuda.available(), 'a CUDA GPU is available here');
    const reason = cuda.status().reason!;
    expect(reason).to.match(/CUDA addon is not built|could not be loaded|no NVIDIA driver|driver is too old|no CUDA device/);
    expect(() => cuda.require()).to.throw(Error, reason);
    expect(() => cuda.gemmBackend()).to.throw(Error, reason);
  });

  it('the CPU path never loads the CUDA addon or the CUDA driver', function () {
    skipUnless(this, process.platform === 'linux', 'reads /proc/self/maps (Linux only)');
    const index = path.resolve(__dirname, '../lib/index.ts');
    const script = `
      const { Sequential, layers, optimizers } = require(${JSON.stringify(index)});
      (async () => {
        const m = new Sequential({ inputSize: 4, seed: 1 });
        m.add(layers.dense({ units: 3 }));
        m.compile({ optimizer: optimizers.sgd({ learningRate: 0.1 }), loss: 'softmaxCrossEntropy' });
        await m.fit(new Float32Array(8 * 4).fill(0.5), new Int32Array(8), { epochs: 1, batchSize: 4 });
        const maps = require('fs').readFileSync('/proc/self/maps', 'utf8');
        console.log(JSON.stringify({ cpu: /neuroplastic\\.node/.test(maps), cudaAddon: maps.includes('neuroplastic_cuda'), libcuda: /libcuda\\.so/.test(maps) }));
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
    const seen = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(seen).to.deep.equal({ cpu: true, cudaAddon: false, libcuda: false });
  });

  it('the test kernels reject a malformed CSR matrix before touching the device', function () {
    skipUnless(this, addonBuilt() && cuda.status().addonPath !== null && !/could not be loaded/.test(cuda.status().reason ?? ''), 'the CUDA addon is not built');
    // The addon itself, not require(): argument checks run without a GPU.
    const addon = require(cuda.status().addonPath!) as cuda.CudaAddon;
    const x = new Float32Array(4);
    expect(() => addon.kernels.spmm(new BigInt64Array([0n, 1n]), new Int32Array([5]), new Float32Array([1]), 2, x, 2)).to.throw(
      RangeError,
      'indices[0] = 5 is not a sorted column in [0, 2)',
    );
    expect(() => addon.kernels.spmm(new BigInt64Array([0n, 2n]), new Int32Array([1]), new Float32Array([1]), 2, x, 2)).to.throw(
      RangeError,
      'end at indices.length',
    );
    expect(() => addon.kernels.gemm(false, false, 2, 2, 2, new Float32Array(3), x)).to.throw(RangeError, 'a must have 4 elements, got 3');
    expect(() => addon.kernels.spmm(new BigInt64Array([0n, 1n]), new Int32Array([0]), new Float32Array([1]), 2, new Float64Array(4) as never, 2)).to.throw(
      TypeError,
      'x must be a Float32Array',
    );
    expect(() => addon.bench.spmm(8, 8, 0.5, 4, 1, true as never)).to.throw(TypeError, "impl must be 'ours', 'rows', 'warp', 'staged' or 'cusparse'");
  });

  describe('on a GPU', () => {
    it('devices() lists GPUs the addon was built for (compute capability >= 7.5)', function () {
      needGpu(this);
      for (const d of cuda.devices()) {
        const [major, minor] = d.computeCapability.split('.').map(Number);
        expect(major * 10 + minor, d.name).to.be.at.least(75);
        console.log(`      device ${d.index}: ${d.name}, ${d.computeCapability}, ${(d.totalMemory / 2 ** 30).toFixed(1)} GiB`);
      }
    });

    it('gemm matches a JS reference for every transpose combination', function () {
      const addon = needGpu(this);
      console.log(`      gemm backend: ${addon.gemmBackend()}`);
      const [m, n, k] = [37, 29, 70];
      for (const ta of [false, true])
        for (const tb of [false, true]) {
          const a = randomArray(m * k, 1), b = randomArray(k * n, 2);
          const want = new Float64Array(m * n);
          for (let i = 0; i < m; i++)
            for (let j = 0; j < n; j++) {
              let s = 0;
              for (let p = 0; p < k; p++) s += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
              want[i * n + j] = s;
            }
          expect(maxDiff(addon.kernels.gemm(ta, tb, m, n, k, a, b), want), `${ta ? 'T' : 'N'}${tb ? 'T' : 'N'}`).to.be.below(1e-4);
        }
    });

    it('spmm, spmmT and sddmm match JS references', function () {
      const addon = needGpu(this);
      const w = randomCsr(45, 67, 0.2, 5);
      const batch = 33;
      const x = randomArray(w.cols * batch, 6), dy = randomArray(w.rows * batch, 7);
      const y = new Float64Array(w.rows * batch), dx = new Float64Array(w.cols * batch), g = new Float64Array(w.values.length);
      for (let r = 0; r < w.rows; r++)
        for (let p = Number(w.indptr[r]); p < Number(w.indptr[r + 1]); p++) {
          const c = w.indices[p];
          for (let j = 0; j < batch; j++) {
            y[r * batch + j] += w.values[p] * x[c * batch + j];
            dx[c * batch + j] += w.values[p] * dy[r * batch + j];
            g[p] += dy[r * batch + j] * x[c * batch + j];
          }
        }
      expect(maxDiff(addon.kernels.spmm(w.indptr, w.indices, w.values, w.cols, x, batch), y)).to.be.below(1e-5);
      expect(maxDiff(addon.kernels.spmmT(w.indptr, w.indices, w.values, w.cols, dy, batch), dx)).to.be.below(1e-5);
      expect(maxDiff(addon.kernels.sddmm(w.indptr, w.indices, w.cols, dy, x, batch), g)).to.be.below(1e-4);
    });

    it('the GPU bench runs end to end at toy sizes (--smoke) and writes every figure to its JSON', async function () {
      needGpu(this);
      const { runCudaBench } = await import('../bench/cuda');
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'np-cuda-bench-')), 'bench.json');
      const log = console.log;
      console.log = () => {};  // the tables; the JSON is what is checked
      let status: number;
      try {
        status = await runCudaBench(['--smoke', '--json', file]);
      } finally {
        console.log = log;
      }
      expect(status).to.equal(0);
      const out = JSON.parse(fs.readFileSync(file, 'utf8')) as { smoke: boolean; results: { bench: string; impl: string; ms: number }[] };
      expect(out.smoke).to.equal(true);
      const benches = new Set(out.results.map((r) => `${r.bench}/${r.impl}`));
      for (const b of ['gemm/tiled', 'spmm/dense-gemm', 'spmm/neuroplastic-csr', 'spmm/neuroplastic-csr-rows', 'spmm/neuroplastic-csr-warp', 'spmm/neuroplastic-csr-staged', 'train/neuroplastic-cuda', 'train/neuroplastic-cpu', 'struct/restructure', 'struct/copy-path', 'grow/in-place', 'grow/copy-path'])
        expect(benches.has(b), b).to.equal(true);
      expect(out.results.every((r) => Number.isFinite(r.ms) && r.ms > 0)).to.equal(true);
      expect(await runCudaBench(['--smoke', '--quick'])).to.equal(2);
    });

    it('the GPU bench runs on the last GPU with --device cuda:N, and exits 1 for an ordinal CUDA does not see', async function () {
      needGpu(this);
      const { runCudaBench } = await import('../bench/cuda');
      const count = cuda.devices().length;
      const [log, error] = [console.log, console.error];
      const said: string[] = [];
      console.log = (...a: unknown[]) => void said.push(a.join(' '));
      console.error = (...a: unknown[]) => void said.push(a.join(' '));
      let [status, missing] = [-1, -1];
      try {
        status = await runCudaBench(['--smoke'], count - 1);
        missing = await runCudaBench(['--smoke'], count);
      } finally {
        [console.log, console.error] = [log, error];
      }
      expect(status, said.join('\n')).to.equal(0);
      expect(said[0]).to.include(`== GPU: ${cuda.devices()[count - 1].name}`);
      expect(missing).to.equal(1);
      expect(said.join('\n')).to.match(new RegExp(`bench --device cuda:${count}: CUDA sees ${count} GPU`));
      const addon = cuda.require();
      expect(() => addon.bench.selectDevice(count)).to.throw(RangeError, /not a GPU here/);
      addon.bench.selectDevice(0);
    });
  });
});

// ---- device: 'cuda' on Sequential ------------------------------------------------
// Same seed, same data, same epoch order (the CPU model's RNG shuffles both):
// the GPU model must follow the CPU model's loss curve. Tolerances: per-epoch
// mean loss within 2e-3 relative (float sums in another order, compounded over
// ~100 steps), accuracy within 0.02, predictions within 1e-3 absolute; moving
// state between devices is exact (the same bytes), and so are predictions on
// the same device.

function mixedMlp(device: Device, optimizer: 'sgd' | 'adam', dropout = 0): Sequential {
  const m = new Sequential({ inputSize: 16, seed: 11, device });
  m.add(layers.dense({ units: 32, activation: 'relu', sparseThreshold: 0 }));
  if (dropout > 0) m.add(layers.dropout({ rate: dropout }));
  // Built directly as CSR: the device model's sparse path.
  m.add(layers.dense({ units: 24, activation: 'tanh', density: 0.3, sparseThreshold: 0.5 }));
  m.add(layers.dense({ units: 5, sparseThreshold: 0 }));
  m.compile({
    optimizer: optimizer === 'sgd' ? optimizers.sgd({ learningRate: 0.05, momentum: 0.9 }) : optimizers.adam({ learningRate: 0.005 }),
    loss: 'softmaxCrossEntropy',
  });
  return m;
}

const N = 512;
const X = randomArray(N * 16, 101);
const Y = randomLabels(N, 5, 102);

type DenseView = { getWeights(): { weight: Float32Array; bias: Float32Array }; setWeights?(w: { weight: Float32Array; bias: Float32Array }): void; format: string };
/** The dense layer at position i of the model's layer list. */
const denseAt = (m: Sequential, i: number) => m.layers[i] as unknown as DenseView;

/**
 * Counts the calls of the named methods of a trained GPU model's device model: its device model
 * (which exists from the first device call on), the counts, and the methods unwrapped. The addon's
 * methods are read-only properties of its prototype, so each counter is defined on the instance.
 */
function countDeviceCalls<K extends keyof cuda.CudaModelHandle>(m: Sequential, names: K[]) {
  const device = (m.native as unknown as { device: cuda.CudaModelHandle }).device;
  const counts = Object.fromEntries(names.map((n) => [n, 0])) as Record<K, number>;
  const originals = {} as Pick<cuda.CudaModelHandle, K>;
  for (const name of names) {
    const original = (device[name] as (...a: unknown[]) => unknown).bind(device);
    (originals as Record<K, unknown>)[name] = original;
    Object.defineProperty(device, name, { value: (...a: unknown[]) => (counts[name]++, original(...a)), configurable: true, writable: true });
  }
  return { device, counts, originals };
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  expect(got.length, what).to.equal(want.length);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  expect(worst, `${what}: max |difference|`).to.be.at.most(tol);
}

describe("cuda: Sequential with device 'cuda'", () => {
  it('rejects a bad device with an error naming the argument (no GPU needed)', () => {
    expect(() => new Sequential({ inputSize: 4, device: 'gpu' as never })).to.throw(RangeError, /device.*'cpu', 'cuda'/);
    expect(() => new Sequential({ inputSize: 4, device: 1 as never })).to.throw(TypeError, /device/);
    const m = new Sequential({ inputSize: 4 });
    expect(() => m.to('tpu' as never)).to.throw(RangeError, /Sequential.to\(\).*device/);
    expect(() => m.to(undefined as never)).to.throw(TypeError, /device/);
    expect(m.to('cpu')).to.equal(m);
    expect(m.device).to.equal('cpu');
    // A GPU by ordinal is 'cuda:N', written one way only.
    for (const bad of ['cuda:', 'cuda:01', 'cuda:-1', 'cuda:1.5', 'CUDA', 'cuda:0 ', 'gpu:0'])
      expect(() => new Sequential({ inputSize: 4, device: bad as never }), bad).to.throw(RangeError, /device must be 'cpu', 'cuda' or 'cuda:N'/);
    expect(() => m.to('cuda:x' as never)).to.throw(RangeError, /Sequential.to\(\): device must be/);
    expect(m.device).to.equal('cpu');
  });

  it('without a usable GPU, neuroplastic train --device cuda exits 1 saying why, before loading any data', function () {
    skipUnless(this, !cuda.available(), 'a CUDA GPU is available here');
    const r = cli('train', '--device', 'cuda', '--data', '/nonexistent/neuroplastic-data', '--epochs', '1');
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/--device cuda: /);
    expect(r.stderr).to.include(cuda.status().reason!.replace(/^neuroplastic: /, ''));
    expect(r.stderr).not.to.match(/nonexistent/);  // refused before the data
    expect(cli('train', '--device', 'tpu').code).to.equal(2);
    expect(cli('train', '--device', 'cuda:01').code).to.equal(2);
    const byOrdinal = cli('train', '--device', 'cuda:1', '--data', '/nonexistent/neuroplastic-data');
    expect(byOrdinal.code).to.equal(1);
    expect(byOrdinal.stderr).to.match(/--device cuda:1: /);
    const c = cli('continual', '--device', 'cuda', '--data', '/nonexistent/neuroplastic-data');
    expect(c.code).to.equal(1);
    expect(c.stderr).to.match(/--device cuda: /);
    expect(c.stderr).not.to.match(/nonexistent/);
  });

  it("without a usable GPU, device 'cuda' and to('cuda') throw cuda.require()'s Error and change nothing", function () {
    skipUnless(this, !cuda.available(), 'a CUDA GPU is available here');
    const reason = cuda.status().reason!;
    expect(() => new Sequential({ inputSize: 4, device: 'cuda' })).to.throw(Error, reason);
    const m = new Sequential({ inputSize: 4 });
    m.add(layers.dense({ units: 2 }));
    m.compile({ optimizer: optimizers.sgd({ learningRate: 0.1 }), loss: 'softmaxCrossEntropy' });
    expect(() => m.to('cuda')).to.throw(Error, reason);
    expect(() => m.to('cuda:2')).to.throw(Error, reason);
    expect(m.device).to.equal('cpu');
  });

  describe('on a GPU', () => {
    it("device 'cuda:N' picks GPU N ('cuda' is 'cuda:0'); an ordinal CUDA does not see is a RangeError naming device, and the model stays where it was", async function () {
      needGpu(this);
      const count = cuda.devices().length;
      const ordinalOf = (m: Sequential) => (m.native as unknown as { options: { device: number } }).options.device;
      const handleOf = (m: Sequential) => (m.native as unknown as { device: unknown }).device;
      const m = mixedMlp('cpu', 'adam');
      m.to('cuda:0');
      expect(m.device).to.equal('cuda:0');
      await m.fit(X, Y, { epochs: 1, batchSize: 64 });
      expect(ordinalOf(m)).to.equal(0);
      const handle = handleOf(m);
      expect(handle, 'on the GPU').to.not.equal(null);
      m.to('cuda');  // the same GPU: nothing moves
      expect(m.device).to.equal('cuda');
      expect(handleOf(m), 'the same device model').to.equal(handle);
      const missing = `cuda:${count}` as const;
      const cliMissing = cli('train', '--device', missing, '--data', '/nonexistent/neuroplastic-data');
      expect(cliMissing.code, 'a GPU ordinal CUDA does not see: exit 1').to.equal(1);
      expect(cliMissing.stderr).to.match(new RegExp(`--device ${missing}: CUDA sees ${count} GPU`));
      expect(cli('train', '--device', 'cuda:01').code, 'a malformed name: exit 2').to.equal(2);
      expect(() => new Sequential({ inputSize: 4, device: missing })).to.throw(RangeError, new RegExp(`device '${missing}' names no GPU here: CUDA sees ${count}`));
      const before = await m.predict(X);
      expect(() => m.to(missing)).to.throw(RangeError, /Sequential.to\(\): device 'cuda:\d+' names no GPU here/);
      expect(m.device).to.equal('cuda');
      expect(handleOf(m), 'still the same device model').to.equal(handle);
      expect(await m.predict(X)).to.deep.equal(before);
      const h = await m.fit(X, Y, { epochs: 1, batchSize: 64 });
      expect(h.history.loss.every(Number.isFinite)).to.equal(true);
      if (count >= 2) {
        // From one GPU to another, through the CPU model: the same function there; then training
        // and structural changes followed on the second GPU (over the emulator, every kernel there
        // is checked to take that GPU's memory and stream), against a CPU twin.
        // Every call alternates between this model on cuda:1 and another on cuda:0, so the calling
        // thread's current GPU changes before each (a call that does not select its own shows).
        const emulator = cuda.require().emulator;
        const twin = await loadModel(m.toBuffer());
        const other = mixedMlp('cuda:0', 'sgd');
        await other.fit(X, Y, { epochs: 1, batchSize: 64 });
        m.to('cuda:1');
        expect(ordinalOf(m)).to.equal(1);
        expectClose(await m.predict(X), await twin.predict(X), 1e-4, 'cuda:1 against the CPU');
        if (emulator) expect(emulator.memoryOn(1), 'the model\'s memory is on the second GPU').to.be.greaterThan(0);
        const steps: ((model: Sequential) => unknown)[] = [
          (model) => model.fit(X, Y, { epochs: 1, batchSize: 128 }),
          (model) => model.prune({ amount: 0.2, structure: 'weight', scope: 'global' }),
          (model) => model.grow({ layer: 0, count: 3, init: 'net2wider', noise: 0.1 }),
          (model) => model.prune({ amount: 0.2, structure: 'neuron', criterion: 'l2', layer: 0 }),
          (model) => model.evaluate(X, Y),
          (model) => model.fit(X, Y, { epochs: 1, batchSize: 64 }),
          (model) => denseAt(model, 0).getWeights(),
        ];
        for (const step of steps) for (const model of [m, other, twin]) await step(model);
        expect(ordinalOf(m)).to.equal(1);
        expect(ordinalOf(other)).to.equal(0);
        expectClose(await m.predict(X), await twin.predict(X), 2e-3, 'cuda:1 trained and changed, against the CPU');
        m.to('cuda:0');
        expect(ordinalOf(m)).to.equal(0);
        if (emulator) expect(emulator.memoryOn(1), 'nothing left on the second GPU').to.equal(0);
        expectClose(await m.predict(X), await twin.predict(X), 2e-3, 'back on cuda:0');
        other.to('cpu');
      } else {
        console.log('      (one GPU here: the move between two GPUs is not exercised)');
      }
    });


    // Batch 128 takes the float4 kernels for the CSR layer (native/cuda/kernels.h: the staged
    // SpMM forward and backward, the float4 SDDMM); batch 32 the scalar ones.
    for (const [opt, batchSize] of [['sgd', 32], ['adam', 32], ['adam', 128]] as const) {
      it(`${opt}, batch ${batchSize}: a dense + CSR MLP follows the CPU loss curve from the same seed`, async function () {
        const emulator = needGpu(this).emulator;  // over the emulator: which kernels ran
        const launches = () => ['spmm_f32_csr_staged_kernel', 'sddmm_f32_csr_vector_kernel'].map((k) => emulator?.launchesOf(k) ?? 0);
        const before = launches();
        const cpu = mixedMlp('cpu', opt), gpu = mixedMlp('cuda', opt);
        expect(denseAt(gpu, 1).format).to.equal('csr');
        const hc = await cpu.fit(X, Y, { epochs: 4, batchSize });
        const hg = await gpu.fit(X, Y, { epochs: 4, batchSize });
        if (emulator && !process.env.NEUROPLASTIC_CUDA_SPMM) {
          // 16 steps, each a forward and a backward product of the CSR layer (density 0.3) and its weight gradient
          const [stagedRuns, sddmmRuns] = launches().map((n, i) => n - before[i]);
          expect(stagedRuns, 'staged SpMM launches').to.equal(batchSize >= 128 ? 32 : 0);
          expect(sddmmRuns, 'float4 SDDMM launches').to.equal(batchSize >= 128 ? 16 : 0);
        }
        console.log(`      ${opt} loss cpu ${hc.history.loss.map((v) => v.toFixed(5)).join(' ')}`);
        console.log(`      ${opt} loss gpu ${hg.history.loss.map((v) => v.toFixed(5)).join(' ')}`);
        expect(gpu.step).to.equal(cpu.step);
        hc.history.loss.forEach((l, e) => {
          expect(Math.abs(hg.history.loss[e] - l), `epoch ${e} loss`).to.be.at.most(2e-3 * Math.abs(l));
          expect(Math.abs(hg.history.accuracy[e] - hc.history.accuracy[e]), `epoch ${e} accuracy`).to.be.at.most(0.02);
        });
        expect(hc.history.loss[3]).to.be.below(hc.history.loss[0]);
        expectClose(await gpu.predict(X), await cpu.predict(X), 1e-3, 'predictions');
        const [ec, eg] = [await cpu.evaluate(X, Y), await gpu.evaluate(X, Y)];
        expect(Math.abs(eg.loss - ec.loss)).to.be.at.most(2e-3 * ec.loss);
      });
    }

    it("to('cuda') / to('cpu') move the exact state; predictions agree across devices", async function () {
      needGpu(this);
      const m = mixedMlp('cpu', 'adam');
      await m.fit(X, Y, { epochs: 1, batchSize: 64 });
      const before = denseAt(m, 0).getWeights();
      const pc = await m.predict(X);
      expect(m.to('cuda')).to.equal(m);
      expect(m.device).to.equal('cuda');
      expect(denseAt(m, 0).getWeights().weight).to.deep.equal(before.weight);
      expectClose(await m.predict(X), pc, 1e-4, 'predictions after to(cuda)');
      await m.fit(X, Y, { epochs: 1, batchSize: 64 });
      const step = m.step;
      const w = m.layers.map((_, i) => denseAt(m, i).getWeights().weight);
      const pg = await m.predict(X);
      m.to('cpu');
      expect(m.device).to.equal('cpu');
      expect(m.step).to.equal(step);
      m.layers.forEach((_, i) => expect(denseAt(m, i).getWeights().weight, `layer ${i}`).to.deep.equal(w[i]));
      expectClose(await m.predict(X), pg, 1e-4, 'predictions after to(cpu)');
    });

    it('save() from a cuda model writes the device state; loadModel() + to(cuda) resumes it exactly', async function () {
      needGpu(this);
      const m = mixedMlp('cuda', 'sgd');
      await m.fit(X, Y, { epochs: 2, batchSize: 64 });
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'np-cuda-')), 'm.safetensors');
      await m.save(file);
      const back = await loadModel(file);
      expect(back.device).to.equal('cpu');
      expect(back.step).to.equal(m.step);
      expect(denseAt(back, 2).getWeights().weight).to.deep.equal(denseAt(m, 2).getWeights().weight);
      back.to('cuda');
      expect(await back.predict(X)).to.deep.equal(await m.predict(X));
      // Both continue identically (same order from the saved RNG, same device kernels).
      const [h1, h2] = [await m.fit(X, Y, { epochs: 1, batchSize: 64 }), await back.fit(X, Y, { epochs: 1, batchSize: 64 })];
      expect(h2.history.loss[0]).to.equal(h1.history.loss[0]);
    });

    it('structural operations that read the numbers run on the CPU between device calls; pruned weights stay zero', async function () {
      needGpu(this);
      const m = mixedMlp('cuda', 'sgd');
      await m.fit(X, Y, { epochs: 1, batchSize: 64 });
      m.prune({ amount: 0.5, structure: 'weight', layer: 0 });
      const pruned = denseAt(m, 0).getWeights().weight;
      await m.fit(X, Y, { epochs: 1, batchSize: 64 });
      const after = denseAt(m, 0).getWeights().weight;
      let moved = 0;
      for (let i = 0; i < pruned.length; i++) if (pruned[i] === 0 && after[i] !== 0) moved++;
      expect(moved, 'pruned weights that moved').to.equal(0);
      m.prune({ amount: 0.25, structure: 'neuron', criterion: 'l2', layer: 0 });
      m.compact();
      m.grow({ layer: 0, count: 4, init: 'zero' });
      const p = await m.predict(X);
      await m.fit(X, Y, { epochs: 1, batchSize: 64 });
      expect(p.every(Number.isFinite)).to.equal(true);
      const cpuCopy = await loadModel(m.toBuffer());
      expectClose(await cpuCopy.predict(X), await m.predict(X), 1e-3, 'cpu copy predictions');
    });

    it('pruning, SET, compact, growth (net2wider, gradmax too), sparsify and format changes are followed on the device (CudaModel.restructure), not copied through the host', async function () {
      needGpu(this);
      const gpu = mixedMlp('cuda', 'adam');
      await gpu.fit(X, Y, { epochs: 1, batchSize: 32 });
      // Count the device model's calls: restructures, and full copies to the host.
      const device = (gpu.native as unknown as { device: cuda.CudaModelHandle }).device;
      const counts = { restructure: 0, exports: 0 };  // exports: any copy of the weights to the host
      const restructure = device.restructure.bind(device), exportState = device.exportState.bind(device);
      // The addon's methods are read-only properties of its prototype: plain assignment throws, so
      // each counter is defined on the instance.
      const spy = <K extends 'restructure' | 'exportState'>(name: K, fn: cuda.CudaModelHandle[K]) =>
        Object.defineProperty(device, name, { value: fn, configurable: true, writable: true });
      spy('restructure', (state, sources) => (counts.restructure++, restructure(state, sources)));
      spy('exportState', (withMoments = true) => (counts.exports++, exportState(withMoments)));
      gpu.prune({ amount: 0.25, structure: 'neuron', criterion: 'random', layer: 0 });
      gpu.prune({ amount: 0.3, structure: 'weight', scope: 'global' });
      gpu.native.regrow([0, 1], 0.2, false);
      gpu.compact();
      gpu.grow({ layer: 0, count: 3, init: 'random' });
      gpu.grow({ layer: 1, count: 2, init: 'zero' });
      const before = await gpu.predict(X);
      gpu.grow({ layer: 0, count: 2, init: 'net2wider', noise: 0.2 });  // function-preserving: the split columns scaled on the device
      expectClose(await gpu.predict(X), before, 1e-4, 'predictions across net2wider growth');
      gpu.grow({ layer: 1, count: 2, init: 'gradmax', data: [X.subarray(0, 32 * 16), Y.subarray(0, 32)] });
      gpu.sparsify({ sparsity: 0.6, distribution: 'uniform', layers: [0] });  // layer 0 is denser: thinned on the device
      gpu.native.convertLayer(0, 'csr');
      expect(counts).to.deep.equal({ restructure: 10, exports: 0 });
      // The device's numbers fit the host's structure (importState checks pruned and dead entries are
      // zero), and a CPU copy computes the same function.
      const cpu = await loadModel(gpu.toBuffer());
      expect(denseAt(cpu, 0).format).to.equal('csr');
      expectClose(await gpu.predict(X), await cpu.predict(X), 1e-4, 'predictions of the CPU copy');
      const h = await gpu.fit(X, Y, { epochs: 3, batchSize: 32 });
      expect(h.history.loss.every(Number.isFinite)).to.equal(true);
      expect(h.history.loss[2]).to.be.below(h.history.loss[0]);
    });

    it('a kernel that fails after a growth began writing into reserved capacity: the GPU model refuses its unknown numbers, the change stands on the CPU model, a fresh GPU model trains on', async function () {
      const addon = needGpu(this);
      skipUnless(this, addon.emulator !== undefined, "it needs the CUDA emulator's launch failures on demand (fail_launch); a GPU cannot fail a chosen kernel");
      const emulator = addon.emulator!;
      const m = new Sequential({ inputSize: 16, seed: 5, device: 'cuda' });
      for (const units of [32, 24, 5]) m.add(layers.dense({ units, activation: units === 5 ? 'linear' : 'relu', sparseThreshold: 0 }));
      m.compile({ optimizer: optimizers.adam({ learningRate: 0.005 }), loss: 'softmaxCrossEntropy' });
      await m.fit(X, Y, { epochs: 1, batchSize: 32 });
      m.grow({ layer: 0, count: 2, init: 'random' });  // reallocates with spare rows (and layer 1 with spare columns)
      const deviceOf = () => (m.native as unknown as { device: cuda.CudaModelHandle | null }).device;
      const first = deviceOf();
      // net2wider into the spare capacity: the new rows are written, then the split columns' scaling fails.
      emulator.failLaunch('remap_scale_columns', 0);
      let error: unknown;
      try {
        m.grow({ layer: 0, count: 2, init: 'net2wider', noise: 0.1 });
      } catch (e) {
        error = e;
      } finally {
        const fired = !emulator.launchFailurePending();
        emulator.clearLaunchFailure();
        expect(fired, 'the scaling kernel was launched').to.equal(true);
      }
      expect((error as Error)?.message).to.match(/could not follow a structural change .*nor give its numbers back \(.*load\(\)/);
      expect(((error as Error).cause as Error).message).to.match(/too many resources requested for launch/);
      expect(m.native.neuronIds(0).length, 'the change stands').to.equal(36);
      expect(deviceOf(), 'the GPU model was dropped').to.equal(null);
      const h = await m.fit(X, Y, { epochs: 2, batchSize: 32 });
      expect(deviceOf(), 'a GPU model made afresh').to.not.equal(null).and.to.not.equal(first);
      expect(h.history.loss.every(Number.isFinite)).to.equal(true);
      expect(denseAt(m, 0).getWeights().weight.length).to.equal(36 * 16);
    });

    it('pruning decisions are made on the device: magnitude, gradual, SET and neuron pruning read no weights on the host; the bits and scores are the host\'s on the same weights', async function () {
      needGpu(this);
      const gpu = mixedMlp('cuda', 'adam');
      await gpu.fit(X, Y, { epochs: 1, batchSize: 32 });
      const { device, counts, originals: { magnitudeDrops } } = countDeviceCalls(gpu, ['exportState', 'magnitudeDrops']);
      gpu.prune({ amount: 0.3, structure: 'weight', layer: 0 });
      gpu.prune({ amount: 0.2, structure: 'weight', scope: 'global' });
      gpu.native.regrow([0, 1], 0.2, false);
      const gradual = plasticity.gradualMagnitude({ finalSparsity: 0.7, startStep: gpu.step, endStep: gpu.step + 8, every: 4, layers: [0, 1] });
      await gpu.fit(X, Y, { epochs: 1, batchSize: 32, callbacks: [gradual] });
      gpu.prune({ amount: 0.2, structure: 'neuron', criterion: 'l2', layer: 0 });
      gpu.prune({ amount: 0.2, structure: 'neuron', criterion: 'taylor', layer: 1 });
      expect(counts.exportState, 'weights copied to the host').to.equal(0);
      expect(counts.magnitudeDrops, 'decisions on the device').to.be.greaterThan(3);
      expect(gpu.events.filter((e) => e.kind === 'prune' && e.criterion === 'magnitude').length).to.be.greaterThan(2);
      expect(gpu.events.filter((e) => e.kind === 'prune' && (e.criterion === 'l2' || e.criterion === 'taylor')).length).to.equal(2);
      // On the same weights (a CPU copy of the device's), the device's bits are the host's.
      const copy = await loadModel(gpu.toBuffer());
      for (const [kind, value, global] of [['prune', 0.4, false], ['prune', 0.5, true], ['sparsity', 0.8, true], ['regrow', 0.3, false]] as const) {
        const plan = copy.native.planMagnitudeDrops(kind, [0, 1, 2], value, global);
        expect(magnitudeDrops([0, 1, 2], plan), `${kind} ${value} ${global ? 'global' : 'per layer'}`).to.deep.equal(copy.native.magnitudeDrops([0, 1, 2], plan));
      }
      for (const criterion of ['l1', 'l2', 'taylor', 'activation'])
        for (const l of [0, 1]) {
          const host = copy.native.neuronScores(l, criterion), dev = device.neuronScores(l, criterion);
          const alive = Array.from(host.keys()).filter((j) => host[j] !== -Infinity);  // the host scores dead units -inf
          expect(alive.length, 'live units').to.be.greaterThan(0);
          expect(alive.map((j) => dev[j]), `layer ${l} ${criterion}`).to.deep.equal(alive.map((j) => host[j]));
        }
    });

    it('RigL is decided on the device: the gradient of the last device batch ranked there, no weights on the host; the choice is the host\'s on the same weights to float rounding', async function () {
      needGpu(this);
      const gpu = mixedMlp('cuda', 'adam');
      await gpu.fit(X, Y, { epochs: 1, batchSize: 32 });  // the device model exists from the first device call on
      const { counts, originals: { gradientGrowth } } = countDeviceCalls(gpu, ['exportState', 'gradientGrowth']);
      const rigl = plasticity.rigl({ every: 4, until: gpu.step + 30, dropFraction: 0.3, layers: [0, 1] });
      const h = await gpu.fit(X, Y, { epochs: 2, batchSize: 32, callbacks: [rigl] });
      expect(h.history.loss.every(Number.isFinite)).to.equal(true);
      expect(counts.exportState, 'weights copied to the host').to.equal(0);
      expect(counts.gradientGrowth, 'RigL choices on the device').to.be.greaterThan(2);
      expect(gpu.events.filter((e) => e.kind === 'regrow' && e.criterion === 'gradient').length).to.be.greaterThan(2);
      // The same weights on the CPU (a copy), the same batch: the same positions but for near-ties.
      const copy = await loadModel(gpu.toBuffer());
      const xb = X.subarray(0, 48 * 16), yb = Y.subarray(0, 48);
      const plan = copy.native.planMagnitudeDrops('regrow', [0, 1], 0.3, false);
      const got = gradientGrowth(xb, yb, [0, 1], plan.counts), want = copy.native.gradientGrowth([0, 1], plan.counts, xb, yb);
      got.forEach((g, i) => {
        expect(g.length, `layer ${i}`).to.equal(plan.counts[i]);
        const same = Array.from(g).filter((p) => want[i].includes(p)).length;
        expect(same, `layer ${i}: positions shared with the host's choice`).to.be.at.least(Math.floor(0.9 * plan.counts[i]));
      });
    });

    it('continual backprop and ReDo are decided on the device\'s statistics and utilities: no weights reach the host', async function () {
      needGpu(this);
      const gpu = mixedMlp('cuda', 'adam');
      await gpu.fit(X, Y, { epochs: 1, batchSize: 32 });  // the device model exists from the first device call on
      const { counts } = countDeviceCalls(gpu, ['exportState', 'unitUtility', 'exportStats']);
      const h = await gpu.fit(X, Y, { epochs: 2, batchSize: 32, callbacks: [plasticity.continualBackprop({ replacementRate: 0.02, maturity: 3 })] });
      expect(h.history.loss.every(Number.isFinite)).to.equal(true);
      expect(gpu.events.filter((e) => e.kind === 'reinit' && e.criterion === 'utility').length).to.be.greaterThan(1);
      gpu.native.redo(0.5);
      expect(counts.exportState, 'weights copied to the host').to.equal(0);
      expect(counts.unitUtility, 'utilities from the device').to.be.greaterThan(1);
      expect(counts.exportStats, 'statistics from the device').to.be.greaterThan(1);
      // The device's numbers fit the host's structure (importState checks them), and a CPU copy computes the same function.
      const copy = await loadModel(gpu.toBuffer());
      expectClose(await gpu.predict(X), await copy.predict(X), 1e-4, 'predictions of the CPU copy');
    });

    it('bad input to each method of the device model is a TypeError or RangeError that leaves it as it was', async function () {
      needGpu(this);
      const m = mixedMlp('cuda', 'adam');
      await m.fit(X, Y, { epochs: 1, batchSize: 32 });
      const device = (m.native as unknown as { device: cuda.CudaModelHandle }).device;
      const snapshot = () => {
        const st = device.exportState(true);
        return JSON.stringify([st.step, st.layers.map((l) => [l.weight, l.bias, l.weightMoments, l.biasMoments].flat().map((a) => Array.from(a)))]);
      };
      const before = snapshot();
      const order = Int32Array.from({ length: N }, (_, i) => i);
      const ds = device.createDataset(X, Y);
      // The model's own structure, every unit where it was: each restructure case below spoils one thing.
      const host = (m.native as unknown as { host: NativeModel }).host;
      const st0 = host.exportState([]);
      const device0 = st0.layers.map((l, i): cuda.CudaLayerStructureIn => {
        const info = host.layerInfo(i);
        return { units: l.units, inputs: l.inputs, activation: info.activation, inputDropout: info.inputDropout, dropConnect: info.dropConnect,
          useBias: info.useBias, format: l.format, indptr: l.indptr, indices: l.indices, mask: l.mask, alive: l.alive };
      });
      const sources0 = st0.layers.map((l) => Int32Array.from({ length: l.units }, (_, r) => r));
      const cases: [string, () => unknown][] = [
        ['createDataset: x not a multiple of the inputs', () => device.createDataset(X.subarray(1), Y)],
        ['createDataset: NaN input', () => device.createDataset(Float32Array.from(X, (v, i) => (i === 7 ? NaN : v)), Y)],
        ['createDataset: label out of range', () => device.createDataset(X, Int32Array.from(Y, (v, i) => (i === 3 ? 5 : v)))],
        ['createDataset: labels of the wrong type', () => device.createDataset(X, Float64Array.from(Y) as unknown as Int32Array)],
        ['trainBatches: unknown dataset', () => device.trainBatches(ds + 1000, order, 0, 1, 32)],
        ['trainBatches: order too short', () => device.trainBatches(ds, order.subarray(1), 0, 1, 32)],
        ['trainBatches: order entry out of range', () => device.trainBatches(ds, Int32Array.from(order, (v, i) => (i === 0 ? N : v)), 0, 1, 32)],
        ['trainBatches: negative first batch', () => device.trainBatches(ds, order, -1, 1, 32)],
        ['trainBatches: batch size 0', () => device.trainBatches(ds, order, 0, 1, 0)],
        ['trainBatches: fractional count', () => device.trainBatches(ds, order, 0, 1.5, 32)],
        ['evaluate: y of the wrong length', () => device.evaluate(X, Y.subarray(1), 32)],
        ['predict: NaN batch size', () => device.predict(X, NaN)],
        ['predict: x not a Float32Array', () => device.predict(Array.from(X) as unknown as Float32Array, 32)],
        ['setOptimizer: NaN learning rate', () => device.setOptimizer({ kind: 'sgd', learningRate: NaN })],
        ['setOptimizer: negative learning rate', () => device.setOptimizer({ kind: 'adam', learningRate: -0.1 })],
        ['setOptimizer: momentum 1', () => device.setOptimizer({ kind: 'sgd', learningRate: 0.1, momentum: 1 })],
        ['setOptimizer: unknown kind', () => device.setOptimizer({ kind: 'rmsprop', learningRate: 0.1 })],
        ['setStatsDecay: 1', () => device.setStatsDecay(1)],
        ['setStatsDecay: a string', () => device.setStatsDecay('0.5' as unknown as number)],
        ['setValues: too few layers', () => device.setValues({ layers: [{}] })],
        ['setValues: weight of the wrong length', () => device.setValues({ layers: [{ weight: new Float32Array(3) }, {}, {}] })],
        ['setValues: moments not a list', () => device.setValues({ layers: [{ weightMoments: new Float32Array(16 * 32) as never }, {}, {}] })],
        ['setValues: one moment of two (Adam)', () => device.setValues({ layers: [{ weightMoments: [new Float32Array(16 * 32)] }, {}, {}] })],
        ['restructure: no layers', () => device.restructure({ layers: [] }, [])],
        ['restructure: row sources not Int32Arrays', () => device.restructure({ layers: [{}, {}, {}] as never }, [[0], [0], [0]] as unknown as Int32Array[])],
        ['load: a negative step', () => device.load({ step: -1, layers: [] })],
        ['load: layers not an array', () => device.load({ step: 0, layers: {} as never })],
        ['magnitudeDrops: layer out of range', () => device.magnitudeDrops([0, 9], { counts: [1, 1], global: -1 })],
        ['magnitudeDrops: a layer twice', () => device.magnitudeDrops([1, 1], { counts: [1, 1], global: -1 })],
        ['magnitudeDrops: counts not an array', () => device.magnitudeDrops([0], { counts: 5 as unknown as number[], global: -1 })],
        ['magnitudeDrops: a fractional count', () => device.magnitudeDrops([0], { counts: [1.5], global: -1 })],
        ['magnitudeDrops: more than the layer stores', () => device.magnitudeDrops([2], { counts: [1e6], global: -1 })],
        ['magnitudeDrops: a global count over the total', () => device.magnitudeDrops([0, 1], { counts: [], global: 1e7 })],
        ['magnitudeDrops: no plan', () => device.magnitudeDrops([0], undefined as never)],
        ['neuronScores: the output layer', () => device.neuronScores(2, 'l1')],
        ['neuronScores: random (the host generator\'s)', () => device.neuronScores(0, 'random')],
        ['neuronScores: an unknown criterion', () => device.neuronScores(0, 'l3')],
        ['neuronScores: a NaN layer', () => device.neuronScores(NaN, 'l1')],
        ['neuronScores: criterion not a string', () => device.neuronScores(0, 1 as unknown as string)],
        ['gradientGrowth: y of the wrong length', () => device.gradientGrowth(X, Y.subarray(1), [0], [1])],
        ['gradientGrowth: layers not an array', () => device.gradientGrowth(X, Y, 0 as unknown as number[], [1])],
        ['gradientGrowth: a layer twice', () => device.gradientGrowth(X, Y, [1, 1], [1, 1])],
        ['gradientGrowth: more than the open positions', () => device.gradientGrowth(X, Y, [1], [1e6])],
        ['gradientGrowth: a negative count', () => device.gradientGrowth(X, Y, [1], [-1])],
        ['gradmaxProduct: the output layer', () => device.gradmaxProduct(X, Y, 2)],
        ['gradmaxProduct: a negative layer', () => device.gradmaxProduct(X, Y, -1)],
        ['gradmaxProduct: layer a string', () => device.gradmaxProduct(X, Y, '0' as unknown as number)],
        ['gradmaxProduct: y of the wrong length', () => device.gradmaxProduct(X, Y.subarray(1), 0)],
        ['restructure: a row copy for a unit that is not new', () => device.restructure(
          { layers: device0.map((l, i) => ({ ...l, ...(i === 0 ? { rowCopy: new Int32Array(l.units).fill(0) } : {}) })) }, sources0)],
        ['restructure: an input copy of the wrong length', () => device.restructure(
          { layers: device0.map((l, i) => ({ ...l, ...(i === 1 ? { inputCopy: new Int32Array(3).fill(-1), inputCopyScale: new Float32Array(3) } : {}) })) }, sources0)],
        ['restructure: an input copy without its scale', () => device.restructure(
          { layers: device0.map((l, i) => ({ ...l, ...(i === 1 ? { inputCopy: new Int32Array(l.inputs).fill(-1) } : {}) })) }, sources0)],
        ['restructure: a NaN restart scale', () => device.restructure({ layers: device0.map((l, i) => ({ ...l, ...(i === 0 ? { restartScale: NaN } : {}) })) }, sources0)],
        ['restructure: restartScale a string', () => device.restructure({ layers: device0.map((l, i) => ({ ...l, ...(i === 0 ? { restartScale: '2' as unknown as number } : {}) })) }, sources0)],
        ['restructure: restartScale with inputScale', () => device.restructure(
          { layers: device0.map((l, i) => ({ ...l, ...(i === 1 ? { restartScale: 2, inputScale: new Float32Array(l.inputs).fill(1) } : {}) })) }, sources0)],
        ['restructure: a row copy out of range', () => device.restructure(
          { layers: device0.map((l, i) => ({ ...l, ...(i === 0 ? { rowCopy: Int32Array.from({ length: l.units + 1 }, (_, r) => (r === l.units ? l.units + 5 : -1)), units: l.units + 1 } : {}) })) },
          sources0.map((s, i) => (i === 0 ? Int32Array.from([...s, -1]) : s)))],
        ['restructure: an input copy on the first layer', () => device.restructure(
          { layers: device0.map((l, i) => ({ ...l, ...(i === 0 ? { inputCopy: new Int32Array(l.inputs).fill(-1), inputCopyScale: new Float32Array(l.inputs) } : {}) })) }, sources0)],
        ['restructure: a NaN input copy scale', () => device.restructure(
          { layers: device0.map((l, i) => ({ ...l, ...(i === 1 ? { inputCopy: new Int32Array(l.inputs).fill(-1), inputCopyScale: new Float32Array(l.inputs).fill(NaN) } : {}) })) }, sources0)],
        ['restructure: a kept layer given moments', () => device.restructure(
          { layers: device0.map((l, i) => ({ ...l, keep: true, ...(i === 0 ? { weightMoments: [new Float32Array(l.units * l.inputs)] } : {}) })) }, sources0)],
        ['restructure: a kept layer with a row copy', () => device.restructure(
          { layers: device0.map((l, i) => ({ ...l, keep: true, ...(i === 0 ? { rowCopy: new Int32Array(l.units).fill(-1) } : {}) })) }, sources0)],
        ['restructure: compensateNewWeights not a boolean', () => device.restructure(
          { layers: device0.map((l, i) => ({ ...l, ...(i === 1 ? { compensateInputs: Int32Array.of(0), compensateMeans: Float64Array.of(-0.5), compensateNewWeights: 1 as unknown as boolean } : {}) })) }, sources0)],
        ['restructure: compensateNewWeights without compensateInputs', () => device.restructure(
          { layers: device0.map((l, i) => ({ ...l, ...(i === 1 ? { compensateNewWeights: true } : {}) })) }, sources0)],
        ['unitUtility: the output layer', () => device.unitUtility(2)],
        ['unitUtility: a NaN layer', () => device.unitUtility(NaN)],
        ['unitUtility: a string', () => device.unitUtility('0' as unknown as number)],
      ];
      for (const [name, call] of cases) {
        let error: unknown;
        try {
          await call();
        } catch (e) {
          error = e;
        }
        expect(error, name).to.be.an('error');
        expect(error instanceof TypeError || error instanceof RangeError, `${name}: ${(error as Error).constructor.name}: ${(error as Error).message}`).to.equal(true);
        expect((error as Error).message, name).to.not.equal('');
        expect(snapshot(), `${name} changed the device model`).to.equal(before);
      }
      device.releaseDataset(ds);
      // The CPU addon refuses the same optimizer settings (the JS API checks them before either).
      const cpu = mixedMlp('cpu', 'sgd');
      expect(() => cpu.native.compile({ kind: 'sgd', learningRate: NaN } as NativeOptimizerConfig, 'softmaxCrossEntropy')).to.throw(RangeError, /learningRate/);
    });

    it('neuroplastic train --device cuda trains on the GPU (gradual pruning followed there) and follows the CPU run', function () {
      needGpu(this);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-cli-cuda-'));
      writeQuadrantSet(dir, 512, 128);
      const args = ['train', '--data', dir, '--hidden', '16', '--epochs', '3', '--batch-size', '32', '--prune', '0.5', '--json', '--quiet'];
      let gpu: Record<string, any>, cpu: Record<string, any>;
      try {
        gpu = lastJson(cli(...args, '--device', 'cuda'));
        cpu = lastJson(cli(...args));
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
      // `device` is the trained model's own (Sequential.device), not the option echoed.
      expect(gpu.device).to.equal('cuda');
      expect(gpu.deviceName).to.equal(cuda.devices()[0].name);
      expect(cpu.device).to.equal('cpu');
      expect(cpu.deviceName).to.equal(undefined);
      (gpu.history.loss as number[]).forEach((l, i) => expect(l).to.be.closeTo(cpu.history.loss[i], 2e-3 * cpu.history.loss[i]));
      expect(gpu.density).to.be.closeTo(0.5, 0.02);
      expect(gpu.accuracy).to.be.at.least(0.9);
      expect(Math.abs(gpu.accuracy - cpu.accuracy)).to.be.at.most(0.02);
    });

    it('neuroplastic continual --device cuda runs continual backprop on the GPU and follows the CPU run; its report renders', function () {
      needGpu(this);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-cli-cuda-'));
      writeQuadrantSet(dir, 512, 64);
      // 384 steps: continual backprop (maturity 100, rate 1e-3 of 16 units) replaces units 4 times.
      const args = ['continual', '--data', dir, '--tasks', '3', '--method', 'cbp', '--hidden', '16', '--batch-size', '4', '--json', '--quiet'];
      const reportFile = path.join(dir, 'run.html');
      try {
        const gpu = lastJson(cli(...args, '--device', 'cuda', '--report', reportFile));
        const cpu = lastJson(cli(...args));
        // `device` is the trained model's own (Sequential.device), not the option echoed.
        expect(gpu.device).to.equal('cuda');
        expect(gpu.deviceName).to.equal(cuda.devices()[0].name);
        expect(cpu.device).to.equal('cpu');
        // Same units replaced at the same steps (the events), and accuracies within float noise.
        expect(cpu.events.length).to.be.at.least(2);
        expect(gpu.events.map((e: { kind: string; step: number }) => `${e.kind}@${e.step}`))
          .to.deep.equal(cpu.events.map((e: { kind: string; step: number }) => `${e.kind}@${e.step}`));
        (gpu.accuracy as number[][]).forEach((row, i) => row.forEach((a, j) => expect(a).to.be.closeTo(cpu.accuracy[i][j], 0.03)));
        const html = fs.readFileSync(reportFile, 'utf8');
        expect(html).to.match(/<html/i);
        expect(html).to.include(cuda.devices()[0].name);  // the report says where it ran
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('DropConnect trains on the GPU (dense and CSR layers, deterministic masks); evaluation uses the stored weights', async function () {
      needGpu(this);
      const make = (device: 'cpu' | 'cuda') => {
        const m = new Sequential({ inputSize: 16, seed: 5, device });
        m.add(layers.dense({ units: 32, activation: 'relu', dropConnect: 0.3, sparseThreshold: 0 }));
        m.add(layers.dense({ units: 24, activation: 'tanh', density: 0.3, sparseThreshold: 0.5, dropConnect: 0.2 }));
        m.add(layers.dense({ units: 5, sparseThreshold: 0 }));
        m.compile({ optimizer: optimizers.adam({ learningRate: 0.005 }), loss: 'softmaxCrossEntropy' });
        return m;
      };
      const [a, b] = [make('cuda'), make('cuda')];
      const [ha, hb] = [await a.fit(X, Y, { epochs: 4, batchSize: 32 }), await b.fit(X, Y, { epochs: 4, batchSize: 32 })];
      expect(ha.history.loss).to.deep.equal(hb.history.loss);
      expect(ha.history.loss[3]).to.be.below(ha.history.loss[0]);
      const cpuCopy = await loadModel(a.toBuffer());
      expectClose(await a.predict(X), await cpuCopy.predict(X), 1e-4, 'predictions against a CPU copy');
    });

    it('dropout trains on the GPU (its own deterministic masks), and fit() can be aborted', async function () {
      needGpu(this);
      const a = mixedMlp('cuda', 'adam', 0.2), b = mixedMlp('cuda', 'adam', 0.2);
      const [ha, hb] = [await a.fit(X, Y, { epochs: 3, batchSize: 32 }), await b.fit(X, Y, { epochs: 3, batchSize: 32 })];
      expect(ha.history.loss).to.deep.equal(hb.history.loss);
      expect(ha.history.loss[2]).to.be.below(ha.history.loss[0]);
      const controller = new AbortController();
      const run = a.fit(X, Y, { epochs: 1000, batchSize: 32, signal: controller.signal, callbacks: [{ onEpochEnd: () => controller.abort() }] });
      let error: unknown;
      try {
        await run;
      } catch (e) {
        error = e;
      }
      expect(error).to.be.instanceOf(Error);
      expect((error as Error).name).to.equal('AbortError');
      expect(a.isTraining).to.equal(false);
    });
  });
});

// ---- the host/device bookkeeping, without a GPU ----------------------------------
// lib/cuda_model.ts keeps the CPU model and the device model in step (pull
// before reading or changing on the host, push before the next device call).
// Here a second CPU model stands in for the device: without dropout it trains
// bit-identically to the CPU path, so every mismatch is a bookkeeping bug.

class CpuTwinDevice implements cuda.CudaModelHandle {
  /** Calls that copy every parameter between host and device, and restructures, over all twins. */
  static calls = {
    load: 0, exportState: 0, exportWeights: 0, restructure: 0, setValues: 0, keptLayers: 0, valuedLayers: 0,
    magnitudeDrops: 0, neuronScores: 0, gradientGrowth: 0, gradmaxProduct: 0, unitUtility: 0, exportStats: 0,
  };
  /** Layers the wrapper marked kept that had changed (must stay empty). */
  static keepViolations: string[] = [];
  /** Makes the next restructure() throw before changing anything, as the native one does on bad input or no memory. */
  static failNextRestructure = false;
  private twin!: NativeModel;
  private readonly config: { inputSize: number; loss: string; optimizer: object };
  constructor(config: { inputSize: number; seed: number; device: number; loss: string; optimizer: object; statsDecay?: number }, state: { step: number; layers: cuda.CudaLayerStateIn[] }) {
    this.config = config;
    this.statsDecay = config.statsDecay ?? 0.99;
    this.loadTwin(state);
  }
  load(state: { step: number; layers: cuda.CudaLayerStateIn[] }): void {
    CpuTwinDevice.calls.load++;
    this.loadTwin(state);
  }
  /** The DropConnect rates of the last state loaded, as the device model got them. */
  static lastDropConnect: number[] = [];
  private loadTwin(state: { step: number; layers: cuda.CudaLayerStateIn[] }): void {
    CpuTwinDevice.lastDropConnect = state.layers.map((l) => l.dropConnect);
    const twin = new (addon().NativeModel)({
      inputSize: this.config.inputSize,
      seed: 0,
      layers: state.layers.map((l) => ({ units: l.units, activation: l.activation, inputDropout: l.inputDropout, dropConnect: l.dropConnect, init: 'zeros', useBias: l.useBias })),
    });
    twin.compile(this.config.optimizer as NativeOptimizerConfig, this.config.loss);
    const s = twin.exportState();
    s.step = state.step;
    // The device keeps no neuron ids; the twin needs distinct ones below nextNeuronId.
    let nextId = 0;
    s.layers = s.layers.map((t, i) => {
      const l = state.layers[i];
      const ids = BigInt64Array.from({ length: l.units }, () => BigInt(nextId++));
      return { ...t, units: l.units, inputs: l.inputs, format: l.format, weight: l.weight, indptr: l.indptr, indices: l.indices,
        weightMoments: l.weightMoments, bias: l.bias, biasMoments: l.biasMoments, mask: l.mask, alive: l.alive,
        neuronIds: ids, meanAbsActivation: l.meanAbsActivation ?? new Float64Array(0), meanActivation: l.meanActivation ?? new Float64Array(0),
        taylor: l.taylor ?? new Float64Array(0), statsUpdates: l.statsUpdates ?? 0, birthStep: new BigInt64Array(0) };
    });
    s.nextNeuronId = nextId;
    twin.importState(s);
    twin.setStatsDecay(this.statsDecay);
    this.twin = twin;
    for (const d of this.datasets?.values() ?? []) d.native = twin.createDataset(d.x, d.y);
  }
  /**
   * The rule of native/cuda/remap.h, restated: each new stored weight is the
   * old one of the same (unit, input) pair with its slots (scaled by its
   * column's inputScale), the host's value where the unit or the input is
   * new, or zero (pruned, dead, not stored before).
   */
  /** The device's magnitude decision: the twin ranks its own weights (the native one's bits are checked against the host's in the native tests). */
  magnitudeDrops(layers: number[], plan: MagnitudePlan): Uint32Array[] {
    CpuTwinDevice.calls.magnitudeDrops++;
    return this.twin.magnitudeDrops(layers, plan);
  }
  /** Makes the next neuronScores() hold a NaN, a decision the host refuses. */
  static poisonNextScores = false;
  neuronScores(layer: number, criterion: string): Float64Array {
    CpuTwinDevice.calls.neuronScores++;
    const scores = this.twin.neuronScores(layer, criterion);
    if (CpuTwinDevice.poisonNextScores) {
      CpuTwinDevice.poisonNextScores = false;
      scores[0] = NaN;
    }
    return scores;
  }
  gradientGrowth(x: Float32Array, y: Int32Array | Float32Array, layers: number[], counts: number[]): Float64Array[] {
    CpuTwinDevice.calls.gradientGrowth++;
    return this.twin.gradientGrowth(layers, counts, x, y);
  }
  /** Makes the next gradmaxProduct() throw, as a device out of memory would. */
  static failNextGradmax = false;
  gradmaxProduct(x: Float32Array, y: Int32Array | Float32Array, layer: number): GradMaxProduct {
    if (CpuTwinDevice.failNextGradmax) {
      CpuTwinDevice.failNextGradmax = false;
      throw new Error('CudaModel.gradmaxProduct: out of device memory (test)');
    }
    CpuTwinDevice.calls.gradmaxProduct++;
    return this.twin.gradmaxProduct(layer, x, y);
  }
  unitUtility(layer: number): Float64Array {
    CpuTwinDevice.calls.unitUtility++;
    return this.twin.unitUtility(layer);
  }
  exportStats(): cuda.CudaStatsOut {
    CpuTwinDevice.calls.exportStats++;
    const s = this.twin.exportState();
    return { step: s.step, layers: s.layers.map((l) => ({ meanAbsActivation: l.meanAbsActivation, meanActivation: l.meanActivation, taylor: l.taylor, statsUpdates: l.statsUpdates })) };
  }
  restructure(state: { layers: cuda.CudaLayerStructureIn[] }, rowSources: Int32Array[]): void {
    CpuTwinDevice.calls.restructure++;
    if (CpuTwinDevice.failNextRestructure) {
      CpuTwinDevice.failNextRestructure = false;
      throw new Error('CudaModel.restructure: out of device memory (test)');
    }
    const old = this.twin.exportState();
    // A kept layer must really be unchanged: the device cannot see a pattern change, the twin can.
    state.layers.forEach((l, i) => {
      if (!l.keep) return;
      CpuTwinDevice.calls.keptLayers++;
      const o = old.layers[i];
      const same = (a?: ArrayLike<unknown>, b?: ArrayLike<unknown>) => (a === undefined || b === undefined ? a === b : a.length === b.length && Array.prototype.every.call(a, (v, k) => v === b[k]));
      const identity = (s: Int32Array, n: number) => s.length === n && s.every((v, r) => v === r);
      if (l.units !== o.units || l.inputs !== o.inputs || l.format !== o.format || !same(l.mask, o.mask) || !same(l.alive, o.alive) ||
          !same(l.indptr, o.indptr) || !same(l.indices, o.indices) || !identity(rowSources[i], o.units) || (i > 0 && !identity(rowSources[i - 1], old.layers[i - 1].units)) ||
          l.weight !== undefined || l.bias !== undefined || l.inputScale !== undefined || l.rowCopy !== undefined || l.inputCopy !== undefined ||
          l.restartScale !== undefined || l.compensateInputs !== undefined)
      {
        // Recorded as well as thrown: the wrapper's fallback would otherwise hide it (see afterEach).
        CpuTwinDevice.keepViolations.push(`layer ${i}`);
        throw new Error(`CudaModel.restructure: layer ${i} is marked kept but changed (twin)`);
      }
    });
    const layers = state.layers.map((l, i): cuda.CudaLayerStateIn => {
      const o = old.layers[i];
      if (l.keep) return { ...l, ...o, activation: l.activation, inputDropout: l.inputDropout, dropConnect: l.dropConnect, useBias: l.useBias };  // as the device has it
      const colSources = i === 0 ? null : rowSources[i - 1];
      const slotsFrom = [o.weight, ...o.weightMoments];
      const fresh = l.weight ? [l.weight, ...l.weightMoments!] : null;
      if (fresh) CpuTwinDevice.calls.valuedLayers++;
      const count = l.format === 'csr' ? Number(l.indptr![l.units]) : l.units * l.inputs;
      const slots = slotsFrom.map(() => new Float32Array(count));
      // The stored position of (r, c) in a layer's compact arrays, -2 where a CSR layer stores none.
      const positionIn = (s: { format: string; inputs: number; indptr?: BigInt64Array; indices?: Int32Array }, r: number, c: number): number => {
        if (s.format !== 'csr') return r * s.inputs + c;
        for (let k = Number(s.indptr![r]); k < Number(s.indptr![r + 1]); k++) if (s.indices![k] === c) return k;
        return -2;
      };
      const oldAt = (r: number, c: number) => positionIn(o, r, c);
      for (let r = 0, k = 0; r < l.units; r++) {
        const cols = l.format === 'csr' ? Array.from(l.indices!.subarray(Number(l.indptr![r]), Number(l.indptr![r + 1]))) : Array.from({ length: l.inputs }, (_, c) => c);
        for (const c of cols) {
          const oldR = rowSources[i][r], oldC = colSources ? colSources[c] : c;
          const zero = (l.alive && !l.alive[r]) || (l.format !== 'csr' && l.mask && !l.mask[k]);
          const src = zero ? -2 : oldR < 0 || oldC < 0 ? -1 : oldAt(oldR, oldC);
          // A new position may copy an old one's value (net2wider): a new unit its source's row, a
          // new input its source's column times its share; slots from zero.
          let copy = -1, copyScale = 1;
          if (src === -1 && oldR < 0 && oldC >= 0 && l.rowCopy && l.rowCopy[r] >= 0) copy = oldAt(l.rowCopy[r], oldC);
          if (src === -1 && oldR >= 0 && oldC < 0 && l.inputCopy && l.inputCopy[c] >= 0) {
            copy = oldAt(oldR, l.inputCopy[c]);
            copyScale = l.inputCopyScale![c];
          }
          // A moved weight takes its column's factor: value and first moment times it, the second
          // moment its square; or, restarted (sparsify), the value times restartScale, slots zero.
          const f = l.inputScale ? l.inputScale[c] : 1;
          const scaleOf = (s: number) => Math.fround(s === 2 ? Math.fround(f * f) : f);
          const moved = (s: number) =>
            l.restartScale !== undefined ? (s === 0 ? Math.fround(slotsFrom[0][src] * Math.fround(l.restartScale)) : 0) : Math.fround(slotsFrom[s][src] * scaleOf(s));
          slots.forEach((slot, s) => {
            if (src === -1 && (copy >= 0 || copy === -2)) slot[k] = s === 0 && copy >= 0 ? Math.fround(slotsFrom[0][copy] * copyScale) : 0;
            else slot[k] = src >= 0 ? moved(s) : src === -1 && fresh ? fresh[s][k] : 0;
          });
          k++;
        }
      }
      const biasFrom = [o.bias, ...o.biasMoments], biasFresh = l.bias ? [l.bias, ...l.biasMoments!] : null;
      const bias = biasFrom.map((from, s) => Float32Array.from({ length: l.units }, (_, r) => {
        if (l.alive && !l.alive[r]) return 0;
        if (rowSources[i][r] >= 0) return from[rowSources[i][r]];
        if (l.rowCopy && l.rowCopy[r] >= 0) return s === 0 ? from[l.rowCopy[r]] : 0;  // a copy: value only
        return biasFresh ? biasFresh[s][r] : 0;
      }));
      // The biases absorb the changed units' outputs: continual backprop's replaced units through
      // the old weights, gradmax's new units (compensateNewWeights) through the new ones.
      l.compensateInputs?.forEach((j, n) => {
        for (let r = 0; r < l.units; r++) {
          const src = rowSources[i][r];
          if (src < 0) continue;
          const at = l.compensateNewWeights ? positionIn(l, r, j) : oldAt(src, j);
          const w = at >= 0 ? (l.compensateNewWeights ? slots[0] : o.weight)[at] : 0;
          bias[0][r] = Math.fround(bias[0][r] + Math.fround(w * l.compensateMeans![n]));
        }
      });
      // Unit statistics follow their units; new units take the host's.
      const statsOf = (from: Float64Array, fresh?: Float64Array) =>
        Float64Array.from({ length: l.units }, (_, r) => (rowSources[i][r] >= 0 ? from[rowSources[i][r]] ?? 0 : fresh?.[r] ?? 0));
      return {
        ...l, weight: slots[0], weightMoments: slots.slice(1), bias: bias[0], biasMoments: bias.slice(1),
        meanAbsActivation: statsOf(o.meanAbsActivation, l.meanAbsActivation), meanActivation: statsOf(o.meanActivation, l.meanActivation),
        taylor: statsOf(o.taylor, l.taylor), statsUpdates: o.statsUpdates,
      };
    });
    this.loadTwin({ step: this.twin.step, layers });
  }
  /** Makes the next setValues() throw before changing anything. */
  static failNextSetValues = false;
  setValues(values: Parameters<cuda.CudaModelHandle['setValues']>[0]): void {
    if (CpuTwinDevice.failNextSetValues) {
      CpuTwinDevice.failNextSetValues = false;
      throw new Error('CudaModel.setValues: out of device memory (test)');
    }
    if (values.layers.length !== this.twin.layerCount) throw new RangeError('CudaModel.setValues: wrong number of layers (twin)');
    this.twin.setValues({ step: this.twin.step, layers: values.layers });
    CpuTwinDevice.calls.setValues++;  // counted when it took the numbers
  }
  /** Makes the next exportState() throw, as a device that cannot give its numbers back would. */
  static failNextExport = false;
  exportState(withMoments = true): cuda.CudaStateOut {
    if (CpuTwinDevice.failNextExport) {
      CpuTwinDevice.failNextExport = false;
      throw new Error('CudaModel: the device takes no call (test)');
    }
    if (withMoments) CpuTwinDevice.calls.exportState++;
    else CpuTwinDevice.calls.exportWeights++;
    const s = this.twin.exportState();
    return {
      step: s.step,
      layers: s.layers.map((l) => ({
        weight: l.weight, weightMoments: withMoments ? l.weightMoments : [], bias: l.bias, biasMoments: withMoments ? l.biasMoments : [],
        meanAbsActivation: l.meanAbsActivation, meanActivation: l.meanActivation, taylor: l.taylor, statsUpdates: l.statsUpdates,
      })),
    };
  }
  setOptimizer(): void {}
  setStatsDecay(decay: number): void {
    this.statsDecay = decay;
    this.twin.setStatsDecay(decay);
  }
  private statsDecay = 0.99;
  // Datasets outlive a reload, as on the device (CudaModel::load and restructure keep them).
  private readonly datasets = new Map<number, { x: Float32Array; y: Int32Array | Float32Array; native: NativeDataset }>();
  private nextDataset = 1;
  createDataset(x: Float32Array, y: Int32Array | Float32Array): number {
    const handle = this.nextDataset++;
    this.datasets.set(handle, { x, y, native: this.twin.createDataset(x, y) });
    return handle;
  }
  releaseDataset(handle: number): void {
    const d = this.datasets.get(handle);
    if (d) this.twin.releaseDataset(d.native);
    this.datasets.delete(handle);
  }
  /** Called after each device call ends (tests: what happens between two calls). */
  static afterTrain: (() => void) | null = null;
  async trainBatches(...args: Parameters<cuda.CudaModelHandle['trainBatches']>) {
    const d = this.datasets.get(args[0] as number);
    if (!d) throw new RangeError('dataset is not a live handle (twin)');
    const r = await this.twin.trainBatches(d.native, args[1], args[2], args[3], args[4], args[5]);
    CpuTwinDevice.afterTrain?.();
    return r;
  }
  evaluate(x: Float32Array, y: Int32Array | Float32Array, batchSize: number) {
    return this.twin.evaluate(x, y, batchSize);
  }
  predict(x: Float32Array, batchSize: number) {
    return this.twin.predict(x, batchSize);
  }
  requestAbort(): void {
    this.twin.requestAbort();
  }
  dispose(): void {}
  get step(): number {
    return this.twin.step;
  }
  get busy(): string | null {
    return this.twin.busy;
  }
  get deviceBytes(): number {
    return 0;
  }
}

/** A compiled model whose native half is the cuda wrapper over a CPU twin "device" (host: the CPU model, or a stand-in for it). */
function onTwinDevice(m: Sequential, host: (cpu: NativeModel) => NativeModel = (cpu) => cpu): Sequential {
  const internals = m as unknown as { nativeModel: NativeModel; currentDevice: string; compiled: { optimizer: NativeOptimizerConfig; loss: string } };
  const fake = { CudaModel: CpuTwinDevice } as unknown as cuda.CudaAddon;
  internals.nativeModel = new CudaNativeModel(host(m.native), fake, { inputSize: m.inputSize, seed: m.seed, device: 0 }, internals.compiled);
  internals.currentDevice = 'cuda';
  return m;
}

/** Trains the CPU model and its twin-device copy alike: their losses must be identical. */
async function fitTwins(cpu: Sequential, dev: Sequential, epochs = 1, what = ''): Promise<void> {
  const [a, b] = [await cpu.fit(X, Y, { epochs, batchSize: 48 }), await dev.fit(X, Y, { epochs, batchSize: 48 })];
  expect(b.history.loss, `${what}losses`).to.deep.equal(a.history.loss);
}

/** Every weight, bias and optimizer slot of a model, layer by layer. */
const slotsOf = (m: Sequential) => m.native.exportState().layers.map((l) => [l.weight, l.bias, ...l.weightMoments, ...l.biasMoments]);

describe('cuda: host/device bookkeeping (a CPU twin stands in for the GPU; no GPU needed)', () => {
  afterEach(() => {
    const violations = CpuTwinDevice.keepViolations.splice(0);
    expect(violations, 'layers marked kept that had changed').to.deep.equal([]);
  });

  it('fit, weights, structural ops, setWeights and save on the wrapper match the CPU model exactly', async () => {
    const cpu = mixedMlp('cpu', 'sgd');
    const dev = onTwinDevice(mixedMlp('cpu', 'sgd'));
    expect(dev.device).to.equal('cuda');
    const same = async (what: string) => {
      expect(dev.step, `${what}: step`).to.equal(cpu.step);
      for (let i = 0; i < 3; i++) {
        expect(denseAt(dev, i).getWeights().weight, `${what}: layer ${i} weight`).to.deep.equal(denseAt(cpu, i).getWeights().weight);
        expect(denseAt(dev, i).getWeights().bias, `${what}: layer ${i} bias`).to.deep.equal(denseAt(cpu, i).getWeights().bias);
      }
      expect(await dev.predict(X), `${what}: predictions`).to.deep.equal(await cpu.predict(X));
    };
    const fitBoth = (epochs: number) => fitTwins(cpu, dev, epochs);
    await fitBoth(2);
    await same('after fit');
    for (const m of [cpu, dev]) m.prune({ amount: 0.5, structure: 'weight', layer: 0 });
    await fitBoth(1);
    await same('after prune + fit');
    for (const m of [cpu, dev]) {
      m.prune({ amount: 0.25, structure: 'neuron', criterion: 'l2', layer: 0 });
      m.compact();
      m.grow({ layer: 0, count: 3, init: 'zero' });
    }
    await fitBoth(1);
    await same('after neuron prune + compact + grow + fit');
    const w = denseAt(cpu, 2).getWeights();
    w.bias[0] += 0.5;
    for (const m of [cpu, dev]) denseAt(m, 2).setWeights?.(w);
    await fitBoth(1);
    await same('after setWeights + fit');
    // A step hook changing the structure between two native calls of one fit().
    const hook = (m: Sequential) => ({ nextStep: (s: number) => (s < 40 ? 40 : undefined), onStep: () => void m.prune({ amount: 0.1, structure: 'weight', layer: 2 }) });
    const [a, b] = [await cpu.fit(X, Y, { epochs: 2, batchSize: 48, callbacks: [hook(cpu)] }), await dev.fit(X, Y, { epochs: 2, batchSize: 48, callbacks: [hook(dev)] })];
    expect(b.history.loss).to.deep.equal(a.history.loss);
    await same('after a mid-fit prune');
    const back = await loadModel(dev.toBuffer());
    expect(await back.predict(X)).to.deep.equal(await cpu.predict(X));
    expect(dev.to('cpu').device).to.equal('cpu');
    await same("after to('cpu')");
  });

  it('structure-only changes after training move the numbers on the device: no copy to the host and back', async () => {
    const cpu = mixedMlp('cpu', 'adam');
    const dev = onTwinDevice(mixedMlp('cpu', 'adam'));
    const fitBoth = (epochs: number) => fitTwins(cpu, dev, epochs);
    await fitBoth(1);
    const calls = { ...CpuTwinDevice.calls };
    for (const m of [cpu, dev]) m.prune({ amount: 0.25, structure: 'neuron', criterion: 'random', layer: 0 });
    await fitBoth(1);
    for (const m of [cpu, dev]) {
      m.compact();
      m.grow({ layer: 0, count: 3, init: 'random' });
      m.grow({ layer: 1, count: 2, init: 'zero' });
      m.native.convertLayer(0, 'csr');
      m.native.convertLayer(1, 'dense');
    }
    // Every change was followed on the device; the parameters never came back to the host.
    expect(CpuTwinDevice.calls.restructure - calls.restructure).to.equal(6);
    expect(CpuTwinDevice.calls.exportState - calls.exportState).to.equal(0);
    expect(CpuTwinDevice.calls.load - calls.load).to.equal(0);
    await fitBoth(2);
    const ids = (m: Sequential) => [0, 1].map((l) => Array.from(m.native.neuronIds(l)));
    expect(ids(dev)).to.deep.equal(ids(cpu));
    for (let i = 0; i < 3; i++) {
      expect(denseAt(dev, i).format, `layer ${i} format`).to.equal(denseAt(cpu, i).format);
      expect(denseAt(dev, i).getWeights().weight, `layer ${i} weight`).to.deep.equal(denseAt(cpu, i).getWeights().weight);
    }
    expect(await dev.predict(X)).to.deep.equal(await cpu.predict(X));
    expect(dev.native.exportState().layers.map((l) => l.weightMoments)).to.deep.equal(cpu.native.exportState().layers.map((l) => l.weightMoments));
    expect(dev.events).to.deep.equal(cpu.events);  // the same steps recorded, though the host's numbers were stale
    // With the host up to date (weights just read), a change is still followed, not pushed whole;
    // the layers it leaves as they were stay on the device untouched.
    const loads = CpuTwinDevice.calls.load, restructures = CpuTwinDevice.calls.restructure, kept = CpuTwinDevice.calls.keptLayers;
    for (const m of [cpu, dev]) m.prune({ amount: 0.2, structure: 'weight', layer: 2 });
    expect(CpuTwinDevice.calls.restructure).to.equal(restructures + 1);
    expect(CpuTwinDevice.calls.keptLayers - kept, 'layers 0 and 1 kept').to.equal(2);
    await fitBoth(1);
    expect(CpuTwinDevice.calls.load).to.equal(loads);
    expect(denseAt(dev, 2).getWeights().weight).to.deep.equal(denseAt(cpu, 2).getWeights().weight);
  });

  it('pruning decisions are made on the device (magnitude, gradual, SET, neuron scores): only drop bits and scores reach the host, never the weights or slots', async () => {
    const cpu = mixedMlp('cpu', 'adam');
    const dev = onTwinDevice(mixedMlp('cpu', 'adam'));
    const fitBoth = async (epochs: number, schedule = false) => {
      const callbacks = (m: Sequential) => (schedule ? [plasticity.gradualMagnitude({ finalSparsity: 0.6, startStep: m.step, endStep: m.step + 12, every: 4, layers: [0, 1] })] : []);
      const [a, b] = [await cpu.fit(X, Y, { epochs, batchSize: 48, callbacks: callbacks(cpu) }), await dev.fit(X, Y, { epochs, batchSize: 48, callbacks: callbacks(dev) })];
      expect(b.history.loss).to.deep.equal(a.history.loss);
    };
    await fitBoth(1);
    const calls = { ...CpuTwinDevice.calls };
    for (const m of [cpu, dev]) {
      m.prune({ amount: 0.3, structure: 'weight', layer: 0 });
      m.prune({ amount: 0.2, structure: 'weight', scope: 'global' });
    }
    await fitBoth(2, true);  // gradualMagnitude prunes inside fit, between device calls
    for (const m of [cpu, dev]) m.native.regrow([0, 1], 0.2, false);
    const decisions = CpuTwinDevice.calls.magnitudeDrops - calls.magnitudeDrops;
    expect(decisions, 'two prunes, the gradual steps, one SET').to.be.greaterThan(4);
    expect(CpuTwinDevice.calls.exportWeights - calls.exportWeights, 'weight copies for magnitude decisions').to.equal(0);
    await fitBoth(1);
    const neuronCalls = { ...CpuTwinDevice.calls };
    for (const m of [cpu, dev]) {
      m.prune({ amount: 0.2, structure: 'neuron', criterion: 'l1', layer: 1 });
      m.prune({ amount: 0.2, structure: 'neuron', criterion: 'taylor', layer: 0 });  // the device's unit statistics
      m.prune({ amount: 0.1, structure: 'neuron', criterion: 'l2', scope: 'global' });
      m.native.setStatsDecay(0.9);
    }
    expect(CpuTwinDevice.calls.neuronScores - neuronCalls.neuronScores, 'scores from the device').to.equal(4);
    expect(CpuTwinDevice.calls.exportWeights - neuronCalls.exportWeights, 'weight copies for neuron scores').to.equal(0);
    await fitBoth(1);
    // Reads of scores, utilities and statistics (the dropin cycle reads unitStats every step) come from the device too.
    const reads = { ...CpuTwinDevice.calls };
    for (const l of [0, 1]) {
      expect(dev.native.neuronScores(l, 'l2'), `layer ${l} l2 scores`).to.deep.equal(cpu.native.neuronScores(l, 'l2'));
      expect(dev.native.unitUtility(l), `layer ${l} utility`).to.deep.equal(cpu.native.unitUtility(l));
      expect(dev.native.unitStats(l), `layer ${l} statistics`).to.deep.equal(cpu.native.unitStats(l));
    }
    expect(CpuTwinDevice.calls.exportState - reads.exportState, 'full copies for the reads').to.equal(0);
    expect(CpuTwinDevice.calls.exportWeights - reads.exportWeights, 'weight copies for the reads').to.equal(0);
    expect(CpuTwinDevice.calls.exportState - calls.exportState, 'full copies to the host').to.equal(0);
    expect(CpuTwinDevice.calls.load - calls.load, 'full copies to the device').to.equal(0);
    expect(dev.events).to.deep.equal(cpu.events);
    expect(dev.events.some((e) => e.kind === 'regrow')).to.equal(true);
    for (const l of [0, 1]) expect(dev.native.unitStats(l), `layer ${l} unit statistics`).to.deep.equal(cpu.native.unitStats(l));
    for (let i = 0; i < 3; i++) expect(denseAt(dev, i).getWeights().weight, `layer ${i} weight`).to.deep.equal(denseAt(cpu, i).getWeights().weight);
    expect(dev.native.exportState().layers.map((l) => l.weightMoments)).to.deep.equal(cpu.native.exportState().layers.map((l) => l.weightMoments));
    expect(await dev.predict(X)).to.deep.equal(await cpu.predict(X));
  });

  it('sparsify({ layers }) on a cuda model changes only the layers named, as on the CPU', async () => {
    const cpu = mixedMlp('cpu', 'sgd');
    const dev = onTwinDevice(mixedMlp('cpu', 'sgd'));
    for (const m of [cpu, dev]) m.sparsify({ sparsity: 0.5, distribution: 'uniform', layers: [0] });
    for (let i = 0; i < 3; i++) expect(denseAt(dev, i).getWeights().weight, `layer ${i}`).to.deep.equal(denseAt(cpu, i).getWeights().weight);
    expect(denseAt(dev, 2).getWeights().weight.every((v) => v !== 0)).to.equal(true);
  });

  it('sparsify after training is followed on the device: the thinned layers\' kept weights rescaled there with fresh slots, the rest stay; no weights cross', async () => {
    const cpu = mixedMlp('cpu', 'adam');
    const dev = onTwinDevice(mixedMlp('cpu', 'adam'));
    const fitBoth = () => fitTwins(cpu, dev);
    await fitBoth();
    const calls = { ...CpuTwinDevice.calls };
    for (const m of [cpu, dev]) m.sparsify({ sparsity: 0.5, distribution: 'uniform', layers: [0, 2] });
    expect(CpuTwinDevice.calls.restructure - calls.restructure).to.equal(1);
    expect(CpuTwinDevice.calls.keptLayers - calls.keptLayers, 'layer 1 kept').to.equal(1);
    expect(CpuTwinDevice.calls.exportState - calls.exportState, 'full copies to the host').to.equal(0);
    expect(CpuTwinDevice.calls.exportWeights - calls.exportWeights, 'weight copies to the host').to.equal(0);
    expect(CpuTwinDevice.calls.valuedLayers - calls.valuedLayers, 'layers sent with the host\'s values').to.equal(0);
    expect(CpuTwinDevice.calls.load - calls.load, 'full copies to the device').to.equal(0);
    expect(slotsOf(dev)).to.deep.equal(slotsOf(cpu));
    await fitBoth();
    expect(slotsOf(dev)).to.deep.equal(slotsOf(cpu));
    expect(dev.events).to.deep.equal(cpu.events);
    // A restructure the device refuses falls back to the copy through the host, with the same result.
    CpuTwinDevice.failNextRestructure = true;
    for (const m of [cpu, dev]) m.sparsify({ sparsity: 0.7, distribution: 'uniform', layers: [0] });
    expect(CpuTwinDevice.failNextRestructure).to.equal(false);
    expect(slotsOf(dev)).to.deep.equal(slotsOf(cpu));
    await fitBoth();
    expect(slotsOf(dev)).to.deep.equal(slotsOf(cpu));
  });

  it('a restructure the device refuses falls back to the copy through the host, with the same result', async () => {
    const cpu = mixedMlp('cpu', 'adam');
    const dev = onTwinDevice(mixedMlp('cpu', 'adam'));
    await cpu.fit(X, Y, { epochs: 1, batchSize: 48 });
    await dev.fit(X, Y, { epochs: 1, batchSize: 48 });
    const pulls = CpuTwinDevice.calls.exportState;
    CpuTwinDevice.failNextRestructure = true;
    for (const m of [cpu, dev]) m.grow({ layer: 0, count: 2, init: 'random' });
    expect(CpuTwinDevice.failNextRestructure).to.equal(false);
    expect(CpuTwinDevice.calls.exportState).to.be.greaterThan(pulls);
    expect(dev.native.neuronIds(0)).to.deep.equal(cpu.native.neuronIds(0));
    expect(dev.events.length).to.equal(cpu.events.length);  // model.events once threw on a cuda model
    const [a, b] = [await cpu.fit(X, Y, { epochs: 1, batchSize: 48 }), await dev.fit(X, Y, { epochs: 1, batchSize: 48 })];
    expect(b.history.loss).to.deep.equal(a.history.loss);
    expect(await dev.predict(X)).to.deep.equal(await cpu.predict(X));
  });

  it('a refused restructure on a device that cannot give its numbers back either: the change stands on the CPU model, the GPU model is made afresh, the error says so', async () => {
    const dev = onTwinDevice(mixedMlp('cpu', 'adam'));
    await dev.fit(X, Y, { epochs: 1, batchSize: 48 });
    const units = dev.native.neuronIds(0).length;
    const deviceOf = () => (dev.native as unknown as { device: cuda.CudaModelHandle | null }).device;
    const first = deviceOf();
    CpuTwinDevice.failNextRestructure = true;
    CpuTwinDevice.failNextExport = true;
    let error: unknown;
    try {
      dev.grow({ layer: 0, count: 2, init: 'random' });
    } catch (e) {
      error = e;
    }
    expect(CpuTwinDevice.failNextExport, 'the export was tried').to.equal(false);
    expect((error as Error).message).to.match(/could not follow a structural change .*nor give its numbers back/);
    expect(((error as Error).cause as Error).message).to.match(/out of device memory \(test\)/);
    expect(dev.native.neuronIds(0).length, 'the change stands').to.equal(units + 2);
    expect(deviceOf(), 'the GPU model was dropped').to.equal(null);
    const h = await dev.fit(X, Y, { epochs: 1, batchSize: 48 });
    expect(deviceOf(), 'a GPU model made afresh from the CPU model').to.not.equal(null).and.to.not.equal(first);
    expect(h.history.loss.every(Number.isFinite)).to.equal(true);
  });

  it('a device decision the host refuses (here a NaN score) falls back to the host deciding on pulled numbers, with the same result', async () => {
    const cpu = mixedMlp('cpu', 'adam');
    const dev = onTwinDevice(mixedMlp('cpu', 'adam'));
    await cpu.fit(X, Y, { epochs: 1, batchSize: 48 });
    await dev.fit(X, Y, { epochs: 1, batchSize: 48 });
    const pulls = CpuTwinDevice.calls.exportState;
    CpuTwinDevice.poisonNextScores = true;
    for (const m of [cpu, dev]) m.prune({ amount: 0.25, structure: 'neuron', criterion: 'l1', layer: 0 });
    expect(CpuTwinDevice.poisonNextScores).to.equal(false);
    expect(CpuTwinDevice.calls.exportState, 'the numbers pulled for the host\'s decision').to.be.greaterThan(pulls);
    expect(dev.events).to.deep.equal(cpu.events);
    expect(slotsOf(dev)).to.deep.equal(slotsOf(cpu));
    const [a, b] = [await cpu.fit(X, Y, { epochs: 1, batchSize: 48 }), await dev.fit(X, Y, { epochs: 1, batchSize: 48 })];
    expect(b.history.loss).to.deep.equal(a.history.loss);
  });

  it('an error between the host\'s change and the device\'s (here a wrong split report) also falls back, with the same result', async () => {
    let lies = 1;
    // The CPU model, but its first lastSplit() names the wrong layer.
    const lying = (cpu: NativeModel) => new Proxy(cpu, {
      get: (t, key) => {
        if (key === 'lastSplit') return () => (lies-- > 0 ? { ...t.lastSplit(), layer: 1 } : t.lastSplit());
        const v = Reflect.get(t, key, t);
        return typeof v === 'function' ? v.bind(t) : v;
      },
    });
    const cpu = mixedMlp('cpu', 'adam');
    const dev = onTwinDevice(mixedMlp('cpu', 'adam'), lying);
    await cpu.fit(X, Y, { epochs: 1, batchSize: 48 });
    await dev.fit(X, Y, { epochs: 1, batchSize: 48 });
    const restructures = CpuTwinDevice.calls.restructure;
    for (const m of [cpu, dev]) m.grow({ layer: 0, count: 2, init: 'net2wider', noise: 0.2 });
    expect(lies).to.equal(0);
    expect(CpuTwinDevice.calls.restructure, 'nothing reached the device').to.equal(restructures);
    expect(dev.native.neuronIds(0)).to.deep.equal(cpu.native.neuronIds(0));
    expect(dev.events).to.deep.equal(cpu.events);  // the change was made once, after the host was put back
    expect(slotsOf(dev)).to.deep.equal(slotsOf(cpu));
    const [a, b] = [await cpu.fit(X, Y, { epochs: 1, batchSize: 48 }), await dev.fit(X, Y, { epochs: 1, batchSize: 48 })];
    expect(b.history.loss).to.deep.equal(a.history.loss);
  });

  it('a model with DropConnect goes to the device with its rates (no longer refused)', async () => {
    const m = new Sequential({ inputSize: 16, seed: 5 });
    m.add(layers.dense({ units: 12, activation: 'relu', dropConnect: 0.3 }));
    m.add(layers.dense({ units: 5 }));
    m.compile({ optimizer: optimizers.sgd({ learningRate: 0.05 }), loss: 'softmaxCrossEntropy' });
    const dev = onTwinDevice(m);
    const h = await dev.fit(X, Y, { epochs: 2, batchSize: 48 });
    expect(CpuTwinDevice.lastDropConnect).to.deep.equal([Math.fround(0.3), 0]);  // float32 in the native layer
    expect(h.history.loss.every(Number.isFinite)).to.equal(true);
  });

  it("an importState() that is rejected leaves the device's newer numbers in view", async () => {
    const cpu = mixedMlp('cpu', 'sgd');
    const dev = onTwinDevice(mixedMlp('cpu', 'sgd'));
    const [a, b] = [await cpu.fit(X, Y, { epochs: 1, batchSize: 48 }), await dev.fit(X, Y, { epochs: 1, batchSize: 48 })];
    expect(b.history.loss).to.deep.equal(a.history.loss);
    const bad = cpu.native.exportState();
    bad.layers[0].weight = new Float32Array(3);  // wrong size: rejected
    expect(() => dev.native.importState(bad)).to.throw();
    expect(denseAt(dev, 0).getWeights().weight).to.deep.equal(denseAt(cpu, 0).getWeights().weight);
    expect(dev.step).to.equal(cpu.step);
  });

  it('RigL on a cuda model is decided on the device (gradient of the last device batch, drops by magnitude): the CPU path\'s result, no weight copy', async () => {
    const cpu = mixedMlp('cpu', 'adam');
    const dev = onTwinDevice(mixedMlp('cpu', 'adam'));
    const rigl = () => plasticity.rigl({ every: 4, until: 40, dropFraction: 0.3, layers: [0, 1] });
    const before = { ...CpuTwinDevice.calls };
    const [a, b] = [await cpu.fit(X, Y, { epochs: 3, batchSize: 48, callbacks: [rigl()] }), await dev.fit(X, Y, { epochs: 3, batchSize: 48, callbacks: [rigl()] })];
    expect(b.history.loss).to.deep.equal(a.history.loss);
    expect(dev.events.filter((e) => e.kind === 'regrow').length).to.be.greaterThan(2);
    expect(dev.events).to.deep.equal(cpu.events);
    for (let i = 0; i < 3; i++) expect(denseAt(dev, i).getWeights().weight, `layer ${i}`).to.deep.equal(denseAt(cpu, i).getWeights().weight);
    expect(CpuTwinDevice.calls.exportState - before.exportState, 'full copies to the host during fit').to.equal(1);  // the getWeights above
    expect(CpuTwinDevice.calls.exportWeights - before.exportWeights, 'weight copies for the decisions').to.equal(0);
    expect(CpuTwinDevice.calls.gradientGrowth - before.gradientGrowth, 'RigL choices on the device').to.be.greaterThan(2);
    // Without any training batch there is nothing to take the gradient of.
    const fresh = onTwinDevice(mixedMlp('cpu', 'adam'));
    expect(() => fresh.native.regrow([0], 0.2, true)).to.throw(/needs a batch/);
    expect(() => fresh.grow({ layer: 0, count: 2, init: 'gradmax' })).to.throw(/needs a batch/);
    // gradmax growth without data reads the same last batch as the CPU path's kept one.
    for (const m of [cpu, dev]) {
      m.native.setKeepLastBatch(true);
      await m.fit(X, Y, { epochs: 1, batchSize: 48 });
      m.grow({ layer: 0, count: 2, init: 'gradmax' });
    }
    expect(denseAt(dev, 1).getWeights().weight).to.deep.equal(denseAt(cpu, 1).getWeights().weight);
    expect(await dev.predict(X)).to.deep.equal(await cpu.predict(X));
  });

  it('net2wider and gradmax growth are followed on the device: the CPU path\'s weights, biases and moments, no weight copy', async () => {
    const sigmoidMlp = () => {
      const m = new Sequential({ inputSize: 16, seed: 5 });
      m.add(layers.dense({ units: 12, activation: 'sigmoid', sparseThreshold: 0 }));  // act(0) = 0.5: gradmax moves it into the next biases
      m.add(layers.dense({ units: 5, sparseThreshold: 0 }));
      m.compile({ optimizer: optimizers.adam({ learningRate: 0.01 }), loss: 'softmaxCrossEntropy' });
      return m;
    };
    const cases: [string, () => Sequential, number[]][] = [
      ['sgd momentum, dense -> CSR -> dense', () => mixedMlp('cpu', 'sgd'), [0, 1]],
      ['adam, dense -> CSR -> dense', () => mixedMlp('cpu', 'adam'), [0, 1]],
      ['adam, sigmoid', sigmoidMlp, [0]],
    ];
    for (const [what, make, grown] of cases) {
      const cpu = make();
      const dev = onTwinDevice(make());
      const fitBoth = () => fitTwins(cpu, dev, 1, `${what}: `);
      for (const m of [cpu, dev]) m.native.setKeepLastBatch(true);
      await fitBoth();
      const calls = { ...CpuTwinDevice.calls };
      for (const m of [cpu, dev]) for (const layer of grown) m.grow({ layer, count: 3, init: 'net2wider', noise: 0.3 });
      // net2wider: the copies and shares are the device's own numbers: nothing crosses but the structure.
      expect(CpuTwinDevice.calls.valuedLayers - calls.valuedLayers, `${what}: layers sent with the host's values for net2wider`).to.equal(0);
      for (const m of [cpu, dev]) m.grow({ layer: 0, count: 2, init: 'gradmax' });
      // gradmax: the device's reading of the network (M, the norm), then the new units' values.
      expect(CpuTwinDevice.calls.gradmaxProduct - calls.gradmaxProduct, `${what}: gradmax readings on the device`).to.equal(1);
      expect(CpuTwinDevice.calls.exportWeights - calls.exportWeights, `${what}: weight copies to the host`).to.equal(0);
      expect(CpuTwinDevice.calls.restructure - calls.restructure, `${what}: restructures`).to.equal(grown.length + 1);
      expect(CpuTwinDevice.calls.exportState - calls.exportState, `${what}: full copies to the host`).to.equal(0);
      expect(CpuTwinDevice.calls.load - calls.load, `${what}: full copies to the device`).to.equal(0);
      // Before any further step: every slot as the CPU path left it (scaled source columns included).
      expect(slotsOf(dev), `${what}: weights, biases and moments after growth`).to.deep.equal(slotsOf(cpu));
      await fitBoth();
      expect(slotsOf(dev), `${what}: after training on`).to.deep.equal(slotsOf(cpu));
      expect(dev.events).to.deep.equal(cpu.events);
      // A restructure the device refuses, and a gradmax reading it cannot make, fall back to the
      // copy through the host with the same result.
      const pulls = CpuTwinDevice.calls.exportState;
      CpuTwinDevice.failNextRestructure = true;
      for (const m of [cpu, dev]) m.grow({ layer: grown[0], count: 2, init: 'net2wider', noise: 0.3 });
      expect(CpuTwinDevice.failNextRestructure, `${what}: the refusal happened`).to.equal(false);
      expect(slotsOf(dev), `${what}: after the refused restructure`).to.deep.equal(slotsOf(cpu));
      await fitBoth();  // the device holds the newest numbers again: the next decision is its
      CpuTwinDevice.failNextGradmax = true;
      for (const m of [cpu, dev]) m.grow({ layer: 0, count: 2, init: 'gradmax' });
      expect(CpuTwinDevice.failNextGradmax, `${what}: the failed reading happened`).to.equal(false);
      expect(CpuTwinDevice.calls.exportState, `${what}: the fallbacks pulled the state`).to.be.greaterThan(pulls);
      expect(slotsOf(dev), `${what}: after the fallbacks`).to.deep.equal(slotsOf(cpu));
      await fitBoth();
      expect(slotsOf(dev), `${what}: after training on from the fallbacks`).to.deep.equal(slotsOf(cpu));
    }
  });

  it('setWeights and a lottery-ticket rewind write the numbers on the device in place: no full copy either way', async () => {
    const cpu = mixedMlp('cpu', 'adam');
    const dev = onTwinDevice(mixedMlp('cpu', 'adam'));
    const fitBoth = () => fitTwins(cpu, dev);
    const snapshot = cpu.snapshot();
    expect(dev.snapshot()).to.equal(snapshot);
    await fitBoth();
    for (const m of [cpu, dev]) {
      m.prune({ amount: 0.3, structure: 'weight', layer: 0 });
      m.grow({ layer: 0, count: 2, init: 'random' });  // no snapshot value: keeps its trained weights through the rewind
    }
    await fitBoth();
    const calls = { ...CpuTwinDevice.calls };
    for (const m of [cpu, dev]) m.rewind(snapshot);
    expect(CpuTwinDevice.calls.setValues - calls.setValues).to.equal(1);
    expect(CpuTwinDevice.calls.exportState - calls.exportState, 'full copies to the host').to.equal(0);
    expect(CpuTwinDevice.calls.load - calls.load, 'full copies to the device').to.equal(0);
    await fitBoth();
    expect(CpuTwinDevice.calls.load - calls.load, 'full copies to the device after the next fit').to.equal(0);
    const w = denseAt(cpu, 2).getWeights();
    w.weight[0] += 0.25;
    w.bias[1] -= 0.5;
    const csr = denseAt(cpu, 1).getWeights();  // layer 1 is CSR: the device takes its stored values
    const stored = csr.weight.findIndex((v) => v !== 0);
    csr.weight[stored] *= 2;
    const before = { ...CpuTwinDevice.calls };
    for (const m of [cpu, dev]) {
      denseAt(m, 2).setWeights?.(w);
      denseAt(m, 1).setWeights?.({ weight: csr.weight, bias: csr.bias });
    }
    expect(denseAt(dev, 1).format).to.equal('csr');
    expect(CpuTwinDevice.calls.setValues - before.setValues).to.equal(2);
    await fitBoth();
    expect(CpuTwinDevice.calls.load - before.load, 'full copies to the device').to.equal(0);
    // A device that refuses the numbers: the ordinary copy path, the same result.
    CpuTwinDevice.failNextSetValues = true;
    const v = denseAt(cpu, 0).getWeights();
    v.bias.fill(0.125);
    for (const m of [cpu, dev]) denseAt(m, 0).setWeights?.({ weight: v.weight, bias: v.bias });
    expect(CpuTwinDevice.failNextSetValues).to.equal(false);
    await fitBoth();
    expect(slotsOf(dev)).to.deep.equal(slotsOf(cpu));
    expect(dev.events).to.deep.equal(cpu.events);
  });

  it('RigL on a cuda model trained on soft targets cuts the same last batch (targets rows) as the CPU path keeps', async () => {
    const T = new Float32Array(N * 5);
    Y.forEach((label, i) => (T[i * 5 + label] = 1));
    const cpu = mixedMlp('cpu', 'sgd');
    const dev = onTwinDevice(mixedMlp('cpu', 'sgd'));
    const rigl = () => plasticity.rigl({ every: 5, until: 30, dropFraction: 0.3, layers: [1] });
    const [a, b] = [await cpu.fit(X, T, { epochs: 2, batchSize: 40, callbacks: [rigl()] }), await dev.fit(X, T, { epochs: 2, batchSize: 40, callbacks: [rigl()] })];
    expect(b.history.loss).to.deep.equal(a.history.loss);
    expect(dev.events).to.deep.equal(cpu.events);
    expect(denseAt(dev, 1).getWeights().weight).to.deep.equal(denseAt(cpu, 1).getWeights().weight);
  });

  it('continual backprop and ReDo on a cuda model: decided on the device\'s statistics and utilities at the steps the CPU path replaces units; the device follows and compensates its own biases', async () => {
    const cpu = mixedMlp('cpu', 'adam');
    const dev = onTwinDevice(mixedMlp('cpu', 'adam'));
    const cbp = () => plasticity.continualBackprop({ replacementRate: 0.01, maturity: 5 });
    const before = { ...CpuTwinDevice.calls };
    const [a, b] = [await cpu.fit(X, Y, { epochs: 3, batchSize: 48, callbacks: [cbp()] }), await dev.fit(X, Y, { epochs: 3, batchSize: 48, callbacks: [cbp()] })];
    // The epoch's loss is summed in other pieces (the device calls end at the replacing steps): equal to rounding.
    a.history.loss.forEach((l, e) => expect(b.history.loss[e]).to.be.closeTo(l, 1e-12 * l));
    expect(b.history.accuracy).to.deep.equal(a.history.accuracy);
    const reinits = dev.events.filter((e) => e.kind === 'reinit');
    expect(reinits.length).to.be.greaterThan(2);
    expect(dev.events).to.deep.equal(cpu.events);
    expect(CpuTwinDevice.calls.exportState - before.exportState, 'full copies to the host').to.equal(0);
    expect(CpuTwinDevice.calls.load - before.load, 'full copies to the device').to.equal(0);
    expect(CpuTwinDevice.calls.exportWeights - before.exportWeights, 'weight copies for the rounds').to.equal(0);
    expect(CpuTwinDevice.calls.unitUtility - before.unitUtility, 'utilities from the device').to.be.greaterThan(2);
    for (let i = 0; i < 3; i++) {
      expect(denseAt(dev, i).getWeights().weight, `layer ${i} weight`).to.deep.equal(denseAt(cpu, i).getWeights().weight);
      expect(denseAt(dev, i).getWeights().bias, `layer ${i} bias`).to.deep.equal(denseAt(cpu, i).getWeights().bias);
    }
    expect(dev.native.exportState().layers.map((l) => [l.weightMoments, l.biasMoments, l.birthStep, l.cbpCarry]))
      .to.deep.equal(cpu.native.exportState().layers.map((l) => [l.weightMoments, l.biasMoments, l.birthStep, l.cbpCarry]));
    // ReDo: the statistics come from the device, the reset units are followed like a CBP round.
    await Promise.all([cpu.fit(X, Y, { epochs: 1, batchSize: 48 }), dev.fit(X, Y, { epochs: 1, batchSize: 48 })]);
    const redoCalls = { ...CpuTwinDevice.calls };
    for (const m of [cpu, dev]) expect(m.native.redo(0.5)).to.be.greaterThan(0);
    expect(CpuTwinDevice.calls.exportStats - redoCalls.exportStats, 'statistics from the device').to.equal(1);
    expect(CpuTwinDevice.calls.exportWeights - redoCalls.exportWeights, 'weight copies for ReDo').to.equal(0);
    expect(dev.events).to.deep.equal(cpu.events);
    for (let i = 0; i < 3; i++) expect(denseAt(dev, i).getWeights().bias, `layer ${i} bias after ReDo`).to.deep.equal(denseAt(cpu, i).getWeights().bias);
    expect(await dev.predict(X)).to.deep.equal(await cpu.predict(X));
  });

  it('continual backprop on a cuda model: an abort between two device calls stops it; progress counts on across calls', async () => {
    const m = onTwinDevice(mixedMlp('cpu', 'adam'));
    await m.fit(X, Y, { epochs: 1, batchSize: 48 });
    const wrapper = m.native as CudaNativeModel;
    wrapper.setContinualBackprop(0.2, 0); // a round replaces units nearly every step: many device calls
    const dataset = wrapper.createDataset(X, Y);
    const order = Int32Array.from({ length: N }, (_, i) => i);
    let calls = 0;
    const seen: number[] = [];
    CpuTwinDevice.afterTrain = () => void (++calls === 2 && wrapper.requestAbort());
    try {
      const r = await wrapper.trainBatches(dataset, order, 0, 10, 48, (done) => void seen.push(done));
      expect(r.aborted).to.equal(true);
      expect(calls, 'device calls').to.equal(2);
      expect(r.steps).to.be.within(2, 9);
      expect(m.step).to.equal(Math.ceil(N / 48) + r.steps);
      seen.forEach((v, i) => expect(v).to.be.at.least(i > 0 ? seen[i - 1] : 0));
    } finally {
      CpuTwinDevice.afterTrain = null;
      wrapper.releaseDataset(dataset);
      wrapper.setContinualBackprop(0, 0);
    }
    // The next call is not stopped by the old request.
    const again = wrapper.createDataset(X, Y);
    const r2 = await wrapper.trainBatches(again, order, 0, 3, 48);
    expect(r2.aborted).to.equal(false);
    expect(r2.steps).to.equal(3);
    wrapper.releaseDataset(again);
  });

  it('continual backprop on a cuda model follows the CPU path even when the event log keeps one event', async () => {
    const make = () => {
      const m = new Sequential({ inputSize: 16, seed: 11, eventLimit: 1 });
      m.add(layers.dense({ units: 32, activation: 'relu', sparseThreshold: 0 }));
      m.add(layers.dense({ units: 24, activation: 'tanh', density: 0.3, sparseThreshold: 0.5 }));
      m.add(layers.dense({ units: 5, sparseThreshold: 0 }));
      m.compile({ optimizer: optimizers.sgd({ learningRate: 0.05, momentum: 0.9 }), loss: 'softmaxCrossEntropy' });
      return m;
    };
    const cpu = make();
    const dev = onTwinDevice(make());
    const cbp = () => plasticity.continualBackprop({ replacementRate: 0.02, maturity: 3 });
    await cpu.fit(X, Y, { epochs: 2, batchSize: 48, callbacks: [cbp()] });
    await dev.fit(X, Y, { epochs: 2, batchSize: 48, callbacks: [cbp()] });
    expect(dev.native.eventsDropped).to.be.greaterThan(0);
    for (let i = 0; i < 3; i++) expect(denseAt(dev, i).getWeights().weight, `layer ${i}`).to.deep.equal(denseAt(cpu, i).getWeights().weight);
    expect(await dev.predict(X)).to.deep.equal(await cpu.predict(X));
  });
});
