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
  cycle: 'drop in & out: prune 2% of hidden units (taylor; at least one), grow up to 8 where needed, at the initial parameter budget, 20 times per task',
  dropin: 'grow 4 zero-init units into the first hidden layer after each task, up to twice its initial width',
};

/** Live units of the hidden layers (every dense layer but the last). */
function hiddenUnits(model: Sequential): number {
  const dense = model.layers.filter((l): l is DenseLayer => l instanceof DenseLayer);
  return dense.slice(0, -1).reduce((sum, l) => sum + l.units, 0);
}

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
      // Small, frequent turnover: a few units replaced every 1/20 of a task
      // keeps every unit young enough to learn (on the 60-task permuted
      // bench, 2% 20 times per task held new-task accuracy within 0.5 points
      // over seeds 1-3, where 5% twice per task drifted down 1.5).
      // At least one unit per cycle, whatever the width (2% of 32 units is none).
      return [
        plasticity.cycle({
          prune: { amount: Math.min(0.5, Math.max(0.02, 1 / Math.max(1, hiddenUnits(model)))), criterion: 'taylor' },
          grow: { count: 8, init: 'zero' },
          budget: model.countParams(),
          every: Math.max(1, Math.round(stepsPerTask / 20)),
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
