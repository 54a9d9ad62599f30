import { expect } from 'chai';
import { createHash } from 'crypto';
import { Dataset, loadMnist, loadMnistSplits, mulberry32, shuffleInPlace } from '../lib/data';

function rowHashes(d: Dataset): string[] {
  const out: string[] = [];
  for (let i = 0; i < d.n; i++) {
    out.push(createHash('sha1').update(d.x.subarray(i * d.features, (i + 1) * d.features)).digest('hex'));
  }
  return out;
}

function classCounts(d: Dataset): number[] {
  const counts = new Array<number>(d.classes).fill(0);
  for (const label of d.y) counts[label]++;
  return counts;
}

describe('data.loadMnist / data.loadMnistSplits', () => {
  let splits: ReturnType<typeof loadMnistSplits>;
  before(() => { splits = loadMnistSplits(); });

  it('splits the 10,000 bundled digits 8,000 / 2,000 by default', () => {
    const { train, test } = splits;
    expect(train.n).to.equal(8000);
    expect(test.n).to.equal(2000);
    for (const d of [train, test]) {
      expect(d.features).to.equal(784);
      expect(d.classes).to.equal(10);
      expect(d.x).to.be.instanceOf(Float32Array);
      expect(d.x.length).to.equal(d.n * 784);
      expect(d.y).to.be.instanceOf(Uint8Array);
      expect(d.y.length).to.equal(d.n);
    }
    expect(train.name).to.equal('mnist-train');
    expect(test.name).to.equal('mnist-test');
  });

  it('has every class in both halves, in the same proportions (stratified)', () => {
    const train = classCounts(splits.train);
    const test = classCounts(splits.test);
    for (let c = 0; c < 10; c++) {
      expect(train[c], `train count of ${c}`).to.be.greaterThan(600);
      expect(test[c], `test count of ${c}`).to.be.greaterThan(150);
      expect(Math.abs(test[c] / (train[c] + test[c]) - 0.2), `test share of ${c}`).to.be.lessThan(0.002);
    }
  });

  it('mixes the classes so a prefix holds all of them', () => {
    expect(new Set(splits.train.y.subarray(0, 200)).size).to.equal(10);
    expect(new Set(splits.test.y.subarray(0, 200)).size).to.equal(10);
  });

  it('scales values to [0, 1] with real images (not blank)', () => {
    for (const d of [splits.train, splits.test]) {
      let min = Infinity;
      let max = -Infinity;
      for (const v of d.x) { if (v < min) min = v; if (v > max) max = v; }
      expect(min).to.equal(0);
      expect(max).to.equal(1);
    }
    // A digit lights up roughly 10-25% of its 784 pixels.
    const lit = splits.train.x.subarray(0, 784).filter((v) => v > 0.5).length;
    expect(lit).to.be.within(30, 300);
  });

  it('keeps train and test disjoint (no image in both)', () => {
    const train = new Set(rowHashes(splits.train));
    expect(train.size).to.equal(8000);
    const overlap = rowHashes(splits.test).filter((h) => train.has(h));
    expect(overlap).to.have.length(0);
  });

  it('gives the same split for the same seed, and loadMnist matches loadMnistSplits', () => {
    const again = loadMnist({ split: 'test' });
    expect(Buffer.from(again.x.buffer).equals(Buffer.from(splits.test.x.buffer))).to.equal(true);
    expect(Array.from(again.y)).to.deep.equal(Array.from(splits.test.y));
    const train = loadMnist({ seed: 0 });
    expect(Buffer.from(train.x.buffer).equals(Buffer.from(splits.train.x.buffer))).to.equal(true);
  });

  it('gives a different split for another seed, still disjoint and 8,000 / 2,000', () => {
    const other = loadMnistSplits({ seed: 1 });
    expect(other.test.n).to.equal(2000);
    const seed0 = new Set(rowHashes(splits.test));
    const shared = rowHashes(other.test).filter((h) => seed0.has(h)).length;
    expect(shared).to.be.lessThan(1000); // ~20% expected by chance
    const train = new Set(rowHashes(other.train));
    expect(rowHashes(other.test).some((h) => train.has(h))).to.equal(false);
  });

  it('honours testFraction and limit', () => {
    const half = loadMnistSplits({ testFraction: 0.5, seed: 7 });
    expect(half.train.n).to.equal(5000);
    expect(half.test.n).to.equal(5000);
    const small = loadMnist({ split: 'test', testFraction: 0.1, limit: 50 });
    expect(small.n).to.equal(50);
    expect(small.x.length).to.equal(50 * 784);
    expect(loadMnist({ split: 'test', testFraction: 0.1 }).n).to.equal(1000);
  });

  it('returns fresh arrays: changing one result does not change the next', () => {
    const a = loadMnist({ split: 'test', limit: 10 });
    const first = a.x[300];
    a.x.fill(7);
    expect(loadMnist({ split: 'test', limit: 10 }).x[300]).to.equal(first);
  });

  it('checks options, naming the argument', () => {
    expect(() => loadMnist(null as never)).to.throw(TypeError, 'loadMnist(): options must be an options object, got null');
    expect(() => loadMnist({ split: 'valid' as never })).to.throw(RangeError, 'loadMnist(): options.split must be one of');
    expect(() => loadMnist({ testFraction: 1 })).to.throw(RangeError,
      'loadMnist(): options.testFraction must be a number in (0, 1), got 1');
    expect(() => loadMnist({ testFraction: 0 })).to.throw(RangeError, 'options.testFraction');
    expect(() => loadMnist({ testFraction: '0.2' as never })).to.throw(TypeError, 'options.testFraction');
    expect(() => loadMnist({ seed: -1 })).to.throw(RangeError, 'loadMnist(): options.seed must be a non-negative integer (at most 4294967295), got -1');
    expect(() => loadMnist({ seed: 1.5 })).to.throw(RangeError, 'options.seed');
    expect(() => loadMnist({ limit: 0 })).to.throw(RangeError, 'options.limit must be a positive integer');
    expect(() => loadMnistSplits({ split: 'test' } as never)).to.throw(TypeError, "loadMnistSplits(): unknown option 'split'");
    expect(() => loadMnistSplits({ seed: 'a' as never })).to.throw(TypeError, 'loadMnistSplits(): options.seed');
  });
});

describe('data random helpers (mulberry32, shuffleInPlace)', () => {
  it('repeats a stream for a seed, differs across seeds, stays in [0, 1)', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const c = mulberry32(43);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).to.deep.equal(xs);
    expect(c()).to.not.equal(xs[0]);
    for (const v of xs) expect(v).to.be.at.least(0).and.below(1);
    const mean = xs.reduce((s, v) => s + v, 0) / xs.length;
    expect(mean).to.be.within(0.45, 0.55);
  });

  it('shuffles into a permutation, reproducibly', () => {
    const one = shuffleInPlace(Array.from({ length: 100 }, (_, i) => i), mulberry32(5));
    const two = shuffleInPlace(Array.from({ length: 100 }, (_, i) => i), mulberry32(5));
    expect(one).to.deep.equal(two);
    expect([...one].sort((p, q) => p - q)).to.deep.equal(Array.from({ length: 100 }, (_, i) => i));
    expect(one).to.not.deep.equal(Array.from({ length: 100 }, (_, i) => i));
  });
});
