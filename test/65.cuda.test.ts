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
import { cuda } from '../lib/index';
import { randomArray } from './helpers';

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
  });
});
