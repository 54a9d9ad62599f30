// Task streams for continual learning. A task is a pair of lazily built
// splits: nothing is copied until the harness asks for a task's data, so a
// stream of hundreds of permuted tasks holds one permutation (features
// integers) per task, not hundreds of data set copies.
import type { Dataset, TrainTest } from '../data/dataset';
import { mulberry32, shuffleInPlace } from '../data/random';
import { checkBoolean, checkInteger, checkKnownKeys, checkOptions, describe } from '../validate';

/** One split of a task, ready for model.fit() / model.evaluate(). */
export interface TaskSplit {
  /** n x features, row-major. */
  x: Float32Array;
  /** Class labels (global: the same label space for every task). */
  y: Uint8Array;
  n: number;
}

/**
 * One task of a stream. train() and test() build their arrays when called
 * (each call may return a fresh copy), so keep the result while you use it
 * and drop it afterwards.
 */
export interface Task {
  name: string;
  /** Values per sample (the model's inputSize). */
  features: number;
  /** Size of the (global) label space: the model's output units. */
  classes: number;
  train(): TaskSplit;
  test(): TaskSplit;
}

export interface PermutedOptions {
  /** Training samples per task: the first `limit` of the train split. Default: all. */
  limit?: number;
  /** Test samples per task (the first ones of the test split). Default 1000, for fast evaluation. */
  testLimit?: number;
  /** Task 0 sees the unpermuted inputs. Default true. */
  identityFirst?: boolean;
}

function checkTrainTest(where: string, dataset: unknown): TrainTest {
  const d = dataset as Partial<TrainTest> | null;
  const ok = (s: unknown): s is Dataset =>
    !!s && typeof s === 'object' && (s as Dataset).x instanceof Float32Array && ArrayBuffer.isView((s as Dataset).y) &&
    Number.isInteger((s as Dataset).n) && Number.isInteger((s as Dataset).features) &&
    (s as Dataset).x.length === (s as Dataset).n * (s as Dataset).features && (s as Dataset).y.length === (s as Dataset).n;
  if (!d || typeof d !== 'object' || !ok(d.train) || !ok(d.test)) {
    throw new TypeError(`${where}: dataset must be { train, test } Datasets (e.g. data.loadMnistSplits()), got ${describe(dataset)}`);
  }
  if (d.train.features !== d.test.features) {
    throw new RangeError(`${where}: the train split has ${d.train.features} features per sample but the test split ${d.test.features}`);
  }
  return d as TrainTest;
}

function labelCount(d: Dataset): number {
  let max = d.classes ?? 0;
  for (let i = 0; i < d.n; i++) if (d.y[i] + 1 > max) max = d.y[i] + 1;
  return max;
}

/**
 * The permutation of task `index` in a permuted stream with this seed:
 * perm[k] is the source feature that lands at position k. Seeded per task,
 * so a task does not depend on which tasks were built before it.
 */
export function taskPermutation(features: number, seed: number, index: number, identityFirst = true): Int32Array {
  const perm = new Int32Array(features);
  for (let k = 0; k < features; k++) perm[k] = k;
  if (index === 0 && identityFirst) return perm;
  // Mix seed and index so neighbouring seeds do not give shifted streams.
  const mixed = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0;
  return shuffleInPlace(perm, mulberry32(mixed));
}

/** Rows [0, n) of `d` with their features reordered by `perm`. */
function permuteRows(d: Dataset, n: number, perm: Int32Array): TaskSplit {
  const f = d.features;
  const x = new Float32Array(n * f);
  for (let r = 0; r < n; r++) {
    const src = r * f;
    const dst = r * f;
    for (let k = 0; k < f; k++) x[dst + k] = d.x[src + perm[k]];
  }
  return { x, y: Uint8Array.from(d.y.subarray(0, n)), n };
}

/**
 * Permuted-input tasks (e.g. permuted MNIST): every task has the same labels
 * and the same images, with the pixels reordered by a seeded permutation of
 * its own (task 0: the identity unless identityFirst is false). Tasks are
 * built lazily: train() and test() permute their split when called.
 */
export function permuted(dataset: TrainTest, n: number, seed = 0, options: PermutedOptions = {}): Task[] {
  const where = 'continual.permuted()';
  const d = checkTrainTest(where, dataset);
  const count = checkInteger(where, 'n', n, { min: 1, max: 1 << 20 });
  const s = checkInteger(where, 'seed', seed, { min: 0, max: Number.MAX_SAFE_INTEGER });
  const o = checkOptions<PermutedOptions>(where, 'options', options);
  checkKnownKeys(where, o, ['limit', 'testLimit', 'identityFirst']);
  const trainN = Math.min(d.train.n, checkInteger(where, 'options.limit', o.limit ?? d.train.n, { min: 1 }));
  const testN = Math.min(d.test.n, checkInteger(where, 'options.testLimit', o.testLimit ?? 1000, { min: 1 }));
  const identityFirst = checkBoolean(where, 'options.identityFirst', o.identityFirst ?? true);
  const features = d.train.features;
  const classes = Math.max(labelCount(d.train), labelCount(d.test));
  const tasks: Task[] = [];
  for (let i = 0; i < count; i++) {
    let perm: Int32Array | undefined;
    const permutation = () => (perm ??= taskPermutation(features, s, i, identityFirst));
    tasks.push({
      name: `permuted-${i}`,
      features,
      classes,
      train: () => permuteRows(d.train, trainN, permutation()),
      test: () => permuteRows(d.test, testN, permutation()),
    });
  }
  return tasks;
}

export interface SplitClassesOptions {
  /** Training samples per task (the first matching ones). Default: all. */
  limit?: number;
  /** Test samples per task. Default: all. */
  testLimit?: number;
}

/** Samples per label of a split (labels outside [0, classes) are not counted). */
function countLabels(d: Dataset, classes: number): Float64Array {
  const counts = new Float64Array(classes);
  for (let i = 0; i < d.n; i++) {
    const label = d.y[i];
    if (label >= 0 && label < classes) counts[label]++;
  }
  return counts;
}

/**
 * Fails unless the group has samples in both splits. Checked when the stream is
 * built: a group with no test samples would otherwise train every task before
 * evaluate() fails with a message that names neither the task nor the group.
 */
function checkGroupHasSamples(where: string, i: number, group: readonly number[], counts: Record<'train' | 'test', Float64Array>): void {
  for (const split of ['train', 'test'] as const) {
    if (group.every((label) => counts[split][label] === 0)) {
      throw new RangeError(`${where}: groups[${i}] (labels ${group.join(', ')}) has no samples in the ${split} split; ` +
        `every task needs samples to train and to test on`);
    }
  }
}

function selectLabels(d: Dataset, group: Set<number>, limit: number): TaskSplit {
  const rows: number[] = [];
  for (let r = 0; r < d.n && rows.length < limit; r++) if (group.has(d.y[r])) rows.push(r);
  const f = d.features;
  const x = new Float32Array(rows.length * f);
  const y = new Uint8Array(rows.length);
  rows.forEach((r, i) => {
    x.set(d.x.subarray(r * f, (r + 1) * f), i * f);
    y[i] = d.y[r];
  });
  return { x, y, n: rows.length };
}

/**
 * Split-class tasks (e.g. split MNIST 0/1, 2/3, ...): task i holds the
 * samples whose label is in groups[i]. Labels stay global (a 10-class output
 * layer for every task), so this is the class-incremental setting. Groups
 * must be disjoint and non-empty, and each must have samples in both splits.
 */
export function splitClasses(dataset: TrainTest, groups: number[][], options: SplitClassesOptions = {}): Task[] {
  const where = 'continual.splitClasses()';
  const d = checkTrainTest(where, dataset);
  const classes = Math.max(labelCount(d.train), labelCount(d.test));
  if (!Array.isArray(groups) || groups.length === 0) {
    throw new TypeError(`${where}: groups must be a non-empty array of label arrays, e.g. [[0, 1], [2, 3]], got ${describe(groups)}`);
  }
  const o = checkOptions<SplitClassesOptions>(where, 'options', options);
  checkKnownKeys(where, o, ['limit', 'testLimit']);
  const trainN = checkInteger(where, 'options.limit', o.limit ?? d.train.n, { min: 1 });
  const testN = checkInteger(where, 'options.testLimit', o.testLimit ?? d.test.n, { min: 1 });
  const counts = { train: countLabels(d.train, classes), test: countLabels(d.test, classes) };
  const seen = new Map<number, number>();
  return groups.map((g, i) => {
    if (!Array.isArray(g) || g.length === 0) throw new TypeError(`${where}: groups[${i}] must be a non-empty array of labels, got ${describe(g)}`);
    for (const label of g) {
      if (!Number.isInteger(label) || label < 0 || label >= classes) {
        throw new RangeError(`${where}: groups[${i}] has label ${describe(label)}; labels are integers in [0, ${classes - 1}]`);
      }
      if (seen.has(label)) throw new RangeError(`${where}: label ${label} is in groups[${seen.get(label)}] and groups[${i}]; groups must be disjoint`);
      seen.set(label, i);
    }
    checkGroupHasSamples(where, i, g, counts);
    const set = new Set(g);
    return {
      name: `classes-${g.join('-')}`,
      features: d.train.features,
      classes,
      train: () => selectLabels(d.train, set, trainN),
      test: () => selectLabels(d.test, set, testN),
    };
  });
}
