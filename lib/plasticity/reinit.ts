// Keeping plasticity over long task streams by reinitialising units that
// stopped contributing.
//   Continual backprop (Dohare et al., Nature 2024): every step, replace a
//   `replacementRate` fraction of the mature units with the lowest utility
//   (EMA of |a| x mean |w_out|, bias-corrected). Runs inside the native step
//   (on a GPU model: between device calls that end where a round replaces units).
//   ReDo (Sokar et al. 2023): every `every` steps, reset units whose dormancy
//   score mean|a_i| / mean_k mean|a_k| is <= threshold.
import type { Callback } from '../callbacks';
import type { Sequential } from '../sequential';
import { checkInteger, checkKnownKeys, checkNumber, checkOptions } from '../validate';
import { nextMultiple } from './schedule';

export interface ContinualBackpropOptions {
  /** Fraction of eligible units replaced per step (rho), in [0, 1]. Default 1e-4. */
  replacementRate?: number;
  /** Steps a unit must live before it can be replaced. Default 100. */
  maturity?: number;
  /** Decay of the utility's moving average (eta), in (0, 1). Default 0.99. */
  decay?: number;
}

export function continualBackprop(options: ContinualBackpropOptions = {}): Callback {
  const where = 'plasticity.continualBackprop()';
  const o = checkOptions<ContinualBackpropOptions>(where, 'options', options);
  checkKnownKeys(where, o, ['replacementRate', 'maturity', 'decay']);
  const rate = checkNumber(where, 'replacementRate', o.replacementRate ?? 1e-4, { min: 0, max: 1 });
  // The core counts steps in int64 but takes at most 2^52 here (exact in a double).
  const maturity = checkInteger(where, 'maturity', o.maturity ?? 100, { min: 0, max: 2 ** 52 });
  const decay = checkNumber(where, 'decay', o.decay ?? 0.99, { min: 0, max: 1, minExclusive: true, maxExclusive: true });
  let model: Sequential;
  // The model's statistics decay before this fit: restored afterwards, so later fits (and
  // activation/Taylor neuron pruning) see the model's own setting again.
  let previousDecay: number | undefined;
  return {
    setModel(m: unknown) {
      model = m as Sequential;
      // Inside the native step: no JS round trip per step.
      // The setting that can fail goes first, so a failure changes nothing.
      model.native.setContinualBackprop(rate, maturity);
      previousDecay = model.native.setStatsDecay(decay);
    },
    cleanup() {
      model?.native.setContinualBackprop(0, 0);
      if (previousDecay !== undefined) model?.native.setStatsDecay(previousDecay);
      previousDecay = undefined;
    },
  } as Callback;
}

export interface RedoOptions {
  /** Dormancy threshold tau (score = mean|a_i| / layer mean); units at or below it are reset. Default 0.1. */
  threshold?: number;
  /** Steps between checks. Default 1000. */
  every?: number;
}

export function redo(options: RedoOptions = {}): Callback {
  const where = 'plasticity.redo()';
  const o = checkOptions<RedoOptions>(where, 'options', options);
  checkKnownKeys(where, o, ['threshold', 'every']);
  const threshold = checkNumber(where, 'threshold', o.threshold ?? 0.1, { min: 0 });
  const every = checkInteger(where, 'every', o.every ?? 1000, { min: 1 });
  return {
    nextStep: (step: number) => nextMultiple(step, every),
    onStep(_step: number, m: unknown) {
      (m as Sequential).native.redo(threshold);
    },
  };
}
