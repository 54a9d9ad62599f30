// What a cuda model's host half (lib/cuda_model.ts) spends on the CPU, with
// no GPU involved, to keep up with the device: 784-4096-4096-10 with Adam
// (20.0M weights, three numbers each).
//
//   pull    the device's numbers into the host model: a whole-state import
//           (exportState + replace the numbers + importState, the old way)
//           against setValues (numbers written in place)
//   follow  the bookkeeping around one structural change followed on the
//           device, for a decision that reads the weights: before / after
//           whole-state exports and an import of the device's weights (the
//           old way) against structure-only exports (exportState([])) and
//           setValues with the weights alone
//   decide  a 10% global magnitude prune: the host taking the device's
//           weights (setValues) and ranking them itself, against applying
//           the drop bits the device sends (a GPU model's path since the
//           device ranks its own weights; the bits come from the host here)
//   grow    a net2wider growth of 64 units in the first hidden layer, host
//           side in full: the host taking the device's weights, growing, and
//           exporting the two changed layers' values (weights and slots) for
//           the upload (the old way), against growing and reading the split
//           (the device copies its own rows and columns). The bytes that no
//           longer cross PCIe are printed, not timed.
// The numbers stand in for the device's (an export of the same model): the
// host-side cost is the same, since the device's copy itself is not timed.
// Both ways run interleaved in one process; medians and their ratio.
//
//   node --import tsx bench/host_sync.ts [--quick] [--json]
import { Sequential, layers, optimizers } from '../lib/index';
import type { NativeState } from '../lib/native';

const SHAPE = [784, 4096, 4096, 10];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function time(fn: () => unknown): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** The numbers of a state, as the device's exportState gives them (withMoments false: weights, biases and statistics). */
function deviceNumbers(s: NativeState, withMoments: boolean) {
  return {
    step: s.step,
    layers: s.layers.map((l) => ({
      weight: l.weight, weightMoments: withMoments ? l.weightMoments : [], bias: l.bias, biasMoments: withMoments ? l.biasMoments : [],
      meanAbsActivation: l.meanAbsActivation, meanActivation: l.meanActivation, taylor: l.taylor, statsUpdates: l.statsUpdates,
    })),
  };
}

export interface HostSyncRow {
  bench: 'host-sync';
  op: 'pull' | 'follow' | 'decide' | 'grow';
  impl: 'whole-state' | 'in-place' | 'host-ranks' | 'device-bits' | 'host-values' | 'device-copies';
  shape: string;
  median_ms: number;
  reps: number;
}

export function runHostSyncBench(quick: boolean, log: (line: string) => void = () => undefined): HostSyncRow[] {
  const m = new Sequential({ inputSize: SHAPE[0], seed: 1, sparseThreshold: 0 });
  for (const units of SHAPE.slice(1, -1)) m.add(layers.dense({ units, activation: 'relu' }));
  m.add(layers.dense({ units: SHAPE[SHAPE.length - 1] }));
  m.compile({ optimizer: optimizers.adam(), loss: 'softmaxCrossEntropy' });
  const host = m.native;
  const device = host.exportState();  // the device's numbers, as they come back
  const all = deviceNumbers(device, true), weights = deviceNumbers(device, false);
  const reps = quick ? 3 : 9;
  const ms = { pullOld: [] as number[], pullNew: [] as number[], followOld: [] as number[], followNew: [] as number[],
    rank: [] as number[], bits: [] as number[], growOld: [] as number[], growNew: [] as number[] };
  const GROWN = 64;
  const dense = [0, 1, 2];
  const plan = host.planMagnitudeDrops('prune', dense, 0.1, true);
  const drops = host.magnitudeDrops(dense, plan);  // what the device would send
  for (let r = 0; r < reps; r++) {
    ms.pullOld.push(time(() => {
      const s = host.exportState();
      s.layers.forEach((l, i) => Object.assign(l, all.layers[i]));
      host.importState(s);
    }));
    ms.pullNew.push(time(() => host.setValues(all)));
    // The change itself (on the host) is the same either way and not timed.
    ms.followOld.push(time(() => {
      const before = host.exportState();
      before.layers.forEach((l, i) => Object.assign(l, { weight: weights.layers[i].weight, bias: weights.layers[i].bias }));
      host.importState(before);
      host.exportState();  // after the change
    }));
    ms.followNew.push(time(() => {
      host.exportState([]);
      host.setValues(weights);
      host.exportState([]);
    }));
    // Each prune starts from the unpruned model (put back untimed).
    ms.rank.push(time(() => {
      host.setValues(weights);
      host.pruneWeights(dense, 0.1, true);
    }));
    host.importState(device);
    ms.bits.push(time(() => host.pruneWeights(dense, 0.1, true, drops)));
    host.importState(device);
    ms.growOld.push(time(() => {
      host.setValues(weights);
      host.grow(0, GROWN, 'net2wider', 0.1);
      host.exportState([0, 1]);
    }));
    host.importState(device);
    ms.growNew.push(time(() => {
      host.grow(0, GROWN, 'net2wider', 0.1);
      host.lastSplit();
    }));
    host.importState(device);
  }
  const shape = SHAPE.join('-');
  const rows: HostSyncRow[] = [];
  for (const [op, old, now] of [['pull', ms.pullOld, ms.pullNew], ['follow', ms.followOld, ms.followNew]] as const) {
    rows.push({ bench: 'host-sync', op, impl: 'whole-state', shape, median_ms: median(old), reps });
    rows.push({ bench: 'host-sync', op, impl: 'in-place', shape, median_ms: median(now), reps });
    log(`host-sync ${op.padEnd(6)} ${shape} (Adam): whole state ${median(old).toFixed(1)} ms, in place ${median(now).toFixed(1)} ms, ` +
      `${(median(old) / median(now)).toFixed(1)}x (median of ${reps})`);
  }
  rows.push({ bench: 'host-sync', op: 'decide', impl: 'host-ranks', shape, median_ms: median(ms.rank), reps });
  rows.push({ bench: 'host-sync', op: 'decide', impl: 'device-bits', shape, median_ms: median(ms.bits), reps });
  log(`host-sync decide ${shape} (Adam), 10% global magnitude prune: host takes the weights and ranks ${median(ms.rank).toFixed(1)} ms, ` +
    `applies the device's drop bits ${median(ms.bits).toFixed(1)} ms, ${(median(ms.rank) / median(ms.bits)).toFixed(1)}x (median of ${reps})`);
  rows.push({ bench: 'host-sync', op: 'grow', impl: 'host-values', shape, median_ms: median(ms.growOld), reps });
  rows.push({ bench: 'host-sync', op: 'grow', impl: 'device-copies', shape, median_ms: median(ms.growNew), reps });
  // Bytes the old way moved: every weight and bias down, the two grown layers' values and Adam slots up.
  const weightCount = device.layers.reduce((n, l) => n + l.weight.length + l.bias.length, 0);
  const [h0, h1] = [SHAPE[1] + GROWN, SHAPE[2]];
  const upCount = 3 * (h0 * SHAPE[0] + h0 + h1 * h0 + h1);
  log(`host-sync grow   ${shape} (Adam), net2wider +${GROWN} units in layer 0: host takes the weights and sends two layers' values ` +
    `${median(ms.growOld).toFixed(1)} ms, device copies its own ${median(ms.growNew).toFixed(1)} ms, ` +
    `${(median(ms.growOld) / median(ms.growNew)).toFixed(1)}x (median of ${reps}); ` +
    `${((4 * (weightCount + upCount)) / 1e6).toFixed(0)} MB no longer cross PCIe`);
  return rows;
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const rows = runHostSyncBench(argv.includes('--quick'), (s) => console.log(s));
  if (argv.includes('--json')) console.log(JSON.stringify({ results: rows }, null, 2));
}
