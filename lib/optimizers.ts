// Optimizer factories. Each returns a plain, frozen description; the state
// (velocity, Adam moments) lives natively in each parameter's slots, so
// growing or pruning a layer keeps it aligned with the weights. Every number
// is used as a float32, so each range below holds after rounding to float32.
import { checkBoolean, checkKnownKeys, checkNumber, checkOptions, type NumberRange } from './validate';

export interface SgdOptions {
  /** Step size; > 0. Default 0.01. */
  learningRate?: number;
  /** Heavy-ball momentum in [0, 1). Default 0 (plain SGD, no velocity slot). */
  momentum?: number;
  /** Nesterov momentum (needs momentum > 0). Default false. */
  nesterov?: boolean;
  /** L2 penalty added to weight gradients (biases are not decayed). Default 0. */
  weightDecay?: number;
}

export interface AdamOptions {
  /** Step size; > 0. Default 0.001. */
  learningRate?: number;
  /** Decay of the first moment, in [0, 1). Default 0.9. */
  beta1?: number;
  /** Decay of the second moment, in [0, 1). Default 0.999. */
  beta2?: number;
  /** Added to the denominator for stability; > 0. Default 1e-8. */
  epsilon?: number;
  /** Weight decay (biases are not decayed). Default 0. */
  weightDecay?: number;
  /** AdamW: decay the weights directly instead of through the gradient. Default false. */
  decoupledWeightDecay?: boolean;
}

export interface Optimizer {
  readonly kind: 'sgd' | 'adam';
  readonly learningRate: number;
  readonly momentum?: number;
  readonly nesterov?: boolean;
  readonly weightDecay?: number;
  readonly beta1?: number;
  readonly beta2?: number;
  readonly epsilon?: number;
  readonly decoupledWeightDecay?: boolean;
}

const SGD_KEYS = ['learningRate', 'momentum', 'nesterov', 'weightDecay'] as const;
const ADAM_KEYS = ['learningRate', 'beta1', 'beta2', 'epsilon', 'weightDecay', 'decoupledWeightDecay'] as const;

// The core keeps every hyper-parameter as a float32 and checks it after the cast (see
// native/binding/model_wrap.cpp Compile and Model::compile): a learning rate of 1e-50 becomes 0 and
// a momentum of 1 - 1e-12 becomes 1 there. Checking the rounded value here names the option and
// the value instead of failing in compile() with the core's bare message.
const POSITIVE: NumberRange = { min: 0, minExclusive: true, float32: true };
const NON_NEGATIVE: NumberRange = { min: 0, float32: true };
const DECAY_RATE: NumberRange = { min: 0, max: 1, maxExclusive: true, float32: true };

/** Stochastic gradient descent with optional (Nesterov) momentum and weight decay (torch.optim.SGD semantics). */
export function sgd(options?: SgdOptions): Optimizer {
  const where = 'optimizers.sgd()';
  const o = checkOptions<SgdOptions>(where, 'options', options);
  checkKnownKeys(where, o, SGD_KEYS);
  const learningRate = checkNumber(where, 'learningRate', o.learningRate ?? 0.01, POSITIVE);
  const momentum = checkNumber(where, 'momentum', o.momentum ?? 0, DECAY_RATE);
  const nesterov = checkBoolean(where, 'nesterov', o.nesterov ?? false);
  const weightDecay = checkNumber(where, 'weightDecay', o.weightDecay ?? 0, NON_NEGATIVE);
  // The core tests the float32 momentum: 1e-50 is no momentum there.
  if (nesterov && Math.fround(momentum) === 0) {
    throw new RangeError(`${where}: nesterov needs momentum > 0, got momentum ${momentum}${momentum === 0 ? '' : ' (0 in float32)'}`);
  }
  return Object.freeze({ kind: 'sgd' as const, learningRate, momentum, nesterov, weightDecay });
}

/** Adam (Kingma & Ba), or AdamW with decoupledWeightDecay (torch.optim.Adam/AdamW semantics). */
export function adam(options?: AdamOptions): Optimizer {
  const where = 'optimizers.adam()';
  const o = checkOptions<AdamOptions>(where, 'options', options);
  checkKnownKeys(where, o, ADAM_KEYS);
  return Object.freeze({
    kind: 'adam' as const,
    learningRate: checkNumber(where, 'learningRate', o.learningRate ?? 0.001, POSITIVE),
    beta1: checkNumber(where, 'beta1', o.beta1 ?? 0.9, DECAY_RATE),
    beta2: checkNumber(where, 'beta2', o.beta2 ?? 0.999, DECAY_RATE),
    epsilon: checkNumber(where, 'epsilon', o.epsilon ?? 1e-8, POSITIVE),
    weightDecay: checkNumber(where, 'weightDecay', o.weightDecay ?? 0, NON_NEGATIVE),
    decoupledWeightDecay: checkBoolean(where, 'decoupledWeightDecay', o.decoupledWeightDecay ?? false),
  });
}

/** AdamW: Adam with decoupled weight decay (default 0.01). */
export function adamw(options?: AdamOptions): Optimizer {
  const o = checkOptions<AdamOptions>('optimizers.adamw()', 'options', options);
  return adam({ weightDecay: 0.01, ...o, decoupledWeightDecay: true });
}

export function isOptimizer(value: unknown): value is Optimizer {
  return (
    typeof value === 'object' &&
    value !== null &&
    ((value as Optimizer).kind === 'sgd' || (value as Optimizer).kind === 'adam') &&
    typeof (value as Optimizer).learningRate === 'number'
  );
}
