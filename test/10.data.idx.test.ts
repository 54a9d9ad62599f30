import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { loadIdx, readIdxFile } from '../lib/data';

/** Encodes an IDX file: zero, zero, type, ndims, big-endian dims, bytes. */
function idxBytes(dims: number[], values: ArrayLike<number>, type = 0x08): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = type;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, Buffer.from(Uint8Array.from(values))]);
}

function write(file: string, bytes: Buffer): void {
  fs.writeFileSync(file, file.endsWith('.gz') ? zlib.gzipSync(bytes) : bytes);
}

// 5 images of 2 x 3 pixels: pixel j of image i is 10 * i + j; labels 0..2.
const N = 5;
const ROWS = 2;
const COLS = 3;
const PIXELS = Array.from({ length: N * ROWS * COLS }, (_, k) => 10 * Math.floor(k / 6) + (k % 6));
const LABELS = [2, 0, 1, 2, 1];

/** Writes a split ('train' or 't10k' stem) into dir, plain or gzipped. */
function writeSplit(dir: string, stem: string, gz: boolean, pixels = PIXELS, labels = LABELS): void {
  const ext = gz ? '.gz' : '';
  write(path.join(dir, `${stem}-images-idx3-ubyte${ext}`), idxBytes([labels.length, ROWS, COLS], pixels));
  write(path.join(dir, `${stem}-labels-idx1-ubyte${ext}`), idxBytes([labels.length], labels));
}

describe('data.loadIdx / data.readIdxFile', () => {
  let tmp: string;
  let count = 0;
  /** A fresh empty folder per test, all under one temp root removed at the end. */
  const fresh = (name = 'set'): string => {
    const dir = path.join(tmp, `${count++}`, name);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  };

  before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'neuroplastic-idx-')); });
  after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

  describe('reading', () => {
    it('loads a plain train split: shape, pixels / 255, labels, classes and name', () => {
      const dir = fresh('digits');
      writeSplit(dir, 'train', false);
      const d = loadIdx(dir);
      expect(d.n).to.equal(N);
      expect(d.features).to.equal(ROWS * COLS);
      expect(d.classes).to.equal(3);
      expect(d.name).to.equal('digits-train');
      expect(d.x).to.be.instanceOf(Float32Array);
      expect(d.x.length).to.equal(N * ROWS * COLS);
      expect(d.y).to.be.instanceOf(Uint8Array);
      expect(Array.from(d.y)).to.deep.equal(LABELS);
      for (let k = 0; k < PIXELS.length; k++) expect(d.x[k]).to.equal(Math.fround(PIXELS[k] / 255));
    });

    it('loads a gzipped test split (t10k-* files)', () => {
      const dir = fresh('digits');
      writeSplit(dir, 't10k', true);
      const d = loadIdx(dir, { split: 'test' });
      expect(d.n).to.equal(N);
      expect(d.name).to.equal('digits-test');
      expect(Array.from(d.y)).to.deep.equal(LABELS);
      expect(d.x[7]).to.equal(Math.fround(11 / 255));
    });

    it('scales 0 and 255 to exactly 0 and 1', () => {
      const dir = fresh();
      writeSplit(dir, 'train', false, [0, 255, 0, 255, 128, 1], [0]);
      const d = loadIdx(dir);
      expect(Array.from(d.x.subarray(0, 4))).to.deep.equal([0, 1, 0, 1]);
      expect(d.classes).to.equal(1);
    });

    it('keeps the first `limit` samples but counts classes over the whole file', () => {
      const dir = fresh();
      writeSplit(dir, 'train', true);
      const d = loadIdx(dir, { limit: 2 });
      expect(d.n).to.equal(2);
      expect(d.x.length).to.equal(2 * ROWS * COLS);
      expect(Array.from(d.y)).to.deep.equal([2, 0]);
      expect(d.classes).to.equal(3);
      expect(loadIdx(dir, { limit: 1000 }).n).to.equal(N);
    });

    it('readIdxFile returns the dims and raw bytes of one file, plain or gzipped', () => {
      const dir = fresh();
      writeSplit(dir, 'train', false);
      writeSplit(dir, 't10k', true);
      for (const file of ['train-images-idx3-ubyte', 't10k-images-idx3-ubyte.gz']) {
        const f = readIdxFile(path.join(dir, file));
        expect(f.dims).to.deep.equal([N, ROWS, COLS]);
        expect(Array.from(f.data)).to.deep.equal(PIXELS);
      }
      expect(readIdxFile(path.join(dir, 'train-labels-idx1-ubyte')).dims).to.deep.equal([N]);
    });
  });

  describe('errors', () => {
    it('names the missing directory and the file names it looked for', () => {
      const dir = path.join(tmp, 'does-not-exist');
      expect(() => loadIdx(dir)).to.throw(Error, dir)
        .with.property('message').that.includes('train-images-idx3-ubyte')
        .and.includes('train-images-idx3-ubyte.gz').and.includes('train-labels-idx1-ubyte');
    });

    it('lists the file names it looked for when a split is missing', () => {
      const dir = fresh();
      writeSplit(dir, 'train', false);
      expect(() => loadIdx(dir, { split: 'test' })).to.throw(Error, `no test split in ${dir}`)
        .with.property('message').that.includes('t10k-images-idx3-ubyte.gz').and.includes('t10k-labels-idx1-ubyte');
      fs.unlinkSync(path.join(dir, 'train-labels-idx1-ubyte'));
      expect(() => loadIdx(dir)).to.throw(Error, 'train-labels-idx1-ubyte.gz')
        .with.property('message').that.not.includes('train-images');
    });

    it('reports a truncated image file with its name and the expected and actual sizes', () => {
      const dir = fresh();
      writeSplit(dir, 'train', false);
      const file = path.join(dir, 'train-images-idx3-ubyte');
      const full = fs.readFileSync(file);
      fs.writeFileSync(file, full.subarray(0, full.length - 7));
      const expected = 16 + N * ROWS * COLS;
      expect(() => loadIdx(dir)).to.throw(Error, `${file} is truncated`)
        .with.property('message').that.includes(`${expected} bytes`).and.includes(`got ${expected - 7}`);
      expect(() => readIdxFile(file)).to.throw(Error, /^readIdxFile\(\): .* is truncated/);
    });

    it('reports a truncated gzipped file (cut after decompression) the same way', () => {
      const dir = fresh();
      const file = path.join(dir, 'train-images-idx3-ubyte.gz');
      write(file, idxBytes([N, ROWS, COLS], PIXELS).subarray(0, 20));
      write(path.join(dir, 'train-labels-idx1-ubyte.gz'), idxBytes([N], LABELS));
      expect(() => loadIdx(dir)).to.throw(Error, `${file} is truncated`)
        .with.property('message').that.includes(`${16 + N * ROWS * COLS} bytes, got 20`);
    });

    it('reports a corrupt gzip stream with the file name', () => {
      const dir = fresh();
      writeSplit(dir, 'train', true);
      const file = path.join(dir, 'train-images-idx3-ubyte.gz');
      fs.writeFileSync(file, fs.readFileSync(file).subarray(0, 30));
      expect(() => loadIdx(dir)).to.throw(Error, `cannot decompress ${file}`);
    });

    it('rejects trailing bytes after the data the header describes', () => {
      const dir = fresh();
      writeSplit(dir, 'train', false);
      const file = path.join(dir, 'train-labels-idx1-ubyte');
      fs.appendFileSync(file, Buffer.from([1, 2]));
      expect(() => loadIdx(dir)).to.throw(Error, `${file} has trailing bytes`);
    });

    it('rejects a wrong magic number, naming the file, the magic and the expected one', () => {
      const dir = fresh();
      writeSplit(dir, 'train', false);
      // Image and label files swapped: a 1-D file where the 3-D images belong.
      const images = path.join(dir, 'train-images-idx3-ubyte');
      write(images, idxBytes([N], LABELS));
      expect(() => loadIdx(dir)).to.throw(Error, `${images} has magic number 0x00000801, expected 0x00000803`);
      // Not IDX at all.
      const labels = path.join(dir, 'train-labels-idx1-ubyte');
      fs.writeFileSync(labels, Buffer.from('GIF89a, not idx'));
      expect(() => loadIdx(dir)).to.throw(Error, `${labels} has magic number 0x47494638, expected 0x00000801`);
      expect(() => readIdxFile(labels)).to.throw(Error, 'not an IDX file: bad magic number 0x47494638');
    });

    it('rejects IDX files of other value types', () => {
      const dir = fresh();
      const file = path.join(dir, 'floats-idx1');
      write(file, idxBytes([1], [0, 0, 0, 0], 0x0d));
      expect(() => readIdxFile(file)).to.throw(Error, 'holds float32 values (magic 0x00000d01)');
    });

    it('rejects an image count that differs from the label count', () => {
      const dir = fresh();
      writeSplit(dir, 'train', false);
      write(path.join(dir, 'train-labels-idx1-ubyte'), idxBytes([N - 1], LABELS.slice(1)));
      expect(() => loadIdx(dir)).to.throw(Error, `holds ${N} images but`)
        .with.property('message').that.includes(`holds ${N - 1} labels`);
    });

    it('names the unreadable file in readIdxFile', () => {
      const file = path.join(tmp, 'nope-idx3-ubyte');
      expect(() => readIdxFile(file)).to.throw(Error, `readIdxFile(): cannot read ${file}`);
    });

    it('checks argument types and values, naming the argument', () => {
      const dir = fresh();
      writeSplit(dir, 'train', false);
      expect(() => loadIdx(42 as unknown as string)).to.throw(TypeError, 'loadIdx(): dir must be a non-empty string, got 42');
      expect(() => loadIdx('')).to.throw(TypeError, 'loadIdx(): dir must be');
      expect(() => loadIdx(dir, 'test' as never)).to.throw(TypeError, 'loadIdx(): options must be an options object');
      expect(() => loadIdx(dir, { split: 'val' as never })).to.throw(RangeError,
        `loadIdx(): options.split must be one of 'train', 'test', got "val"`);
      expect(() => loadIdx(dir, { split: 1 as never })).to.throw(TypeError, 'options.split');
      expect(() => loadIdx(dir, { limit: 0 })).to.throw(RangeError, 'loadIdx(): options.limit must be a positive integer, got 0');
      expect(() => loadIdx(dir, { limit: 2.5 })).to.throw(RangeError, 'options.limit');
      expect(() => loadIdx(dir, { limit: '3' as never })).to.throw(TypeError, 'options.limit');
      expect(() => loadIdx(dir, { limt: 3 } as never)).to.throw(TypeError, "loadIdx(): unknown option 'limt'");
      expect(() => readIdxFile(undefined as never)).to.throw(TypeError, 'readIdxFile(): path must be a non-empty string');
    });
  });
});
