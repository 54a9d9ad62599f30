// Validation and conversion of the data arrays passed to fit/evaluate/predict.
// Everything here runs before native code sees the arrays, so a mistake gets a
// message in terms of the user's arguments.
import type { NativeTargets } from './native';
import { describe } from './validate';

export type Labels = Int32Array | Uint8Array | Float32Array;

/**
 * Checks x is a Float32Array of n x inputSize values; returns n. With
 * `values`, also that every value is finite (fit() leaves that to the native
 * copy it makes anyway, which checks in the same pass).
 */
export function checkSamples(where: string, name: string, x: unknown, inputSize: number, values = true): number {
  if (!(x instanceof Float32Array)) {
    throw new TypeError(`${where}: ${name} must be a Float32Array (n x ${inputSize}, row-major), got ${describe(x)}`);
  }
  if (x.length === 0 || x.length % inputSize !== 0) {
    throw new RangeError(`${where}: ${name} has ${x.length} values, which is not a positive multiple of inputSize ${inputSize}`);
  }
  for (let i = 0; values && i < x.length; i++) {
    const v = x[i];
    if (v !== v || v === Infinity || v === -Infinity) {
      throw new RangeError(`${where}: ${name}[${i}] (sample ${Math.floor(i / inputSize)}, feature ${i % inputSize}) is ${v}; inputs must be finite`);
    }
  }
  return x.length / inputSize;
}

/**
 * Checks targets for n samples and converts them to what the core takes:
 * class labels (Int32Array or Uint8Array, each in [0, outputs)) become an
 * Int32Array; float targets (Float32Array, n x outputs, rows that are
 * distributions for softmaxCrossEntropy) pass through.
 */
export function checkTargets(where: string, name: string, y: unknown, n: number, outputs: number, loss: string): NativeTargets {
  if (y instanceof Int32Array || y instanceof Uint8Array) {
    if (loss !== 'softmaxCrossEntropy') {
      throw new TypeError(`${where}: ${name} holds class labels, which need loss 'softmaxCrossEntropy'; for '${loss}' pass a Float32Array of n x ${outputs} targets`);
    }
    if (y.length !== n) throw new RangeError(`${where}: ${name} has ${y.length} labels for ${n} samples`);
    for (let i = 0; i < y.length; i++) {
      const label = y[i];
      if (label < 0 || label >= outputs) {
        throw new RangeError(`${where}: ${name}[${i}] is ${label}, outside the ${outputs} classes [0, ${outputs - 1}] of the output layer`);
      }
    }
    return y instanceof Int32Array ? y : Int32Array.from(y);
  }
  if (y instanceof Float32Array) {
    if (y.length !== n * outputs) {
      throw new RangeError(`${where}: ${name} has ${y.length} values; float targets must be n x outputs = ${n} x ${outputs} = ${n * outputs}`);
    }
    for (let i = 0; i < y.length; i++) {
      if (!Number.isFinite(y[i])) throw new RangeError(`${where}: ${name}[${i}] is ${y[i]}; targets must be finite`);
    }
    if (loss === 'softmaxCrossEntropy') checkDistributions(where, name, y, outputs);
    return y;
  }
  throw new TypeError(`${where}: ${name} must be an Int32Array or Uint8Array of class labels, or a Float32Array of targets, got ${describe(y)}`);
}

/** How far a target distribution's sum may be from 1: float32 rounding of e.g. 1/3 + 1/3 + 1/3, with room to spare. */
const DISTRIBUTION_TOLERANCE = 1e-3;

/**
 * Float targets for softmaxCrossEntropy are the cross-entropy's reference distribution: each row
 * must be one (values >= 0 summing to 1). Anything else has no minimum (the loss goes to -infinity
 * along it), so training would report a negative loss and drift instead of failing.
 */
function checkDistributions(where: string, name: string, y: Float32Array, outputs: number): void {
  for (let row = 0, i = 0; i < y.length; row++) {
    let sum = 0;
    for (const end = i + outputs; i < end; i++) {
      if (y[i] < 0) {
        throw new RangeError(
          `${where}: ${name}[${i}] (row ${row}, class ${i % outputs}) is ${y[i]}; ` +
            `target distributions for 'softmaxCrossEntropy' must be >= 0`,
        );
      }
      sum += y[i];
    }
    if (!(Math.abs(sum - 1) <= DISTRIBUTION_TOLERANCE)) {
      throw new RangeError(
        `${where}: ${name} row ${row} sums to ${sum}; target distributions for ` +
          `'softmaxCrossEntropy' must sum to 1 (within ${DISTRIBUTION_TOLERANCE}), or pass class labels as an Int32Array`,
      );
    }
  }
}

/** Checks an (x, y) pair: samples and targets that match them. */
export function checkInputs(where: string, x: unknown, y: unknown, inputSize: number, outputs: number, loss: string): { x: Float32Array; y: NativeTargets; n: number } {
  const n = checkSamples(where, 'x', x, inputSize);
  return { x: x as Float32Array, y: checkTargets(where, 'y', y, n, outputs, loss), n };
}
