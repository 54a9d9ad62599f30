import { expect } from 'chai';
import { Sequential, layers, loadModel, optimizers } from '../lib/index';
import type { ActivationName } from '../lib/layers';
import { maxAbs, maxAbsDiff, randomArray, randomLabels } from './helpers';

function net(activation: ActivationName, threshold: number, seed = 3) {
  const m = new Sequential({ inputSize: 20, seed, sparseThreshold: threshold });
  m.add(layers.dense({ units: 16, activation })).add(layers.dense({ units: 8, activation })).add(layers.dense({ units: 4 }));
  m.compile({ optimizer: optimizers.adam({ learningRate: 0.01 }), loss: 'softmaxCrossEntropy' });
  return m;
}

describe('growth: dropin', () => {
  const x = randomArray(120 * 20, 1);
  const y = randomLabels(120, 4, 2);

  it('lastSplit() reports the shares net2wider scaled each source column by, until another growth or a compaction', async () => {
    const m = net('relu', 0);
    await m.fit(x, y, { epochs: 1, batchSize: 20 });
    const before = m.native.getWeights(1).weight;  // 8 x 16
    m.grow({ layer: 0, count: 3, init: 'net2wider', noise: 0.3 });
    const split = m.native.lastSplit();
    expect(split.layer).to.equal(0);
    expect(split.units.length).to.be.within(1, 3);
    const after = m.native.getWeights(1).weight;  // 8 x 19
    split.units.forEach((unit, i) => {
      expect(split.shares[i]).to.be.within(0.2, 0.8);
      for (let r = 0; r < 8; r++) expect(after[r * 19 + unit], `row ${r}, source ${unit}`).to.equal(Math.fround(before[r * 16 + unit] * split.shares[i]));
    });
    // Each new unit's source and share: its row and bias are the source's, its column the source's times the share.
    expect(split.copies.length).to.equal(3);
    const inBefore = m.native.getWeights(0);
    split.copies.forEach((source, k) => {
      expect(Array.from(split.units)).to.include(source);
      for (let r = 0; r < 8; r++) expect(after[r * 19 + 16 + k], `row ${r}, copy ${k}`).to.equal(Math.fround(before[r * 16 + source] * split.copyShares[k]));
      expect(inBefore.weight.subarray((16 + k) * 20, (17 + k) * 20)).to.deep.equal(inBefore.weight.subarray(source * 20, (source + 1) * 20));
      expect(inBefore.bias[16 + k]).to.equal(inBefore.bias[source]);
    });
    // A source's share and its copies' add up to 1.
    split.units.forEach((unit, i) => {
      const total = split.shares[i] + Array.from(split.copies).reduce((t, c, k) => t + (c === unit ? split.copyShares[k] : 0), 0);
      expect(total).to.be.closeTo(1, 1e-6);
    });
    m.grow({ layer: 0, count: 1, init: 'zero' });
    expect(m.native.lastSplit().layer).to.equal(-1);
    m.grow({ layer: 1, count: 2, init: 'net2wider' });
    expect(m.native.lastSplit().layer).to.equal(1);
    m.compact();
    expect(m.native.lastSplit()).to.deep.equal({ layer: -1, units: new Int32Array(0), shares: new Float32Array(0), copies: new Int32Array(0), copyShares: new Float32Array(0) });
  });

  it('gradmax grows from a reading of the network made elsewhere (a GPU model\'s gradmaxProduct) exactly as from its own, and refuses one that does not fit', async () => {
    const own = net('sigmoid', 0), given = net('sigmoid', 0);
    for (const m of [own, given]) await m.fit(x, y, { epochs: 1, batchSize: 20 });
    const product = given.native.gradmaxProduct(0, x, y);
    expect(product.m.length).to.equal(8 * 20);  // next layer's units x this layer's inputs
    expect(product.weightSquares).to.be.greaterThan(0);
    own.native.grow(0, 2, 'gradmax', 0, x, y);
    given.native.grow(0, 2, 'gradmax', 0, undefined, undefined, product);
    for (const l of [0, 1]) expect(given.native.getWeights(l)).to.deep.equal(own.native.getWeights(l));
    // sigmoid units emit act(0) = 0.5: the next biases took it out through the new weights.
    const [c] = given.native.lastCompensations();
    expect(c.layer).to.equal(0);
    expect(c.newWeights).to.equal(true);
    expect(Array.from(c.units)).to.deep.equal([16, 17]);
    expect(Array.from(c.means)).to.deep.equal([-0.5, -0.5]);
    const m = net('sigmoid', 0);
    await m.fit(x, y, { epochs: 1, batchSize: 20 });
    const p = m.native.gradmaxProduct(0, x, y);
    const weights = m.native.getWeights(0);
    const bad: [string, () => unknown, ErrorConstructor][] = [
      ['product not an object', () => m.native.grow(0, 1, 'gradmax', 0, undefined, undefined, 3 as never), TypeError],
      ['m not a Float32Array', () => m.native.grow(0, 1, 'gradmax', 0, undefined, undefined, { m: Array.from(p.m) as never, weightSquares: 1 }), TypeError],
      ['weightSquares missing', () => m.native.grow(0, 1, 'gradmax', 0, undefined, undefined, { m: p.m } as never), TypeError],
      ['m short', () => m.native.grow(0, 1, 'gradmax', 0, undefined, undefined, { m: p.m.subarray(1), weightSquares: 1 }), RangeError],
      ['a NaN in m', () => m.native.grow(0, 1, 'gradmax', 0, undefined, undefined, { m: Float32Array.from(p.m, (v, i) => (i === 2 ? NaN : v)), weightSquares: 1 }), RangeError],
      ['negative squares', () => m.native.grow(0, 1, 'gradmax', 0, undefined, undefined, { m: p.m, weightSquares: -1 }), RangeError],
      ['a product for net2wider', () => m.native.grow(0, 1, 'net2wider', 0, undefined, undefined, p), TypeError],
      ['gradmaxProduct of the output layer', () => m.native.gradmaxProduct(2, x, y), RangeError],
    ];
    for (const [what, call, type] of bad) {
      expect(call, what).to.throw(type);
      expect(m.native.getWeights(0), `${what} changed the model`).to.deep.equal(weights);
    }
  });

  for (const activation of ['relu', 'tanh', 'sigmoid'] as const) {
    for (const threshold of [0, 1]) {
      for (const init of ['zero', 'net2wider'] as const) {
        it(`${init} growth leaves every output unchanged (${activation}, ${threshold ? 'CSR' : 'dense'})`, async () => {
          const m = net(activation, threshold);
          await m.fit(x, y, { epochs: 2, batchSize: 20 });
          if (threshold) m.prune({ amount: 0.5, scope: 'global' });
          const before = await m.predict(x);
          const idsBefore = m.layers.flatMap((l: any) => l.neuronIds);
          const r = m.grow({ layer: 1, count: 5, init });
          expect(r.neuronIds).to.have.length(5);
          expect(r.neuronIds.every((id) => !idsBefore.includes(id))).to.equal(true);
          expect((m.layers[1] as any).units).to.equal(13);
          expect((m.layers[2] as any).inputs).to.equal(13);
          expect((m.layers[1] as any).neuronIds.slice(-5)).to.deep.equal(r.neuronIds);
          expect(maxAbsDiff(before, await m.predict(x))).to.be.below(1e-5);
          expect(r.events[0]).to.include({ kind: 'grow', layer: 1, criterion: init, count: 5 });
          const loss = (await m.evaluate(x, y)).loss;
          await m.fit(x, y, { epochs: 3, batchSize: 20 });
          expect((await m.evaluate(x, y)).loss).to.be.below(loss);
        });
      }
    }
  }

  it('zero growth gives new units random incoming and zero outgoing weights with fresh optimizer state', async () => {
    const m = net('relu', 0);
    await m.fit(x, y, { epochs: 1, batchSize: 20 });
    m.grow({ layer: 0, count: 3, init: 'zero' });
    const w0 = (m.layers[0] as any).getWeights();
    const w1 = (m.layers[1] as any).getWeights().weight;
    for (let k = 16; k < 19; k++) {
      expect(maxAbs(w0.weight.subarray(k * 20, (k + 1) * 20))).to.be.greaterThan(0);
      expect(w0.bias[k]).to.equal(0);
      for (let r = 0; r < 8; r++) expect(w1[r * 19 + k]).to.equal(0);
    }
    const state = m.native.exportState();
    const moments = state.layers[0].weightMoments;
    for (const slot of moments) expect(maxAbs(slot.subarray(16 * 20))).to.equal(0);
    expect(maxAbs(moments[0].subarray(0, 16 * 20))).to.be.greaterThan(0);
  });

  it('existing weights train exactly as before after zero growth (their gradients are untouched)', async () => {
    const a = net('tanh', 0);
    const b = net('tanh', 0);
    a.grow({ layer: 0, count: 4, init: 'zero' });
    await a.fit(x, y, { epochs: 1, batchSize: 120, shuffle: false });
    await b.fit(x, y, { epochs: 1, batchSize: 120, shuffle: false });
    const wa = (a.layers[0] as any).getWeights().weight.subarray(0, 16 * 20);
    const wb = (b.layers[0] as any).getWeights().weight;
    expect(maxAbsDiff(wa, wb)).to.be.below(1e-6);
  });

  it('net2wider with noise 0 splits outgoing weights into exact halves', () => {
    const m = net('relu', 0);
    const before = (m.layers[1] as any).getWeights().weight;
    m.grow({ layer: 0, count: 1, init: 'net2wider', noise: 0 });
    const w0 = (m.layers[0] as any).getWeights().weight;
    const src = [...Array(16).keys()].find((j) => w0.subarray(j * 20, j * 20 + 20).every((v: number, c: number) => v === w0[16 * 20 + c]))!;
    expect(src).to.be.a('number');
    const after = (m.layers[1] as any).getWeights().weight;
    for (let r = 0; r < 8; r++) {
      expect(after[r * 17 + src]).to.be.closeTo(before[r * 16 + src] / 2, 1e-7);
      expect(after[r * 17 + 16]).to.be.closeTo(before[r * 16 + src] / 2, 1e-7);
    }
  });

  it('gradmax points the new outgoing weights where the loss gradient is largest', async () => {
    // GradMax maximises the new unit's incoming-weight gradient per unit of
    // outgoing norm: no random outgoing direction may do better.
    const m = net('tanh', 0, 11);
    await m.fit(x, y, { epochs: 2, batchSize: 20 });
    m.grow({ layer: 0, count: 1, init: 'gradmax', data: [x, y] });
    const w1 = (m.layers[1] as any).getWeights();
    const direction = Array.from({ length: 8 }, (_, r) => w1.weight[r * 17 + 16]);
    const norm = Math.hypot(...direction);
    expect(norm).to.be.greaterThan(0);
    const gain = async () => Math.hypot(...(await m.computeGradients(x, y))[0].weight.subarray(16 * 20, 17 * 20)) / norm;
    const best = await gain();
    let rnd = 12345;
    const next = () => ((rnd = (rnd * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
    for (let t = 0; t < 40; t++) {
      const v = Array.from({ length: 8 }, next);
      const n = Math.hypot(...v);
      for (let r = 0; r < 8; r++) w1.weight[r * 17 + 16] = (v[r] / n) * norm;
      (m.layers[1] as any).setWeights({ weight: w1.weight });
      expect(await gain()).to.be.at.most(best * 1.001);
    }
  });

  it('a gradmax or RigL decision on given data leaves the kept training batch for the next one without data', async () => {
    const a = net('tanh', 0), b = net('tanh', 0);
    const other = randomArray(10 * 20, 9), otherY = randomLabels(10, 4, 10);
    for (const m of [a, b]) {
      m.native.setKeepLastBatch(true);
      await m.fit(x, y, { epochs: 1, batchSize: 20 });
    }
    // b reads, grows and regrows on other data in between; a does not.
    b.native.gradmaxProduct(0, other, otherY);
    b.native.gradientGrowth([1], [0], other, otherY);
    for (const m of [a, b]) m.grow({ layer: 0, count: 2, init: 'gradmax' });
    expect(b.native.getWeights(1)).to.deep.equal(a.native.getWeights(1));
  });

  it('gradmax without data uses the last training batch kept by a schedule, and says so when there is none', () => {
    const m = net('relu', 0);
    expect(() => m.grow({ layer: 0, count: 1, init: 'gradmax' })).to.throw(Error, 'no recent training batch');
    expect((m.layers[0] as any).units).to.equal(16);
  });

  it('rejects bad growth arguments and changes nothing', () => {
    const m = new Sequential({ inputSize: 4, seed: 1 });
    m.add(layers.dense({ units: 3, activation: 'relu' })).add(layers.dropout({ rate: 0.1 })).add(layers.dense({ units: 2 }));
    m.compile({ optimizer: optimizers.sgd(), loss: 'softmaxCrossEntropy' });
    expect(() => m.grow({ layer: 2, count: 1 })).to.throw(RangeError, 'output layer');
    expect(() => m.grow({ layer: 1, count: 1 })).to.throw(RangeError, 'dropout layer');
    expect(() => m.grow({ layer: 0, count: 0 })).to.throw(RangeError, 'count must be a positive integer');
    expect(() => m.grow({ layer: 0, count: 2e6 })).to.throw(RangeError, 'count');
    expect(() => m.grow({ layer: 0, count: 1, init: 'copy' as any })).to.throw(RangeError, "'net2wider'");
    expect(() => m.grow({ layer: 0, count: 1, noise: 0.7 })).to.throw(RangeError, 'noise');
    expect(() => m.grow({ layer: 0, count: 1, data: [new Float32Array(4), new Int32Array(1)] })).to.throw(TypeError, "only used by init 'gradmax'");
    expect(() => m.grow({ layer: 0, count: 1, init: 'gradmax', data: [new Float32Array(4), new Int32Array([5])] })).to.throw(RangeError, 'y[0] is 5');
    expect((m.layers[0] as any).units).to.equal(3);
    expect(m.events).to.deep.equal([]);
  });

  it('grows into reserved capacity: many single-unit insertions keep the model consistent', async () => {
    const m = net('relu', 0);
    for (let i = 0; i < 40; i++) m.grow({ layer: 0, count: 1 });
    expect((m.layers[0] as any).units).to.equal(56);
    expect((m.layers[1] as any).inputs).to.equal(56);
    await m.fit(x, y, { epochs: 1, batchSize: 20 });
    const ids = (m.layers[0] as any).neuronIds;
    expect(new Set(ids).size).to.equal(56);
  });

  it('resumes exactly from a checkpoint taken after growth', async () => {
    const a = net('relu', 0);
    await a.fit(x, y, { epochs: 1, batchSize: 20 });
    a.grow({ layer: 0, count: 7, init: 'net2wider' });
    a.grow({ layer: 1, count: 3 });
    const b = await loadModel(a.toBuffer());
    await a.fit(x, y, { epochs: 2, batchSize: 20 });
    await b.fit(x, y, { epochs: 2, batchSize: 20 });
    const pa = await a.predict(x);
    const pb = await b.predict(x);
    expect(Buffer.from(pa.buffer).equals(Buffer.from(pb.buffer))).to.equal(true);
    expect(b.layers.map((l: any) => l.neuronIds)).to.deep.equal(a.layers.map((l: any) => l.neuronIds));
  });
});
