// Dropin schedule: grow a hidden layer when training stalls (or on a fixed
// period), the neurogenesis half of "drop in & out".
import type { Callback, EpochLogs } from '../callbacks';
import { GROW_INITS, type GrowInit } from '../growth';
import { DenseLayer } from '../layers';
import type { Sequential } from '../sequential';
import { checkInteger, checkKnownKeys, checkNumber, checkOneOf, checkOptions } from '../validate';
import { nextMultiple } from './schedule';

export interface DropinOptions {
  /** Position in model.layers of the hidden dense layer to grow. */
  layer: number;
  /** Neurons added each time. */
  count: number;
  /** How new neurons start (see model.grow). Default 'zero'. */
  init?: GrowInit;
  /** 'plateau': after `patience` epochs without improvement of the monitored loss (default); 'every': every `every` steps. */
  when?: 'plateau' | 'every';
  /** Epochs without improvement before growing ('plateau'). Default 2. */
  patience?: number;
  /** Steps between growth ('every'). */
  every?: number;
  /** Stop growing once the layer has this many units. Default: no limit. */
  maxUnits?: number;
  /** Improvement smaller than this does not count ('plateau'). Default 1e-3. */
  minDelta?: number;
  /** 'valLoss' when validation data is given (default), else 'loss'. */
  monitor?: 'loss' | 'valLoss';
}

export function dropin(options: DropinOptions): Callback {
  const where = 'plasticity.dropin()';
  const o = checkOptions<DropinOptions>(where, 'options', options);
  checkKnownKeys(where, o, ['layer', 'count', 'init', 'when', 'patience', 'every', 'maxUnits', 'minDelta', 'monitor']);
  const layer = checkInteger(where, 'layer', o.layer, { min: 0 });
  const count = checkInteger(where, 'count', o.count, { min: 1, max: 1 << 20 });
  const init = checkOneOf(where, 'init', o.init ?? 'zero', GROW_INITS);
  const when = checkOneOf(where, 'when', o.when ?? 'plateau', ['plateau', 'every'] as const);
  const patience = checkInteger(where, 'patience', o.patience ?? 2, { min: 1 });
  const every = when === 'every' ? checkInteger(where, 'every', o.every, { min: 1 }) : 0;
  // An option the chosen trigger never reads is a mistake worth saying (every without when: 'every'
  // would otherwise silently grow on plateaus instead).
  const unused = when === 'every' ? ['patience', 'minDelta', 'monitor'].filter((k) => (o as unknown as Record<string, unknown>)[k] !== undefined) : o.every !== undefined ? ['every'] : [];
  if (unused.length) {
    throw new TypeError(`${where}: ${unused.join(', ')} ${unused.length > 1 ? 'apply' : 'applies'} only to when: '${when === 'every' ? 'plateau' : 'every'}', but when is '${when}'`);
  }
  const maxUnits = o.maxUnits === undefined ? Infinity : checkInteger(where, 'maxUnits', o.maxUnits, { min: 1 });
  const minDelta = checkNumber(where, 'minDelta', o.minDelta ?? 1e-3, { min: 0 });
  const monitor = o.monitor === undefined ? undefined : checkOneOf(where, 'monitor', o.monitor, ['loss', 'valLoss'] as const);
  let model: Sequential;
  let best = Infinity;
  let waited = 0;

  const growOnce = (m: Sequential) => {
    const target = m.layers[layer];
    if (!(target instanceof DenseLayer)) throw new RangeError(`${where}: layer ${layer} is not a dense layer`);
    const room = maxUnits - target.units;
    if (room <= 0) return;
    m.grow({ layer, count: Math.min(count, room), init });
  };

  return {
    setModel(m: unknown) {
      model = m as Sequential;
      const target = model.layers[layer];
      if (!(target instanceof DenseLayer)) throw new RangeError(`${where}: layer ${layer} is not a dense layer of this model`);
      // grow() refuses the output layer (its units are the model's outputs): say so before training, not at the first growth.
      const dense = model.layers.filter((l) => l instanceof DenseLayer);
      if (target === dense[dense.length - 1]) throw new RangeError(`${where}: layer ${layer} is the output layer; only hidden layers grow`);
      if (init === 'gradmax') model.native.setKeepLastBatch(true);
    },
    cleanup() {
      if (init === 'gradmax') model?.native.setKeepLastBatch(false);
    },
    ...(when === 'every'
      ? {
          nextStep: (step: number) => nextMultiple(step, every),
          onStep: (_step: number, m: unknown) => growOnce(m as Sequential),
        }
      : {
          onEpochEnd(_epoch: number, logs: EpochLogs) {
            const value = monitor === 'loss' || logs.valLoss === undefined ? logs.loss : logs.valLoss;
            if (value < best - minDelta) {
              best = value;
              waited = 0;
              return;
            }
            if (++waited >= patience) {
              growOnce(model);
              waited = 0;
              best = value;
            }
          },
        }),
  };
}
