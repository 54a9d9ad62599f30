// The drop-in & out cycle: alternately remove the least useful neurons and
// add neurons where the gradient signal says capacity is needed, keeping the
// parameter count within a budget. Every decision is logged with its scores.
import type { Callback } from '../callbacks';
import { GROW_INITS, type GrowInit } from '../growth';
import { DenseLayer } from '../layers';
import type { Sequential } from '../sequential';
import { NEURON_CRITERIA, type NeuronCriterion } from '../structure';
import { checkInteger, checkKnownKeys, checkNumber, checkOneOf, checkOptions } from '../validate';
import { hiddenLayers, nextMultiple } from './schedule';

export interface CycleOptions {
  /** Growth per cycle: `count` neurons with `init` (default 'zero') into the hidden layer that needs them most. */
  grow: { count: number; init?: GrowInit };
  /** Removal per cycle: the `amount` fraction of live hidden neurons with the lowest `criterion` score (default 'taylor'), ranked globally. */
  prune: { amount: number; criterion?: NeuronCriterion };
  /** The most parameters (stored weights + biases) the model may have after growth. */
  budget: number;
  /** Steps between cycles. Default 500. */
  every?: number;
}

export interface CycleDecision {
  step: number;
  pruned: number;
  grownLayer: number | null;
  grown: number;
  /** Need score of each hidden layer (mean Taylor score per live unit), by position in model.layers. */
  need: Record<number, number>;
  params: number;
}

export function cycle(options: CycleOptions): Callback & { decisions: CycleDecision[] } {
  const where = 'plasticity.cycle()';
  const o = checkOptions<CycleOptions>(where, 'options', options);
  checkKnownKeys(where, o, ['grow', 'prune', 'budget', 'every']);
  const g = checkOptions<CycleOptions['grow']>(where, 'grow', o.grow);
  checkKnownKeys(`${where} grow`, g, ['count', 'init']);
  const p = checkOptions<CycleOptions['prune']>(where, 'prune', o.prune);
  checkKnownKeys(`${where} prune`, p, ['amount', 'criterion']);
  const count = checkInteger(where, 'grow.count', g.count, { min: 1, max: 1 << 20 });
  const init = checkOneOf(where, 'grow.init', g.init ?? 'zero', GROW_INITS);
  const amount = checkNumber(where, 'prune.amount', p.amount, { min: 0, max: 1, maxExclusive: true });
  const criterion = checkOneOf(where, 'prune.criterion', p.criterion ?? 'taylor', NEURON_CRITERIA);
  const budget = checkInteger(where, 'budget', o.budget, { min: 1 });
  const every = checkInteger(where, 'every', o.every ?? 500, { min: 1 });
  const decisions: CycleDecision[] = [];
  let model: Sequential;

  return {
    decisions,
    setModel(m: unknown) {
      model = m as Sequential;
      if (hiddenLayers(model).length === 0) throw new RangeError(`${where}: the model has no hidden layer to grow or prune`);
      if (init === 'gradmax') model.native.setKeepLastBatch(true);
    },
    cleanup() {
      if (init === 'gradmax') model?.native.setKeepLastBatch(false);
    },
    nextStep: (step: number) => nextMultiple(step, every),
    onStep(step: number) {
      // Drop out: the least useful neurons, then compact.
      const hidden = hiddenLayers(model);
      const pruned = amount > 0 ? model.prune({ structure: 'neuron', amount, criterion, scope: 'global', layer: hidden.map(([i]) => i) }).removed : 0;
      if (pruned > 0) model.compact();
      // Drop in: where the Taylor signal per unit is highest (the layer whose
      // units matter most on average is the one short of capacity).
      const need: Record<number, number> = {};
      let bestLayer = -1;
      let bestNeed = -Infinity;
      for (const [position, layer] of hiddenLayers(model)) {
        const stats = model.native.unitStats(layer.denseIndex);
        const mean = stats.taylor.reduce((a, b) => a + b, 0) / Math.max(1, stats.taylor.length);
        need[position] = mean;
        if (mean > bestNeed) {
          bestNeed = mean;
          bestLayer = position;
        }
      }
      let grown = 0;
      if (bestLayer >= 0) {
        const target = hiddenLayers(model).find(([i]) => i === bestLayer)![1];
        // A new unit costs its incoming weights, its bias and its outgoing weights.
        const nextLayer = model.layers.slice(bestLayer + 1).find((l): l is DenseLayer => l instanceof DenseLayer);
        const perUnit = target.inputs + 1 + (nextLayer?.units ?? 0);
        const room = Math.floor((budget - model.countParams()) / perUnit);
        grown = Math.min(count, room);
        if (grown > 0) model.grow({ layer: bestLayer, count: grown, init });
        else grown = 0;
      }
      decisions.push({ step, pruned, grownLayer: grown > 0 ? bestLayer : null, grown, need, params: model.countParams() });
    },
  } as Callback & { decisions: CycleDecision[] };
}
