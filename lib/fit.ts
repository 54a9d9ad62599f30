// The training loop behind Sequential.fit(). Each epoch is one native call
// (many steps in an AsyncWorker, progress through a thread-safe function)
// unless a callback asks for onBatchEnd, in which case control returns to JS
// after every batch so the callback can inspect or change the model.
import type { BatchLogs, Callback, EpochLogs, History } from './callbacks';
import { emptyHistory } from './callbacks';
import type { NativeModel, NativeTargets } from './native';

export interface FitPlan {
  native: NativeModel;
  x: Float32Array;
  y: NativeTargets;
  n: number;
  epochs: number;
  initialEpoch: number;
  batchSize: number;
  shuffle: boolean;
  callbacks: Callback[];
  signal?: AbortSignal;
  validate?: () => Promise<{ loss: number; accuracy: number }>;
}

export class AbortError extends Error {
  readonly code = 'ABORT_ERR';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}

function abortError(signal: AbortSignal, step: number): AbortError {
  return new AbortError(`fit() was aborted at step ${step}`, { cause: signal.reason });
}

async function callAll<K extends keyof Callback>(callbacks: Callback[], hook: K, ...args: Parameters<NonNullable<Callback[K]>>) {
  for (const cb of callbacks) {
    const fn = cb[hook] as ((...a: unknown[]) => unknown) | undefined;
    if (fn) await fn.apply(cb, args);
  }
}

export async function runFit(plan: FitPlan): Promise<History> {
  const { native, x, y, n, batchSize, callbacks, signal } = plan;
  const history = emptyHistory();
  const batches = Math.ceil(n / batchSize);
  const perBatch = callbacks.some((c) => typeof c.onBatchEnd === 'function');
  const progressCallbacks = callbacks.filter((c) => typeof c.onProgress === 'function');
  const onAbort = () => native.requestAbort();
  if (signal?.aborted) throw abortError(signal, native.step);
  signal?.addEventListener('abort', onAbort);
  try {
    await callAll(callbacks, 'onTrainBegin');
    for (let epoch = plan.initialEpoch; epoch < plan.epochs; epoch++) {
      await callAll(callbacks, 'onEpochBegin', epoch);
      const order = native.epochOrder(n, plan.shuffle);
      let lossSum = 0;
      let correct = 0;
      let samples = 0;
      const started = process.hrtime.bigint();
      if (perBatch) {
        for (let b = 0; b < batches; b++) {
          if (signal?.aborted) throw abortError(signal, native.step);
          const r = await native.trainBatches(x, y, order, b, 1, batchSize);
          if (r.aborted) throw abortError(signal!, native.step);
          lossSum += r.lossSum;
          correct += r.correct;
          samples += r.samples;
          const logs: BatchLogs = { loss: r.lossSum / r.samples, accuracy: r.correct / r.samples, size: r.samples, step: native.step };
          await callAll(callbacks, 'onBatchEnd', b, logs);
          for (const cb of progressCallbacks) {
            cb.onProgress!({ epoch, epochs: plan.epochs, batch: b + 1, batches, loss: lossSum / samples, accuracy: correct / samples });
          }
        }
      } else {
        let finished = false;
        const progress = progressCallbacks.length
          ? (done: number, ls: number, c: number, s: number) => {
              if (finished) return; // a late report after the epoch settled
              for (const cb of progressCallbacks) {
                cb.onProgress!({ epoch, epochs: plan.epochs, batch: done, batches, loss: ls / s, accuracy: c / s });
              }
            }
          : undefined;
        const r = await native.trainBatches(x, y, order, 0, batches, batchSize, progress);
        finished = true;
        if (r.aborted) throw abortError(signal!, native.step);
        lossSum = r.lossSum;
        correct = r.correct;
        samples = r.samples;
        for (const cb of progressCallbacks) {
          cb.onProgress!({ epoch, epochs: plan.epochs, batch: batches, batches, loss: lossSum / samples, accuracy: correct / samples });
        }
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const logs: EpochLogs = {
        loss: lossSum / samples,
        accuracy: correct / samples,
        seconds,
        samplesPerSecond: samples / seconds,
        step: native.step,
      };
      if (plan.validate) {
        const v = await plan.validate();
        logs.valLoss = v.loss;
        logs.valAccuracy = v.accuracy;
        history.history.valLoss.push(v.loss);
        history.history.valAccuracy.push(v.accuracy);
      }
      history.epoch.push(epoch);
      history.history.loss.push(logs.loss);
      history.history.accuracy.push(logs.accuracy);
      history.history.seconds.push(seconds);
      await callAll(callbacks, 'onEpochEnd', epoch, logs);
      if (signal?.aborted) throw abortError(signal, native.step);
    }
    await callAll(callbacks, 'onTrainEnd', history);
    return history;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
