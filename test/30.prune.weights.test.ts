import { expect } from 'chai';
import { Sequential, layers, optimizers, plasticity, data } from '../lib/index';
import { compiledMlp, maxAbs, maxAbsDiff, randomArray, randomLabels } from './helpers';

function zeros(a: Float32Array) {
  let n = 0;
  for (const v of a) n += v === 0 ? 1 : 0;
  return n;
}

describe('pruning: weights by magnitude', () => {
  it('removes exactly floor(amount x stored) weights per layer, the smallest ones', () => {
    const model = compiledMlp({ inputSize: 50, hidden: [40], outputs: 7 }, 0.1);
    const before = (model.layers[0] as any).getWeights().weight as Float32Array;
    const result = model.prune({ amount: 0.3, layer: 0 });
    expect(result.removed).to.equal(Math.floor(0.3 * 2000));
    const after = (model.layers[0] as any).getWeights().weight as Float32Array;
    expect(zeros(after)).to.equal(600);
    let maxRemoved = 0;
    let minKept = Infinity;
    for (let i = 0; i < before.length; i++) {
      if (after[i] === 0) maxRemoved = Math.max(maxRemoved, Math.abs(before[i]));
      else {
        minKept = Math.min(minKept, Math.abs(before[i]));
        expect(after[i]).to.equal(before[i]);
      }
    }
    expect(maxRemoved).to.be.at.most(minKept);
    expect((model.layers[0] as any).nnz).to.equal(1400);
    expect((model.layers[1] as any).nnz).to.equal(280);
    expect(result.events).to.have.length.at.least(1);
    expect(result.events[0]).to.include({ kind: 'prune', layer: 0, criterion: 'magnitude', count: 600 });
  });

  it('prunes cumulatively: amount is a fraction of what is still stored', () => {
    const model = compiledMlp({ inputSize: 20, hidden: [10], outputs: 3 });
    model.prune({ amount: 0.5, layer: 0 });
    model.prune({ amount: 0.5, layer: 0 });
    expect((model.layers[0] as any).nnz).to.equal(50);
  });

  it('ranks globally across layers with scope global', () => {
    const model = compiledMlp({ inputSize: 30, hidden: [20], outputs: 5 });
    const w0 = Array.from((model.layers[0] as any).getWeights().weight as Float32Array).map(Math.abs);
    const w1 = Array.from((model.layers[1] as any).getWeights().weight as Float32Array).map(Math.abs);
    const all = [...w0, ...w1].sort((a, b) => a - b);
    const k = Math.floor(0.6 * all.length);
    model.prune({ amount: 0.6, scope: 'global' });
    const nnz0 = (model.layers[0] as any).nnz;
    const nnz1 = (model.layers[1] as any).nnz;
    expect(nnz0 + nnz1).to.equal(all.length - k);
    // Each layer keeps exactly its weights above the global cut.
    expect(nnz0).to.equal(w0.filter((v) => v > all[k - 1]).length);
  });

  it('keeps pruned weights at exactly zero while training (dense mask and CSR)', async () => {
    for (const threshold of [0, 1]) {
      const model = new Sequential({ inputSize: 16, seed: 3, sparseThreshold: threshold });
      model.add(layers.dense({ units: 32, activation: 'relu' })).add(layers.dense({ units: 4 }));
      model.compile({ optimizer: optimizers.adam({ learningRate: 0.01, weightDecay: 0.01 }), loss: 'softmaxCrossEntropy' });
      model.prune({ amount: 0.7, layer: 0 });
      expect((model.layers[0] as any).format).to.equal(threshold === 1 ? 'csr' : 'dense');
      const pruned = (model.layers[0] as any).getWeights().weight.map((v: number) => (v === 0 ? 1 : 0));
      await model.fit(randomArray(200 * 16, 1), randomLabels(200, 4, 2), { epochs: 3, batchSize: 16 });
      const w = (model.layers[0] as any).getWeights().weight as Float32Array;
      for (let i = 0; i < w.length; i++) if (pruned[i]) expect(w[i]).to.equal(0);
      expect(zeros(w)).to.be.at.least(Math.floor(0.7 * 512));
      expect((model.layers[0] as any).nnz).to.equal(512 - Math.floor(0.7 * 512));
    }
  });

  it('trains a CSR layer exactly like the same masked dense layer', async () => {
    const run = async (threshold: number) => {
      const model = new Sequential({ inputSize: 33, seed: 5, sparseThreshold: threshold });
      model.add(layers.dense({ units: 65, activation: 'tanh' })).add(layers.dense({ units: 17, activation: 'relu' })).add(layers.dense({ units: 5 }));
      model.compile({ optimizer: optimizers.sgd({ learningRate: 0.05, momentum: 0.9 }), loss: 'softmaxCrossEntropy' });
      model.prune({ amount: 0.8, scope: 'global' });
      await model.fit(randomArray(300 * 33, 7), randomLabels(300, 5, 8), { epochs: 2, batchSize: 19 });
      return { model, out: await model.predict(randomArray(40 * 33, 9)) };
    };
    const dense = await run(0);
    const csr = await run(1);
    expect((dense.model.layers as any[]).map((l) => l.format)).to.deep.equal(['dense', 'dense', 'dense']);
    expect((csr.model.layers as any[]).map((l) => l.format)).to.deep.equal(['csr', 'csr', 'csr']);
    expect(maxAbsDiff(dense.out, csr.out)).to.be.below(1e-4 * Math.max(1, maxAbs(dense.out)));
  });

  it('trains wide CSR layers (column-blocked W^T copy) exactly like masked dense ones', async function () {
    // 1100 units at batch 128: W^T's copy for the second layer is
    // column-blocked on any L2 up to 2 MB (kernels/sparse.h).
    this.timeout(120_000);
    const run = async (threshold: number) => {
      const model = new Sequential({ inputSize: 16, seed: 6, sparseThreshold: threshold });
      model.add(layers.dense({ units: 1100, activation: 'relu' })).add(layers.dense({ units: 1100, activation: 'relu' })).add(layers.dense({ units: 5 }));
      model.compile({ optimizer: optimizers.sgd({ learningRate: 0.02, momentum: 0.9 }), loss: 'softmaxCrossEntropy' });
      model.prune({ amount: 0.9, scope: 'layer' });
      await model.fit(randomArray(10 * 128 * 16, 11), randomLabels(10 * 128, 5, 12), { epochs: 1, batchSize: 128 });
      return { model, out: await model.predict(randomArray(50 * 16, 13)) };
    };
    const dense = await run(0);
    const csr = await run(1);
    expect((csr.model.layers as any[]).map((l) => l.format)).to.deep.equal(['csr', 'csr', 'csr']);
    expect(maxAbsDiff(dense.out, csr.out)).to.be.below(1e-4 * Math.max(1, maxAbs(dense.out)));
    const wd = (dense.model.layers[1] as any).getWeights().weight as Float32Array;
    const wc = (csr.model.layers[1] as any).getWeights().weight as Float32Array;
    expect(maxAbsDiff(wd, wc)).to.be.below(1e-5 * Math.max(1, maxAbs(wd)));
  });

  it('computes CSR gradients equal to the dense gradients at the stored positions (zeros elsewhere)', async () => {
    const x = randomArray(23 * 12, 3);
    const y = randomLabels(23, 3, 4);
    const make = (threshold: number) => {
      const model = new Sequential({ inputSize: 12, seed: 8, sparseThreshold: threshold });
      model.add(layers.dense({ units: 9, activation: 'sigmoid' })).add(layers.dense({ units: 3 }));
      model.compile({ optimizer: optimizers.sgd(), loss: 'softmaxCrossEntropy' });
      model.prune({ amount: 0.6, layer: 0 });
      return model;
    };
    const g1 = await make(0).computeGradients(x, y);
    const g2 = await make(1).computeGradients(x, y);
    expect(maxAbsDiff(g1[0].weight, g2[0].weight)).to.be.below(1e-6);
    expect(maxAbsDiff(g1[1].weight, g2[1].weight)).to.be.below(1e-6);
    const w = (make(1).layers[0] as any).getWeights().weight;
    for (let i = 0; i < w.length; i++) if (w[i] === 0) expect(g2[0].weight[i]).to.equal(0);
  });

  it('switches a layer to CSR below its threshold and back to dense on request, logging sparsify/densify', () => {
    const model = new Sequential({ inputSize: 10, seed: 1 });
    model.add(layers.dense({ units: 8, activation: 'relu', sparseThreshold: 0.5 })).add(layers.dense({ units: 2, sparseThreshold: 0 }));
    model.compile({ optimizer: optimizers.sgd({ momentum: 0.9 }), loss: 'softmaxCrossEntropy' });
    model.prune({ amount: 0.4, layer: 0 });
    expect((model.layers[0] as any).format).to.equal('dense');
    const weights = (model.layers[0] as any).getWeights().weight;
    model.prune({ amount: 0.5, layer: 0 });
    expect((model.layers[0] as any).format).to.equal('csr');
    expect(model.events.map((e) => e.kind)).to.deep.equal(['prune', 'prune', 'sparsify']);
    const sparse = (model.layers[0] as any).getWeights().weight;
    for (let i = 0; i < weights.length; i++) if (sparse[i] !== 0) expect(sparse[i]).to.equal(weights[i]);
    model.native.convertLayer(0, 'dense');
    expect((model.layers[0] as any).format).to.equal('dense');
    expect(Array.from((model.layers[0] as any).getWeights().weight)).to.deep.equal(Array.from(sparse));
    expect(model.events[model.events.length - 1].kind).to.equal('densify');
  });

  it('stores a CSR layer in about 8 bytes per weight plus its gradient and optimizer slots', () => {
    const model = new Sequential({ inputSize: 1024, seed: 1, sparseThreshold: 1 });
    model.add(layers.dense({ units: 1024, activation: 'relu' })).add(layers.dense({ units: 10 }));
    model.compile({ optimizer: optimizers.sgd({ learningRate: 0.1 }), loss: 'softmaxCrossEntropy' });
    model.prune({ amount: 0.9, layer: 0 });
    const l = model.layers[0] as any;
    expect(l.format).to.equal('csr');
    // value 4 + index 4 + gradient 4 (plain SGD: no moments) + row pointers.
    const perWeight = l.bytes / l.nnz;
    expect(perWeight).to.be.below(12.1);
    expect(perWeight - 4).to.be.below(8.1);
  });

  it('follows the Zhu & Gupta cubic schedule with gradualMagnitude', async () => {
    const schedule = plasticity.gradualMagnitude({ finalSparsity: 0.8, startStep: 10, endStep: 50, every: 10 });
    expect(schedule.sparsityAt(10)).to.equal(0);
    expect(schedule.sparsityAt(30)).to.be.closeTo(0.8 + (0 - 0.8) * Math.pow(1 - 0.5, 3), 1e-12);
    expect(schedule.sparsityAt(60)).to.equal(0.8);
    const model = compiledMlp({ inputSize: 20, hidden: [30], outputs: 4 });
    const seen: [number, number][] = [];
    await model.fit(randomArray(64 * 20, 1), randomLabels(64, 4, 2), {
      epochs: 10,
      batchSize: 8,
      callbacks: [schedule, { onPrune: (e) => void (e.layer === 0 && seen.push([e.step, e.densityAfter])) }],
    });
    expect(seen.map((s) => s[0])).to.deep.equal([20, 30, 40, 50]);
    for (const [step, density] of seen) expect(1 - density).to.be.closeTo(schedule.sparsityAt(step), 1 / 600 + 1e-9);
    expect((model.layers[0] as any).density).to.be.closeTo(0.2, 1 / 600);
    expect(model.step).to.equal(80);
  });

  it('rewinds surviving weights to a snapshot (lottery ticket) and resets optimizer state', async () => {
    const model = compiledMlp({ inputSize: 12, hidden: [10], outputs: 3 });
    const x = randomArray(96 * 12, 1);
    const y = randomLabels(96, 3, 2);
    await model.fit(x, y, { epochs: 1, batchSize: 8, callbacks: [plasticity.snapshotAt({ step: 4 })] });
    expect(model.snapshotSteps).to.deep.equal([4]);
    await model.fit(x, y, { epochs: 1, batchSize: 8, callbacks: [{ onEpochEnd: () => void 0 }] });
    const early = (() => {
      const m = compiledMlp({ inputSize: 12, hidden: [10], outputs: 3 });
      return m;
    })();
    void early;
    model.prune({ amount: 0.5, scope: 'global' });
    const pruned = (model.layers[0] as any).getWeights().weight;
    model.rewind(4);
    const rewound = (model.layers[0] as any).getWeights().weight;
    // Compare against an identical model trained to step 4 only.
    const twin = compiledMlp({ inputSize: 12, hidden: [10], outputs: 3 });
    await twin.fit(x, y, { epochs: 1, batchSize: 8, callbacks: [{ nextStep: (s) => (s < 4 ? 4 : undefined), onStep: () => { throw new StopAt4(); } }] }).catch((e) => {
      if (!(e instanceof StopAt4)) throw e;
    });
    expect(twin.step).to.equal(4);
    const at4 = (twin.layers[0] as any).getWeights().weight;
    for (let i = 0; i < rewound.length; i++) {
      if (pruned[i] === 0) expect(rewound[i]).to.equal(0);
      else expect(rewound[i]).to.equal(at4[i]);
    }
    expect(model.events[model.events.length - 1].kind).to.equal('rewind');
    expect(() => model.rewind(5)).to.throw(RangeError, 'no weights were saved at step 5 (saved steps: 4)');
  });

  it('rejects bad prune arguments and leaves the model unchanged', () => {
    const model = new Sequential({ inputSize: 6, seed: 1 });
    model.add(layers.dense({ units: 5, activation: 'relu' })).add(layers.dropout({ rate: 0.1 })).add(layers.dense({ units: 3 }));
    model.compile({ optimizer: optimizers.sgd(), loss: 'softmaxCrossEntropy' });
    const snapshot = () => model.layers.filter((l: any) => l.kind === 'dense').map((l: any) => Array.from(l.getWeights().weight));
    const before = snapshot();
    expect(() => model.prune({ amount: 1 })).to.throw(RangeError, 'amount must be a number in [0, 1), got 1');
    expect(() => model.prune({ amount: -0.1 })).to.throw(RangeError, 'amount');
    expect(() => model.prune({ amount: 0.5, criterion: 'l2' })).to.throw(RangeError, "criterion must be one of 'magnitude'");
    expect(() => model.prune({ amount: 0.5, structure: 'neuron', criterion: 'magnitude' as any })).to.throw(RangeError, 'criterion');
    expect(() => model.prune({ amount: 0.5, layer: 7 })).to.throw(RangeError, 'layer must be a non-negative integer (at most 2), got 7');
    expect(() => model.prune({ amount: 0.5, layer: 1 })).to.throw(RangeError, 'layer 1 is a dropout layer');
    expect(() => model.prune({ amount: 0.5, layer: [0, 0] })).to.throw(RangeError, 'twice');
    expect(() => model.prune({ amount: 0.5, scope: 'model' as any })).to.throw(RangeError, 'scope');
    expect(() => model.prune({ amount: 0.5, structure: 'neuron', layer: 2 })).to.throw(RangeError, 'output layer');
    expect(() => model.prune({ amount: 0.5, structure: 'neuron', criterion: 'taylor' })).to.throw(Error, 'needs statistics');
    expect(() => model.prune({ amount: 0.5, amout: 1 } as any)).to.throw(TypeError, "unknown option 'amout'");
    expect(() => model.rewind(-1)).to.throw(RangeError, 'step');
    expect(snapshot()).to.deep.equal(before);
    expect(model.events).to.deep.equal([]);
  });

  it('takes a decision made elsewhere (a GPU model\'s drop bits or neuron scores) only when it fits: bad ones are refused and change nothing', () => {
    const model = compiledMlp({ inputSize: 20, hidden: [10], outputs: 3 });
    const native = model.native;
    const state = () => JSON.stringify(native.exportState().layers.map((l) => [l.mask, l.alive, l.weight].map((a) => (a ? Array.from(a) : null))));
    const before = state();
    const plan = native.planMagnitudeDrops('prune', [0, 1], 0.3, false);
    expect(plan).to.deep.equal({ counts: [60, 9], global: -1 });
    expect(native.planMagnitudeDrops('prune', [0, 1], 0.3, true)).to.deep.equal({ counts: [0, 0], global: 69 });
    const drops = native.magnitudeDrops([0, 1], plan);
    expect(drops.map((d) => d.length)).to.deep.equal([Math.ceil(200 / 32), 1]);
    const bad: [string, () => unknown, ErrorConstructor][] = [
      ['drops not an array', () => native.pruneWeights([0, 1], 0.3, false, drops[0] as never), TypeError],
      ['drops of the wrong type', () => native.pruneWeights([0, 1], 0.3, false, [new Int32Array(drops[0]), drops[1]] as never), TypeError],
      ['one entry for two layers', () => native.pruneWeights([0, 1], 0.3, false, [drops[0]]), RangeError],
      ['a word short', () => native.pruneWeights([0, 1], 0.3, false, [drops[0].subarray(1), drops[1]]), RangeError],
      ['one drop too many', () => native.pruneWeights([0, 1], 0.3, false, [drops[0], Uint32Array.from(drops[1], (w, i) => (i === 0 ? w | (~w & (w + 1)) : w))]), RangeError],
      ['drops for another plan', () => native.pruneWeightsToSparsity([0, 1], 0.9, false, drops), RangeError],
      ['plan of an unknown kind', () => native.planMagnitudeDrops('grow' as never, [0], 0.3, false), RangeError],
      ['plan with a bad amount', () => native.planMagnitudeDrops('prune', [0], 1, false), RangeError],
      ['drops asked for more than a layer stores', () => native.magnitudeDrops([1], { counts: [31], global: -1 }), RangeError],
      ['drops asked globally for more than the layers store', () => native.magnitudeDrops([0, 1], { counts: [], global: 231 }), RangeError],
      ['scores not Float64Arrays', () => native.pruneNeurons([0], 0.3, 'l1', false, [new Float32Array(10)] as never), TypeError],
      ['scores one short', () => native.pruneNeurons([0], 0.3, 'l1', false, [new Float64Array(9)]), RangeError],
      ['a NaN score', () => native.pruneNeurons([0], 0.3, 'l1', false, [Float64Array.from({ length: 10 }, (_, i) => (i === 4 ? NaN : i))]), RangeError],
      ['scores for random', () => native.pruneNeurons([0], 0.3, 'random', false, [new Float64Array(10)]), RangeError],
      ['scores for the output layer', () => native.pruneNeurons([1], 0.3, 'l1', false, [new Float64Array(3)]), RangeError],
    ];
    for (const [what, call, type] of bad) {
      expect(call, what).to.throw(type);
      expect(state(), `${what} changed the model`).to.equal(before);
    }
    expect(native.events()).to.deep.equal([]);
    // The good ones act like the model's own decision.
    const twin = compiledMlp({ inputSize: 20, hidden: [10], outputs: 3 });
    expect(native.pruneWeights([0, 1], 0.3, false, drops)).to.equal(twin.native.pruneWeights([0, 1], 0.3, false));
    const scores = [native.neuronScores(0, 'l2')];
    expect(native.pruneNeurons([0], 0.3, 'l2', false, scores)).to.equal(twin.native.pruneNeurons([0], 0.3, 'l2', false));
    expect(state()).to.equal(JSON.stringify(twin.native.exportState().layers.map((l) => [l.mask, l.alive, l.weight].map((a) => (a ? Array.from(a) : null)))));
    expect(native.events()).to.deep.equal(twin.native.events());
    // RigL's choice made elsewhere: grows must be the plan's count of open positions, ascending.
    const x = randomArray(8 * 20, 3), y = randomLabels(8, 3, 4);
    const counts = native.planMagnitudeDrops('regrow', [0], 0.2, false).counts;
    expect(counts[0]).to.be.greaterThan(1);
    const grows = native.gradientGrowth([0], counts, x, y);
    const regrowDrops = native.magnitudeDrops([0], { counts, global: -1 });
    const mid = state();
    const l0 = native.exportState().layers[0];
    const stored = l0.format === 'csr' ? Number(l0.indices![0]) : l0.mask!.findIndex((m) => m === 1);  // row 0 stores it
    const badGrows: [string, () => unknown, ErrorConstructor][] = [
      ['grows for SET', () => native.regrow([0], 0.2, false, undefined, undefined, regrowDrops, grows), RangeError],
      ['grows not Float64Arrays', () => native.regrow([0], 0.2, true, x, y, regrowDrops, [Int32Array.from(grows[0])] as never), TypeError],
      ['a grow short', () => native.regrow([0], 0.2, true, x, y, regrowDrops, [grows[0].subarray(1)]), RangeError],
      ['grows out of order', () => native.regrow([0], 0.2, true, x, y, regrowDrops, [grows[0].slice().reverse()]), RangeError],
      ['a grow where a weight is stored', () => native.regrow([0], 0.2, true, x, y, regrowDrops, [Float64Array.from(grows[0], (p, i) => (i === 0 ? stored : p)).sort()]), RangeError],
      ['a fractional position', () => native.regrow([0], 0.2, true, x, y, regrowDrops, [Float64Array.from(grows[0], (p, i) => (i === 0 ? 0.5 : p))]), RangeError],
    ];
    for (const [what, call, type] of badGrows) {
      expect(call, what).to.throw(type);
      expect(state(), `${what} changed the model`).to.equal(mid);
    }
    expect(native.regrow([0], 0.2, true, x, y, regrowDrops, grows)).to.equal(twin.native.regrow([0], 0.2, true, x, y));
    expect(state()).to.equal(JSON.stringify(twin.native.exportState().layers.map((l) => [l.mask, l.alive, l.weight].map((a) => (a ? Array.from(a) : null)))));
    expect(native.events()).to.deep.equal(twin.native.events());
  });

  it('rejects pruning while a training step runs, and allows it from a callback at a step boundary', async () => {
    const model = compiledMlp({ inputSize: 64, hidden: [64], outputs: 4 });
    const x = randomArray(2000 * 64, 1);
    const y = randomLabels(2000, 4, 2);
    const running = model.fit(x, y, { epochs: 2, batchSize: 8 });
    expect(() => model.prune({ amount: 0.5 })).to.throw(Error, 'rejected (not deferred)');
    await running;
    await model.fit(x, y, { epochs: 1, batchSize: 500, callbacks: [{ onEpochEnd: () => void model.prune({ amount: 0.5, layer: 0 }) }] });
    expect((model.layers[0] as any).nnz).to.equal(64 * 64 / 2);
  });

  it('keeps LeNet-300-100 accuracy on MNIST when pruned 90% gradually', async function () {
    this.timeout(120000);
    const { train, test } = data.loadMnistSplits();
    const model = compiledMlp({ inputSize: 784, hidden: [300, 100], outputs: 10 }, 0.05);
    const steps = 125 * 8;
    await model.fit(train.x, train.y, {
      epochs: 8,
      batchSize: 64,
      callbacks: [plasticity.gradualMagnitude({ finalSparsity: 0.9, startStep: 100, endStep: Math.round(steps * 0.6), every: 25, scope: 'global' })],
    });
    const { accuracy } = await model.evaluate(test.x, test.y);
    const nnz = (model.layers as any[]).reduce((s, l) => s + l.nnz, 0);
    expect(nnz).to.be.at.most(Math.ceil(0.1 * 266200));
    expect(accuracy).to.be.at.least(0.94);
  });
});

class StopAt4 extends Error {}
