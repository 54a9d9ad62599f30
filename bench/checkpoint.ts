// Checkpoint speed and size: save() and loadModel() of a ~10M-parameter MLP
// (784-3000-2500-10: 9,882,510 parameters), with SGD (the file holds weights
// only: ~4 bytes per parameter) and with Adam (two moments per weight: ~12).
// Each row reports the median time, MB/s, file bytes and bytes per parameter,
// next to the same bytes written (fsync) and read with plain fs calls in the
// same folder, so "close to disk bandwidth" can be judged on the machine, and
// to the in-memory part (toBuffer / loadModel(Buffer)).
//
//   node --import tsx bench/checkpoint.ts [--quick] [--dir DIR] [--json]
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Sequential, layers, loadModel, optimizers, runtime } from '../lib/index';
import type { BenchResult } from './types';

export interface CheckpointBenchOptions {
  quick?: boolean;
  /** Folder for the files (default: the OS temp folder). */
  dir?: string;
  log?: (line: string) => void;
}

const SHAPE = [784, 3000, 2500, 10];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function time(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function buildModel(optimizer: 'sgd' | 'adam'): Sequential {
  const m = new Sequential({ inputSize: SHAPE[0], seed: 1, name: `checkpoint-${optimizer}` });
  for (let i = 1; i < SHAPE.length - 1; i++) m.add(layers.dense({ units: SHAPE[i], activation: 'relu' }));
  m.add(layers.dense({ units: SHAPE[SHAPE.length - 1] }));
  m.compile({ optimizer: optimizer === 'sgd' ? optimizers.sgd({ learningRate: 0.01 }) : optimizers.adam(), loss: 'softmaxCrossEntropy' });
  return m;
}

async function rawWrite(file: string, data: Buffer): Promise<void> {
  const h = await fs.promises.open(file, 'w');
  try {
    await h.writeFile(data);
    await h.sync();
  } finally {
    await h.close();
  }
}

export async function runCheckpointBench(opts: CheckpointBenchOptions = {}): Promise<BenchResult[]> {
  const log = opts.log ?? (() => undefined);
  const reps = opts.quick ? 3 : 7;
  const dir = fs.mkdtempSync(path.join(opts.dir ?? os.tmpdir(), 'np-ckpt-bench-'));
  const rt = runtime();
  const rows: BenchResult[] = [];
  try {
    for (const optimizer of opts.quick ? (['sgd'] as const) : (['sgd', 'adam'] as const)) {
      const model = buildModel(optimizer);
      const params = model.countParams();
      const file = path.join(dir, `model-${optimizer}.safetensors`);
      const rawFile = path.join(dir, `raw-${optimizer}.bin`);
      await model.save(file); // warm-up (and the file for the load timings)
      const bytes = fs.statSync(file).size;
      const saveMs: number[] = [];
      const loadMs: number[] = [];
      const toBufferMs: number[] = [];
      const fromBufferMs: number[] = [];
      const rawWriteMs: number[] = [];
      const rawReadMs: number[] = [];
      const buffer = model.toBuffer();
      for (let r = 0; r < reps; r++) {
        saveMs.push(await time(() => model.save(file)));
        rawWriteMs.push(await time(() => rawWrite(rawFile, buffer)));
        toBufferMs.push(await time(() => model.toBuffer()));
        loadMs.push(await time(() => loadModel(file)));
        rawReadMs.push(await time(() => fs.promises.readFile(rawFile)));
        fromBufferMs.push(await time(() => loadModel(buffer)));
      }
      // Sanity: a loaded model predicts exactly like the saved one.
      const again = await loadModel(file);
      const x = new Float32Array(2 * SHAPE[0]).map((_, i) => Math.sin(i));
      const [a, b] = [await model.predict(x), await again.predict(x)];
      if (a.some((v, i) => v !== b[i])) throw new Error('checkpoint bench: the loaded model predicts differently');
      fs.rmSync(rawFile, { force: true });
      const shape = SHAPE.join('-');
      const mb = bytes / 1e6;
      const common = {
        bench: 'checkpoint',
        shape,
        sparsity: 0,
        batch: 0,
        threads: rt.threads,
        simd: rt.simd,
        gflops: 0,
        ratio_to: {},
        optimizer,
        params,
        bytes,
        bytes_per_param: bytes / params,
        dir,
        reps,
      };
      const save: BenchResult = {
        ...common,
        impl: 'save',
        median_ms: median(saveMs),
        mb_per_s: mb / (median(saveMs) / 1000),
        raw_ms: median(rawWriteMs),
        raw_mb_per_s: mb / (median(rawWriteMs) / 1000),
        in_memory_ms: median(toBufferMs),
      };
      const load: BenchResult = {
        ...common,
        impl: 'load',
        median_ms: median(loadMs),
        mb_per_s: mb / (median(loadMs) / 1000),
        raw_ms: median(rawReadMs),
        raw_mb_per_s: mb / (median(rawReadMs) / 1000),
        in_memory_ms: median(fromBufferMs),
      };
      rows.push(save, load);
      for (const r of [save, load]) {
        log(
          `checkpoint ${r.impl} ${shape} (${optimizer}, ${params.toLocaleString('en')} params): ${r.median_ms.toFixed(1)} ms, ` +
            `${(r.mb_per_s as number).toFixed(0)} MB/s, ${bytes.toLocaleString('en')} bytes (${(bytes / params).toFixed(3)} bytes/param); ` +
            `plain fs ${r.impl === 'save' ? 'write+fsync' : 'read'} ${(r.raw_ms as number).toFixed(1)} ms (${(r.raw_mb_per_s as number).toFixed(0)} MB/s), ` +
            `in memory ${(r.in_memory_ms as number).toFixed(1)} ms`,
        );
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const dirAt = argv.indexOf('--dir');
  runCheckpointBench({ quick: argv.includes('--quick'), dir: dirAt >= 0 ? argv[dirAt + 1] : undefined, log: (s) => console.log(s) })
    .then((rows) => {
      if (argv.includes('--json')) console.log(JSON.stringify({ results: rows }, null, 2));
    })
    .catch((err) => {
      console.error(err instanceof Error ? err.stack : String(err));
      process.exitCode = 1;
    });
}
