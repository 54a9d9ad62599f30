// Growth operations of a Sequential model: dropin (neurons inserted in place)
// and sparse initialisation. Arguments are checked here; the native core
// checks again and changes nothing unless every check passes.
import type { StructuralEvent } from './events';
import { checkInputs } from './inputs';
import { DenseLayer } from './layers';
import { denseIndexOf, toApiEvents, type StructureHost } from './structure';
import { checkInteger, checkKnownKeys, checkNumber, checkOneOf, checkOptions, describe } from './validate';

export const GROW_INITS = ['zero', 'net2wider', 'gradmax', 'random'] as const;
export type GrowInit = (typeof GROW_INITS)[number];

export interface GrowOptions {
  /** Position in model.layers of a hidden dense layer (the output layer's size is fixed). */
  layer: number;
  /** Neurons to add; a positive integer (at most 1,048,576 per call). */
  count: number;
  /**
   * 'zero' (random incoming, zero outgoing: function unchanged, default),
   * 'net2wider' (split existing units: function unchanged),
   * 'gradmax' (tiny incoming, outgoing = top singular vectors of the gradient),
   * 'random' (random incoming, small random outgoing).
   */
  init?: GrowInit;
  /** net2wider only: how unevenly a split unit's outgoing weights are shared, in [0, 0.5). Default 0.1 (breaks symmetry, function still unchanged). */
  noise?: number;
  /** gradmax: the batch whose gradient is used, [x, y]. Default: the last training batch (kept while a schedule that needs it runs). */
  data?: [Float32Array, Int32Array | Uint8Array | Float32Array];
}

export interface GrowResult {
  /** Stable ids of the new neurons. */
  neuronIds: number[];
  events: StructuralEvent[];
}

/**
 * Random sparse connectivity: each layer keeps a uniformly random subset of its stored weights,
 * scaled by 1/sqrt(density) so each unit's input variance stays as at init; the kept weights start
 * with fresh optimizer state (dense and CSR layers alike).
 */
export interface SparsifyOptions {
  /** Fraction of all weights that become zero, in [0, 1). */
  sparsity: number;
  /** 'erdos-renyi' (density ~ (fan_in + fan_out) / (fan_in x fan_out), default) or 'uniform'. */
  distribution?: 'erdos-renyi' | 'uniform';
  /** Positions in model.layers to sparsify (the sparsity is theirs); default every dense layer. */
  layers?: number[];
}

/** Host needs beyond StructureHost: the model's loss and sizes for checking gradmax data. */
export interface GrowthHost extends StructureHost {
  readonly inputSize: number;
  readonly outputSize: number;
  readonly loss: string | null;
}

export function grow(host: GrowthHost, options: GrowOptions): GrowResult {
  const where = 'Sequential.grow()';
  const o = checkOptions<GrowOptions>(where, 'options', options);
  checkKnownKeys(where, o, ['layer', 'count', 'init', 'noise', 'data']);
  const index = denseIndexOf(where, host.layers, o.layer);
  const dense = host.layers.filter((l): l is DenseLayer => l instanceof DenseLayer);
  if (index === dense.length - 1) {
    throw new RangeError(`${where}: layer ${o.layer} is the output layer; its size is fixed by the targets, so it cannot grow`);
  }
  const count = checkInteger(where, 'count', o.count, { min: 1, max: 1 << 20 });
  const init = checkOneOf(where, 'init', o.init ?? 'zero', GROW_INITS);
  const noise = checkNumber(where, 'noise', o.noise ?? (init === 'net2wider' ? 0.1 : 0), { min: 0, max: 0.5, maxExclusive: true });
  let x: Float32Array | undefined;
  let y: Int32Array | Float32Array | undefined;
  if (o.data !== undefined) {
    if (init !== 'gradmax') throw new TypeError(`${where}: data is only used by init 'gradmax', got init '${init}'`);
    if (!Array.isArray(o.data) || o.data.length !== 2) throw new TypeError(`${where}: data must be [x, y], got ${describe(o.data)}`);
    if (!host.loss) throw new Error(`${where}: gradmax needs a loss: call model.compile() first`);
    ({ x, y } = checkInputs(where, o.data[0], o.data[1], host.inputSize, host.outputSize, host.loss));
  }
  host.assertIdle('grow');
  const before = host.native.eventCount;
  const ids = host.native.grow(index, count, init, noise, x, y);
  return { neuronIds: Array.from(ids), events: toApiEvents(host.native.events(before), host.layers) };
}

export function sparsify(host: StructureHost, options: SparsifyOptions): StructuralEvent[] {
  const where = 'Sequential.sparsify()';
  const o = checkOptions<SparsifyOptions>(where, 'options', options);
  checkKnownKeys(where, o, ['sparsity', 'distribution', 'layers']);
  const sparsity = checkNumber(where, 'sparsity', o.sparsity, { min: 0, max: 1, maxExclusive: true });
  const distribution = checkOneOf(where, 'distribution', o.distribution ?? 'erdos-renyi', ['erdos-renyi', 'uniform'] as const);
  let targets: number[] | undefined;
  if (o.layers !== undefined) {
    if (!Array.isArray(o.layers) || o.layers.length === 0) throw new TypeError(`${where}: layers must be a non-empty array of positions in model.layers, got ${describe(o.layers)}`);
    targets = o.layers.map((p, i) => denseIndexOf(where, host.layers, p, `layers[${i}]`));
    if (new Set(targets).size !== targets.length) throw new RangeError(`${where}: layers lists a layer twice: ${describe(o.layers)}`);
  }
  host.assertIdle('sparsify');
  const before = host.native.eventCount;
  host.native.sparsify(sparsity, distribution, targets);
  return toApiEvents(host.native.events(before), host.layers);
}
