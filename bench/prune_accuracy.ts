// Accuracy under compression: LeNet-300-100 on Fashion-MNIST, trained dense and
// trained with gradual magnitude pruning (Zhu & Gupta; global scope) to 4x ... 60x
// fewer weights, all with the same seed, optimizer and number of epochs. Reports
// test accuracy, the change against dense in percentage points, nnz and the
// compression reached (all weights / stored weights; biases not counted).
//
// The anchor (Han et al. 2015, "Learning both Weights and Connections"):
// LeNet-300-100 pruned 12x on MNIST without loss of accuracy.
//
//   node --import tsx bench/main.ts --accuracy [--quick]
//   node --import tsx bench/prune_accuracy.ts [--quick]  (this bench alone)
import { Sequential, data, layers, optimizers, plasticity, runtime, type Dataset } from '../lib/index';
import { DenseLayer } from '../lib/layers';
import { formatTable, median, type BenchResult } from './types';

export interface PruneAccuracyBenchOptions {
  quick?: boolean;
  /** Epochs of every run (default 20; quick: 3). */
  epochs?: number;
  /** Compression targets (default 4, 8, 12, 16, 25, 40, 60). */
  targets?: number[];
  /** SGD learning rate of every run (default 0.05). */
  learningRate?: number;
  log?: (line: string) => void;
}

const NET = [784, 300, 100, 10];
const BATCH = 64;
const LR = 0.05;
const MOMENTUM = 0.9;
const SEED = 1;
const TARGETS = [4, 8, 12, 16, 25, 40, 60];
/** The schedule, as fractions of the run's steps: prune from 10% to 60%, every 1%; the rest fine-tunes. */
const START = 0.1;
const END = 0.6;
const EVERY = 0.01;

function loadData(quick: boolean): { train: Dataset; test: Dataset; note: string } {
  try {
    const { train, test } = data.loadFashionMnistSplits();
    return { train, test, note: `fashion-mnist (${train.n} train / ${test.n} test)` };
  } catch (err) {
    const { train, test } = data.loadMnistSplits();
    return {
      train,
      test,
      note: `bundled MNIST (${train.n} train / ${test.n} test): Fashion-MNIST not found (${(err as Error).message.split(':').pop()!.trim()})`,
    };
  }
}

function buildModel(lr: number): Sequential {
  const model = new Sequential({ inputSize: NET[0], seed: SEED, name: 'lenet-300-100' });
  for (let l = 1; l < NET.length - 1; l++) model.add(layers.dense({ units: NET[l], activation: 'relu' }));
  model.add(layers.dense({ units: NET[NET.length - 1] }));
  model.compile({ optimizer: optimizers.sgd({ learningRate: lr, momentum: MOMENTUM }), loss: 'softmaxCrossEntropy' });
  return model;
}

const TOTAL_WEIGHTS = NET.slice(1).reduce((s, n, i) => s + n * NET[i], 0);

interface Run {
  target: number;
  sparsity: number;
  accuracy: number;
  loss: number;
  nnz: number;
  compression: number;
  formats: string[];
  densities: number[];
  epochSeconds: number[];
  schedule?: { startStep: number; endStep: number; every: number };
}

async function trainOnce(train: Dataset, test: Dataset, epochs: number, target: number, lr: number): Promise<Run> {
  const model = buildModel(lr);
  const sparsity = target > 1 ? 1 - 1 / target : 0;
  const steps = epochs * Math.ceil(train.n / BATCH);
  let schedule: Run['schedule'];
  const callbacks = [];
  if (sparsity > 0) {
    const startStep = Math.round(START * steps);
    schedule = { startStep, endStep: Math.max(startStep + 1, Math.round(END * steps)), every: Math.max(1, Math.round(EVERY * steps)) };
    callbacks.push(plasticity.gradualMagnitude({ finalSparsity: sparsity, ...schedule, scope: 'global' }));
  }
  const history = await model.fit(train.x, train.y, { epochs, batchSize: BATCH, shuffle: true, callbacks });
  const evaluation = await model.evaluate(test.x, test.y);
  const dense = model.layers.filter((l): l is DenseLayer => l instanceof DenseLayer);
  const nnz = dense.reduce((s, l) => s + l.nnz, 0);
  return {
    target,
    sparsity,
    accuracy: evaluation.accuracy,
    loss: evaluation.loss,
    nnz,
    compression: TOTAL_WEIGHTS / nnz,
    formats: dense.map((l) => l.format),
    densities: dense.map((l) => l.density),
    epochSeconds: history.history.seconds,
    schedule,
  };
}

export async function runPruneAccuracyBench(opts: PruneAccuracyBenchOptions = {}): Promise<BenchResult[]> {
  const quick = opts.quick ?? false;
  const log = opts.log ?? ((s: string) => console.log(s));
  const epochs = opts.epochs ?? (quick ? 3 : 20);
  const targets = opts.targets ?? TARGETS;
  const lr = opts.learningRate ?? LR;
  const rt = runtime();
  const { train, test, note } = loadData(quick);
  log(`prune-accuracy: LeNet-${NET.slice(1, -1).join('-')} (${NET.join('-')}, relu), ${note}`);
  log(`  sgd lr ${lr} momentum ${MOMENTUM}, batch ${BATCH}, ${epochs} epochs per run, seed ${SEED}; ` +
    `gradual magnitude pruning (global) from ${START * 100}% to ${END * 100}% of the steps every ${EVERY * 100}%; ` +
    `${rt.simd}, ${rt.threads} threads${quick ? '; --quick: few epochs, not the figures to quote' : ''}`);

  const runs: Run[] = [];
  for (const target of [1, ...targets]) {
    const t0 = Date.now();
    const r = await trainOnce(train, test, epochs, target, lr);
    runs.push(r);
    log(`  ${target === 1 ? 'dense' : `${target}x`.padStart(5)}: accuracy ${(r.accuracy * 100).toFixed(2)}%  ` +
      `nnz ${r.nnz}  compression ${r.compression.toFixed(1)}x  layers ${r.formats.map((f, i) => `${f} ${r.densities[i].toFixed(3)}`).join(', ')}  ` +
      `(${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
  const base = runs[0];
  const results: BenchResult[] = runs.map((r) => ({
    bench: 'prune-accuracy',
    impl: 'neuroplastic',
    shape: NET.join('-'),
    sparsity: 1 - r.nnz / TOTAL_WEIGHTS,
    batch: BATCH,
    threads: rt.threads,
    simd: rt.simd,
    // Not a speed benchmark: the median training time of one epoch, for the record.
    median_ms: median(r.epochSeconds) * 1000,
    gflops: 0,
    ratio_to: {},
    accuracy: r.accuracy,
    delta_points: (r.accuracy - base.accuracy) * 100,
    compression: r.compression,
    target_compression: r.target,
    target_sparsity: r.sparsity,
    nnz: r.nnz,
    test_loss: r.loss,
    epochs,
    layer_formats: r.formats,
    layer_density: r.densities,
    ...(r.schedule ? { schedule: r.schedule } : {}),
    data: note,
    seed: SEED,
    learning_rate: lr,
  }));
  log(formatPruneAccuracyTable(results));
  for (const line of pruneAccuracyVerdict(results)) log(line);
  return results;
}

export function formatPruneAccuracyTable(results: BenchResult[]): string {
  const rows = results.map((r) => [
    r.target_compression === 1 ? 'dense' : `${String(r.target_compression)}x`,
    `${(r.compression as number).toFixed(1)}x`,
    String(r.nnz),
    r.sparsity.toFixed(4),
    `${((r.accuracy as number) * 100).toFixed(2)}%`,
    r.target_compression === 1 ? '-' : `${(r.delta_points as number) >= 0 ? '+' : ''}${(r.delta_points as number).toFixed(2)}`,
    (r.layer_density as number[]).map((d) => d.toFixed(3)).join('/'),
  ]);
  return formatTable(['target', 'compression', 'nnz', 'sparsity', 'test acc', 'delta pts', 'layer density'], rows);
}

export function pruneAccuracyVerdict(results: BenchResult[]): string[] {
  const pruned = results.filter((r) => r.target_compression !== 1);
  const within1 = pruned.filter((r) => (r.delta_points as number) >= -1);
  const best = within1.reduce<BenchResult | undefined>((b, r) => (!b || (r.compression as number) > (b.compression as number) ? r : b), undefined);
  const lines = [
    best
      ? `  largest compression within 1 point of dense: ${(best.compression as number).toFixed(1)}x (delta ${(best.delta_points as number).toFixed(2)} points)`
      : '  no pruned run is within 1 point of dense',
  ];
  const r12 = pruned.find((r) => r.target_compression === 12);
  if (r12) {
    const d = r12.delta_points as number;
    lines.push(`  12x (Han et al. 2015 anchor) within 0.3 points of dense: ${d >= -0.3 ? 'yes' : 'no'} (delta ${d.toFixed(2)} points)`);
  }
  return lines;
}

// Standalone: node --import tsx bench/prune_accuracy.ts [--quick] [--lr X]
if (require.main === module) {
  const i = process.argv.indexOf('--lr');
  const learningRate = i > 0 ? Number(process.argv[i + 1]) : undefined;
  if (learningRate !== undefined && !(learningRate > 0)) {
    console.error(`--lr must be a positive number, got ${process.argv[i + 1]}`);
    process.exit(2);
  }
  runPruneAccuracyBench({ quick: process.argv.includes('--quick'), learningRate }).catch((err: unknown) => {
    console.error(err instanceof Error ? err.stack : err);
    process.exit(1);
  });
}
