import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, loadFashionMnist, loadFashionMnistSplits } from '../lib/data';

describe('data.loadFashionMnist', () => {
  describe(`from ${FASHION_MNIST_DIR}`, () => {
    before(function () {
      const present = fs.existsSync(FASHION_MNIST_DIR) &&
        fs.readdirSync(FASHION_MNIST_DIR).some((f) => f.startsWith('t10k-images'));
      if (!present) {
        // mocha's skip() takes no reason, so say it here.
        console.log(`      skipped: the Debian package dataset-fashion-mnist is absent (no ${FASHION_MNIST_DIR})`);
        this.skip();
      }
    });

    it('loads the test split: 10,000 x 784 in [0, 1], 10 classes, all present', () => {
      const d = loadFashionMnist({ split: 'test' });
      expect(d.n).to.equal(10000);
      expect(d.features).to.equal(784);
      expect(d.classes).to.equal(10);
      expect(d.name).to.equal('fashion-mnist-test');
      expect(d.x.length).to.equal(10000 * 784);
      expect(new Set(d.y).size).to.equal(10);
      let min = Infinity;
      let max = -Infinity;
      for (const v of d.x) { if (v < min) min = v; if (v > max) max = v; }
      expect(min).to.equal(0);
      expect(max).to.equal(1);
      expect(FASHION_MNIST_CLASSES).to.have.length(d.classes);
    });

    it('loads a limited train split', () => {
      const d = loadFashionMnist({ limit: 500 });
      expect(d.n).to.equal(500);
      expect(d.x.length).to.equal(500 * 784);
      expect(d.classes).to.equal(10);
      expect(d.name).to.equal('fashion-mnist-train');
    });

    it('loads both splits with loadFashionMnistSplits', () => {
      const { train, test } = loadFashionMnistSplits({ limit: 100 });
      expect(train.n).to.equal(100);
      expect(test.n).to.equal(100);
      expect(train.name).to.equal('fashion-mnist-train');
      expect(test.name).to.equal('fashion-mnist-test');
    });
  });

  describe('without the data', () => {
    let tmp: string;
    before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'neuroplastic-fashion-')); });
    after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

    it('says how to install it when the folder is missing or empty', () => {
      const install = '`apt-get install dataset-fashion-mnist` or pass { dir }';
      const missing = path.join(tmp, 'absent');
      expect(() => loadFashionMnist({ dir: missing })).to.throw(Error,
        `loadFashionMnist(): Fashion-MNIST not found in ${missing}: install it with ${install}`);
      expect(() => loadFashionMnist({ dir: tmp, split: 'test' })).to.throw(Error,
        `Fashion-MNIST not found in ${tmp}: install it with ${install}`);
      expect(() => loadFashionMnistSplits({ dir: tmp })).to.throw(Error,
        `loadFashionMnistSplits(): Fashion-MNIST not found in ${tmp}`);
    });

    it('checks options, naming the argument', () => {
      expect(() => loadFashionMnist({ dir: 3 as never })).to.throw(TypeError,
        'loadFashionMnist(): options.dir must be a non-empty string, got 3');
      expect(() => loadFashionMnist({ split: 'dev' as never })).to.throw(RangeError, 'options.split');
      expect(() => loadFashionMnist({ limit: -1 })).to.throw(RangeError,
        'loadFashionMnist(): options.limit must be a positive integer, got -1');
      expect(() => loadFashionMnist({ path: tmp } as never)).to.throw(TypeError, "unknown option 'path'");
      expect(() => loadFashionMnistSplits([] as never)).to.throw(TypeError, 'loadFashionMnistSplits(): options must be an options object');
    });
  });
});
