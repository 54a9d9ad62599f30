// `npm run test:long`: 10,000 training steps of a small MLP with a structural
// event every 128 steps (neuron pruning, compaction, growth back to size with
// rotating inits, SET drop-and-regrow of connections, weight pruning into CSR
// and back), sampling the process RSS after a warm-up and at the end. Fails
// (exit 1) when RSS grows by more than 1% between the two.
//
//   node --expose-gc --import tsx scripts/long-run.ts [--steps N] [--warmup N] [--json] [--lsan [--addon FILE]]
//
// --lsan re-runs this script (fewer steps by default) in a child process under
// the AddressSanitizer build (build-asan/, see scripts/test-asan.js) with
// LeakSanitizer on, drops the models and collects them before exit, and counts
// only the leak reports with a frame in neuroplastic.node (node and V8 keep
// process-lifetime allocations that LSan reports too).
import { spawnSync, execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Sequential, layers, optimizers, plasticity } from '../lib/index';
import { mulberry32 } from '../lib/data/random';

interface Options {
  steps: number;
  warmup: number;
  json: boolean;
  lsan: boolean;
  addon: string;
  limitPercent: number;
}

function parse(argv: string[]): Options {
  const o: Options = { steps: 10_000, warmup: 1_000, json: false, lsan: false, addon: path.resolve(__dirname, '..', 'build-asan', 'Release', 'neuroplastic.node'), limitPercent: 1 };
  let stepsGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isSafeInteger(v) || v < 0) throw new Error(`long-run: ${a} needs a non-negative integer`);
      return v;
    };
    if (a === '--steps') {
      o.steps = num();
      stepsGiven = true;
    } else if (a === '--warmup') o.warmup = num();
    else if (a === '--json') o.json = true;
    else if (a === '--lsan') o.lsan = true;
    else if (a === '--addon') o.addon = path.resolve(argv[++i]);
    else if (a === '--limit') o.limitPercent = Number(argv[++i]);
    else throw new Error(`long-run: unknown argument ${a}`);
  }
  if (o.lsan && !stepsGiven) o.steps = 2_000;
  if (o.warmup >= o.steps) o.warmup = Math.floor(o.steps / 10);
  return o;
}

const gc = (globalThis as { gc?: () => void }).gc;

async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setImmediate(r));
  }
}

/** RSS in bytes: the median of 5 samples after collecting garbage. */
async function sampleRss(): Promise<{ rss: number; heapUsed: number; external: number; arrayBuffers: number }> {
  await settle();
  const xs: number[] = [];
  for (let i = 0; i < 5; i++) {
    xs.push(process.memoryUsage.rss());
    await new Promise((r) => setTimeout(r, 5));
  }
  xs.sort((a, b) => a - b);
  const m = process.memoryUsage();
  return { rss: xs[2], heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers };
}

function makeData(n: number, inputs: number, classes: number, seed: number) {
  const rnd = mulberry32(seed);
  const x = new Float32Array(n * inputs);
  for (let i = 0; i < x.length; i++) x[i] = rnd() * 2 - 1;
  // Labels from a fixed random linear teacher, so there is something to learn.
  const w = Float32Array.from({ length: inputs * classes }, () => rnd() * 2 - 1);
  const y = new Int32Array(n);
  for (let s = 0; s < n; s++) {
    let best = 0;
    let bestV = -Infinity;
    for (let c = 0; c < classes; c++) {
      let v = 0;
      for (let k = 0; k < inputs; k++) v += x[s * inputs + k] * w[k * classes + c];
      if (v > bestV) {
        bestV = v;
        best = c;
      }
    }
    y[s] = best;
  }
  return { x, y };
}

interface RunResult {
  steps: number;
  structuralEvents: number;
  eventsByKind: Record<string, number>;
  growAvailable: boolean;
  rssWarm: number;
  rssEnd: number;
  rssGrowthPercent: number;
  rssSlopeBytesPerStep: number;
  rssMin: number;
  rssMax: number;
  samples: number;
  heapWarm: number;
  heapEnd: number;
  externalWarm: number;
  externalEnd: number;
  finalLoss: number;
  finalAccuracy: number;
  seconds: number;
}

async function train(o: Options): Promise<RunResult> {
  const started = Date.now();
  const inputs = 32;
  const classes = 10;
  const hiddenSize = 64;
  const { x, y } = makeData(2048, inputs, classes, 7);
  const xv = x.subarray(0, 256 * inputs);
  const yv = y.subarray(0, 256);
  let model: Sequential | null = new Sequential({ inputSize: inputs, seed: 3 });
  model.add(layers.dense({ units: hiddenSize, activation: 'relu' }));
  model.add(layers.dropout({ rate: 0.1 }));
  model.add(layers.dense({ units: hiddenSize, activation: 'tanh' }));
  model.add(layers.dense({ units: classes }));
  model.compile({ optimizer: optimizers.adam({ learningRate: 0.003 }), loss: 'softmaxCrossEntropy' });
  const m = model;
  const growAvailable = typeof (m as unknown as { grow?: unknown }).grow === 'function';
  const hidden = [0, 2];
  const criteria = ['l1', 'l2', 'activation', 'taylor', 'random'] as const;
  const inits = ['zero', 'net2wider', 'random', 'gradmax'] as const;
  let cycle = 0;

  // One structural change every 128 steps, at a step boundary (fit callback).
  const structural = {
    nextStep: (step: number) => (Math.floor(step / 128) + 1) * 128,
    onBatchEnd: undefined,
    onStep: async () => {
      const layer = hidden[cycle % 2];
      const kind = cycle % 8;
      if (kind < 6) {
        m.prune({ structure: 'neuron', layer, amount: 0.25, criterion: criteria[cycle % criteria.length] });
        m.compact();
        if (growAvailable) {
          const missing = hiddenSize - (m.layers[layer] as { units: number }).units;
          const init = inits[cycle % inits.length];
          if (missing > 0) {
            (m as unknown as { grow(o: object): unknown }).grow({
              layer,
              count: missing,
              init,
              ...(init === 'gradmax' ? { data: [x.subarray(0, 64 * inputs), y.subarray(0, 64)] } : {}),
            });
          }
        }
      } else if (kind === 6) {
        m.prune({ amount: 0.6, scope: 'global' }); // weights: layers fall below the CSR threshold
        m.compact();
      } else {
        // Back to dense storage: densify the CSR layers (setWeights of the dense view).
        for (const l of m.layers) {
          if (l.kind === 'dense' && l.format === 'csr') l.setWeights({ weight: l.getWeights().weight });
        }
      }
      cycle++;
    },
  };
  // Whether the model's callback protocol knows onStep: plasticity schedules use it.
  const callbacks: object[] = [adaptStepHook(structural)];
  try {
    callbacks.push(plasticity.set({ sparsity: 0.3, dropFraction: 0.2, every: 200, layers: [3] }));
  } catch (err) {
    console.error(`long-run: plasticity.set unavailable (${(err as Error).message}); continuing without SET`);
  }

  // RSS is sampled (after a GC) every `sampleEvery` steps once warm; the
  // growth compares the median of the first 5 samples with that of the last 5,
  // so one noisy sample (allocator, JIT) cannot decide the result.
  const sampleEvery = Math.max(64, Math.floor((o.steps - o.warmup) / 40));
  const samples: { step: number; rss: number; heapUsed: number; external: number }[] = [];
  let nextSample = o.warmup;
  while (m.step < o.steps) {
    const remaining = o.steps - m.step;
    const chunk = Math.min(remaining, 2048 / 32, Math.max(1, nextSample - m.step));
    await m.fit(x.subarray(0, chunk * 32 * inputs), y.subarray(0, chunk * 32), { epochs: 1, batchSize: 32, callbacks: callbacks as never });
    if (m.step >= nextSample) {
      const r = await sampleRss();
      samples.push({ step: m.step, rss: r.rss, heapUsed: r.heapUsed, external: r.external });
      nextSample += sampleEvery;
    }
  }
  const last = await m.evaluate(xv, yv);
  const events = m.events;
  const byKind: Record<string, number> = {};
  for (const e of events) byKind[e.kind] = (byKind[e.kind] ?? 0) + 1;
  const end = await sampleRss();
  samples.push({ step: m.step, rss: end.rss, heapUsed: end.heapUsed, external: end.external });
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const k = Math.min(5, Math.max(1, Math.floor(samples.length / 4)));
  const first = samples.slice(0, k);
  const lastK = samples.slice(-k);
  const warm = { rss: median(first.map((s) => s.rss)), heapUsed: median(first.map((s) => s.heapUsed)), external: median(first.map((s) => s.external)) };
  const fin = { rss: median(lastK.map((s) => s.rss)), heapUsed: median(lastK.map((s) => s.heapUsed)), external: median(lastK.map((s) => s.external)) };
  // Least-squares slope of RSS over steps (bytes per step), for the report.
  const n = samples.length;
  const mx = samples.reduce((a, s) => a + s.step, 0) / n;
  const my = samples.reduce((a, s) => a + s.rss, 0) / n;
  const sxx = samples.reduce((a, s) => a + (s.step - mx) ** 2, 0);
  const slope = sxx > 0 ? samples.reduce((a, s) => a + (s.step - mx) * (s.rss - my), 0) / sxx : 0;
  const steps = m.step;
  model = null;
  return {
    steps,
    structuralEvents: events.length,
    eventsByKind: byKind,
    growAvailable,
    rssWarm: warm.rss,
    rssEnd: fin.rss,
    rssGrowthPercent: ((fin.rss - warm.rss) / warm.rss) * 100,
    rssSlopeBytesPerStep: slope,
    rssMin: Math.min(...samples.map((s) => s.rss)),
    rssMax: Math.max(...samples.map((s) => s.rss)),
    samples: samples.length,
    heapWarm: warm.heapUsed,
    heapEnd: fin.heapUsed,
    externalWarm: warm.external,
    externalEnd: fin.external,
    finalLoss: last.loss,
    finalAccuracy: last.accuracy,
    seconds: (Date.now() - started) / 1000,
  };
}

/** A callback object whose onStep hook runs at the steps nextStep() names (the plasticity-schedule protocol). */
function adaptStepHook(cb: { nextStep: (s: number) => number; onStep: () => Promise<void>; onBatchEnd?: undefined }): object {
  return { nextStep: cb.nextStep, onStep: cb.onStep };
}

const mb = (b: number) => (b / 1048576).toFixed(1);

function runLsan(o: Options): number {
  const asan = ['g++', 'c++', 'clang++']
    .map((cc) => {
      try {
        return execFileSync(cc, ['-print-file-name=libasan.so'], { encoding: 'utf8' }).trim();
      } catch {
        return '';
      }
    })
    .find((p) => p && path.isAbsolute(p) && fs.existsSync(p));
  if (!asan) throw new Error('long-run --lsan: libasan.so not found (g++ -print-file-name=libasan.so)');
  if (!fs.existsSync(o.addon)) throw new Error(`long-run --lsan: ${o.addon} not found; build it with npm run test:asan (or --addon FILE)`);
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-lsan-'));
  const args = ['--expose-gc', '--import', 'tsx', __filename, '--steps', String(o.steps), '--warmup', String(o.warmup), '--limit', '1e9', '--json'];
  console.log(`long-run --lsan: ${o.steps} steps under ${path.relative(process.cwd(), o.addon)} with LeakSanitizer ...`);
  const r = spawnSync(process.execPath, args, {
    encoding: 'utf8',
    env: {
      ...process.env,
      LD_PRELOAD: asan,
      NEUROPLASTIC_ADDON_PATH: o.addon,
      NEUROPLASTIC_LONG_RUN_CHILD: '1',
      ASAN_OPTIONS: `detect_leaks=1:abort_on_error=0:exitcode=0:allow_user_segv_handler=1:log_path=${path.join(logDir, 'lsan')}`,
      LSAN_OPTIONS: 'report_objects=0:max_leaks=0:print_suppressions=0',
      UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
    },
    maxBuffer: 64 * 1024 * 1024,
  });
  const reports = fs.readdirSync(logDir).map((f) => fs.readFileSync(path.join(logDir, f), 'utf8')).join('\n');
  fs.rmSync(logDir, { recursive: true, force: true });
  // Each leak record: "Direct|Indirect leak of N byte(s) in M object(s) allocated from:" + frames.
  const records = reports.split(/\n(?=(?:Direct|Indirect) leak of )/).filter((b) => /^(Direct|Indirect) leak of/.test(b.trim()));
  const ours = records.filter((b) => /neuroplastic\.node/.test(b));
  const bytes = (list: string[]) => list.reduce((s, b) => s + Number(/leak of (\d+) byte/.exec(b)?.[1] ?? 0), 0);
  const errors = /ERROR: AddressSanitizer(?!: detected memory leaks)|runtime error:/.test(reports + (r.stderr ?? ''));
  console.log(r.stdout.trim().split('\n').filter((l) => !l.startsWith('{')).join('\n'));
  if (r.status !== 0 || r.signal) {
    console.error(`long-run --lsan: the child exited with ${r.signal ?? r.status}\n${(r.stderr ?? '').slice(-4000)}`);
    return 1;
  }
  const summary = {
    lsan: true,
    steps: o.steps,
    leakRecords: records.length,
    leakBytes: bytes(records),
    neuroplasticLeakRecords: ours.length,
    neuroplasticLeakBytes: bytes(ours),
    sanitizerErrors: errors,
  };
  console.log(
    `LeakSanitizer: ${records.length} leak records (${bytes(records)} bytes) in the process; ` +
      `${ours.length} with a frame in neuroplastic.node (${bytes(ours)} bytes); ASan/UBSan errors: ${errors ? 'yes' : 'none'}`,
  );
  for (const b of ours.slice(0, 5)) console.log(b.split('\n').slice(0, 14).join('\n'));
  if (o.json) console.log(JSON.stringify(summary));
  return ours.length === 0 && !errors ? 0 : 1;
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  if (o.lsan) {
    process.exitCode = runLsan(o);
    return;
  }
  if (!gc) console.error('long-run: run with node --expose-gc for stable RSS samples');
  const r = await train(o);
  await settle(); // let the dropped model's finalizer free its native state (LSan child)
  const ok = r.rssGrowthPercent <= o.limitPercent;
  if (!process.env.NEUROPLASTIC_LONG_RUN_CHILD || !o.json) {
    console.log(
      `long-run: ${r.steps} steps, ${r.structuralEvents} structural events (${Object.entries(r.eventsByKind)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}), grow ${r.growAvailable ? 'used' : 'not available'}; ${r.seconds.toFixed(1)} s\n` +
        `  RSS after warm-up ${mb(r.rssWarm)} MB, at the end ${mb(r.rssEnd)} MB: ${r.rssGrowthPercent >= 0 ? '+' : ''}${r.rssGrowthPercent.toFixed(2)}% ` +
        `(limit ${o.limitPercent}%) ${ok ? 'ok' : 'FAIL'}\n` +
        `  ${r.samples} samples from step ${o.warmup}: min ${mb(r.rssMin)} MB, max ${mb(r.rssMax)} MB, trend ${(r.rssSlopeBytesPerStep).toFixed(1)} bytes/step\n` +
        `  JS heap ${mb(r.heapWarm)} -> ${mb(r.heapEnd)} MB, external ${mb(r.externalWarm)} -> ${mb(r.externalEnd)} MB; ` +
        `held-out loss ${r.finalLoss.toFixed(3)}, accuracy ${(r.finalAccuracy * 100).toFixed(1)}%`,
    );
  }
  if (o.json) console.log(JSON.stringify({ ...r, limitPercent: o.limitPercent, ok }));
  process.exitCode = ok ? 0 : 1;
}

main().catch((err) => {
  console.error(err instanceof Error ? err.stack : String(err));
  process.exitCode = 1;
});
