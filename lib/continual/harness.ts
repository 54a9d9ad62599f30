// The continual-learning harness: trains one model on a stream of tasks, one
// after the other, and measures after each task how well it does on the
// tasks (accuracy matrix), how much it forgot, how well it still learns new
// tasks (plasticity) and how many of its hidden units died.
import type { Callback } from '../callbacks';
import type { StructuralEvent } from '../events';
import { DenseLayer, type Layer } from '../layers';
import { MAX_BATCH_SIZE, MAX_EPOCHS, type Evaluation, type FitOptions, type Sequential } from '../sequential';
import { checkBoolean, checkFunction, checkInteger, checkKnownKeys, checkNumber, checkOneOf, checkOptions, describe } from '../validate';
import type { Task, TaskSplit } from './tasks';

/** What run() needs from the model (a Sequential; a stand-in with these members works too). */
export type ContinualModel = Pick<Sequential, 'fit' | 'evaluate' | 'countParams' | 'layers' | 'eventCount' | 'eventsSince' | 'step'>;

export interface TaskEndInfo {
  /** Index of the task just trained. */
  task: number;
  name: string;
  /** Test accuracy on each evaluated task after training this one (row `task` of the accuracy matrix). */
  accuracy: number[];
  /** Accuracy on this task right after training on it. */
  newTaskAccuracy: number;
  /** Mean accuracy over tasks 0..task. */
  averageAccuracy: number;
  deadUnitFraction: number;
  params: number;
  seconds: number;
  model: ContinualModel;
}

export interface RunOptions {
  /** Epochs on each task, at most MAX_EPOCHS as in fit(). Default 1. */
  epochsPerTask?: number;
  /** At most MAX_BATCH_SIZE as in fit(). Default 32. */
  batchSize?: number;
  /** Reshuffle each epoch. Default true. */
  shuffle?: boolean;
  /** fit() callbacks, passed to every task's fit() (plasticity schedules keep state across tasks). */
  callbacks?: Callback[];
  /**
   * Which tasks to test after each task: 'seen' (tasks 0..i, default), 'all'
   * (also the future ones: zero-shot accuracy) or 'new' (only task i: the
   * cheapest, enough for plasticity; forgetting is then NaN).
   */
  evaluateOn?: 'all' | 'seen' | 'new';
  /** Samples of the current task's test split used to count dead units. Default 500. */
  deadUnitSamples?: number;
  /** A unit is dead when its mean |activation| over those samples is below this. Default 1e-6. */
  deadThreshold?: number;
  /** Called after each task (awaited): progress lines, early stopping through `signal`, checkpoints. */
  onTaskEnd?: (info: TaskEndInfo) => void | Promise<void>;
  /** Aborting stops at the next batch (fit rejects with an AbortError). */
  signal?: AbortSignal;
}

/** A structural event of a continual run, with the task it happened in. */
export type ContinualEvent = StructuralEvent & { task: number };

export interface ContinualResult {
  /** Task names in stream order. */
  tasks: string[];
  /**
   * accuracy[i][j]: test accuracy on task j after training on tasks 0..i.
   * Rows have length i + 1 ('seen'), the stream length ('all'), or i + 1 with
   * NaN (null in JSON) before the diagonal ('new').
   */
  accuracy: number[][];
  /** Per task i: mean of accuracy[i][j] over j <= i. */
  averageAccuracy: number[];
  /**
   * Per task j: the best accuracy on j after training on it and before the
   * last task (max over i in [j, T-2] of accuracy[i][j]) minus the final
   * accuracy accuracy[T-1][j]. The last task's entry is 0.
   */
  forgetting: number[];
  /** New-task accuracy: accuracy[i][i], the accuracy on task i right after training on it. */
  plasticity: number[];
  /** After each task: fraction of hidden units whose mean |activation| on the task's test samples is ~0. */
  deadUnitFraction: number[];
  /** After each task: model.countParams(). */
  params: number[];
  /** After each task: stored weights (nnz) summed over the dense layers. */
  nnz: number[];
  /** After each task: units of every dense layer, input to output (the last one is the output layer). */
  units: number[][];
  /** After each task: weight density of every dense layer. */
  density: number[][];
  /** Mean training loss and accuracy of each task's last epoch. */
  trainLoss: number[];
  trainAccuracy: number[];
  /** Training seconds of each task (evaluation excluded). */
  seconds: number[];
  /** The model's global step after each task. */
  steps: number[];
  /** Structural events logged during the run, each with its task index. */
  events: ContinualEvent[];
}

/** The summary metrics of an accuracy matrix (rows as in ContinualResult.accuracy). */
export function summarize(accuracy: number[][]): Pick<ContinualResult, 'averageAccuracy' | 'forgetting' | 'plasticity'> {
  const T = accuracy.length;
  const at = (i: number, j: number) => {
    const v = accuracy[i]?.[j];
    return typeof v === 'number' ? v : NaN;
  };
  const averageAccuracy = accuracy.map((_, i) => {
    let sum = 0;
    for (let j = 0; j <= i; j++) sum += at(i, j);
    return sum / (i + 1);
  });
  const plasticity = accuracy.map((_, i) => at(i, i));
  const forgetting: number[] = [];
  for (let j = 0; j < T; j++) {
    if (j === T - 1) {
      forgetting.push(0);
      continue;
    }
    let best = -Infinity;
    for (let i = j; i <= T - 2; i++) best = Math.max(best, at(i, j));
    forgetting.push(best - at(T - 1, j));
  }
  return { averageAccuracy, forgetting, plasticity };
}

function applyActivation(v: number, activation: string): number {
  switch (activation) {
    case 'relu':
      return v > 0 ? v : 0;
    case 'tanh':
      return Math.tanh(v);
    case 'sigmoid':
      return 1 / (1 + Math.exp(-v));
    default:
      return v;
  }
}

/**
 * Fraction of hidden units (dense layers but the last) whose mean |activation|
 * over the first `samples` rows of x is below `threshold`: for relu, units
 * that output 0 on every sample (Dohare et al.'s dead units). Computed from
 * the layers' weights (dropout off), so it needs no training statistics.
 */
export function deadUnitFraction(layers: readonly Layer[], x: Float32Array, n: number, samples = 500, threshold = 1e-6): number {
  const dense = layers.filter((l): l is DenseLayer => l instanceof DenseLayer);
  const hidden = dense.slice(0, -1);
  if (hidden.length === 0 || n === 0) return 0;
  const m = Math.min(n, samples);
  let input = x.subarray(0, m * dense[0].inputs);
  let dead = 0;
  let total = 0;
  for (const layer of hidden) {
    const { weight, bias } = layer.getWeights();
    const units = layer.units;
    const inputs = layer.inputs;
    const out = new Float32Array(m * units);
    for (let u = 0; u < units; u++) {
      const row = weight.subarray(u * inputs, (u + 1) * inputs);
      const b = bias ? bias[u] : 0;
      let absSum = 0;
      for (let s = 0; s < m; s++) {
        const xs = s * inputs;
        let acc = b;
        for (let k = 0; k < inputs; k++) acc += row[k] * input[xs + k];
        const a = applyActivation(acc, layer.activation);
        out[s * units + u] = a;
        absSum += Math.abs(a);
      }
      if (absSum / m < threshold) dead++;
    }
    total += units;
    input = out;
  }
  return dead / total;
}

const RUN_KEYS = ['epochsPerTask', 'batchSize', 'shuffle', 'callbacks', 'evaluateOn', 'deadUnitSamples', 'deadThreshold', 'onTaskEnd', 'signal'] as const;

function checkTasks(where: string, tasks: unknown): Task[] {
  if (!Array.isArray(tasks) || tasks.length === 0) {
    throw new TypeError(`${where}: tasks must be a non-empty array of tasks (e.g. continual.permuted(...)), got ${describe(tasks)}`);
  }
  tasks.forEach((t, i) => {
    if (!t || typeof t !== 'object' || typeof t.train !== 'function' || typeof t.test !== 'function') {
      throw new TypeError(`${where}: tasks[${i}] must have train() and test() methods, got ${describe(t)}`);
    }
  });
  return tasks as Task[];
}

function checkSplit(where: string, what: string, s: TaskSplit): TaskSplit {
  if (!s || !(s.x instanceof Float32Array) || !ArrayBuffer.isView(s.y) || !Number.isInteger(s.n)) {
    throw new TypeError(`${where}: ${what} must return { x: Float32Array, y, n }, got ${describe(s)}`);
  }
  return s;
}

/**
 * The options run() passes on to every task's fit(), checked against fit()'s
 * own limits here: fit() would only refuse them after the first task's data is
 * built, and its message would name fit()'s options (epochs), not run()'s.
 */
function checkFitOptions(where: string, o: Partial<RunOptions>): FitOptions {
  const fitOptions: FitOptions = {
    epochs: checkInteger(where, 'epochsPerTask', o.epochsPerTask ?? 1, { min: 1, max: MAX_EPOCHS }),
    batchSize: checkInteger(where, 'batchSize', o.batchSize ?? 32, { min: 1, max: MAX_BATCH_SIZE }),
    shuffle: checkBoolean(where, 'shuffle', o.shuffle ?? true),
  };
  if (o.callbacks !== undefined) {
    if (!Array.isArray(o.callbacks)) throw new TypeError(`${where}: callbacks must be an array of fit() callbacks, got ${describe(o.callbacks)}`);
    fitOptions.callbacks = o.callbacks;
  }
  if (o.signal !== undefined) {
    if (!(o.signal instanceof AbortSignal)) throw new TypeError(`${where}: signal must be an AbortSignal, got ${describe(o.signal)}`);
    fitOptions.signal = o.signal;
  }
  return fitOptions;
}

/**
 * Trains `model` on each task in turn and measures it after each one. The
 * model must be compiled, with an output layer as wide as the tasks' label
 * space. Resolves with the accuracy matrix and the per-task curves.
 */
// A model that cannot take the tasks fails here, naming the task, rather than in
// the first fit() after the harness has started (sizes are checked when the
// model exposes them: a stand-in model in tests may not).
function checkModelFits(where: string, model: ContinualModel, tasks: Task[]): void {
  const sizes = model as Partial<Pick<Sequential, 'inputSize' | 'outputSize'>>;
  tasks.forEach((t, i) => {
    if (typeof sizes.inputSize === 'number' && t.features !== sizes.inputSize) {
      throw new RangeError(`${where}: tasks[${i}] has ${t.features} features per sample, but the model takes inputSize ${sizes.inputSize}`);
    }
    if (typeof sizes.outputSize === 'number' && t.classes > sizes.outputSize) {
      throw new RangeError(`${where}: tasks[${i}] has ${t.classes} classes, but the model has ${sizes.outputSize} outputs`);
    }
  });
}

export async function run(model: ContinualModel, tasks: Task[], options: RunOptions = {}): Promise<ContinualResult> {
  const where = 'continual.run()';
  const list = checkTasks(where, tasks);
  const o = checkOptions<RunOptions>(where, 'options', options);
  checkKnownKeys(where, o, RUN_KEYS);
  const fitOptions = checkFitOptions(where, o);
  const evaluateOn = checkOneOf(where, 'evaluateOn', o.evaluateOn ?? 'seen', ['all', 'seen', 'new'] as const);
  const deadSamples = checkInteger(where, 'deadUnitSamples', o.deadUnitSamples ?? 500, { min: 1 });
  const deadThreshold = checkNumber(where, 'deadThreshold', o.deadThreshold ?? 1e-6, { min: 0 });
  if (o.onTaskEnd !== undefined) checkFunction(where, 'onTaskEnd', o.onTaskEnd);

  checkModelFits(where, model, list);

  const T = list.length;
  const result: ContinualResult = {
    tasks: list.map((t, i) => (typeof t.name === 'string' ? t.name : `task-${i}`)),
    accuracy: [],
    averageAccuracy: [],
    forgetting: [],
    plasticity: [],
    deadUnitFraction: [],
    params: [],
    nnz: [],
    units: [],
    density: [],
    trainLoss: [],
    trainAccuracy: [],
    seconds: [],
    steps: [],
    events: [],
  };
  let eventsSeen = model.eventCount;
  const evaluate = async (j: number, cache?: TaskSplit): Promise<Evaluation> => {
    const t = cache ?? checkSplit(where, `tasks[${j}].test()`, list[j].test());
    return model.evaluate(t.x, t.y);
  };

  for (let i = 0; i < T; i++) {
    const train = checkSplit(where, `tasks[${i}].train()`, list[i].train());
    const start = process.hrtime.bigint();
    const history = await model.fit(train.x, train.y, fitOptions);
    result.seconds.push(Number(process.hrtime.bigint() - start) / 1e9);
    const h = history.history;
    result.trainLoss.push(h.loss[h.loss.length - 1]);
    result.trainAccuracy.push(h.accuracy[h.accuracy.length - 1]);
    result.steps.push(model.step);

    // Only this task's events are copied out of the native log.
    for (const e of model.eventsSince(eventsSeen)) result.events.push({ ...e, task: i });
    eventsSeen = model.eventCount;

    const current = checkSplit(where, `tasks[${i}].test()`, list[i].test());
    const row: number[] = [];
    const last = evaluateOn === 'all' ? T - 1 : i;
    for (let j = 0; j <= last; j++) {
      if (evaluateOn === 'new' && j !== i) row.push(NaN);
      else row.push((await evaluate(j, j === i ? current : undefined)).accuracy);
    }
    result.accuracy.push(row);

    const dense = model.layers.filter((l): l is DenseLayer => l instanceof DenseLayer);
    const dead = dense.length > 1 ? deadUnitFraction(model.layers, current.x, current.n, deadSamples, deadThreshold) : 0;
    result.deadUnitFraction.push(dead);
    result.params.push(model.countParams());
    result.nnz.push(dense.reduce((s, l) => s + l.nnz, 0));
    result.units.push(dense.map((l) => l.units));
    result.density.push(dense.map((l) => l.density));

    const { averageAccuracy, plasticity } = summarize(result.accuracy);
    const avg = evaluateOn === 'new' ? NaN : averageAccuracy[i];
    result.averageAccuracy.push(avg);
    result.plasticity.push(plasticity[i]);
    if (o.onTaskEnd) {
      await o.onTaskEnd({
        task: i,
        name: result.tasks[i],
        accuracy: row,
        newTaskAccuracy: plasticity[i],
        averageAccuracy: avg,
        deadUnitFraction: dead,
        params: result.params[i],
        seconds: result.seconds[i],
        model,
      });
    }
  }
  result.forgetting = summarize(result.accuracy).forgetting;
  return result;
}

/** The mean of xs[from, to) (NaN entries skipped). */
export function meanOf(xs: readonly number[], from = 0, to = xs.length): number {
  let sum = 0;
  let n = 0;
  for (let i = Math.max(0, from); i < Math.min(to, xs.length); i++) {
    if (Number.isFinite(xs[i])) {
      sum += xs[i];
      n++;
    }
  }
  return n ? sum / n : NaN;
}
