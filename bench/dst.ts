// Dynamic sparse training and structural growth: the figures of the "truly
// sparse" issue.
//
//   growth   time per neuron inserted by model.grow() into a 784-W-10 net,
//            W = 256 .. 16384, init 'zero' and 'net2wider' (target: flat in W,
//            O(fan_in + fan_out) rather than a copy of the layer)
//   gradmax  ms per model.grow({ layer: 0, count: K, init: 'gradmax', data }) into 784-H-H-10
//            relu, H = 1024 and 4096, K = 4 and 16 (a batch of 256): the gradient product, its
//            top singular vectors (orthogonal iteration over the next layer's H x 784 M) and
//            the insertion
//   dst      784-1000-1000-10 on Fashion-MNIST: dense vs SET vs RigL at 90%
//            sparsity (ERK densities, built sparse). Target: accuracy within
//            1 point of dense, epoch time <= 0.3x dense
//   set3000  SET 784-3000-3000-3000-10, epsilon 20, 2 epochs, against the SET
//            reference (numpy/scipy+Cython: ~240 s/epoch, ~0.80 test acc after
//            2 epochs). Target: >= 50x faster per epoch, same accuracy
//   width    784-H-H-10 (epsilon 20) for H = 10k, 100k, 1M: seconds per epoch
//            (EXTRAPOLATED from a fixed number of steps), nnz, model bytes and
//            peak RSS, each width in its own child process
//
//   node --import tsx bench/dst.ts [--quick] [--only growth,gradmax,dst,set3000,width]
//        [--epochs N] [--widths 10000,100000,1000000] [--json FILE]
//   node --import tsx bench/main.ts --dst [--quick]
//
// Quick mode is a smoke test of the harness (fewer insertions, 1 epoch on a
// data slice, fewer steps): its numbers are not to be quoted.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Sequential, data, layers, optimizers, plasticity, runtime, type Callback, type Dataset } from '../lib/index';
import { DenseLayer } from '../lib/layers';
import { formatTable, machineInfo, formatMachine, median, type BenchResult } from './types';

export interface DstBenchOptions {
  quick?: boolean;
  /** Parts to run: 'growth', 'gradmax', 'dst', 'set3000', 'width'. Default all. */
  only?: string[];
  /** Epochs of the dst part (dense / SET / RigL). Default 10 (quick: 1). */
  epochs?: number;
  /** Hidden widths of the width part. Default 10000, 100000, 1000000. */
  widths?: number[];
  log?: (s: string) => void;
}

const PARTS = ['growth', 'gradmax', 'dst', 'set3000', 'width'] as const;
const BATCH = 128;
const SEED = 7;
/** Steps of one Fashion-MNIST epoch at batch 128 (60,000 samples). */
const EPOCH_STEPS = Math.ceil(60_000 / BATCH);
/** SET reference (numpy/scipy + Cython), 784-3000-3000-3000-10, epsilon 20, Fashion-MNIST. */
const REF_SECONDS_PER_EPOCH = 240;
const REF_ACCURACY_2_EPOCHS = 0.8;

function row(partial: Partial<BenchResult> & { bench: string; shape: string }): BenchResult {
  const rt = runtime();
  return {
    impl: 'neuroplastic',
    sparsity: 0,
    batch: BATCH,
    threads: rt.threads,
    simd: rt.simd,
    median_ms: NaN,
    gflops: 0,
    ratio_to: {},
    ...partial,
  } as BenchResult;
}

function denseLayers(model: Sequential): DenseLayer[] {
  return model.layers.filter((l): l is DenseLayer => l instanceof DenseLayer);
}

function modelStats(model: Sequential): { nnz: number; size: number; bytes: number } {
  let nnz = 0;
  let size = 0;
  let bytes = 0;
  for (const l of denseLayers(model)) {
    nnz += l.nnz;
    size += l.units * l.inputs;
    bytes += l.bytes;
  }
  return { nnz, size, bytes };
}

const fmt = (v: number, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '-');
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)}`;

// ---- part 1: growth cost ------------------------------------------------------

async function runGrowth(quick: boolean, log: (s: string) => void): Promise<BenchResult[]> {
  const widths = [256, 1024, 4096, 16384];
  const inserts = quick ? 50 : 200;
  const warmup = 5;
  log(`growth: 784-W-10 relu (dense), model.grow({ layer: 0, count: 1 }) x ${inserts} after ${warmup} warm-up insertions; µs per insertion`);
  log('  mean includes the amortised capacity reallocations; max is the slowest single insertion');
  const results: BenchResult[] = [];
  for (const init of ['zero', 'net2wider'] as const) {
    const medians = new Map<number, number>();
    for (const w of widths) {
      const model = new Sequential({ inputSize: 784, seed: SEED });
      model.add(layers.dense({ units: w, activation: 'relu' }));
      model.add(layers.dense({ units: 10 }));
      model.compile({ optimizer: optimizers.sgd({ learningRate: 0.01, momentum: 0.9 }), loss: 'softmaxCrossEntropy' });
      const probe = new Float32Array(4 * 784).map((_, i) => ((i * 2654435761) % 1000) / 1000);
      const before = await model.predict(probe);
      for (let i = 0; i < warmup; i++) model.grow({ layer: 0, count: 1, init });
      const us: number[] = [];
      for (let i = 0; i < inserts; i++) {
        const t0 = process.hrtime.bigint();
        model.grow({ layer: 0, count: 1, init });
        us.push(Number(process.hrtime.bigint() - t0) / 1e3);
      }
      // Both inits are function-preserving: check it before quoting the time.
      const after = await model.predict(probe);
      let maxDiff = 0;
      let scale = 1e-6;
      for (let k = 0; k < before.length; k++) {
        maxDiff = Math.max(maxDiff, Math.abs(before[k] - after[k]));
        scale = Math.max(scale, Math.abs(before[k]));
      }
      const units = denseLayers(model)[0].units;
      if (units !== w + warmup + inserts) throw new Error(`growth: expected ${w + warmup + inserts} units, got ${units}`);
      if (!(maxDiff / scale < 1e-3)) throw new Error(`growth ${init} W=${w}: outputs changed by ${maxDiff / scale} (rel)`);
      const med = median(us);
      const mean = us.reduce((a, b) => a + b, 0) / us.length;
      medians.set(w, med);
      results.push(
        row({
          bench: 'grow',
          shape: `784-${w}-10`,
          batch: 0,
          median_ms: med / 1e3,
          init,
          insertions: inserts,
          median_us: med,
          mean_us: mean,
          max_us: Math.max(...us),
          output_rel_change: maxDiff / scale,
        }),
      );
    }
    const base = medians.get(widths[0])!;
    for (const r of results) if (r.init === init) r.ratio_to = { [`median_at_w${widths[0]}`]: (r.median_us as number) / base };
  }
  log(
    formatTable(
      ['init', 'width', 'median µs', 'mean µs', 'max µs', 'median / W=256'],
      results.map((r) => [
        String(r.init),
        r.shape.split('-')[1],
        fmt(r.median_us as number, 1),
        fmt(r.mean_us as number, 1),
        fmt(r.max_us as number, 0),
        fmt(Object.values(r.ratio_to)[0], 2),
      ]),
    ),
  );
  for (const init of ['zero', 'net2wider']) {
    const rs = results.filter((r) => r.init === init);
    const ratio = (rs[rs.length - 1].median_us as number) / (rs[0].median_us as number);
    log(`  ${init}: median at W=16384 / median at W=256 = ${fmt(ratio, 2)} (a full copy of the layer would scale ~64x)`);
  }
  return results;
}

// ---- shared: data --------------------------------------------------------------

function loadData(limit?: number): { train: Dataset; test: Dataset } {
  return data.loadFashionMnistSplits(limit ? { limit } : undefined);
}

/**
 * ERK densities for dense layers of shape fanIn x units so the overall
 * density is 1 - sparsity; layers that would exceed 1 are capped and the rest
 * rescaled (the same rule as model.sparsify({ distribution: 'erdos-renyi' })).
 */
export function erkDensities(sizes: number[], sparsity: number): number[] {
  const n = sizes.length - 1;
  const capped = new Array<boolean>(n).fill(false);
  const density = new Array<number>(n).fill(1 - sparsity);
  for (let round = 0; round <= n; round++) {
    let budget = 0;
    let raw = 0;
    for (let l = 0; l < n; l++) {
      const size = sizes[l] * sizes[l + 1];
      budget += (1 - sparsity) * size;
      if (capped[l]) budget -= size;
      else raw += sizes[l] + sizes[l + 1];
    }
    const eps = raw > 0 ? budget / raw : 0;
    let changed = false;
    for (let l = 0; l < n; l++) {
      if (capped[l]) continue;
      const d = (eps * (sizes[l] + sizes[l + 1])) / (sizes[l] * sizes[l + 1]);
      if (d >= 1) {
        capped[l] = true;
        changed = true;
      }
      density[l] = Math.min(1, d);
    }
    if (!changed) break;
    for (let l = 0; l < n; l++) if (capped[l]) density[l] = 1;
  }
  return density;
}

function buildMlp(sizes: number[], densities: number[] | null, seed = SEED): Sequential {
  const model = new Sequential({ inputSize: sizes[0], seed, name: `mlp-${sizes.join('-')}` });
  for (let l = 1; l < sizes.length; l++) {
    const last = l === sizes.length - 1;
    const d = densities ? densities[l - 1] : 1;
    model.add(layers.dense({ units: sizes[l], activation: last ? 'linear' : 'relu', ...(d < 1 ? { density: d } : {}) }));
  }
  return model;
}

// ---- part 2: SET / RigL vs dense ----------------------------------------------

interface DstEntry {
  name: 'dense' | 'set' | 'rigl';
  model: Sequential;
  callbacks: Callback[];
  seconds: number[];
  accuracy: number[];
  structural: number;
}

// ---- part 1b: gradmax growth cost ------------------------------------------------

async function runGradmax(quick: boolean, log: (s: string) => void): Promise<BenchResult[]> {
  const reps = quick ? 1 : 5;
  const n = 256;
  const x = new Float32Array(n * 784).map((_, i) => ((i * 2654435761) % 1000) / 1000 - 0.5);
  const y = new Int32Array(n).map((_, i) => (i * 3) % 10);
  log(`gradmax: 784-H-H-10 relu (dense), model.grow({ layer: 0, count: K, init: 'gradmax', data }) on ${n} samples; ms, median of ${reps}`);
  const results: BenchResult[] = [];
  for (const h of quick ? [1024] : [1024, 4096]) {
    for (const count of [4, 16]) {
      const ms: number[] = [];
      for (let r = 0; r < reps; r++) {
        const model = new Sequential({ inputSize: 784, seed: SEED, sparseThreshold: 0 });
        model.add(layers.dense({ units: h, activation: 'relu' })).add(layers.dense({ units: h, activation: 'relu' })).add(layers.dense({ units: 10 }));
        model.compile({ optimizer: optimizers.adam(), loss: 'softmaxCrossEntropy' });
        const t0 = process.hrtime.bigint();
        model.grow({ layer: 0, count, init: 'gradmax', data: [x, y] });
        ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
        if (denseLayers(model)[0].units !== h + count) throw new Error(`gradmax: expected ${h + count} units`);
      }
      results.push(row({ bench: 'grow', shape: `784-${h}-${h}-10`, batch: n, median_ms: median(ms), init: 'gradmax', insertions: count }));
    }
  }
  log(formatTable(['width', 'units grown', 'median ms'], results.map((r) => [r.shape.split('-')[1], String(r.insertions), fmt(r.median_ms, 1)])));
  return results;
}

async function runDst(quick: boolean, epochsOpt: number | undefined, log: (s: string) => void): Promise<BenchResult[]> {
  const sizes = [784, 1000, 1000, 10];
  const sparsity = 0.9;
  const epochs = epochsOpt ?? (quick ? 1 : 10);
  const { train, test } = loadData(quick ? 6000 : undefined);
  const steps = Math.ceil(train.n / BATCH);
  const total = steps * epochs;
  const lr = 0.02;
  const dens = erkDensities(sizes, sparsity);
  // RigL's update period (Evci et al.: 100 steps); a quick run has too few steps for that.
  const every = quick ? Math.max(1, Math.floor(steps / 4)) : 100;
  log(`dst: ${sizes.join('-')} relu on ${train.name} (${train.n} train / ${test.n} test), batch ${BATCH}, sgd lr ${lr} momentum 0.9, ${epochs} epoch(s), seed ${SEED}`);
  log(`  SET and RigL: built sparse at ${sparsity * 100}% overall with ERK densities [${dens.map((d) => d.toFixed(4)).join(', ')}], drop fraction 0.3`);
  log(`  SET regrows every epoch (${steps} steps, as in Mocanu et al.); RigL every ${every} steps until step ${Math.floor(0.75 * total)} (75% of ${total})`);
  log('  epochs are interleaved (dense, SET, RigL, dense, ...); seconds per epoch include the regrowth updates');
  const opt = () => optimizers.sgd({ learningRate: lr, momentum: 0.9 });
  const entries: DstEntry[] = [];
  for (const name of ['dense', 'set', 'rigl'] as const) {
    const model = buildMlp(sizes, name === 'dense' ? null : dens);
    model.compile({ optimizer: opt(), loss: 'softmaxCrossEntropy' });
    const entry = { name, model, callbacks: [] as Callback[], seconds: [] as number[], accuracy: [] as number[], structural: 0 };
    const counter: Callback = { onStructure: () => void entry.structural++ };
    const callbacks: Callback[] =
      name === 'set'
        ? [plasticity.set({ dropFraction: 0.3, every: steps })]
        : name === 'rigl'
          ? [plasticity.rigl({ dropFraction: 0.3, every, until: Math.floor(0.75 * total) })]
          : [];
    entry.callbacks = [...callbacks, counter];
    const st = modelStats(model);
    log(`  ${name}: nnz ${st.nnz} of ${st.size} (sparsity ${fmt(1 - st.nnz / st.size, 4)}), formats ${denseLayers(model).map((l) => l.format).join('/')}, ${mib(st.bytes)} MiB`);
    entries.push(entry);
  }
  for (let e = 0; e < epochs; e++) {
    for (const en of entries) {
      const h = await en.model.fit(train.x, train.y, { epochs: e + 1, initialEpoch: e, batchSize: BATCH, callbacks: en.callbacks });
      en.seconds.push(h.history.seconds[0]);
      const ev = await en.model.evaluate(test.x, test.y);
      en.accuracy.push(ev.accuracy);
      log(`    epoch ${e + 1} ${en.name.padEnd(5)} ${fmt(h.history.seconds[0], 2)} s  train loss ${fmt(h.history.loss[0], 4)}  test acc ${fmt(ev.accuracy, 4)}`);
    }
  }
  const dense = entries[0];
  const denseSec = median(dense.seconds);
  const denseAcc = dense.accuracy[dense.accuracy.length - 1];
  const results = entries.map((en) => {
    const st = modelStats(en.model);
    const sec = median(en.seconds);
    const acc = en.accuracy[en.accuracy.length - 1];
    return row({
      bench: 'dst',
      impl: en.name === 'dense' ? 'neuroplastic-dense' : `neuroplastic-${en.name}`,
      shape: sizes.join('-'),
      sparsity: 1 - st.nnz / st.size,
      median_ms: (sec * 1000) / steps,
      ratio_to: en.name === 'dense' ? {} : { dense: denseSec / sec },
      method: en.name,
      structural_events: en.structural,
      epochs,
      train_samples: train.n,
      seconds_per_epoch: sec,
      epoch_time_ratio_to_dense: sec / denseSec,
      test_accuracy: acc,
      accuracy_delta_vs_dense: acc - denseAcc,
      accuracy_per_epoch: en.accuracy,
      seconds_per_epoch_all: en.seconds,
      nnz: st.nnz,
      model_bytes: st.bytes,
      extrapolated: false,
    });
  });
  log(
    formatTable(
      ['method', 'sparsity', 'nnz', 'test acc', 'Δ vs dense (pts)', 's/epoch (median)', 'time / dense', 'MiB'],
      results.map((r) => [
        String(r.method),
        fmt(r.sparsity, 3),
        String(r.nnz),
        fmt(r.test_accuracy as number, 4),
        r.method === 'dense' ? '-' : fmt((r.accuracy_delta_vs_dense as number) * 100, 2),
        fmt(r.seconds_per_epoch as number, 2),
        fmt(r.epoch_time_ratio_to_dense as number, 3),
        mib(r.model_bytes as number),
      ]),
    ),
  );
  log(`  structural events during training (regrowth updates): ${entries.map((e) => `${e.name} ${e.structural}`).join(', ')}`);
  log('  targets: Δ >= -1 point, time / dense <= 0.3');
  return results;
}

// ---- part 3: SET at scale vs the reference -------------------------------------

async function runSet3000(quick: boolean, log: (s: string) => void): Promise<BenchResult[]> {
  const sizes = [784, 3000, 3000, 3000, 10];
  const epochs = quick ? 1 : 2;
  const { train, test } = loadData(quick ? 6000 : undefined);
  const steps = Math.ceil(train.n / BATCH);
  const dens = sizes.slice(1).map((u, l) => layers.erdosRenyiDensity(20, sizes[l], u));
  const model = buildMlp(sizes, dens);
  model.compile({ optimizer: optimizers.sgd({ learningRate: 0.01, momentum: 0.9, weightDecay: 0.0002 }), loss: 'softmaxCrossEntropy' });
  const st = modelStats(model);
  log(`set3000: ${sizes.join('-')} relu, epsilon 20 densities [${dens.map((d) => d.toFixed(4)).join(', ')}], nnz ${st.nnz} (${mib(st.bytes)} MiB)`);
  log(`  ${train.name} ${train.n} samples, batch ${BATCH}, sgd lr 0.01 momentum 0.9 weight decay 0.0002, SET drop 0.3 every epoch (${steps} steps), ${epochs} epoch(s)`);
  const seconds: number[] = [];
  const accuracy: number[] = [];
  const set = plasticity.set({ dropFraction: 0.3, every: steps });
  for (let e = 0; e < epochs; e++) {
    const h = await model.fit(train.x, train.y, { epochs: e + 1, initialEpoch: e, batchSize: BATCH, callbacks: [set] });
    seconds.push(h.history.seconds[0]);
    accuracy.push((await model.evaluate(test.x, test.y)).accuracy);
    log(`    epoch ${e + 1}: ${fmt(seconds[e], 2)} s, test acc ${fmt(accuracy[e], 4)}`);
  }
  const scale = quick ? 60_000 / train.n : 1;
  const sec = median(seconds) * scale;
  const speedup = REF_SECONDS_PER_EPOCH / sec;
  log(
    formatTable(
      ['epoch', 's/epoch', 'test acc', 'speed-up vs 240 s ref'],
      seconds.map((s, i) => [String(i + 1), fmt(s * scale, 2) + (quick ? ' (extrap.)' : ''), fmt(accuracy[i], 4), fmt(REF_SECONDS_PER_EPOCH / (s * scale), 1) + 'x']),
    ),
  );
  log(`  reference: ~${REF_SECONDS_PER_EPOCH} s/epoch, ~${REF_ACCURACY_2_EPOCHS} test acc after 2 epochs; targets: speed-up >= 50x (<= 5 s/epoch), accuracy >= reference`);
  return [
    row({
      bench: 'set-scale',
      impl: 'neuroplastic-set',
      shape: sizes.join('-'),
      sparsity: 1 - st.nnz / st.size,
      median_ms: (median(seconds) * 1000) / steps,
      ratio_to: { 'set-reference-numpy': speedup },
      epochs,
      train_samples: train.n,
      seconds_per_epoch: sec,
      seconds_per_epoch_all: seconds.map((s) => s * scale),
      test_accuracy_per_epoch: accuracy,
      reference_seconds_per_epoch: REF_SECONDS_PER_EPOCH,
      reference_accuracy_2_epochs: REF_ACCURACY_2_EPOCHS,
      nnz: st.nnz,
      model_bytes: st.bytes,
      extrapolated: quick,
    }),
  ];
}

// ---- part 4: width ---------------------------------------------------------------

/** Hidden layers of the width part: 784-H-H-10, except 784-H-10 at H >= 1M (one 1M x 1M layer at epsilon 20 took ~51 s per step here). */
let widthDepthOverride: number | undefined;
function widthSizes(h: number): number[] {
  const depth = widthDepthOverride ?? (h >= 1_000_000 ? 1 : 2);
  return [784, ...new Array<number>(depth).fill(h), 10];
}

function widthSteps(h: number, quick: boolean): number {
  const full = h >= 1_000_000 ? 4 : h >= 100_000 ? 10 : 40;
  return quick ? Math.max(2, Math.floor(full / 4)) : full;
}

/** Peak resident set of this process so far (the kernel's high-water mark), bytes. */
function peakRss(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024;
}

/** One width, measured in this process (the child of runWidth). Prints one JSON line prefixed with DSTROW. */
async function widthChild(h: number, quick: boolean): Promise<void> {
  const sizes = widthSizes(h);
  const steps = widthSteps(h, quick);
  const warm = h >= 100_000 ? 1 : 2;
  const dens = sizes.slice(1).map((u, l) => layers.erdosRenyiDensity(20, sizes[l], u));
  // nnz ~ sum density x size; 1M wide would need ~bytes below (measured ~20-30 B per connection plus activations).
  const nnzEst = sizes.slice(1).reduce((a, u, l) => a + dens[l] * u * sizes[l], 0);
  const estBytes = nnzEst * 32 + BATCH * sizes.slice(1).reduce((a, b) => a + b, 0) * 4 * 8;
  const limit = 12 * 2 ** 30;
  if (estBytes > limit) {
    console.log('DSTROW ' + JSON.stringify({ width: h, skipped: `estimated ${mib(estBytes)} MiB > 12 GiB` }));
    return;
  }
  const { train } = loadData((steps + warm) * BATCH);
  let sampled = process.memoryUsage().rss;
  const timer = setInterval(() => {
    sampled = Math.max(sampled, process.memoryUsage().rss);
  }, 20);
  const rssBase = process.memoryUsage().rss;
  const tb = process.hrtime.bigint();
  const model = buildMlp(sizes, dens);
  model.compile({ optimizer: optimizers.sgd({ learningRate: 0.01, momentum: 0.9 }), loss: 'softmaxCrossEntropy' });
  const st0 = modelStats(model); // builds the native model
  const buildSeconds = Number(process.hrtime.bigint() - tb) / 1e9;
  // Warm-up (not timed): first touches of activation buffers and slots.
  await model.fit(train.x.subarray(0, warm * BATCH * 784), train.y.subarray(0, warm * BATCH), { epochs: 1, batchSize: BATCH, shuffle: false });
  // Timed: `steps` steps, then one SET regrowth (what happens once per epoch), timed apart.
  const set = plasticity.set({ dropFraction: 0.3, every: steps });
  let regrowSeconds = 0;
  const stepsEnd = model.step + steps;
  const timedSet: Callback = {
    ...set,
    nextStep: (s: number) => (s < stepsEnd ? stepsEnd : undefined),
    async onStep(s: number, m: unknown) {
      const t0 = process.hrtime.bigint();
      await set.onStep!(s, m);
      regrowSeconds += Number(process.hrtime.bigint() - t0) / 1e9;
    },
  };
  const xs = train.x.subarray(warm * BATCH * 784, (warm + steps) * BATCH * 784);
  const ys = train.y.subarray(warm * BATCH, (warm + steps) * BATCH);
  const t0 = process.hrtime.bigint();
  const hist = await model.fit(xs, ys, { epochs: 1, batchSize: BATCH, shuffle: false, callbacks: [timedSet] });
  const fitSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  clearInterval(timer);
  sampled = Math.max(sampled, process.memoryUsage().rss);
  const st = modelStats(model);
  const stepSeconds = (fitSeconds - regrowSeconds) / steps;
  const out = {
    width: h,
    shape: sizes.join('-'),
    densities: dens,
    nnz: st.nnz,
    nnz_at_build: st0.nnz,
    dense_size: st.size,
    model_bytes: st.bytes,
    bytes_per_connection: st.bytes / st.nnz,
    rss_base: rssBase,
    peak_rss: Math.max(peakRss(), sampled),
    peak_rss_sampled: sampled,
    build_seconds: buildSeconds,
    steps,
    step_seconds: stepSeconds,
    regrow_seconds: regrowSeconds,
    epoch_seconds_extrapolated: stepSeconds * EPOCH_STEPS + regrowSeconds,
    train_loss: hist.history.loss[0],
    formats: denseLayers(model).map((l) => l.format),
  };
  console.log('DSTROW ' + JSON.stringify(out));
}

async function runWidth(quick: boolean, widths: number[], log: (s: string) => void): Promise<BenchResult[]> {
  log(`width: 784-H-H-10 relu (784-H-10 at H >= 1M unless --width-depth 2), epsilon 20 for every layer (output layer capped at density 1), batch ${BATCH}, sgd lr 0.01 momentum 0.9`);
  log(`  each width in its own child process; 1-2 warm-up steps, then N timed steps and one SET regrowth (drop 0.3);`);
  log(`  s/epoch is EXTRAPOLATED: step time x ${EPOCH_STEPS} + one regrowth. peak RSS = VmHWM of the child (includes node + tsx + a small data slice)`);
  const results: BenchResult[] = [];
  const rows: string[][] = [];
  for (const h of widths) {
    const args = ['--import', 'tsx', __filename, '--width-child', String(h), ...(quick ? ['--quick'] : []),
      ...(widthDepthOverride ? ['--width-depth', String(widthDepthOverride)] : [])];
    const r = spawnSync(process.execPath, args, { cwd: path.resolve(__dirname, '..'), encoding: 'utf8', timeout: 300_000, maxBuffer: 1 << 24 });
    const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('DSTROW '));
    if (!line) {
      log(`  H=${h}: child failed (status ${r.status}, signal ${r.signal}): ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);
      continue;
    }
    const o = JSON.parse(line.slice(7));
    log(`  H=${h}: ${o.shape ?? ''}`);
    if (o.skipped) {
      log(`  H=${h}: skipped: ${o.skipped}`);
      continue;
    }
    results.push(
      row({
        bench: 'dst-width',
        impl: 'neuroplastic-set',
        shape: o.shape,
        sparsity: 1 - o.nnz / o.dense_size,
        median_ms: o.step_seconds * 1000,
        gflops: (2 * o.nnz * BATCH * 3) / (o.step_seconds * 1e9),
        ...o,
        extrapolated: true,
      }),
    );
    rows.push([
      o.shape,
      String(o.nnz),
      fmt(1 - o.nnz / o.dense_size, 6),
      String(o.steps),
      fmt(o.step_seconds * 1000, 1),
      fmt(o.regrow_seconds, 2),
      fmt(o.epoch_seconds_extrapolated, 1),
      mib(o.model_bytes),
      fmt(o.bytes_per_connection, 1),
      mib(o.peak_rss),
      fmt((o.peak_rss - o.rss_base) / o.nnz, 1),
      mib((o.dense_size * 4)),
      fmt(o.build_seconds, 1),
    ]);
    log(`  H=${h} done: ${fmt(o.epoch_seconds_extrapolated, 1)} s/epoch (extrapolated), peak RSS ${mib(o.peak_rss)} MiB`);
  }
  log(
    formatTable(
      ['shape', 'nnz', 'sparsity', 'steps', 'ms/step', 'regrow s', 's/epoch (extrap.)', 'model MiB', 'B/conn', 'peak RSS MiB', '(RSS-base)/conn', 'dense fp32 MiB', 'build s'],
      rows,
    ),
  );
  log('  "dense fp32 MiB" is what the weights alone would take stored densely (width squared)');
  return results;
}

// ---- entry points ----------------------------------------------------------------

export async function runDstBench(opts: DstBenchOptions = {}): Promise<BenchResult[]> {
  const quick = opts.quick ?? false;
  const log = opts.log ?? ((s: string) => console.log(s));
  const only = opts.only ?? [...PARTS];
  const bad = only.filter((p) => !(PARTS as readonly string[]).includes(p));
  if (bad.length) throw new RangeError(`dst: unknown part ${bad.join(', ')} (known: ${PARTS.join(', ')})`);
  const rt = runtime();
  log(`dst bench: ${rt.simd}, ${rt.threads} threads${quick ? '; --quick: smoke test, do not quote' : ''}`);
  const results: BenchResult[] = [];
  if (only.includes('growth')) results.push(...(await runGrowth(quick, log)));
  if (only.includes('gradmax')) results.push(...(await runGradmax(quick, log)));
  if (only.includes('dst')) results.push(...(await runDst(quick, opts.epochs, log)));
  if (only.includes('set3000')) results.push(...(await runSet3000(quick, log)));
  if (only.includes('width')) results.push(...(await runWidth(quick, opts.widths ?? [10_000, 100_000, 1_000_000], log)));
  return results;
}

async function cli(argv: string[]): Promise<void> {
  const opts: DstBenchOptions = {};
  let json: string | undefined;
  let child: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new RangeError(`${a} needs a value`);
      return v;
    };
    const ints = (v: string) => {
      const list = v.split(',').map((s) => Number(s.trim()));
      if (list.some((x) => !Number.isInteger(x) || x < 1)) throw new RangeError(`${a}: expected positive integers, got ${v}`);
      return list;
    };
    switch (a) {
      case '--quick': opts.quick = true; break;
      case '--only': opts.only = value().split(',').map((s) => s.trim()); break;
      case '--epochs': opts.epochs = ints(value())[0]; break;
      case '--width':
      case '--widths': opts.widths = ints(value()); break;
      case '--width-depth': widthDepthOverride = ints(value())[0]; break;
      case '--width-child': child = ints(value())[0]; break;
      case '--json': json = value(); break;
      default: throw new RangeError(`unknown option ${a}`);
    }
  }
  if (child !== undefined) return widthChild(child, opts.quick ?? false);
  console.log(formatMachine(machineInfo()));
  const results = await runDstBench(opts);
  if (json) {
    fs.mkdirSync(path.dirname(path.resolve(json)), { recursive: true });
    fs.writeFileSync(json, JSON.stringify({ machine: machineInfo(), results }, null, 2) + '\n');
    console.log(`wrote ${json} (${results.length} results)`);
  }
}

if (require.main === module) {
  cli(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.stack : err);
    process.exit(1);
  });
}
