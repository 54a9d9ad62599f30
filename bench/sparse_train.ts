// Full-epoch training time of a wide MLP (784-4096-4096-10, relu) on
// Fashion-MNIST at batch 128 with SGD + momentum: dense against the same net
// pruned to 90%, 95% and 99% weight sparsity, where the hidden layers fall
// below the density threshold and are stored and trained as CSR.
//
// Each model is pruned layer by layer (model.prune({ amount, scope: 'layer' }))
// before timing; its forward pass is checked against a plain JS product of its
// own weights (zeros where pruned); then every model gets a short warm-up and
// the epochs are timed interleaved (dense, 90, 95, 99, dense, ...), median per
// model. The speed-up is dense epoch time / sparse epoch time from the same run.
//
// Quick mode trains on a 6,000-sample slice and extrapolates the epoch time to
// the 60,000-sample epoch; those rows carry extrapolated: true and say so.
//
//   node --import tsx bench/main.ts --sparse [--quick]   (with the kernel sweep of bench/sparse.ts)
//   node --import tsx bench/sparse_train.ts [--quick]    (this bench alone)
import { Sequential, data, layers, optimizers, runtime, type Dataset } from '../lib/index';
import { DenseLayer } from '../lib/layers';
import { formatTable, median, type BenchResult } from './types';

export interface SparseTrainBenchOptions {
  quick?: boolean;
  /** Timed epochs per model (interleaved across the models). Default 3 in quick mode, 2 otherwise. */
  repeats?: number;
  log?: (line: string) => void;
}

const NET = [784, 4096, 4096, 10];
const BATCH = 128;
const SPARSITIES = [0, 0.9, 0.95, 0.99];
/** Samples of the epoch the figures describe (the Fashion-MNIST train split). */
const EPOCH_SAMPLES = 60_000;
const QUICK_SAMPLES = 6_000;
const WARMUP_STEPS = 8;
const SEED = 1;

interface Loaded {
  train: Dataset;
  note: string;
}

function loadData(quick: boolean): Loaded {
  try {
    const { train } = data.loadFashionMnistSplits(quick ? { limit: QUICK_SAMPLES } : undefined);
    return { train, note: `fashion-mnist train (${train.n} samples${quick ? ', quick slice' : ''})` };
  } catch (err) {
    const train = data.loadMnist();
    return {
      train,
      note: `bundled MNIST (${train.n} samples): Fashion-MNIST not found (${(err as Error).message.split(':').pop()!.trim()})`,
    };
  }
}

function buildModel(sparsity: number): Sequential {
  const model = new Sequential({ inputSize: NET[0], seed: SEED, name: `mlp-${NET.join('-')}` });
  for (let l = 1; l < NET.length - 1; l++) model.add(layers.dense({ units: NET[l], activation: 'relu' }));
  model.add(layers.dense({ units: NET[NET.length - 1] }));
  model.compile({ optimizer: optimizers.sgd({ learningRate: 0.01, momentum: 0.9 }), loss: 'softmaxCrossEntropy' });
  if (sparsity > 0) {
    model.layers.forEach((layer, i) => {
      if (layer instanceof DenseLayer) model.prune({ amount: sparsity, scope: 'layer', layer: i });
    });
  }
  return model;
}

function denseLayers(model: Sequential): DenseLayer[] {
  return model.layers.filter((l): l is DenseLayer => l instanceof DenseLayer);
}

/** Useful FLOPs of one step, counting 2·nnz·batch per sparse product (BENCH.md); no input gradient for layer 0. */
function stepFlops(model: Sequential, batch: number): number {
  let flops = 0;
  denseLayers(model).forEach((l, i) => {
    flops += 2 * l.nnz * batch * (i === 0 ? 2 : 3);
  });
  return flops;
}

/**
 * Checks the model's forward pass on a few samples against a plain JS
 * product of its own weights: returns the largest |difference| relative to the
 * largest |logit|.
 */
async function checkForward(model: Sequential, x: Float32Array, rows: number): Promise<number> {
  const sample = x.subarray(0, rows * NET[0]);
  const got = await model.predict(sample);
  let act = Float64Array.from(sample);
  let width = NET[0];
  const dense = denseLayers(model);
  dense.forEach((layer, li) => {
    const { weight, bias } = layer.getWeights();
    const units = layer.units;
    const out = new Float64Array(rows * units);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < units; o++) {
        let s = bias[o];
        const w = o * width;
        for (let i = 0; i < width; i++) {
          const v = weight[w + i];
          if (v !== 0) s += v * act[r * width + i];
        }
        out[r * units + o] = li < dense.length - 1 ? Math.max(0, s) : s;
      }
    }
    act = out;
    width = units;
  });
  let maxDiff = 0;
  let scale = 1e-6;
  for (let k = 0; k < act.length; k++) {
    maxDiff = Math.max(maxDiff, Math.abs(act[k] - got[k]));
    scale = Math.max(scale, Math.abs(act[k]));
  }
  return maxDiff / scale;
}

interface Entry {
  sparsity: number;
  model: Sequential;
  seconds: number[];
}

function label(sparsity: number): string {
  return sparsity === 0 ? 'dense' : `${Math.round(sparsity * 100)}%`;
}

export async function runSparseTrainBench(opts: SparseTrainBenchOptions = {}): Promise<BenchResult[]> {
  const quick = opts.quick ?? false;
  const log = opts.log ?? ((s: string) => console.log(s));
  const repeats = opts.repeats ?? (quick ? 3 : 2);
  const rt = runtime();
  const { train, note } = loadData(quick);
  const scale = EPOCH_SAMPLES / train.n;
  const extrapolated = train.n < EPOCH_SAMPLES;
  log(`sparse-epoch: mlp ${NET.join('-')} relu, batch ${BATCH}, sgd lr 0.01 momentum 0.9, ${rt.simd}, ${rt.threads} threads`);
  log(`  data: ${note}`);
  if (extrapolated) {
    log(`  each timed epoch covers ${train.n} samples; epoch times below are EXTRAPOLATED x${scale.toFixed(2)} to a ${EPOCH_SAMPLES}-sample epoch`);
  }

  const entries: Entry[] = [];
  for (const sparsity of SPARSITIES) {
    const t0 = Date.now();
    const model = buildModel(sparsity);
    const err = await checkForward(model, train.x, 4);
    const formats = denseLayers(model).map((l) => `${l.format} ${l.density.toFixed(3)}`).join(', ');
    log(`  built ${label(sparsity)} in ${((Date.now() - t0) / 1000).toFixed(1)} s: layers ${formats}; forward vs JS reference: rel err ${err.toExponential(1)}`);
    if (!(err < 1e-3)) throw new Error(`sparse-epoch: ${label(sparsity)} forward pass differs from the reference (rel err ${err})`);
    // Warm-up: a few steps (first-touch of buffers, thread pool, format checks).
    const warm = Math.min(train.n, WARMUP_STEPS * BATCH);
    await model.fit(train.x.subarray(0, warm * NET[0]), train.y.subarray(0, warm), { epochs: 1, batchSize: BATCH, shuffle: false });
    entries.push({ sparsity, model, seconds: [] });
  }

  for (let rep = 0; rep < repeats; rep++) {
    for (const e of entries) {
      const h = await e.model.fit(train.x, train.y, { epochs: 1, batchSize: BATCH, shuffle: true });
      e.seconds.push(h.history.seconds[0]);
    }
    log(`  round ${rep + 1}/${repeats}: ` +
      entries.map((e) => `${label(e.sparsity)} ${(e.seconds[rep] * scale).toFixed(2)} s`).join(', ') + (extrapolated ? ' (extrapolated)' : ''));
  }

  const denseEpoch = median(entries[0].seconds) * scale;
  const steps = Math.ceil(EPOCH_SAMPLES / BATCH);
  const results: BenchResult[] = entries.map((e) => {
    const epoch = median(e.seconds) * scale;
    const dl = denseLayers(e.model);
    return {
      bench: 'sparse-epoch',
      impl: 'neuroplastic',
      shape: NET.join('-'),
      sparsity: e.sparsity,
      batch: BATCH,
      threads: rt.threads,
      simd: rt.simd,
      median_ms: epoch * 1000,
      gflops: (stepFlops(e.model, BATCH) * steps) / epoch / 1e9,
      ratio_to: { dense: denseEpoch / epoch },
      epoch_s: epoch,
      samples_per_s: train.n / median(e.seconds),
      ms_per_step: (epoch * 1000) / steps,
      epoch_samples: EPOCH_SAMPLES,
      measured_samples: train.n,
      extrapolated,
      repeats: e.seconds.length,
      epoch_s_all: e.seconds.map((s) => s * scale),
      nnz: dl.reduce((s, l) => s + l.nnz, 0),
      layer_formats: dl.map((l) => l.format),
      layer_density: dl.map((l) => l.density),
      data: note,
    };
  });
  log(formatSparseTrainTable(results));
  for (const [s, target] of [[0.9, 5], [0.99, 25]] as const) {
    const r = results.find((x) => x.sparsity === s);
    if (r) {
      const got = r.ratio_to.dense;
      log(`  target ${label(s)}: >= ${target}x faster than dense: ${got.toFixed(1)}x ${got >= target ? 'MET' : 'NOT MET'}`);
    }
  }
  return results;
}

export function formatSparseTrainTable(results: BenchResult[]): string {
  const rows = results.map((r) => [
    label(r.sparsity),
    (r.layer_formats as string[]).join('/'),
    String(r.nnz),
    `${(r.epoch_s as number).toFixed(2)}${r.extrapolated ? '*' : ''}`,
    (r.ms_per_step as number).toFixed(2),
    (r.samples_per_s as number).toFixed(0),
    r.gflops.toFixed(1),
    r.sparsity === 0 ? '1.0x' : `${r.ratio_to.dense.toFixed(1)}x`,
  ]);
  const table = formatTable(['sparsity', 'formats', 'nnz', 'epoch s', 'ms/step', 'samples/s', 'GFLOP/s', 'vs dense'], rows);
  const extrapolated = results.some((r) => r.extrapolated);
  return table + (extrapolated ? '\n  * extrapolated from a slice to a 60,000-sample epoch (quick mode / fallback data), not measured' : '');
}

// Standalone: node --import tsx bench/sparse_train.ts [--quick]
if (require.main === module) {
  runSparseTrainBench({ quick: process.argv.includes('--quick') }).catch((err: unknown) => {
    console.error(err instanceof Error ? err.stack : err);
    process.exit(1);
  });
}
