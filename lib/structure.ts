// Structural operations of a Sequential model: pruning (weights or neurons),
// compaction, storage formats and lottery-ticket rewind. Arguments are checked
// here; the native core checks again and applies nothing unless everything is
// valid, so a failed call leaves the model as it was.
import type { StructuralEvent } from './events';
import { DenseLayer, type Layer } from './layers';
import type { NativeModel } from './native';
import { checkInteger, checkKnownKeys, checkNumber, checkOneOf, checkOptions, describe, underApiName } from './validate';

export const WEIGHT_CRITERIA = ['magnitude'] as const;
export const NEURON_CRITERIA = ['l1', 'l2', 'activation', 'taylor', 'random'] as const;
export type NeuronCriterion = (typeof NEURON_CRITERIA)[number];
export type PruneCriterion = (typeof WEIGHT_CRITERIA)[number] | NeuronCriterion;

export interface PruneOptions {
  /** Fraction of the currently stored weights (structure 'weight') or live neurons ('neuron') to remove, in [0, 1). */
  amount: number;
  /** 'weight' (unstructured, default) or 'neuron' (whole units of hidden layers). */
  structure?: 'weight' | 'neuron';
  /** 'magnitude' for weights; 'l1' | 'l2' (default) | 'activation' | 'taylor' | 'random' for neurons. */
  criterion?: PruneCriterion;
  /** 'layer' (each layer by amount, default) or 'global' (one ranking over the layers; neurons on normalised scores). */
  scope?: 'layer' | 'global';
  /** Position(s) in model.layers; default: every dense layer (weights) or every hidden dense layer (neurons). */
  layer?: number | number[];
}

export interface PruneResult {
  /** Weights or neurons removed. */
  removed: number;
  /** The events this call logged. */
  events: StructuralEvent[];
}

/** What the structural operations need from the model. */
export interface StructureHost {
  readonly native: NativeModel;
  readonly layers: readonly Layer[];
  /** Throws while a training step runs: structure changes only between two steps (rejected, not deferred). */
  assertIdle(operation: string): void;
}

const PRUNE_KEYS = ['amount', 'structure', 'criterion', 'scope', 'layer'] as const;

/** Maps a model.layers position to its dense-layer index, or throws naming the argument. */
export function denseIndexOf(where: string, layers: readonly Layer[], position: unknown, name = 'layer'): number {
  const p = checkInteger(where, name, position, { min: 0, max: layers.length - 1 });
  const layer = layers[p];
  if (!(layer instanceof DenseLayer)) {
    throw new RangeError(`${where}: ${name} ${p} is a ${layer.kind} layer; structural operations apply to dense layers only`);
  }
  return layer.denseIndex;
}

/** Converts native events (dense-layer indices) to API events (model.layers positions). */
export function toApiEvents(native: ReturnType<NativeModel['events']>, layers: readonly Layer[]): StructuralEvent[] {
  const positions: number[] = [];
  layers.forEach((l, i) => {
    if (l instanceof DenseLayer) positions.push(i);
  });
  return native.map((e) => ({ ...e, kind: e.kind as StructuralEvent['kind'], layer: e.layer >= 0 ? positions[e.layer] : -1 }));
}

// The core counts dense layers only; the API counts positions in model.layers.
function withLayerPositions(message: string, layers: readonly Layer[]): string {
  const dense = layers.filter((l): l is DenseLayer => l instanceof DenseLayer);
  return message.replace(/\blayer (\d+)\b/g, (text, d: string) => {
    const layer = dense.find((l) => l.denseIndex === Number(d));
    return layer ? `layer ${layers.indexOf(layer)}` : text;
  });
}

export function prune(host: StructureHost, options: PruneOptions): PruneResult {
  const where = 'Sequential.prune()';
  const o = checkOptions<PruneOptions>(where, 'options', options);
  checkKnownKeys(where, o, PRUNE_KEYS);
  const amount = checkNumber(where, 'amount', o.amount, { min: 0, max: 1, maxExclusive: true });
  const structure = checkOneOf(where, 'structure', o.structure ?? 'weight', ['weight', 'neuron'] as const);
  const scope = checkOneOf(where, 'scope', o.scope ?? 'layer', ['layer', 'global'] as const);
  const criterion =
    structure === 'weight'
      ? checkOneOf(where, 'criterion', o.criterion ?? 'magnitude', WEIGHT_CRITERIA)
      : checkOneOf(where, 'criterion', o.criterion ?? 'l2', NEURON_CRITERIA);
  const dense = host.layers.filter((l): l is DenseLayer => l instanceof DenseLayer);
  let targets: number[];
  if (o.layer === undefined) {
    targets = dense.map((l) => l.denseIndex);
    if (structure === 'neuron') targets = targets.slice(0, -1);
    if (targets.length === 0) throw new RangeError(`${where}: the model has no hidden dense layer whose neurons could be pruned`);
  } else {
    const list = Array.isArray(o.layer) ? o.layer : [o.layer];
    if (list.length === 0) throw new RangeError(`${where}: layer must name at least one layer, got an empty array`);
    targets = list.map((p, i) => denseIndexOf(where, host.layers, p, Array.isArray(o.layer) ? `layer[${i}]` : 'layer'));
    if (new Set(targets).size !== targets.length) throw new RangeError(`${where}: layer lists a layer twice: ${describe(o.layer)}`);
    if (structure === 'neuron') {
      const last = dense[dense.length - 1].denseIndex;
      const position = host.layers.indexOf(dense[dense.length - 1]);
      if (targets.includes(last)) {
        throw new RangeError(`${where}: layer ${position} is the output layer; its neurons are never pruned`);
      }
    }
  }
  host.assertIdle('prune');
  const before = host.native.eventCount;
  let removed: number;
  try {
    removed =
      structure === 'weight'
        ? host.native.pruneWeights(targets, amount, scope === 'global')
        : host.native.pruneNeurons(targets, amount, criterion, scope === 'global');
  } catch (err) {
    throw underApiName(where, err, (m) => withLayerPositions(m, host.layers));
  }
  return { removed, events: toApiEvents(host.native.events(before), host.layers) };
}

export function compact(host: StructureHost): StructuralEvent[] {
  host.assertIdle('compact');
  const before = host.native.eventCount;
  host.native.compact();
  return toApiEvents(host.native.events(before), host.layers);
}

export function rewind(host: StructureHost, step: unknown): void {
  const s = checkInteger('Sequential.rewind()', 'step', step, { min: 0 });
  host.assertIdle('rewind');
  host.native.rewind(s);
}

export function snapshot(host: StructureHost): number {
  host.assertIdle('snapshot');
  return host.native.snapshot();
}
