// Schedules across fit() calls and checkpoints: each step's hooks run once,
// RigL starts on a trained model, continual backprop resumes exactly, the
// event log keeps exactly its limit, SET/RigL touch only the layers they are
// given and never grow connections onto pruned units.
import { expect } from 'chai';
import { Sequential, layers, loadModel, optimizers, plasticity } from '../lib/index';
import { DenseLayer } from '../lib/layers';
import { randomArray, randomLabels } from './helpers';

const x = randomArray(128 * 8, 21);
const y = randomLabels(128, 3, 22);

function mlp(hidden: number[], options: { activation?: 'relu' | 'sigmoid'; sparseThreshold?: number; eventLimit?: number } = {}) {
  const m = new Sequential({ inputSize: 8, seed: 9, ...(options.sparseThreshold === undefined ? {} : { sparseThreshold: options.sparseThreshold }), ...(options.eventLimit === undefined ? {} : { eventLimit: options.eventLimit }) });
  for (const units of hidden) m.add(layers.dense({ units, activation: options.activation ?? 'relu' }));
  m.add(layers.dense({ units: 3 }));
  m.compile({ optimizer: optimizers.sgd({ learningRate: 0.05, momentum: 0.9 }), loss: 'softmaxCrossEntropy' });
  return m;
}

const steps = (m: Sequential, kind: string) => m.events.filter((e) => e.kind === kind).map((e) => e.step);

describe('hardening: schedules across fit() calls and checkpoints', () => {
  it('a step hook due where one fit ends runs once, not again when the next fit starts', async () => {
    const m = mlp([8]);
    const grow = plasticity.dropin({ layer: 0, count: 2, when: 'every', every: 8 });
    await m.fit(x, y, { epochs: 1, batchSize: 16, callbacks: [grow] });
    await m.fit(x, y, { epochs: 1, batchSize: 16, callbacks: [grow] });
    expect(steps(m, 'grow')).to.deep.equal([8, 16]);
    expect((m.layers[0] as DenseLayer).units).to.equal(12);
    const calls: number[] = [];
    const probe = { nextStep: (s: number) => (Math.floor(s / 8) + 1) * 8, onStep: (s: number) => void calls.push(s) };
    await m.fit(x, y, { epochs: 1, batchSize: 16, callbacks: [probe] });
    expect(calls).to.deep.equal([24]);
  });

  it('the same holds across a checkpoint: a resumed run grows where the uninterrupted one does', async () => {
    const a = mlp([8]);
    await a.fit(x, y, { epochs: 1, batchSize: 16, callbacks: [plasticity.dropin({ layer: 0, count: 2, when: 'every', every: 8 })] });
    const b = await loadModel(a.toBuffer());
    for (const m of [a, b]) await m.fit(x, y, { epochs: 1, batchSize: 16, callbacks: [plasticity.dropin({ layer: 0, count: 2, when: 'every', every: 8 })] });
    expect(steps(b, 'grow')).to.deep.equal([8, 16]);
    expect(Array.from(await b.predict(x))).to.deep.equal(Array.from(await a.predict(x)));
  });

  it('RigL starts on a model that has already trained (no regrowth before its first batch)', async () => {
    const m = mlp([16]);
    await m.fit(x, y, { epochs: 1, batchSize: 16 });
    await m.fit(x, y, { epochs: 1, batchSize: 16, callbacks: [plasticity.rigl({ sparsity: 0.8, every: 4, until: 100 })] });
    expect(steps(m, 'regrow').filter((s) => s === 8)).to.deep.equal([]);
    expect(steps(m, 'regrow')).to.include(12);
  });

  it('continual backprop resumes exactly from a checkpoint (its per-layer carry is saved)', async () => {
    const cbp = () => plasticity.continualBackprop({ replacementRate: 0.02, maturity: 3 });
    const a = mlp([12, 10]);
    await a.fit(x, y, { epochs: 2, batchSize: 16, callbacks: [cbp()] });
    const b = await loadModel(a.toBuffer());
    await a.fit(x, y, { epochs: 4, initialEpoch: 2, batchSize: 16, callbacks: [cbp()] });
    await b.fit(x, y, { epochs: 4, initialEpoch: 2, batchSize: 16, callbacks: [cbp()] });
    expect(steps(a, 'reinit').length).to.be.greaterThan(4);
    expect(b.events).to.deep.equal(a.events);
    expect(Array.from(await b.predict(x))).to.deep.equal(Array.from(await a.predict(x)));
  });

  it("continualBackprop({ decay }) applies to its own fit only: the model's decay comes back afterwards", async () => {
    const m = mlp([8]);
    const before = m.native.exportState().statsDecay;
    await m.fit(x, y, { epochs: 1, batchSize: 16, callbacks: [plasticity.continualBackprop({ decay: 0.5 })] });
    expect(m.native.exportState().statsDecay).to.equal(before);
  });

  it('continualBackprop() rejects a maturity the core cannot take, in the factory', () => {
    expect(() => plasticity.continualBackprop({ maturity: 2 ** 60 })).to.throw(RangeError, /^plasticity\.continualBackprop\(\): maturity .*at most 4503599627370496/);
  });

  it('dropin() on the output layer is rejected before any training step', async () => {
    const m = mlp([8]);
    const grow = plasticity.dropin({ layer: 1, count: 2, when: 'every', every: 5 });
    let error: unknown;
    try {
      await m.fit(x, y, { epochs: 1, batchSize: 16, callbacks: [grow] });
    } catch (err) {
      error = err;
    }
    expect((error as Error).message).to.match(/^plasticity\.dropin\(\): layer 1 is the output layer/);
    expect(m.step).to.equal(0);
  });

  it('dropin() rejects an option its trigger never reads', () => {
    expect(() => plasticity.dropin({ layer: 0, count: 1, every: 5 })).to.throw(TypeError, /^plasticity\.dropin\(\): every applies only to when: 'every', but when is 'plateau'/);
    expect(() => plasticity.dropin({ layer: 0, count: 1, when: 'every', every: 5, patience: 3 })).to.throw(TypeError, /patience applies only to when: 'plateau'/);
  });

  it('the event log keeps exactly eventLimit events, and a checkpoint keeps the same ones', async () => {
    const m = mlp([4], { eventLimit: 5 });
    for (let i = 0; i < 12; i++) m.grow({ layer: 0, count: 1, init: 'zero' });
    expect(m.events.length).to.equal(5);
    expect(m.events.map((e) => e.neuronIds[0])).to.deep.equal([...Array(5)].map((_, i) => m.events[0].neuronIds[0] + i));
    const back = await loadModel(m.toBuffer());
    expect(back.events).to.deep.equal(m.events);
  });
});

describe('hardening: SET and RigL keep to their layers and to live units', () => {
  it("set({ layers }) sparsifies only the layers it is given", async () => {
    const m = mlp([8, 8]);
    await m.fit(x, y, { epochs: 1, batchSize: 16, callbacks: [plasticity.set({ sparsity: 0.8, layers: [1], every: 4 })] });
    const dense = m.layers.filter((l): l is DenseLayer => l instanceof DenseLayer);
    expect(dense[0].nnz).to.equal(64);
    expect(dense[2].nnz).to.equal(24);
    expect(dense[1].nnz).to.be.at.most(13);
  });

  for (const kind of ['set', 'rigl'] as const) {
    it(`${kind} never grows a connection onto a pruned unit, so compact() keeps the outputs (sigmoid: a pruned unit outputs 0.5)`, async () => {
      const m = mlp([16, 12], { activation: 'sigmoid', sparseThreshold: 0 });
      await m.fit(x, y, { epochs: 1, batchSize: 16 });
      m.prune({ amount: 0.7 });
      m.prune({ structure: 'neuron', amount: 0.5 });
      const schedule = kind === 'set' ? plasticity.set({ every: 2, dropFraction: 0.5 }) : plasticity.rigl({ every: 2, dropFraction: 0.5, until: 100 });
      await m.fit(x, y, { epochs: 2, batchSize: 16, callbacks: [schedule] });
      expect(steps(m, 'regrow').length).to.be.greaterThan(0);
      const state = m.native.exportState();
      state.layers.forEach((l, i) => {
        const next = state.layers[i + 1];
        if (!l.alive || !next) return;
        for (let u = 0; u < l.units; u++) {
          if (l.alive[u]) continue;
          for (let r = 0; r < next.units; r++) expect(next.mask![r * next.inputs + u], `layer ${i + 1} (${r}, ${u})`).to.equal(0);
        }
      });
      const before = await m.predict(x);
      m.compact();
      const after = await m.predict(x);
      for (let i = 0; i < before.length; i++) expect(Math.abs(after[i] - before[i])).to.be.below(1e-5);
    });
  }
});
