// Schedules that change a model's structure while it trains. Each is a fit()
// callback using the step hooks (nextStep/onStep): fit() pauses its native
// loop exactly at the steps a schedule asks for, so every step number here is
// the model's global optimizer step (model.step).
import type { Callback } from '../callbacks';
import { DenseLayer } from '../layers';
import type { Sequential } from '../sequential';
import { denseIndexOf } from '../structure';
import { checkInteger, checkKnownKeys, checkNumber, checkOneOf, checkOptions } from '../validate';
import { checkLayerList } from './schedule';

export interface GradualMagnitudeOptions {
  /** Sparsity reached at endStep, in [0, 1). */
  finalSparsity: number;
  /** Sparsity at startStep, in [0, finalSparsity]. Default 0. */
  initialSparsity?: number;
  /** First pruning step (t0). Default 0. */
  startStep?: number;
  /** Last pruning step (t0 + n * every); the final sparsity holds from here on. */
  endStep: number;
  /** Steps between pruning events (dt). Default 100. */
  every?: number;
  /** 'layer' (each layer reaches the sparsity, default) or 'global' (one magnitude ranking). */
  scope?: 'layer' | 'global';
  /** Positions in model.layers to prune, each once. Default: every dense layer. */
  layers?: number[];
}

/**
 * Gradual magnitude pruning (Zhu & Gupta 2017): every `every` steps from
 * startStep to endStep, prune by magnitude to
 *   s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (endStep - t0))^3,
 * pruning fast while the network is redundant and slowly near the end.
 */
export function gradualMagnitude(options: GradualMagnitudeOptions): Callback & { sparsityAt(step: number): number } {
  const where = 'plasticity.gradualMagnitude()';
  const o = checkOptions<GradualMagnitudeOptions>(where, 'options', options);
  checkKnownKeys(where, o, ['finalSparsity', 'initialSparsity', 'startStep', 'endStep', 'every', 'scope', 'layers']);
  const finalSparsity = checkNumber(where, 'finalSparsity', o.finalSparsity, { min: 0, max: 1, maxExclusive: true });
  const initialSparsity = checkNumber(where, 'initialSparsity', o.initialSparsity ?? 0, { min: 0, max: finalSparsity });
  const startStep = checkInteger(where, 'startStep', o.startStep ?? 0, { min: 0 });
  const endStep = checkInteger(where, 'endStep', o.endStep, { min: startStep + 1 });
  const every = checkInteger(where, 'every', o.every ?? 100, { min: 1 });
  const scope = checkOneOf(where, 'scope', o.scope ?? 'layer', ['layer', 'global'] as const);
  const layers = checkLayerList(where, o.layers);
  const sparsityAt = (step: number) => {
    if (step <= startStep) return initialSparsity;
    if (step >= endStep) return finalSparsity;
    const progress = (step - startStep) / (endStep - startStep);
    return finalSparsity + (initialSparsity - finalSparsity) * Math.pow(1 - progress, 3);
  };
  return {
    sparsityAt,
    nextStep(step: number) {
      if (step >= endStep) return undefined;
      if (step < startStep) return startStep;
      // The next multiple of `every` after startStep, or endStep itself.
      const k = Math.floor((step - startStep) / every) + 1;
      return Math.min(startStep + k * every, endStep);
    },
    onStep(step: number, model: unknown) {
      const m = model as Sequential;
      const targets = layers ?? m.layers.map((l, i) => (l instanceof DenseLayer ? i : -1)).filter((i) => i >= 0);
      const dense = targets.map((p, i) => denseIndexOf(where, m.layers, p, `layers[${i}]`));
      const s = sparsityAt(step);
      if (s > 0) m.native.pruneWeightsToSparsity(dense, s, scope === 'global');
    },
  };
}

export interface SnapshotAtOptions {
  /** The global step whose weights rewind() can return to (lottery ticket: an early step). */
  step: number;
}

/** Saves the model's weights when it reaches `step`, for a later model.rewind(step). */
export function snapshotAt(options: SnapshotAtOptions): Callback {
  const where = 'plasticity.snapshotAt()';
  const o = checkOptions<SnapshotAtOptions>(where, 'options', options);
  checkKnownKeys(where, o, ['step']);
  const at = checkInteger(where, 'step', o.step, { min: 0 });
  return {
    nextStep: (step: number) => (step < at ? at : undefined),
    onStep: (_step: number, model: unknown) => {
      (model as Sequential).snapshot();
    },
  };
}
