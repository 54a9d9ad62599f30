// Helpers shared by the plasticity schedules.
import { DenseLayer } from '../layers';
import type { Sequential } from '../sequential';
import { denseIndexOf } from '../structure';

/** The next multiple of `every` after `step` (counting from `start`), or undefined past `until`. */
export function nextMultiple(step: number, every: number, start = 0, until = Infinity): number | undefined {
  const next = step < start ? start + every : start + (Math.floor((step - start) / every) + 1) * every;
  return next <= until ? next : undefined;
}

/** Dense-layer indices for `positions` in model.layers (default: every dense layer). */
export function denseTargets(where: string, model: Sequential, positions?: number[]): number[] {
  if (positions === undefined) return model.layers.flatMap((l) => (l instanceof DenseLayer ? [l.denseIndex] : []));
  return positions.map((p, i) => denseIndexOf(where, model.layers, p, `layers[${i}]`));
}

/** Hidden dense layers as (position in model.layers, layer). */
export function hiddenLayers(model: Sequential): [number, DenseLayer][] {
  const dense = model.layers.flatMap((l, i) => (l instanceof DenseLayer ? [[i, l] as [number, DenseLayer]] : []));
  return dense.slice(0, -1);
}

/** Overall weight density of the dense layers (those at `positions` in model.layers, when given). */
export function overallDensity(model: Sequential, positions?: number[]): number {
  let nnz = 0;
  let size = 0;
  for (const [i, l] of model.layers.entries()) {
    if (l instanceof DenseLayer && (positions === undefined || positions.includes(i))) {
      nnz += l.nnz;
      size += l.units * l.inputs;
    }
  }
  return size ? nnz / size : 1;
}

/**
 * A schedule's `layers` option: undefined (every dense layer) or a non-empty list of distinct
 * positions in model.layers. A layer listed twice would be changed twice per update (pruned or
 * rewired again on what the first change left), which no schedule means, so it is refused, as
 * model.grow and model.prune refuse it.
 */
export function checkLayerList(where: string, layers: unknown): number[] | undefined {
  if (layers === undefined) return undefined;
  if (!Array.isArray(layers) || layers.length === 0 || !layers.every((l) => Number.isInteger(l) && l >= 0)) {
    throw new TypeError(`${where}: layers must be a non-empty array of positions in model.layers`);
  }
  if (new Set(layers).size !== layers.length) throw new RangeError(`${where}: layers lists a layer twice: [${layers.join(', ')}]`);
  return layers as number[];
}
