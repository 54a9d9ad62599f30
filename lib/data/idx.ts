// Reader for the IDX format used by MNIST, Fashion-MNIST, KMNIST and friends
// (http://yann.lecun.com/exdb/mnist/): a 4-byte magic (two zero bytes, a type
// code, the number of dimensions), one big-endian uint32 per dimension, then
// the values. Only unsigned bytes (type 0x08) are supported: it is what every
// image set of this family ships, and it lets a pixel become a float with a
// table lookup.

import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { checkInteger, checkKnownKeys, checkOneOf, checkOptions, checkString } from '../validate';
import { Dataset } from './dataset';

const TYPE_U8 = 0x08;
const MAGIC_IMAGES = 0x00000803; // unsigned bytes, 3 dimensions: count, rows, cols
const MAGIC_LABELS = 0x00000801; // unsigned bytes, 1 dimension: count

const TYPE_NAMES: Record<number, string> = {
  0x08: 'unsigned byte', 0x09: 'signed byte', 0x0b: 'int16', 0x0c: 'int32', 0x0d: 'float32', 0x0e: 'float64',
};

/** pixel / 255 for every byte value, computed once (float32-rounded like the result). */
const BYTE_TO_UNIT = new Float32Array(256).map((_, i) => i / 255);

export type Split = 'train' | 'test';
export const SPLITS: readonly Split[] = ['train', 'test'];

/** Decoded contents of one IDX file. */
export interface IdxFile {
  /** Size of each dimension, outermost first (e.g. [60000, 28, 28]). */
  dims: number[];
  /** The values, row-major, dims.reduce(*) of them. */
  data: Uint8Array;
}

function hex8(n: number): string {
  return '0x' + (n >>> 0).toString(16).padStart(8, '0');
}

/** Reads and (when the name ends in .gz) gunzips a file, naming it in any error. */
function readBytes(where: string, file: string): Buffer {
  let raw: Buffer;
  try {
    raw = fs.readFileSync(file);
  } catch (err) {
    throw new Error(`${where}: cannot read ${file}: ${(err as Error).message}`);
  }
  if (!file.endsWith('.gz')) return raw;
  try {
    return zlib.gunzipSync(raw);
  } catch (err) {
    throw new Error(`${where}: cannot decompress ${file}: ${(err as Error).message}`);
  }
}

/** What an expected magic number means, for error messages. */
const MAGIC_MEANING: Record<number, string> = {
  [MAGIC_IMAGES]: 'unsigned byte images: count x rows x cols',
  [MAGIC_LABELS]: 'unsigned byte labels: count',
};

function parseIdx(where: string, file: string, bytes: Buffer, expectedMagic?: number): IdxFile {
  if (bytes.length < 4) {
    throw new Error(`${where}: ${file} is truncated: too short for an IDX header (${bytes.length} bytes)`);
  }
  const magic = bytes.readUInt32BE(0);
  if (expectedMagic !== undefined && magic !== expectedMagic) {
    throw new Error(`${where}: ${file} has magic number ${hex8(magic)}, expected ${hex8(expectedMagic)} ` +
      `(${MAGIC_MEANING[expectedMagic]})`);
  }
  const type = bytes[2];
  const ndims = bytes[3];
  if (bytes[0] !== 0 || bytes[1] !== 0 || !(type in TYPE_NAMES) || ndims === 0) {
    throw new Error(`${where}: ${file} is not an IDX file: bad magic number ${hex8(magic)}`);
  }
  if (type !== TYPE_U8) {
    throw new Error(`${where}: ${file} holds ${TYPE_NAMES[type]} values (magic ${hex8(magic)}); ` +
      `only unsigned byte IDX files (type 0x08) are supported`);
  }
  const headerSize = 4 + 4 * ndims;
  if (bytes.length < headerSize) {
    throw new Error(`${where}: ${file} is truncated: expected a ${headerSize}-byte header for ${ndims} ` +
      `dimensions, got ${bytes.length} bytes`);
  }
  const dims: number[] = [];
  let count = 1;
  for (let d = 0; d < ndims; d++) {
    const size = bytes.readUInt32BE(4 + 4 * d);
    dims.push(size);
    count *= size;
  }
  const expected = headerSize + count;
  if (bytes.length !== expected) {
    const what = bytes.length < expected ? 'is truncated' : 'has trailing bytes';
    throw new Error(`${where}: ${file} ${what}: its header (${dims.join(' x ')}) means ${expected} bytes, ` +
      `got ${bytes.length}`);
  }
  // A view into the read buffer; readIdxFile copies it before handing it out.
  return { dims, data: new Uint8Array(bytes.buffer, bytes.byteOffset + headerSize, count) };
}

/**
 * Reads one IDX file of unsigned bytes (gunzipping it first when the name ends
 * in .gz) and checks that its size matches the header.
 * @param file path of the file
 */
export function readIdxFile(file: string): IdxFile {
  const where = 'readIdxFile()';
  checkString(where, 'path', file);
  const { dims, data } = parseIdx(where, file, readBytes(where, file));
  // Copy: small files are read into Node's shared buffer pool, and data.buffer
  // must not expose (or alias) other memory.
  return { dims, data: data.slice() };
}

/** Stems of the standard file names per split, as in the MNIST distribution. */
const STEMS: Record<Split, string> = { train: 'train', test: 't10k' };

/**
 * The names tried for one file, in order: plain, gzipped, and the
 * 'train-images.idx3-ubyte' spelling some mirrors use.
 */
export function idxCandidates(split: Split, kind: 'images' | 'labels'): string[] {
  const stem = STEMS[split];
  const suffix = kind === 'images' ? 'idx3-ubyte' : 'idx1-ubyte';
  return [`${stem}-${kind}-${suffix}`, `${stem}-${kind}-${suffix}.gz`, `${stem}-${kind}.${suffix}`];
}

/** The paths of the image and label files of one split in dir, or a list of what is missing. */
export function findIdxPair(dir: string, split: Split):
  { images: string; labels: string } | { missing: string[] } {
  const find = (names: string[]) => names.map((n) => path.join(dir, n)).find((p) => fs.existsSync(p));
  const imageNames = idxCandidates(split, 'images');
  const labelNames = idxCandidates(split, 'labels');
  const images = find(imageNames);
  const labels = find(labelNames);
  if (images && labels) return { images, labels };
  return { missing: [...(images ? [] : imageNames), ...(labels ? [] : labelNames)] };
}

/** What a named data set documents about its files, checked on load (see loadIdxSplit). */
export interface IdxExpectation {
  /** The set's name for messages, e.g. 'Fashion-MNIST' ('... has 10 classes'). */
  what: string;
  /** Labels are 0 .. classes - 1, and the Dataset reports this many classes. */
  classes: number;
  /** Image size in pixels (rows x cols), when the set has a fixed one. */
  rows?: number;
  cols?: number;
}

/** Rejects a label at or above `classes`, naming the file, the sample and the label. */
function checkLabels(where: string, file: string, labels: Uint8Array, classes: number, what: string): void {
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] >= classes) {
      throw new Error(`${where}: ${file} has label ${labels[i]} at sample ${i}; ${what} has ${classes} classes, ` +
        `labelled 0 to ${classes - 1}`);
    }
  }
}

/** The largest label plus one: the class count of a file that does not say it. */
function labelSpan(labels: Uint8Array): number {
  let max = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] > max) max = labels[i];
  return max + 1;
}

/**
 * Loads one split from a directory of IDX files. Shared by loadIdx and the
 * named loaders so that their errors carry their own function name. With
 * `expect`, the labels (and image size, if given) must be what the named set
 * documents; without it, classes is the largest label plus one.
 */
export function loadIdxSplit(where: string, dir: string, split: Split, limit: number | undefined, name: string,
  expect?: IdxExpectation): Dataset {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new Error(`${where}: directory not found: ${dir} (looked for ` +
      `${[...idxCandidates(split, 'images'), ...idxCandidates(split, 'labels')].join(', ')})`);
  }
  const found = findIdxPair(dir, split);
  if ('missing' in found) {
    throw new Error(`${where}: no ${split} split in ${dir}: looked for ${found.missing.join(', ')}`);
  }
  // Labels first: they are small, so a mismatched pair fails before the big gunzip.
  const labels = parseIdx(where, found.labels, readBytes(where, found.labels), MAGIC_LABELS);
  const images = parseIdx(where, found.images, readBytes(where, found.images), MAGIC_IMAGES);
  const [count, rows, cols] = images.dims;
  if (rows === 0 || cols === 0) {
    throw new Error(`${where}: ${found.images} has empty images (${rows} x ${cols})`);
  }
  if (labels.dims[0] !== count) {
    throw new Error(`${where}: ${found.images} holds ${count} images but ${found.labels} holds ` +
      `${labels.dims[0]} labels`);
  }
  // An empty split would only fail later, in fit() or evaluate(), far from the file.
  if (count === 0) throw new Error(`${where}: ${found.images} holds no images (its header says 0 x ${rows} x ${cols})`);
  if (expect?.rows !== undefined && (rows !== expect.rows || cols !== expect.cols)) {
    throw new Error(`${where}: ${found.images} holds ${rows} x ${cols} images; ${expect.what} images are ${expect.rows} x ${expect.cols}`);
  }
  // Checked and counted over the whole label file, not the limited prefix, so
  // that a model's output size does not depend on how much data was loaded.
  if (expect) checkLabels(where, found.labels, labels.data, expect.classes, expect.what);
  const classes = expect ? expect.classes : labelSpan(labels.data);

  const n = limit === undefined ? count : Math.min(limit, count);
  const features = rows * cols;
  const x = new Float32Array(n * features);
  const pixels = images.data;
  for (let i = 0; i < x.length; i++) x[i] = BYTE_TO_UNIT[pixels[i]];
  const y = labels.data.slice(0, n);
  return { x, y, n, features, classes, name };
}

export interface LoadIdxOptions {
  /** Which pair of files: 'train' (train-*) or 'test' (t10k-*). Default 'train'. */
  split?: Split;
  /** Keep only the first `limit` samples (all of them when the file holds fewer). */
  limit?: number;
  /**
   * The set's number of classes, in [1, 256]: every label must be below it,
   * and it is the Dataset's `classes` (also when a split lacks the last class).
   * Default: none checked; classes is the largest label plus one.
   */
  classes?: number;
}

/**
 * Loads an image classification set stored as IDX files, e.g. a downloaded
 * MNIST, Fashion-MNIST or KMNIST: dir must hold {train,t10k}-images-idx3-ubyte
 * and {train,t10k}-labels-idx1-ubyte, each plain or gzipped (.gz). Pixels are
 * scaled to [0, 1]. An empty file (0 images) is an error. IDX files do not
 * record a class count, so by default any byte is a valid label (sets differ:
 * EMNIST letters are labelled 1 to 26, Kuzushiji-49 has 49 classes) and classes
 * is the largest label plus one; pass options.classes to check the labels
 * against a known count. The name is '<folder name>-<split>'.
 */
export function loadIdx(dir: string, options?: LoadIdxOptions): Dataset {
  const where = 'loadIdx()';
  checkString(where, 'dir', dir);
  const opts = checkOptions<LoadIdxOptions>(where, 'options', options);
  checkKnownKeys(where, opts, ['split', 'limit', 'classes']);
  const split = opts.split === undefined ? 'train' : checkOneOf(where, 'options.split', opts.split, SPLITS);
  const limit = opts.limit === undefined ? undefined : checkInteger(where, 'options.limit', opts.limit, { min: 1 });
  const classes = opts.classes === undefined ? undefined : checkInteger(where, 'options.classes', opts.classes, { min: 1, max: 256 });
  const folder = path.basename(path.resolve(dir));
  const expect = classes === undefined ? undefined : { what: 'the set (options.classes)', classes };
  return loadIdxSplit(where, dir, split, limit, `${folder}-${split}`, expect);
}
