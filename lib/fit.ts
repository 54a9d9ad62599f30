// The training loop behind Sequential.fit(). An epoch runs as few native calls
// as possible (many steps per AsyncWorker, progress through a thread-safe
// function). It is split only where JS must see the model between two steps:
// after every batch when a callback defines onBatchEnd, and at the steps that
// step hooks (plasticity schedules) ask for through nextStep().
import type { BatchLogs, Callback, EpochLogs, History } from './callbacks';
import { emptyHistory } from './callbacks';
import type { StructuralEvent } from './events';
import type { NativeModel, NativeTargets, NativeTrainResult } from './native';

export interface FitPlan {
  native: NativeModel;
  /** The Sequential, handed to onStep hooks. */
  model: unknown;
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
  /** Native events since `from`, as API events. */
  eventsSince: (from: number) => StructuralEvent[];
  /** Told when fit is at a step boundary (running hooks, so the model may be read or changed) and when not. */
  setBoundary: (atBoundary: boolean) => void;
  /** Resolves once a native operation a hook started (e.g. predict() not awaited) has finished. */
  settle: () => Promise<void>;
  /** The step at which step hooks last ran on this model (-1: never), and its setter. */
  stepHooksRanAt: () => number;
  markStepHooksRan: (step: number) => void;
}

export class AbortError extends Error {
  readonly code = 'ABORT_ERR';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}

function abortError(signal: AbortSignal | undefined, step: number): AbortError {
  return new AbortError(`fit() was aborted at step ${step}`, { cause: signal?.reason });
}

async function callAll<K extends keyof Callback>(callbacks: Callback[], hook: K, ...args: Parameters<NonNullable<Callback[K]>>) {
  for (const cb of callbacks) {
    const fn = cb[hook] as ((...a: unknown[]) => unknown) | undefined;
    if (fn) await fn.apply(cb, args);
  }
}

// A copy of the callback whose awaited hooks mark the step boundary while they
// run. Methods may live on the object or on its class's prototype chain. A hook
// may start predict() or evaluate() without awaiting it: the boundary lasts
// until that ends, since the core runs one operation at a time and would reject
// fit's next call.
function boundaryWrapped(cb: Callback, setBoundary: (b: boolean) => void, settle: () => Promise<void>): Callback {
  const keys = new Set<string>();
  for (let o: object | null = cb; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    for (const key of Object.getOwnPropertyNames(o)) if (key !== 'constructor') keys.add(key);
  }
  const wrapped: Record<string, unknown> = {};
  for (const key of keys) {
    const fn = (cb as Record<string, unknown>)[key];
    if (typeof fn !== 'function') continue;
    const call = (args: unknown[]) => (fn as (...a: unknown[]) => unknown).apply(cb, args);
    // These are synchronous queries and notifications.
    wrapped[key] =
      key === 'nextStep' || key === 'onProgress' || key === 'setModel' || key === 'cleanup'
        ? (...args: unknown[]) => call(args)
        : async (...args: unknown[]) => {
            setBoundary(true);
            try {
              return await call(args);
            } finally {
              await settle();
              setBoundary(false);
            }
          };
  }
  return wrapped as Callback;
}

const STRUCTURAL_HOOK: Partial<Record<StructuralEvent['kind'], keyof Callback>> = {
  prune: 'onPrune',
  compact: 'onCompact',
  grow: 'onGrow',
  reinit: 'onReinit',
};

export async function runFit(plan: FitPlan): Promise<History> {
  const { native, n, batchSize, signal } = plan;
  // Every hook runs at a step boundary: the native loop is idle, so the hook
  // may read weights or change the structure.
  const callbacks = plan.callbacks.map((cb) => boundaryWrapped(cb, plan.setBoundary, plan.settle));
  const history = emptyHistory();
  const batches = Math.ceil(n / batchSize);
  const perBatch = callbacks.some((c) => typeof c.onBatchEnd === 'function');
  const progressCallbacks = callbacks.filter((c) => typeof c.onProgress === 'function');
  const stepHooks = callbacks.filter((c) => typeof c.nextStep === 'function' && typeof c.onStep === 'function');
  let eventsSeen = native.eventCount;

  // Hands structural events logged since the last call to the hooks.
  const dispatchEvents = async () => {
    const fresh = plan.eventsSince(eventsSeen);
    eventsSeen += fresh.length;
    for (const event of fresh) {
      const hook = STRUCTURAL_HOOK[event.kind];
      if (hook) await callAll(callbacks, hook as 'onPrune', event);
      await callAll(callbacks, 'onStructure', event);
    }
  };
  // Runs the step hooks due at the current step.
  const runStepHooks = async (due: Map<Callback, number>) => {
    const step = native.step;
    plan.markStepHooksRan(step);
    for (const cb of stepHooks) {
      if (due.get(cb) === step) await cb.onStep!(step, plan.model);
    }
    await dispatchEvents();
  };
  const nextDue = () => {
    const due = new Map<Callback, number>();
    let next = Infinity;
    for (const cb of stepHooks) {
      const s = cb.nextStep!(native.step);
      if (s !== undefined && Number.isFinite(s) && s > native.step) {
        due.set(cb, s);
        next = Math.min(next, s);
      }
    }
    return { due, next };
  };

  // Stops the running chunk (the signal, or an onProgress that threw).
  const requestAbort = () => native.requestAbort();
  if (signal?.aborted) throw abortError(signal, native.step);
  // One copy of the data for the whole fit (released in `finally`): the async
  // calls never read JS memory, which JS could transfer away meanwhile.
  let dataset: ReturnType<NativeModel['createDataset']>;
  try {
    dataset = native.createDataset(plan.x, plan.y);
  } catch (err) {
    // The copy also checks the values (x finite): report it as fit's own check.
    if (err instanceof RangeError || err instanceof TypeError) {
      throw new (err.constructor as typeof RangeError)(`Sequential.fit(): ${err.message}`);
    }
    throw err;
  }
  signal?.addEventListener('abort', requestAbort);
  try {
    for (const cb of callbacks) cb.setModel?.(plan.model);
    await callAll(callbacks, 'onTrainBegin');
    // A hook scheduled for the current step (e.g. step 0) runs before training, unless the fit
    // that ended at this step already ran the step's hooks: each step's hooks run once.
    const atStart = new Map<Callback, number>();
    if (plan.stepHooksRanAt() !== native.step) {
      for (const cb of stepHooks) if (cb.nextStep!(native.step - 1) === native.step) atStart.set(cb, native.step);
    }
    if (atStart.size) await runStepHooks(atStart);
    for (let epoch = plan.initialEpoch; epoch < plan.epochs; epoch++) {
      native.setEpoch(epoch);
      await callAll(callbacks, 'onEpochBegin', epoch);
      const order = native.epochOrder(n, plan.shuffle);
      let lossSum = 0;
      let correct = 0;
      let samples = 0;
      let done = 0;
      const started = process.hrtime.bigint();
      while (done < batches) {
        if (signal?.aborted) throw abortError(signal, native.step);
        const { due, next } = nextDue();
        const count = perBatch ? 1 : Math.min(batches - done, next === Infinity ? Infinity : next - native.step);
        let finished = false;
        // The first error an onProgress threw during the chunk. The report comes from the worker
        // through a thread-safe function, where Node would only warn about an escaping exception
        // (or end the process): it stops the chunk and fit() rejects with it after the chunk, as
        // it does when thrown by the report at the chunk's end.
        let progressFailure: { error: unknown } | undefined;
        const progress =
          progressCallbacks.length && !perBatch
            ? (d: number, ls: number, c: number, s: number) => {
                if (finished || progressFailure) return; // a late report after the chunk settled, or one after a failure
                try {
                  for (const cb of progressCallbacks) {
                    cb.onProgress!({ epoch, epochs: plan.epochs, batch: done + d, batches, loss: (lossSum + ls) / (samples + s), accuracy: (correct + c) / (samples + s) });
                  }
                } catch (error) {
                  progressFailure = { error };
                  requestAbort();
                }
              }
            : undefined;
        let r: NativeTrainResult;
        try {
          r = await native.trainBatches(dataset, order, done, count, batchSize, progress);
        } finally {
          finished = true;
        }
        if (progressFailure) throw progressFailure.error;
        if (r.aborted) throw abortError(signal, native.step);
        lossSum += r.lossSum;
        correct += r.correct;
        samples += r.samples;
        done += r.steps;
        if (perBatch) {
          const logs: BatchLogs = { loss: r.lossSum / r.samples, accuracy: r.correct / r.samples, size: r.samples, step: native.step };
          await callAll(callbacks, 'onBatchEnd', done - 1, logs);
        }
        for (const cb of progressCallbacks) {
          cb.onProgress!({ epoch, epochs: plan.epochs, batch: done, batches, loss: lossSum / samples, accuracy: correct / samples });
        }
        if (next === native.step) await runStepHooks(due);
        else if (perBatch) await dispatchEvents();
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
      await dispatchEvents();
      if (signal?.aborted) throw abortError(signal, native.step);
    }
    await callAll(callbacks, 'onTrainEnd', history);
    return history;
  } finally {
    signal?.removeEventListener('abort', requestAbort);
    native.releaseDataset(dataset);
    for (const cb of callbacks) cb.cleanup?.();
  }
}
