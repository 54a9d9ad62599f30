// Dynamic sparse training, truly sparse: the model starts sparse and keeps its
// sparsity while connections are dropped and regrown.
//   SET (Mocanu et al. 2018): drop the smallest weights, regrow at random.
//   RigL (Evci et al. 2020): drop the smallest, regrow where the gradient of
//   the missing connections is largest; the drop fraction decays with a cosine.
import type { Callback } from '../callbacks';
import type { Sequential } from '../sequential';
import { checkInteger, checkKnownKeys, checkNumber, checkOneOf, checkOptions } from '../validate';
import { checkLayerList, denseTargets, nextMultiple, overallDensity } from './schedule';

export interface SetOptions {
  /**
   * Overall weight sparsity to start from, in [0, 1): a denser model is
   * sparsified once when training begins. Omit it for a model built sparse
   * (layers.dense({ density })), whose sparsity is kept as it is.
   */
  sparsity?: number;
  /** Fraction of each layer's weights dropped and regrown per update (zeta), in [0, 1). Default 0.3. */
  dropFraction?: number;
  /** Steps between updates. Default 100. */
  every?: number;
  /** Initial layer densities: 'erdos-renyi' (default) or 'uniform'. */
  distribution?: 'erdos-renyi' | 'uniform';
  /** Positions in model.layers to rewire, each once. Default: every dense layer. */
  layers?: number[];
}

export interface RiglOptions extends SetOptions {
  /** Last step with updates (T_end); the drop fraction decays to 0 there. */
  until: number;
}

// Sparsifies the schedule's layers (all dense layers when not given) once:
// layers already at (or below) the target density keep their pattern.
function startSparse(model: Sequential, sparsity: number | undefined, distribution: 'erdos-renyi' | 'uniform', layers: number[] | undefined) {
  if (sparsity !== undefined && overallDensity(model, layers) > 1 - sparsity + 1e-9) model.sparsify({ sparsity, distribution, layers });
}

function common(where: string, options: SetOptions, extraKeys: string[]) {
  const o = checkOptions<SetOptions>(where, 'options', options);
  checkKnownKeys(where, o, ['sparsity', 'dropFraction', 'every', 'distribution', 'layers', ...extraKeys]);
  return {
    o,
    sparsity: o.sparsity === undefined ? undefined : checkNumber(where, 'sparsity', o.sparsity, { min: 0, max: 1, maxExclusive: true }),
    dropFraction: checkNumber(where, 'dropFraction', o.dropFraction ?? 0.3, { min: 0, max: 1, maxExclusive: true }),
    every: checkInteger(where, 'every', o.every ?? 100, { min: 1 }),
    distribution: checkOneOf(where, 'distribution', o.distribution ?? 'erdos-renyi', ['erdos-renyi', 'uniform'] as const),
    layers: checkLayerList(where, o.layers),
  };
}

/** SET: sparse from the start, random regrowth every `every` steps. */
export function set(options: SetOptions): Callback {
  const where = 'plasticity.set()';
  const c = common(where, options, []);
  let model: Sequential;
  return {
    setModel(m: unknown) {
      model = m as Sequential;
    },
    onTrainBegin() {
      startSparse(model, c.sparsity, c.distribution, c.layers);
    },
    nextStep: (step: number) => nextMultiple(step, c.every),
    onStep(_step: number, m: unknown) {
      const s = m as Sequential;
      s.native.regrow(denseTargets(where, s, c.layers), c.dropFraction, false);
    },
  } as Callback;
}

/** RigL: sparse from the start, gradient regrowth with a cosine-decayed drop fraction until `until`. */
export function rigl(options: RiglOptions): Callback & { dropFractionAt(step: number): number } {
  const where = 'plasticity.rigl()';
  const c = common(where, options, ['until']);
  const until = checkInteger(where, 'until', (c.o as RiglOptions).until, { min: 1 });
  const dropFractionAt = (step: number) => (step >= until ? 0 : (c.dropFraction / 2) * (1 + Math.cos((Math.PI * step) / until)));
  let model: Sequential;
  // The step this fit started at: no batch of it has run there yet, so there
  // is no gradient to regrow by (a fit resuming at an update step skips it).
  let firstStep = -1;
  return {
    dropFractionAt,
    setModel(m: unknown) {
      model = m as Sequential;
    },
    onTrainBegin() {
      startSparse(model, c.sparsity, c.distribution, c.layers);
      // The gradient of missing connections is computed from the last batch.
      model.native.setKeepLastBatch(true);
      firstStep = model.step;
    },
    cleanup() {
      model?.native.setKeepLastBatch(false);
    },
    nextStep: (step: number) => nextMultiple(step, c.every, 0, until - 1),
    onStep(step: number, m: unknown) {
      const s = m as Sequential;
      const f = dropFractionAt(step);
      if (f > 0 && step !== firstStep) s.native.regrow(denseTargets(where, s, c.layers), f, true);
    },
  } as Callback & { dropFractionAt(step: number): number };
}
