// Fashion-MNIST (Xiao et al. 2017): 70,000 28 x 28 grey images of clothing in
// 10 classes, a drop-in replacement for MNIST that is harder to fit. It is too
// big to bundle, so it is read from the IDX files of the Debian package
// `dataset-fashion-mnist`, or from any folder holding the same files.

import * as fs from 'fs';
import { checkInteger, checkKnownKeys, checkOneOf, checkOptions, checkString } from '../validate';
import { Dataset, TrainTest } from './dataset';
import { SPLITS, Split, findIdxPair, loadIdxSplit, type IdxExpectation } from './idx';

/** Where `apt-get install dataset-fashion-mnist` puts the files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Class names in label order. */
export const FASHION_MNIST_CLASSES: readonly string[] = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];

export interface FashionMnistSplitOptions {
  /** Folder with the IDX files ({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]). Default FASHION_MNIST_DIR. */
  dir?: string;
  /** Keep only the first `limit` samples of each returned split. */
  limit?: number;
}

export interface FashionMnistOptions extends FashionMnistSplitOptions {
  /** 'train' (60,000 samples) or 'test' (10,000). Default 'train'. */
  split?: Split;
}

function checkCommon(where: string, opts: Partial<FashionMnistSplitOptions>) {
  const dir = opts.dir === undefined ? FASHION_MNIST_DIR : checkString(where, 'options.dir', opts.dir);
  const limit = opts.limit === undefined ? undefined : checkInteger(where, 'options.limit', opts.limit, { min: 1 });
  return { dir, limit };
}

/** What the set documents: a file that disagrees is not Fashion-MNIST (or is damaged). */
const FASHION_MNIST: IdxExpectation = { what: 'Fashion-MNIST', classes: FASHION_MNIST_CLASSES.length, rows: 28, cols: 28 };

function load(where: string, dir: string, split: Split, limit: number | undefined): Dataset {
  // The usual failure is a machine without the data: say how to get it rather
  // than only listing missing file names.
  if (!fs.existsSync(dir) || 'missing' in findIdxPair(dir, split)) {
    throw new Error(`${where}: Fashion-MNIST not found in ${dir}: install it with ` +
      '`apt-get install dataset-fashion-mnist` or pass { dir }');
  }
  return loadIdxSplit(where, dir, split, limit, `fashion-mnist-${split}`, FASHION_MNIST);
}

/** One split of Fashion-MNIST: 784 features in [0, 1], 10 classes (names in FASHION_MNIST_CLASSES). */
export function loadFashionMnist(options?: FashionMnistOptions): Dataset {
  const where = 'loadFashionMnist()';
  const opts = checkOptions<FashionMnistOptions>(where, 'options', options);
  checkKnownKeys(where, opts, ['split', 'dir', 'limit']);
  const split = opts.split === undefined ? 'train' : checkOneOf(where, 'options.split', opts.split, SPLITS);
  const { dir, limit } = checkCommon(where, opts);
  return load(where, dir, split, limit);
}

/** Both splits of Fashion-MNIST (the official 60,000 / 10,000 split). */
export function loadFashionMnistSplits(options?: FashionMnistSplitOptions): TrainTest {
  const where = 'loadFashionMnistSplits()';
  const opts = checkOptions<FashionMnistSplitOptions>(where, 'options', options);
  checkKnownKeys(where, opts, ['dir', 'limit']);
  const { dir, limit } = checkCommon(where, opts);
  return { train: load(where, dir, 'train', limit), test: load(where, dir, 'test', limit) };
}
