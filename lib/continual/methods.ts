// The plasticity methods a continual run can compare, as fit() callbacks
// sized for a task stream (shared by `neuroplastic continual` and the
// loss-of-plasticity bench).
import type { Callback } from '../callbacks';
import { DenseLayer } from '../layers';
import * as plasticity from '../plasticity';
import type { Sequential } from '../sequential';

export const METHODS = ['sgd', 'cbp', 'redo', 'cycle', 'dropin'] as const;
export type MethodName = (typeof METHODS)[number];

/** One line per method, for help texts. */
export const METHOD_HELP: Record<MethodName, string> = {
  sgd: 'plain backprop, no structural change',
  cbp: 'continual backprop: replacementRate 1e-3 of mature units per step (maturity 100), lowest utility first',
  redo: 'ReDo: reset units with dormancy score <= 0.1, twice per task',
  cycle: 'drop in & out: prune 5% of hidden units (taylor), grow up to 16 where needed, at the initial parameter budget, twice per task',
  dropin: 'grow 4 zero-init units into the first hidden layer after each task, up to twice its initial width',
};

/**
 * The callbacks of `method` for `model` (compiled, not yet trained on the
 * stream), for a stream with `stepsPerTask` optimizer steps per task.
 */
export function methodCallbacks(method: MethodName, model: Sequential, stepsPerTask: number): Callback[] {
  const period = Math.max(1, Math.round(stepsPerTask / 2));
  switch (method) {
    case 'sgd':
      return [];
    case 'cbp':
      // Dohare et al. use rho = 1e-4 with 2000 units per layer; with ~100
      // units a 10x larger rate replaces a comparable number per task.
      return [plasticity.continualBackprop({ replacementRate: 1e-3, maturity: 100, decay: 0.99 })];
    case 'redo':
      return [plasticity.redo({ threshold: 0.1, every: period })];
    case 'cycle':
      return [
        plasticity.cycle({
          prune: { amount: 0.05, criterion: 'taylor' },
          grow: { count: 16, init: 'zero' },
          budget: model.countParams(),
          every: period,
        }),
      ];
    case 'dropin': {
      const position = model.layers.findIndex((l) => l instanceof DenseLayer);
      const first = model.layers[position] as DenseLayer;
      return [plasticity.dropin({ layer: position, count: 4, init: 'zero', when: 'every', every: Math.max(1, stepsPerTask), maxUnits: 2 * first.units })];
    }
    default:
      throw new RangeError(`continual.methodCallbacks(): method must be one of ${METHODS.join(', ')}, got ${String(method)}`);
  }
}
