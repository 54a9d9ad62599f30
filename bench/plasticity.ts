// Loss of plasticity, scaled down from Dohare et al. (Nature 2024): one MLP
// trained on a long stream of permuted Fashion-MNIST tasks with plain SGD,
// continual backprop, ReDo and the drop-in & out cycle. For each method:
// new-task accuracy (test accuracy on each task right after training on it),
// the mean of the first and the last 5 tasks, and the fraction of dead
// hidden units. Writes the curves into bench/out/plasticity.html.
//
//   node --import tsx bench/plasticity.ts [--quick] [--tasks N] [--epochs N] [--lr X] [--methods sgd,cbp,redo,cycle]
//
// Every method starts from the same initial weights (same seed) and sees the
// same tasks in the same order.
import * as fs from 'fs';
import * as path from 'path';
import { Sequential, data, layers, optimizers, runtime, type TrainTest } from '../lib/index';
import * as continual from '../lib/continual';
import * as report from '../lib/report';
import { formatTable, type BenchResult } from './types';

export const PLASTICITY_METHODS = ['sgd', 'cbp', 'redo', 'cycle'] as const;
export type PlasticityMethod = (typeof PLASTICITY_METHODS)[number];

export interface PlasticityBenchOptions {
  quick?: boolean;
  /** Tasks in the stream (default 60; quick: 6). */
  tasks?: number;
  /** Training samples per task (default 2000; quick 500). */
  trainSamples?: number;
  /** Test samples per task (default 10000, the whole test split: a 2000-sample test moves a task's accuracy by ~1 point; quick 200). */
  testSamples?: number;
  /** Epochs per task (default 5; quick 1). */
  epochs?: number;
  /** SGD learning rate (default 0.01 as in the recipe). */
  learningRate?: number;
  batchSize?: number;
  hidden?: number[];
  methods?: PlasticityMethod[];
  seed?: number;
  /** Where the HTML page goes (default bench/out/plasticity.html; '' for none). */
  html?: string;
  log?: (line: string) => void;
}

export interface PlasticityConfig {
  tasks: number;
  trainSamples: number;
  testSamples: number;
  epochs: number;
  learningRate: number;
  batchSize: number;
  hidden: number[];
  seed: number;
}

function configOf(o: PlasticityBenchOptions): PlasticityConfig {
  const q = o.quick ?? false;
  return {
    tasks: o.tasks ?? (q ? 6 : 60),
    trainSamples: o.trainSamples ?? (q ? 500 : 2000),
    testSamples: o.testSamples ?? (q ? 200 : 10000),
    epochs: o.epochs ?? (q ? 2 : 20),
    learningRate: o.learningRate ?? 0.1,
    batchSize: o.batchSize ?? 16,
    hidden: o.hidden ?? [100, 100],
    seed: o.seed ?? 1,
  };
}

function loadData(): { splits: TrainTest; note: string } {
  try {
    return { splits: data.loadFashionMnistSplits(), note: 'fashion-mnist' };
  } catch (err) {
    return { splits: data.loadMnistSplits(), note: `bundled MNIST (Fashion-MNIST not found: ${(err as Error).message.split(':').pop()!.trim()})` };
  }
}

/** The model every method starts from: same seed, so the same initial weights. */
export function buildMlp(inputs: number, hidden: number[], classes: number, lr: number, seed: number): Sequential {
  const model = new Sequential({ inputSize: inputs, seed, name: `mlp-${[inputs, ...hidden, classes].join('-')}` });
  for (const units of hidden) model.add(layers.dense({ units, activation: 'relu' }));
  model.add(layers.dense({ units: classes }));
  model.compile({ optimizer: optimizers.sgd({ learningRate: lr }), loss: 'softmaxCrossEntropy' });
  return model;
}

export interface MethodRun {
  method: PlasticityMethod;
  result: continual.ContinualResult;
  first5: number;
  last5: number;
  deadFirst: number;
  deadLast: number;
  seconds: number;
}

export async function runPlasticityBench(opts: PlasticityBenchOptions = {}): Promise<BenchResult[]> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const cfg = configOf(opts);
  const methods = opts.methods ?? [...PLASTICITY_METHODS];
  const { splits, note } = loadData();
  const tasks = continual.permuted(splits, cfg.tasks, cfg.seed, { limit: cfg.trainSamples, testLimit: cfg.testSamples });
  const classes = tasks[0].classes;
  const net = [splits.train.features, ...cfg.hidden, classes];
  const stepsPerTask = cfg.epochs * Math.ceil(Math.min(cfg.trainSamples, splits.train.n) / cfg.batchSize);
  const rt = runtime();
  log(`plasticity: ${cfg.tasks} permuted ${note} tasks (${cfg.trainSamples} train / ${cfg.testSamples} test each, ` +
    `${cfg.epochs} epoch(s), ${stepsPerTask} steps per task), mlp ${net.join('-')} relu, sgd lr ${cfg.learningRate} ` +
    `batch ${cfg.batchSize}, seed ${cfg.seed}; ${rt.simd}, ${rt.threads} threads`);

  const runs: MethodRun[] = [];
  for (const method of methods) {
    const model = buildMlp(net[0], cfg.hidden, classes, cfg.learningRate, cfg.seed);
    const callbacks = continual.methodCallbacks(method, model, stepsPerTask);
    const t0 = Date.now();
    const result = await continual.run(model, tasks, {
      epochsPerTask: cfg.epochs,
      batchSize: cfg.batchSize,
      callbacks,
      evaluateOn: 'new',
      onTaskEnd: (info) => {
        if (info.task % 10 === 9 || info.task === cfg.tasks - 1) {
          log(`  ${method.padEnd(5)} task ${String(info.task + 1).padStart(3)}: new-task acc ${info.newTaskAccuracy.toFixed(4)}, ` +
            `dead ${(100 * info.deadUnitFraction).toFixed(1)}%, params ${info.params}`);
        }
      },
    });
    const k = Math.min(5, Math.floor(cfg.tasks / 2)) || 1;
    const p = result.plasticity;
    runs.push({
      method,
      result,
      first5: continual.meanOf(p, 0, k),
      last5: continual.meanOf(p, p.length - k),
      deadFirst: result.deadUnitFraction[0],
      deadLast: result.deadUnitFraction[result.deadUnitFraction.length - 1],
      seconds: (Date.now() - t0) / 1000,
    });
  }

  const k = Math.min(5, Math.floor(cfg.tasks / 2)) || 1;
  log('');
  log(formatTable(
    ['method', `first ${k} acc`, `last ${k} acc`, 'change (pts)', 'dead units (end)', 'params (end)', 'events', 'seconds'],
    runs.map((r) => [
      r.method,
      r.first5.toFixed(4),
      r.last5.toFixed(4),
      ((r.last5 - r.first5) * 100).toFixed(2),
      `${(100 * r.deadLast).toFixed(1)}%`,
      String(r.result.params[r.result.params.length - 1]),
      String(r.result.events.length),
      r.seconds.toFixed(1),
    ]),
  ));

  const html = opts.html ?? path.join(__dirname, 'out', 'plasticity.html');
  if (html) {
    const page = report.renderComparison({
      title: 'Loss of plasticity: permuted Fashion-MNIST',
      subtitle: `${cfg.tasks} tasks x ${cfg.trainSamples} samples, ${cfg.epochs} epoch(s) per task, mlp ${net.join('-')} relu, ` +
        `sgd lr ${cfg.learningRate} batch ${cfg.batchSize}, seed ${cfg.seed}; data: ${note}`,
      runs: runs.map((r) => ({ name: r.method, result: r.result })),
    });
    fs.mkdirSync(path.dirname(html), { recursive: true });
    report.writeFileAtomic(html, page);
    log(`\nwrote ${path.relative(process.cwd(), html) || html}`);
  }

  return runs.map((r) => ({
    bench: 'plasticity',
    impl: 'neuroplastic',
    method: r.method,
    shape: net.join('-'),
    sparsity: 0,
    batch: cfg.batchSize,
    threads: rt.threads,
    simd: rt.simd,
    median_ms: (1000 * r.seconds) / cfg.tasks,
    gflops: NaN,
    ratio_to: {},
    tasks: cfg.tasks,
    epochs_per_task: cfg.epochs,
    train_samples: cfg.trainSamples,
    test_samples: cfg.testSamples,
    learning_rate: cfg.learningRate,
    first5_accuracy: r.first5,
    last5_accuracy: r.last5,
    change_points: (r.last5 - r.first5) * 100,
    dead_unit_fraction_end: r.deadLast,
    new_task_accuracy: r.result.plasticity,
    dead_unit_fraction: r.result.deadUnitFraction,
    params_end: r.result.params[r.result.params.length - 1],
    seconds: r.seconds,
    data: note,
  }));
}

function argValue(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const num = (name: string) => {
    const v = argValue(argv, name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) {
      console.error(`${name} must be a positive number, got ${v}`);
      process.exit(2);
    }
    return n;
  };
  const methods = argValue(argv, '--methods')?.split(',') as PlasticityMethod[] | undefined;
  if (methods && methods.some((m) => !PLASTICITY_METHODS.includes(m))) {
    console.error(`--methods: one or more of ${PLASTICITY_METHODS.join(', ')}`);
    process.exit(2);
  }
  const hidden = argValue(argv, '--hidden')?.split(',').map(Number);
  runPlasticityBench({
    quick: argv.includes('--quick'),
    tasks: num('--tasks'),
    epochs: num('--epochs'),
    learningRate: num('--lr'),
    trainSamples: num('--train-samples'),
    testSamples: num('--test-samples'),
    batchSize: num('--batch-size'),
    seed: num('--seed'),
    hidden,
    methods,
    html: argValue(argv, '--html'),
  })
    .then((rows) => {
      const json = argValue(argv, '--json');
      if (json) fs.writeFileSync(json, JSON.stringify({ results: rows }, null, 1));
    })
    .catch((err: unknown) => {
      console.error(err instanceof Error ? err.stack ?? err.message : String(err));
      process.exit(1);
    });
}
