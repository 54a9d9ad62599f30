// The fuzz driver: `node --import tsx test/fuzz/driver.ts <seed> <count>`.
// With a seeded PRNG it makes `count` calls to the public API, most with one
// argument outside its documented domain, and classifies each outcome:
//
//   expect 'reject' (the call is invalid per the documented API):
//     threw / rejected with an Error that has a message  -> ok ("rejected")
//     returned normally                                  -> "silentlyAccepted" (a failure)
//     and for calls on a live model: the model's step, parameter count and
//     event log must be unchanged afterwards             -> else "stateChanged" (a failure)
//   expect 'either' (valid but extreme: 1e38 inputs, batchSize 2^24, a file
//   with flipped data bits, random valid op sequences):
//     threw with a message                               -> ok
//     returned: the result is checked (shape, type)      -> else "badResult" (a failure)
//   anything thrown that is not an Error, or has an empty message -> "badError" (a failure)
//
// Errors from inside JS itself (e.g. "Cannot read properties of undefined")
// are counted as "internalErrors": not a crash, but a sign an argument slipped
// past validation. The parent (test/80.fuzz.test.ts) runs several drivers in
// child processes, so a crash (signal, abort) or a hang is caught there.
// The last line of stdout is the JSON summary; stderr carries one line per
// case ("case <i> <name>") so the parent can name the case that hung or crashed.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Sequential, cuda, layers, loadModel, optimizers } from '../../lib/index';
import { Rng, badValue, goodValue, notAnObject, optionsWith, type Spec } from './values';

type Expect = 'reject' | 'either';
interface Case {
  name: string;
  expect: Expect;
  run: () => unknown;
  /** For 'either' cases that succeed: a problem with the result, or null. */
  check?: (result: unknown) => string | null;
  /** A model whose step / params / events must not change when the call is rejected. */
  model?: Sequential;
}

export interface FuzzSummary {
  seed: number;
  count: number;
  /** Calls invalid per the documented API. */
  invalid: number;
  /** Valid-but-extreme calls. */
  extreme: number;
  rejected: number;
  accepted: number;
  silentlyAccepted: string[];
  badErrors: string[];
  badResults: string[];
  stateChanged: string[];
  internalErrors: string[];
  byCategory: Record<string, { invalid: number; extreme: number; rejected: number }>;
  ms: number;
}

/**
 * The cases that once failed (docs/HARDENING.md, "Fixed"): checkpoint headers
 * that inflated the model before the tensors were checked, CSR row pointers
 * past nnz, and an input buffer detached (transferred) while fit() runs. They
 * are part of the default mix; FUZZ_KNOWN_ISSUES=0 leaves them out.
 */
const KNOWN_ISSUES = process.env.FUZZ_KNOWN_ISSUES !== '0';

const INTERNAL = /Cannot read propert|Cannot convert|is not a function|is not iterable|undefined is not (a|an) |null is not (a|an) |Maximum call stack|Invalid array length|Invalid typed array length|Array buffer allocation failed/;

const DENSE: Record<string, Spec> = {
  units: { kind: 'int', min: 1, max: 1 << 24 },
  activation: { kind: 'oneOf', values: ['relu', 'tanh', 'sigmoid', 'linear'] },
  useBias: { kind: 'bool' },
  kernelInitializer: { kind: 'oneOf', values: ['auto', 'heNormal', 'glorotUniform', 'zeros'] },
  dropConnect: { kind: 'num', min: 0, max: 1, maxEx: true },
  sparseThreshold: { kind: 'num', min: 0, max: 1 },
};
const DROPOUT: Record<string, Spec> = { rate: { kind: 'num', min: 0, max: 1, maxEx: true } };
const SEQUENTIAL: Record<string, Spec> = {
  inputSize: { kind: 'int', min: 1, max: 1 << 26 },
  seed: { kind: 'int', min: 0, max: Number.MAX_SAFE_INTEGER },
  // 'cuda' is valid where a GPU (or, under test:asan, the CUDA emulator's addon) is usable.
  device: { kind: 'oneOf', values: cuda.available() ? ['cpu', 'cuda'] : ['cpu'] },
  sparseThreshold: { kind: 'num', min: 0, max: 1 },
};
const SGD: Record<string, Spec> = {
  learningRate: { kind: 'num', min: 0, max: Infinity, minEx: true },
  momentum: { kind: 'num', min: 0, max: 1, maxEx: true },
  weightDecay: { kind: 'num', min: 0, max: Infinity },
};
const ADAM: Record<string, Spec> = {
  learningRate: { kind: 'num', min: 0, max: Infinity, minEx: true },
  beta1: { kind: 'num', min: 0, max: 1, maxEx: true },
  beta2: { kind: 'num', min: 0, max: 1, maxEx: true },
  epsilon: { kind: 'num', min: 0, max: Infinity, minEx: true },
  weightDecay: { kind: 'num', min: 0, max: Infinity },
  decoupledWeightDecay: { kind: 'bool' },
};
const FIT: Record<string, Spec> = {
  epochs: { kind: 'int', min: 1, max: 2 },
  batchSize: { kind: 'int', min: 1, max: 1 << 24 },
  shuffle: { kind: 'bool' },
};
const EVAL: Record<string, Spec> = { batchSize: { kind: 'int', min: 1, max: 1 << 24 } };

/** A small model and data that fit it, rebuilt every so often. */
interface Fixture {
  model: Sequential;
  inputSize: number;
  outputs: number;
  /** Positions in model.layers: dense hidden, output, dropout (or -1). */
  hidden: number[];
  output: number;
  dropoutAt: number;
  loss: 'softmaxCrossEntropy' | 'meanSquaredError';
  x: Float32Array;
  y: Int32Array | Float32Array;
  n: number;
}

function makeFixture(rng: Rng): Fixture {
  const inputSize = rng.int(1, 6);
  const outputs = rng.int(2, 4);
  const loss = rng.bool(0.8) ? 'softmaxCrossEntropy' : 'meanSquaredError';
  const model = new Sequential({ inputSize, seed: rng.int(0, 1000) });
  const hidden: number[] = [];
  let dropoutAt = -1;
  const depth = rng.int(1, 2);
  for (let d = 0; d < depth; d++) {
    hidden.push(model.layers.length);
    model.add(layers.dense({ units: rng.int(2, 8), activation: rng.pick(['relu', 'tanh', 'sigmoid', 'linear'] as const) }));
    if (rng.bool(0.4)) {
      dropoutAt = model.layers.length;
      model.add(layers.dropout({ rate: 0.25 }));
    }
  }
  const output = model.layers.length;
  model.add(layers.dense({ units: outputs }));
  const opt = rng.bool() ? optimizers.sgd({ learningRate: 0.05, momentum: 0.9 }) : optimizers.adam({ learningRate: 0.01 });
  model.compile({ optimizer: opt, loss });
  const n = rng.int(1, 12);
  const x = new Float32Array(n * inputSize).map(() => rng.float() * 2 - 1);
  const y = loss === 'softmaxCrossEntropy' ? new Int32Array(n).map(() => rng.int(0, outputs - 1)) : new Float32Array(n * outputs).map(() => rng.float());
  return { model, inputSize, outputs, hidden, output, dropoutAt, loss, x, y, n };
}

function detached(length: number): Float32Array {
  const a = new Float32Array(length);
  structuredClone(a.buffer, { transfer: [a.buffer as ArrayBuffer] });
  return a; // length 0 now
}

/** An x that is not a valid n x inputSize Float32Array of finite values. */
function badX(rng: Rng, f: Fixture): unknown {
  const n = f.n;
  const len = n * f.inputSize;
  switch (rng.int(0, 9)) {
    case 0:
      return rng.pick([null, undefined, 0, 'x', {}, [], Array.from(f.x), new ArrayBuffer(len * 4), new DataView(new ArrayBuffer(len * 4))]);
    case 1:
      return rng.pick([new Float64Array(len), new Int32Array(len), new Uint8Array(len), new Int16Array(len), Buffer.alloc(len * 4), new Uint8ClampedArray(len)]);
    case 2:
      return new Float32Array(0);
    case 3:
      return detached(len);
    case 4: {
      if (f.inputSize === 1) return new Float32Array(0);
      return new Float32Array(len + rng.int(1, f.inputSize - 1));
    }
    case 5:
      return f.inputSize === 1 ? detached(len) : new Float32Array(Math.max(1, len - 1));
    default: {
      const x = Float32Array.from(f.x);
      const bad = rng.pick([NaN, Infinity, -Infinity]);
      const k = rng.int(1, Math.min(3, x.length));
      for (let i = 0; i < k; i++) x[rng.int(0, x.length - 1)] = bad;
      return x;
    }
  }
}

/** A y that is invalid for this fixture's loss and n samples. */
function badY(rng: Rng, f: Fixture): unknown {
  const n = f.n;
  if (f.loss === 'meanSquaredError') {
    switch (rng.int(0, 4)) {
      case 0:
        return new Int32Array(n); // labels need softmaxCrossEntropy
      case 1:
        return new Float32Array(n * f.outputs + rng.int(1, 3));
      case 2: {
        const y = Float32Array.from(f.y);
        y[rng.int(0, y.length - 1)] = rng.pick([NaN, Infinity, -Infinity]);
        return y;
      }
      case 3:
        return rng.pick([new Float64Array(n * f.outputs), Array.from(f.y), null, undefined, new Uint16Array(n)]);
      default:
        return new Float32Array(Math.max(0, n * f.outputs - rng.int(1, 2)));
    }
  }
  switch (rng.int(0, 5)) {
    case 0: {
      const y = Int32Array.from(f.y);
      y[rng.int(0, n - 1)] = rng.pick([f.outputs, f.outputs + 1, -1, -(2 ** 31), 2 ** 31 - 1, 1000]);
      return y;
    }
    case 1: {
      const y = Uint8Array.from(f.y);
      y[rng.int(0, n - 1)] = rng.pick([f.outputs, 255, 17]);
      return y;
    }
    case 2:
      return rng.bool() ? new Int32Array(n + rng.int(1, 3)) : new Int32Array(n - 1);
    case 3:
      return rng.pick([new Float64Array(n), new Int8Array(n), new Uint16Array(n), new BigInt64Array(n), Array.from(f.y), null, undefined, 'labels']);
    case 4:
      return new Float32Array(n * f.outputs + 1); // float targets of the wrong size
    default: {
      const y = new Float32Array(n * f.outputs);
      y[rng.int(0, y.length - 1)] = NaN;
      return y;
    }
  }
}

/** x that is valid (finite) but extreme. */
function extremeX(rng: Rng, f: Fixture): Float32Array {
  const v = rng.pick([1e38, -1e38, 3.4e38, -3.4e38, 1e-45, -0, 1e20, 65504]);
  const x = Float32Array.from(f.x);
  const all = rng.bool();
  for (let i = 0; i < x.length; i++) if (all || rng.bool(0.3)) x[i] = v;
  return x;
}

const isF32 = (len: number) => (r: unknown) => (r instanceof Float32Array && r.length === len ? null : `expected Float32Array(${len}), got ${String((r as { length?: number })?.length)}`);
const loadedOk = (r: unknown) => (r ? null : 'the loaded model predicts the wrong number of outputs');
const isEval = (r: unknown) => {
  const e = r as { loss?: unknown; accuracy?: unknown };
  return e && typeof e.loss === 'number' && typeof e.accuracy === 'number' && (e.accuracy as number) >= 0 && (e.accuracy as number) <= 1 ? null : 'not {loss, accuracy}';
};

/** The numbers too: a position-weighted sum of every weight and bias (a rejected call must not change one). */
function checksum(m: Sequential): string {
  let sum = 0;
  let i = 0;
  for (const l of m.layers) {
    if (l.kind !== 'dense') continue;
    const { weight, bias } = (l as ReturnType<typeof layers.dense>).getWeights();
    for (const v of weight) sum += v * (++i % 97);
    for (const v of bias) sum += v * (++i % 97);
  }
  return String(sum);
}

function fingerprint(m: Sequential): string {
  if (!m.isBuilt) return 'unbuilt';
  return `${m.step}/${m.countParams()}/${m.events.length}/${m.layers.map((l) => (l.kind === 'dense' ? `${l.units}:${l.nnz}` : 'd')).join(',')}/${checksum(m)}`;
}

// ---- case generators ----------------------------------------------------------

type Gen = (rng: Rng, f: Fixture, ctx: Ctx) => Case;
interface Ctx {
  tmp: string;
  /** A valid checkpoint of a small model (for truncation and mutation). */
  checkpoint: Buffer;
  checkpointInput: number;
}

/** Renders a bad option's value for a case name. */
function shown(o: Record<string, unknown>, key: string): string {
  if (key === '__unknown__') return 'unknown key';
  const v = o[key];
  if (typeof v === 'symbol' || typeof v === 'function') return `${key}=${typeof v}`;
  if (typeof v === 'bigint') return `${key}=${v}n`;
  let text: string;
  try {
    text = v instanceof Object && !Array.isArray(v) ? (v.constructor?.name ?? 'object') : JSON.stringify(v) ?? String(v);
  } catch {
    text = typeof v;
  }
  if (typeof v === 'number' && !Number.isFinite(v)) text = String(v);
  return `${key}=${text}`;
}

function badKey(rng: Rng, table: Record<string, Spec>): string {
  return rng.bool(0.15) ? '__unknown__' : rng.pick(Object.keys(table));
}

const GENERATORS: Record<string, Gen> = {
  construct: (rng) => {
    if (rng.bool(0.15)) {
      const v = notAnObject(rng);
      return { name: `new Sequential(${typeof v})`, expect: 'reject', run: () => new Sequential(v as never) };
    }
    const key = badKey(rng, SEQUENTIAL);
    const o = optionsWith(rng, SEQUENTIAL, key, key === 'inputSize' ? [] : ['inputSize']);
    return { name: `new Sequential(${shown(o, key)})`, expect: 'reject', run: () => new Sequential(o as never) };
  },
  dense: (rng) => {
    if (rng.bool(0.1)) return { name: 'dense(non-object)', expect: 'reject', run: () => layers.dense(notAnObject(rng) as never) };
    const key = badKey(rng, DENSE);
    const o = optionsWith(rng, DENSE, key, key === 'units' ? [] : ['units']);
    return { name: `dense(${shown(o, key)})`, expect: 'reject', run: () => layers.dense(o as never) };
  },
  dropout: (rng) => {
    const key = badKey(rng, DROPOUT);
    const o = optionsWith(rng, DROPOUT, key, key === 'rate' ? [] : ['rate']);
    return { name: `dropout(${shown(o, key)})`, expect: 'reject', run: () => layers.dropout(o as never) };
  },
  optimizer: (rng) => {
    const isSgd = rng.bool();
    const table = isSgd ? SGD : ADAM;
    if (rng.bool(0.1)) {
      const v = notAnObject(rng);
      return { name: 'optimizer(non-object)', expect: 'reject', run: () => (isSgd ? optimizers.sgd(v as never) : optimizers.adam(v as never)) };
    }
    const key = badKey(rng, table);
    const o = optionsWith(rng, table, key);
    if (isSgd && key !== 'momentum' && rng.bool(0.1)) {
      o.nesterov = true;
      o.momentum = 0; // nesterov needs momentum > 0
    }
    return { name: `${isSgd ? 'sgd' : 'adam'}(${shown(o, key)})`, expect: 'reject', run: () => (isSgd ? optimizers.sgd(o) : optimizers.adam(o)) };
  },
  compile: (rng, f) => {
    const m = new Sequential({ inputSize: f.inputSize });
    m.add(layers.dense({ units: 2 }));
    const which = rng.int(0, 3);
    const good = { optimizer: optimizers.sgd(), loss: 'softmaxCrossEntropy' };
    const o: Record<string, unknown> =
      which === 0
        ? { ...good, optimizer: rng.pick([null, {}, { kind: 'sgd' }, { kind: 'rmsprop', learningRate: 0.1 }, 'sgd', optimizers.sgd]) }
        : which === 1
          ? { ...good, loss: badValue(rng, { kind: 'oneOf', values: ['softmaxCrossEntropy', 'meanSquaredError'] }) }
          : which === 2
            ? { ...good, metrics: ['accuracy'] }
            : (notAnObject(rng) as Record<string, unknown>);
    return { name: `compile(bad #${which})`, expect: 'reject', run: () => m.compile(o as never) };
  },
  fit: (rng, f) => {
    const m = f.model;
    const which = rng.int(0, 9);
    if (which <= 2) return { name: 'fit(bad x)', expect: 'reject', model: m, run: () => m.fit(badX(rng, f) as never, f.y, { epochs: 1 }) };
    if (which <= 5) return { name: 'fit(bad y)', expect: 'reject', model: m, run: () => m.fit(f.x, badY(rng, f) as never, { epochs: 1 }) };
    if (which === 6) {
      const v = rng.int(0, 6);
      const vd = [
        () => [f.x],
        () => [f.x, f.y, f.x],
        () => ({ 0: f.x, 1: f.y, length: 2 }),
        () => [badX(rng, f), f.y],
        () => [f.x, badY(rng, f)],
        () => 'validation',
        () => [null, null],
      ][v]();
      return { name: `fit(bad validationData #${v})`, expect: 'reject', model: m, run: () => m.fit(f.x, f.y, { validationData: vd as never }) };
    }
    if (which === 7) {
      const v = rng.int(0, 6);
      const o = [
        { callbacks: {} },
        { callbacks: [null] },
        { callbacks: [{ onEpochEnd: 'log' }] },
        { callbacks: [{ onBatchEnd: 1 }] },
        { signal: {} },
        { signal: 'abort' },
        { initialEpoch: rng.pick([1, 2, -1, 0.5, NaN]), epochs: 1 },
      ][v];
      return { name: `fit(bad callbacks/signal/initialEpoch #${v})`, expect: 'reject', model: m, run: () => m.fit(f.x, f.y, o as never) };
    }
    if (which === 8 && rng.bool(0.3)) return { name: 'fit(non-object options)', expect: 'reject', model: m, run: () => m.fit(f.x, f.y, notAnObject(rng) as never) };
    const fitTable = { ...FIT, epochs: { kind: 'int', min: 1, max: 1e9 } as Spec };
    const key = badKey(rng, fitTable);
    const o = optionsWith(rng, fitTable, key);
    if (key !== 'epochs') o.epochs = 1;
    return { name: `fit(${shown(o, key)})`, expect: 'reject', model: m, run: () => m.fit(f.x, f.y, o) };
  },
  evaluate: (rng, f) => {
    const m = f.model;
    const which = rng.int(0, 3);
    if (which === 0) return { name: 'evaluate(bad x)', expect: 'reject', model: m, run: () => m.evaluate(badX(rng, f) as never, f.y) };
    if (which === 1) return { name: 'evaluate(bad y)', expect: 'reject', model: m, run: () => m.evaluate(f.x, badY(rng, f) as never) };
    const key = badKey(rng, EVAL);
    const o = optionsWith(rng, EVAL, key);
    return { name: `evaluate(${shown(o, key)})`, expect: 'reject', model: m, run: () => m.evaluate(f.x, f.y, o) };
  },
  predict: (rng, f) => {
    const m = f.model;
    if (rng.bool(0.6)) return { name: 'predict(bad x)', expect: 'reject', model: m, run: () => m.predict(badX(rng, f) as never) };
    const key = badKey(rng, EVAL);
    const o = optionsWith(rng, EVAL, key);
    return { name: `predict(${shown(o, key)})`, expect: 'reject', model: m, run: () => m.predict(f.x, o) };
  },
  computeGradients: (rng, f) => {
    const m = f.model;
    return rng.bool()
      ? { name: 'computeGradients(bad x)', expect: 'reject', model: m, run: () => m.computeGradients(badX(rng, f) as never, f.y) }
      : { name: 'computeGradients(bad y)', expect: 'reject', model: m, run: () => m.computeGradients(f.x, badY(rng, f) as never) };
  },
  prune: (rng, f) => {
    const m = f.model;
    const count = m.layers.length;
    const which = rng.int(0, 8);
    const base: Record<string, unknown> = { amount: 0.1 };
    let name = '';
    switch (which) {
      case 0:
        base.amount = badValue(rng, { kind: 'num', min: 0, max: 1, maxEx: true }); // required: null is bad too
        name = 'amount';
        break;
      case 1:
        do base.structure = badValue(rng, { kind: 'oneOf', values: ['weight', 'neuron'] });
        while (base.structure === null);
        name = 'structure';
        break;
      case 2:
        base.structure = rng.pick(['weight', 'neuron']);
        base.criterion =
          base.structure === 'weight'
            ? rng.pick(['l1', 'l2', 'taylor', 'random', 'activation', 'Magnitude', 1])
            : rng.pick(['magnitude', 'L2', 'rigl', '', 0]);
        name = 'criterion';
        break;
      case 3:
        do base.scope = badValue(rng, { kind: 'oneOf', values: ['layer', 'global'] });
        while (base.scope === null);
        name = 'scope';
        break;
      case 4:
        base.layer = rng.pick([-1, count, count + 5, 0.5, NaN, Infinity, '0', {}, [], [0, 0], [count], [0.5]]);
        if (Array.isArray(base.layer) && base.layer.length === 2) base.layer = [f.hidden[0], f.hidden[0]];
        name = 'layer';
        break;
      case 5:
        if (f.dropoutAt < 0) {
          base.layer = count;
          name = 'layer(out of range)';
        } else {
          base.layer = f.dropoutAt;
          name = 'layer(dropout)';
        }
        break;
      case 6:
        base.structure = 'neuron';
        base.layer = rng.bool() ? f.output : [f.hidden[0], f.output];
        name = 'layer(output neurons)';
        break;
      case 7:
        base[rng.pick(['amounts', 'sparsity', 'global', 'layers', 'criteria'])] = 0.5;
        name = 'unknown option';
        break;
      default:
        return { name: 'prune(non-object)', expect: 'reject', model: m, run: () => m.prune(notAnObject(rng) as never) };
    }
    if (name !== 'unknown option' && which !== 6) name = shown(base, which === 4 || which === 5 ? 'layer' : name);
    return { name: `prune(${name})`, expect: 'reject', model: m, run: () => m.prune(base as never) };
  },
  weights: (rng, f) => {
    const m = f.model;
    const layer = m.layers[f.hidden[0]] as ReturnType<typeof layers.dense>;
    const units = layer.units;
    const inputs = layer.inputs;
    const which = rng.int(0, 6);
    const w = new Float32Array(units * inputs);
    const b = new Float32Array(units);
    const arg = [
      () => ({ weight: new Float32Array(units * inputs + 1) }),
      () => ({ bias: new Float32Array(Math.max(0, units - 1)) }),
      () => ({ weight: Float64Array.from(w) }),
      () => {
        w[rng.int(0, w.length - 1)] = rng.pick([NaN, Infinity, -Infinity]);
        return { weight: w };
      },
      () => {
        b[rng.int(0, b.length - 1)] = NaN;
        return { bias: b };
      },
      () => rng.pick([{}, { kernel: w }, null, w]),
      () => ({ weight: detached(units * inputs) }),
    ][which]();
    return { name: `setWeights(bad #${which})`, expect: 'reject', model: m, run: () => layer.setWeights(arg as never) };
  },
  values: (rng, f) => {
    // The native setValues (how a cuda model's host half takes the device's numbers back): bad
    // numbers are refused before anything changes.
    const m = f.model;
    const state = m.native.exportState();
    const good = state.layers.map((l) => ({ weight: Float32Array.from(l.weight), bias: Float32Array.from(l.bias), weightMoments: l.weightMoments, biasMoments: l.biasMoments }));
    const at = rng.int(0, good.length - 1);
    const which = rng.int(0, 7);
    const layersArg: unknown = [
      () => good.slice(1),
      () => good.map((l, i) => (i === at ? { ...l, weight: new Float32Array(l.weight.length + rng.pick([-1, 1, 7])) } : l)),
      () => good.map((l, i) => (i === at ? { ...l, bias: Float64Array.from(l.bias) } : l)),
      () => good.map((l, i) => (i === at ? { ...l, weightMoments: [...l.weightMoments, new Float32Array(l.weight.length)] } : l)),
      () => good.map((l, i) => (i === at ? { ...l, bias: new Float32Array(new SharedArrayBuffer(4 * l.bias.length)) } : l)),
      () => good.map((l, i) => (i === at ? { ...l, weight: detached(l.weight.length) } : l)),
      () => good.map((l, i) => {
        if (i !== at) return l;
        const weight = l.weight;  // detached by a getter read after it
        return { ...l, weight, get taylor() { structuredClone(weight.buffer, { transfer: [weight.buffer as ArrayBuffer] }); return undefined; } };
      }),
      () => rng.pick([null, 'layers', 3, [null], [1, 2]]),
    ][which]();
    const step = which === 7 ? m.step : rng.pick([m.step, m.step + 1]);
    const badStep = rng.bool(0.1) ? rng.pick([-1, 0.5, NaN, '1']) : step;
    return { name: `native.setValues(bad #${which}${badStep !== step ? `, step ${String(badStep)}` : ''})`, expect: 'reject', model: m, run: () => m.native.setValues({ step: badStep, layers: layersArg } as never) };
  },
  order: (rng, f) => {
    // Calls out of order or on a model in the wrong state.
    const which = rng.int(0, 9);
    const fresh = () => {
      const m = new Sequential({ inputSize: f.inputSize });
      m.add(layers.dense({ units: 3 }));
      return m;
    };
    switch (which) {
      case 0:
        return { name: 'fit before compile', expect: 'reject', run: () => fresh().fit(f.x, new Int32Array(f.n)) };
      case 1:
        return { name: 'evaluate before compile', expect: 'reject', run: () => fresh().evaluate(f.x, new Int32Array(f.n)) };
      case 2:
        return { name: 'computeGradients before compile', expect: 'reject', run: () => fresh().computeGradients(f.x, new Int32Array(f.n)) };
      case 3:
        return { name: 'add after build', expect: 'reject', model: f.model, run: () => f.model.add(layers.dense({ units: 2 })) };
      case 4:
        return { name: 'add(non-layer)', expect: 'reject', run: () => fresh().add(rng.pick([null, {}, { units: 3 }, 'dense', layers.dense]) as never) };
      case 5: {
        const m = fresh();
        return { name: 'add the same layer twice', expect: 'reject', run: () => m.add(m.layers[0]) };
      }
      case 6:
        return { name: 'add a layer of another model', expect: 'reject', run: () => new Sequential({ inputSize: 2 }).add(f.model.layers[f.output]) };
      case 7:
        return { name: 'predict on a model with no layers', expect: 'reject', run: () => new Sequential({ inputSize: f.inputSize }).predict(f.x) };
      case 8: {
        const m = new Sequential({ inputSize: f.inputSize });
        m.add(layers.dense({ units: 2 })).add(layers.dropout({ rate: 0.5 }));
        return { name: 'compile with dropout last', expect: 'reject', run: () => m.compile({ optimizer: optimizers.sgd(), loss: 'softmaxCrossEntropy' }) };
      }
      default: {
        const l = layers.dense({ units: 2 });
        return { name: 'getWeights of an unattached layer', expect: 'reject', run: () => (rng.bool() ? l.getWeights() : l.setWeights({ bias: new Float32Array(2) })) };
      }
    }
  },
  rewind: (rng, f) => {
    const m = f.model;
    const step = rng.pick([-1, 0.5, NaN, '0', null, m.step + 1000, 123456]);
    return { name: `rewind(${String(step)})`, expect: 'reject', model: m, run: () => m.rewind(step as never) };
  },
  concurrency: (rng, f) => {
    // A second operation while one runs: rejected (not deferred), never racing.
    const m = f.model;
    const first = rng.pick(['fit', 'predict', 'evaluate', 'computeGradients'] as const);
    const second = rng.pick(['fit', 'predict', 'evaluate', 'save', 'toBuffer', 'prune', 'compact', 'compile', 'setWeights', 'getWeights', 'computeGradients', 'snapshot'] as const);
    return {
      name: `${second} during ${first}`,
      expect: 'reject',
      run: async () => {
        const running: Promise<unknown> =
          first === 'fit'
            ? m.fit(f.x, f.y, { epochs: 1, batchSize: 4 })
            : first === 'predict'
              ? m.predict(f.x)
              : first === 'evaluate'
                ? m.evaluate(f.x, f.y)
                : m.computeGradients(f.x, f.y);
        const settled = running.then(
          () => null,
          (e) => e,
        );
        try {
          const dense = m.layers[f.output] as ReturnType<typeof layers.dense>;
          const op: () => unknown = {
            fit: () => m.fit(f.x, f.y, { epochs: 1 }),
            predict: () => m.predict(f.x),
            evaluate: () => m.evaluate(f.x, f.y),
            save: () => m.save(path.join(os.tmpdir(), `np-fuzz-${process.pid}-never.safetensors`)),
            toBuffer: () => m.toBuffer(),
            prune: () => m.prune({ amount: 0.1 }),
            compact: () => m.compact(),
            compile: () => m.compile({ optimizer: optimizers.sgd(), loss: f.loss }),
            setWeights: () => dense.setWeights({ bias: new Float32Array(dense.units) }),
            getWeights: () => dense.getWeights(),
            computeGradients: () => m.computeGradients(f.x, f.y),
            snapshot: () => m.snapshot(),
          }[second];
          return await op();
        } finally {
          const err = await settled;
          // The first operation must still complete normally (a NaN loss is possible only with fit).
          if (err && !(first === 'fit' && /NaN|not finite|infinite/i.test(String(err)))) {
            throw Object.assign(new Error(`the running ${first} failed: ${err}`), { firstFailed: true });
          }
        }
      },
    };
  },
  detach: (rng) => {
    // Once a crash (fixed: fit trains from its own copy): x's buffer transferred away
    // and collected while a fit() worker reads it. Any outcome but a crash is fine.
    const m = new Sequential({ inputSize: 64, seed: 1 });
    m.add(layers.dense({ units: 64, activation: 'relu' })).add(layers.dense({ units: 2 }));
    m.compile({ optimizer: optimizers.sgd(), loss: 'softmaxCrossEntropy' });
    const n = 1 << 14;
    return {
      name: 'detach x during fit',
      expect: 'either',
      run: async () => {
        let x: Float32Array | null = new Float32Array(n * 64).fill(0.1);
        const running = m.fit(x, new Int32Array(n), { epochs: 1, batchSize: rng.pick([8, 32]) });
        running.catch(() => undefined);
        await new Promise((r) => setTimeout(r, 2));
        structuredClone(x.buffer, { transfer: [x.buffer as ArrayBuffer] });
        x = null;
        const gc = (globalThis as { gc?: () => void }).gc;
        for (let i = 0; i < 3; i++) {
          gc?.();
          await new Promise((r) => setTimeout(r, 1));
        }
        return running;
      },
    };
  },
  extreme: (rng, f) => {
    // Valid by the API (finite values, sizes in range) but extreme: any outcome
    // with a message, or a well-formed result.
    const m = f.model;
    const which = rng.int(0, 6);
    const outLen = f.n * f.outputs;
    switch (which) {
      case 0:
        return { name: 'predict(extreme x)', expect: 'either', check: isF32(outLen), run: () => m.predict(extremeX(rng, f)) };
      case 1:
        return { name: 'evaluate(extreme x)', expect: 'either', check: isEval, run: () => m.evaluate(extremeX(rng, f), f.y) };
      case 2:
        return { name: 'fit(extreme x)', expect: 'either', run: () => m.fit(extremeX(rng, f), f.y, { epochs: 1, batchSize: rng.pick([1, 3, 1 << 24]) }) };
      case 3:
        return { name: 'predict(batchSize 2^24)', expect: 'either', check: isF32(outLen), run: () => m.predict(f.x, { batchSize: 1 << 24 }) };
      case 4:
        return { name: 'computeGradients(extreme x)', expect: 'either', run: () => m.computeGradients(extremeX(rng, f), f.y) };
      default:
        return { name: 'fit(epochs 2, batchSize 2^24, validation)', expect: 'either', run: () => m.fit(f.x, f.y, { epochs: 2, batchSize: 1 << 24, validationData: [f.x, f.y] }) };
    }
  },
  sequence: (rng, f) => {
    // A valid structural op at a random point (prune, compact, snapshot/rewind,
    // save/load round trip): must succeed or fail with a message, never crash.
    const m = f.model;
    const which = rng.int(0, 6);
    switch (which) {
      case 0:
        return { name: 'prune weights (valid)', expect: 'either', run: () => m.prune({ amount: rng.pick([0, 0.3, 0.9, 0.999]), scope: rng.pick(['layer', 'global']) }) };
      case 1:
        return {
          name: 'prune neurons (valid)',
          expect: 'either',
          run: () => m.prune({ structure: 'neuron', amount: rng.pick([0.2, 0.5, 0.9]), criterion: rng.pick(['l1', 'l2', 'activation', 'taylor', 'random']), scope: rng.pick(['layer', 'global']) }),
        };
      case 2:
        return { name: 'compact (valid)', expect: 'either', run: () => m.compact() };
      case 3:
        return { name: 'snapshot + rewind (valid)', expect: 'either', run: () => m.rewind(m.snapshot()) };
      case 4:
        return {
          name: 'toBuffer + loadModel + predict (valid)',
          expect: 'either',
          check: isF32(f.n * f.outputs),
          run: async () => (await loadModel(m.toBuffer())).predict(f.x),
        };
      default:
        return { name: 'fit a few steps (valid)', expect: 'either', run: () => m.fit(f.x, f.y, { epochs: 1, batchSize: rng.int(1, 4) }) };
    }
  },
  files: (rng, f, ctx) => {
    const m = f.model;
    const which = rng.int(0, 6);
    switch (which) {
      case 0:
        return { name: 'save(bad path type)', expect: 'reject', model: m, run: () => m.save(rng.pick([null, undefined, 1, {}, [], Buffer.from('x'), '']) as never) };
      case 1:
        return { name: 'save(missing dir / dir path)', expect: 'reject', model: m, run: () => m.save(rng.bool() ? path.join(ctx.tmp, 'no', 'such', 'dir', 'm.safetensors') : ctx.tmp) };
      case 2:
        return { name: 'loadModel(bad arg)', expect: 'reject', run: () => loadModel(rng.pick([null, undefined, 1, {}, [], '', new Float32Array(4), new ArrayBuffer(8)]) as never) };
      case 3:
        return { name: 'loadModel(missing / dir)', expect: 'reject', run: () => loadModel(rng.bool() ? path.join(ctx.tmp, `missing-${rng.int(0, 1e9)}.safetensors`) : ctx.tmp) };
      case 4: {
        const bad = rng.pick([0, 8, 2, 5]);
        const opts = [{ activations: 'relu' }, { activations: ['softmax'] }, { seed: -1 }, { extra: 1 }][rng.int(0, 3)];
        return { name: 'loadModel(bad options)', expect: 'either', run: () => loadModel(ctx.checkpoint, opts as never).then(() => bad) };
      }
      default:
        return { name: 'save to a file + load back (valid)', expect: 'either', check: isF32(f.n * f.outputs), run: async () => {
          const file = path.join(ctx.tmp, `ok-${rng.int(0, 1e9)}.safetensors`);
          await m.save(file);
          const again = await loadModel(file);
          fs.rmSync(file, { force: true });
          return again.predict(f.x);
        } };
    }
  },
  corrupt: (rng, _f, ctx) => {
    // loadModel on random, truncated or mutated buffers. Random bytes,
    // truncations and header mutations that break a rule are invalid; flipped
    // bits in the tensor data leave a well-formed file (any outcome).
    const cp = ctx.checkpoint;
    const headerEnd = 8 + Number(cp.readBigUInt64LE(0));
    const which = rng.int(0, 6);
    const predictCheck = async (buf: Buffer) => {
      // FUZZ_SAVE_CORRUPT=DIR keeps the last corrupted buffer for a repro.
      if (process.env.FUZZ_SAVE_CORRUPT) fs.writeFileSync(path.join(process.env.FUZZ_SAVE_CORRUPT, 'last.safetensors'), buf);
      const model = await loadModel(buf);
      const x = new Float32Array(2 * model.inputSize).fill(0.5);
      return (await model.predict(x)).length === 2 * model.outputSize ? model : null;
    };
    switch (which) {
      case 0: {
        const buf = Buffer.alloc(rng.int(0, 4096));
        for (let i = 0; i < buf.length; i++) buf[i] = rng.int(0, 255);
        if (buf.length >= 8 && rng.bool()) buf.writeBigUInt64LE(BigInt(rng.int(0, buf.length)), 0);
        return { name: 'loadModel(random bytes)', expect: 'reject', run: () => loadModel(buf) };
      }
      case 1: {
        const buf = cp.subarray(0, rng.int(0, cp.length - 1));
        return { name: 'loadModel(truncated)', expect: 'reject', run: () => loadModel(Buffer.from(buf)) };
      }
      case 2: {
        const buf = Buffer.from(cp);
        const k = rng.int(1, 4);
        // A flipped bit in a CSR indptr that points past nnz makes loadModel
        // loop ~2^62 times: a KNOWN ISSUE, so indptr bytes are spared by default.
        const spared = KNOWN_ISSUES ? [] : indptrRanges(cp);
        for (let i = 0; i < k; i++) {
          let at = rng.int(headerEnd, buf.length - 1);
          while (spared.some(([a, b]) => at >= a && at < b)) at = rng.int(headerEnd, buf.length - 1);
          buf[at] ^= 1 << rng.int(0, 7);
        }
        return { name: 'loadModel(flipped data bits)', expect: 'either', check: loadedOk, run: () => predictCheck(buf) };
      }
      case 3: {
        const buf = Buffer.from(cp);
        buf[rng.int(0, headerEnd - 1)] ^= 1 << rng.int(0, 7);
        return { name: 'loadModel(flipped header bit)', expect: 'either', check: loadedOk, run: () => predictCheck(buf) };
      }
      case 5: {
        const mutated = mutateContents(rng, cp);
        return { name: `loadModel(contents: ${mutated.what})`, expect: 'reject', run: () => predictCheck(mutated.buf) };
      }
      default: {
        const mutated = mutateHeader(rng, cp);
        return { name: `loadModel(header: ${mutated.what})`, expect: 'reject', run: () => predictCheck(mutated.buf) };
      }
    }
  },
};

/** Absolute byte ranges of the CSR indptr tensors of a checkpoint. */
function indptrRanges(cp: Buffer): [number, number][] {
  const n = Number(cp.readBigUInt64LE(0));
  const header = JSON.parse(cp.toString('utf8', 8, 8 + n)) as Record<string, { data_offsets?: [number, number] }>;
  return Object.entries(header)
    .filter(([name]) => name.endsWith('.indptr'))
    .map(([, t]) => [8 + n + t.data_offsets![0], 8 + n + t.data_offsets![1]]);
}

/** Rewrites one field of a checkpoint's JSON header so that the file breaks a documented rule. */
function mutateHeader(rng: Rng, cp: Buffer): { buf: Buffer; what: string } {
  const n = Number(cp.readBigUInt64LE(0));
  const header = JSON.parse(cp.toString('utf8', 8, 8 + n));
  const data = cp.subarray(8 + n);
  const tensorNames = Object.keys(header).filter((k) => k !== '__metadata__');
  const meta = header.__metadata__ as Record<string, string>;
  const config = JSON.parse(meta.config);
  const state = JSON.parse(meta.state);
  let what: string;
  const t = header[rng.pick(tensorNames)];
  switch (rng.int(0, 11)) {
    case 0:
      t.dtype = rng.pick(['F16', 'BF16', 'I8', 'F65', 'f32']);
      what = 'dtype';
      break;
    case 1:
      t.shape = t.shape.length ? [t.shape[0] + 1, ...t.shape.slice(1)] : [1];
      what = 'shape';
      break;
    case 2:
      t.data_offsets = [t.data_offsets[0] + 4, t.data_offsets[1] + 4];
      what = 'offsets';
      break;
    case 3:
      // 1 << 24 is inside the documented range of units, so it passes
      // Sequential.fromJSON and the model is allocated before the tensors are
      // compared with it: a KNOWN ISSUE (see docs/HARDENING.md), off by default.
      config.layers[0].units = rng.pick(KNOWN_ISSUES ? [0, -1, 1.5, 1 << 24, 2 ** 40, 'ten', null] : [0, -1, 1.5, 2 ** 40, 'ten', null]);
      what = `config units ${config.layers[0].units}`;
      break;
    case 4:
      config.inputSize = rng.pick(KNOWN_ISSUES ? [0, -3, 1 << 26, 2 ** 40, NaN, '4'] : [0, -3, 2 ** 40, NaN, '4']);
      what = `config inputSize ${config.inputSize}`;
      break;
    case 5:
      config.layers[0].activation = 'softmax';
      what = 'config activation';
      break;
    case 6:
      state.rng = rng.pick([[], ['x', 'y', 'z', 'w'], [1, 2, 3]]);
      what = 'state rng';
      break;
    case 7:
      state.layers = state.layers.slice(1);
      what = 'state layers';
      break;
    case 8:
      meta['format.version'] = rng.pick(['2', '0', '', '1.0']);
      what = 'version';
      break;
    case 9:
      meta.events = rng.pick(['{', '[1,2]', '[{"neuronIds":1}]', '"events"']);
      what = 'events';
      break;
    case 10:
      config.layers = rng.pick([[], 'dense', [{ kind: 'conv', units: 3 }], [null]]);
      what = 'config layers';
      break;
    default:
      delete header[rng.pick(tensorNames)];
      what = 'missing tensor';
  }
  if (what.startsWith('config')) meta.config = JSON.stringify(config);
  if (what.startsWith('state')) meta.state = JSON.stringify(state);
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return { buf: Buffer.concat([len, json, data]), what };
}

/**
 * Changes a well-formed checkpoint's contents (not its layout) so that they
 * contradict what training keeps: a non-finite number in a float tensor, a
 * fractional step, a next neuron id below the ids in use, an all-zero RNG
 * state, an event naming a missing layer, or an extra tensor.
 */
function mutateContents(rng: Rng, cp: Buffer): { buf: Buffer; what: string } {
  const n = Number(cp.readBigUInt64LE(0));
  const header = JSON.parse(cp.toString('utf8', 8, 8 + n));
  let data = Buffer.from(cp.subarray(8 + n));
  const meta = header.__metadata__ as Record<string, string>;
  const state = JSON.parse(meta.state);
  let what: string;
  switch (rng.int(0, 5)) {
    case 0: {
      const floats = Object.keys(header).filter((k) => k !== '__metadata__' && ['F32', 'F64'].includes(header[k].dtype) && header[k].data_offsets[1] > header[k].data_offsets[0]);
      const name = rng.pick(floats);
      const t = header[name];
      const size = t.dtype === 'F32' ? 4 : 8;
      const at = t.data_offsets[0] + size * rng.int(0, (t.data_offsets[1] - t.data_offsets[0]) / size - 1);
      const value = rng.pick([NaN, Infinity, -Infinity]);
      if (size === 4) data.writeFloatLE(value, at);
      else data.writeDoubleLE(value, at);
      what = `${value} in ${name}`;
      break;
    }
    case 1:
      state.step += 0.5;
      what = 'fractional step';
      break;
    case 2:
      state.nextNeuronId = 0;
      what = 'next neuron id 0';
      break;
    case 3:
      state.rng = ['0', '0', '0', '0'];
      what = 'all-zero rng';
      break;
    case 4: {
      const events = JSON.parse(meta.events) as { layer: number }[];
      events.push({ ...(events[0] ?? { step: 0, epoch: 0, kind: 'prune', criterion: 'magnitude', neuronIds: [], scores: [], count: 0, densityBefore: 1, densityAfter: 1 }), layer: 99 });
      meta.events = JSON.stringify(events);
      what = 'event on layer 99';
      break;
    }
    default:
      header['layers.0.extra'] = { dtype: 'F32', shape: [1], data_offsets: [data.length, data.length + 4] };
      data = Buffer.concat([data, Buffer.alloc(4)]);
      what = 'extra tensor';
  }
  meta.state = JSON.stringify(state);
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return { buf: Buffer.concat([len, json, data]), what };
}

// Weights of each category in the mix (invalid-call generators dominate).
const MIX: [string, number][] = [
  ['construct', 6],
  ['dense', 6],
  ['dropout', 2],
  ['optimizer', 6],
  ['compile', 3],
  ['fit', 12],
  ['evaluate', 5],
  ['predict', 5],
  ['computeGradients', 3],
  ['prune', 8],
  ['weights', 4],
  ['values', 3],
  ['order', 5],
  ['rewind', 2],
  ['concurrency', 6],
  ['files', 4],
  ['corrupt', 8],
  ['extreme', 4],
  ['sequence', 4],
  ...(KNOWN_ISSUES ? ([['detach', 2]] as [string, number][]) : []),
];

function pickCategory(rng: Rng): string {
  const total = MIX.reduce((s, [, w]) => s + w, 0);
  let r = rng.float() * total;
  for (const [name, w] of MIX) {
    if ((r -= w) < 0) return name;
  }
  return MIX[0][0];
}

export async function runFuzz(seed: number, count: number, log: (line: string) => void = () => undefined): Promise<FuzzSummary> {
  const started = Date.now();
  const rng = new Rng(seed);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'np-fuzz-'));
  const summary: FuzzSummary = {
    seed, count, invalid: 0, extreme: 0, rejected: 0, accepted: 0,
    silentlyAccepted: [], badErrors: [], badResults: [], stateChanged: [], internalErrors: [], byCategory: {},
  } as unknown as FuzzSummary;
  const cpModel = makeFixture(new Rng(seed ^ 0x5eed));
  await cpModel.model.fit(cpModel.x, cpModel.y, { epochs: 1, batchSize: 2 });
  cpModel.model.prune({ amount: 0.5 });
  const ctx: Ctx = { tmp, checkpoint: cpModel.model.toBuffer(), checkpointInput: cpModel.inputSize };
  let fixture = makeFixture(rng);
  try {
    for (let i = 0; i < count; i++) {
      if (i % 40 === 0) fixture = makeFixture(rng);
      const category = pickCategory(rng);
      const c = GENERATORS[category](rng, fixture, ctx);
      const tag = `#${i} ${category}: ${c.name}`;
      log(`case ${i} ${category}: ${c.name} t=${Date.now() - started}ms rss=${Math.round(process.memoryUsage().rss / 1048576)}MB`);
      const cat = (summary.byCategory[category] ??= { invalid: 0, extreme: 0, rejected: 0 });
      if (c.expect === 'reject') {
        summary.invalid++;
        cat.invalid++;
      } else {
        summary.extreme++;
        cat.extreme++;
      }
      const before = c.model ? fingerprint(c.model) : '';
      let threw = false;
      let error: unknown;
      let result: unknown;
      try {
        result = await c.run();
      } catch (e) {
        threw = true;
        error = e;
      }
      if (threw) {
        if ((error as { firstFailed?: boolean })?.firstFailed) {
          summary.badResults.push(`${tag}: ${(error as Error).message}`);
          continue;
        }
        summary.rejected++;
        cat.rejected++;
        if (!(error instanceof Error) || typeof error.message !== 'string' || error.message.trim() === '') {
          summary.badErrors.push(`${tag}: threw ${String(error)}`);
        } else if (INTERNAL.test(error.message)) {
          summary.internalErrors.push(`${tag}: ${error.name}: ${error.message.slice(0, 200)}`);
        }
        if (c.model && c.expect === 'reject' && fingerprint(c.model) !== before) {
          summary.stateChanged.push(`${tag}: ${before} -> ${fingerprint(c.model)}`);
        }
      } else {
        summary.accepted++;
        if (c.expect === 'reject') summary.silentlyAccepted.push(tag);
        else if (c.check) {
          const problem = c.check(result);
          if (problem) summary.badResults.push(`${tag}: ${problem}`);
        }
      }
      // After anything that may have broken a fixture (NaN weights, pruned
      // away), start from a fresh one so later invalid calls test validation.
      if (c.expect === 'either') fixture = makeFixture(rng);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  summary.ms = Date.now() - started;
  return summary;
}

async function main(): Promise<void> {
  const seed = Number(process.argv[2] ?? 1);
  const count = Number(process.argv[3] ?? 500);
  if (!Number.isSafeInteger(seed) || !Number.isSafeInteger(count) || count < 1) {
    process.stderr.write('usage: node --import tsx test/fuzz/driver.ts <seed> <count>\n');
    process.exit(2);
  }
  const quiet = process.env.FUZZ_QUIET === '1';
  const summary = await runFuzz(seed, count, quiet ? undefined : (line) => process.stderr.write(line + '\n'));
  process.stdout.write(JSON.stringify(summary) + '\n');
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`driver failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(3);
  });
}
