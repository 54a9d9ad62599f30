import { expect } from 'chai';
import { Sequential, layers, optimizers } from '../lib/index';
import { compiledMlp, maxAbs, maxAbsDiff, randomArray, randomLabels } from './helpers';

function l2Scores(model: Sequential, layer: number): number[] {
  const w = (model.layers[layer] as any).getWeights().weight as Float32Array;
  const next = (model.layers[layer + 1] as any).getWeights().weight as Float32Array;
  const units = (model.layers[layer] as any).units;
  const inputs = (model.layers[layer] as any).inputs;
  const nextUnits = (model.layers[layer + 1] as any).units;
  const scores: number[] = [];
  for (let j = 0; j < units; j++) {
    let s = 0;
    for (let c = 0; c < inputs; c++) s += w[j * inputs + c] ** 2;
    for (let r = 0; r < nextUnits; r++) s += next[r * units + j] ** 2;
    scores.push(Math.sqrt(s));
  }
  return scores;
}

describe('pruning: neurons and compaction', () => {
  it('prunes the neurons with the lowest l2 norm (incoming + outgoing) and logs ids and scores', () => {
    const model = compiledMlp({ inputSize: 12, hidden: [20, 8], outputs: 3 });
    const scores = l2Scores(model, 0);
    const ids = (model.layers[0] as any).neuronIds as number[];
    const order = scores.map((s, j) => [s, j] as const).sort((a, b) => a[0] - b[0]);
    const expected = order.slice(0, 5).map(([, j]) => ids[j]).sort((a, b) => a - b);
    const r = model.prune({ layer: 0, amount: 0.25, structure: 'neuron', criterion: 'l2' });
    expect(r.removed).to.equal(5);
    const event = r.events[0];
    expect(event).to.include({ kind: 'prune', layer: 0, criterion: 'l2', count: 5 });
    expect([...event.neuronIds].sort((a, b) => a - b)).to.deep.equal(expected);
    event.scores.forEach((s, i) => expect(s).to.be.closeTo(scores[ids.indexOf(event.neuronIds[i])], 1e-4));
    expect((model.layers[0] as any).deadUnits).to.equal(5);
  });

  it('zeroes a pruned neuron completely: its outputs no longer reach the next layer', async () => {
    const model = new Sequential({ inputSize: 6, seed: 2 });
    model.add(layers.dense({ units: 10, activation: 'sigmoid' })).add(layers.dense({ units: 3 }));
    model.compile({ optimizer: optimizers.sgd({ learningRate: 0.1, momentum: 0.9 }), loss: 'softmaxCrossEntropy' });
    const { events } = model.prune({ layer: 0, amount: 0.3, structure: 'neuron', criterion: 'random' });
    const dead = events[0].neuronIds.map((id) => (model.layers[0] as any).neuronIds.indexOf(id));
    // sigmoid(0) = 0.5 is not zero: the outgoing weights must be what is cut.
    const next = (model.layers[1] as any).getWeights().weight;
    for (const j of dead) for (let r = 0; r < 3; r++) expect(next[r * 10 + j]).to.equal(0);
    await model.fit(randomArray(100 * 6, 1), randomLabels(100, 3, 2), { epochs: 3, batchSize: 10 });
    const w = (model.layers[0] as any).getWeights();
    const after = (model.layers[1] as any).getWeights().weight;
    for (const j of dead) {
      expect(w.bias[j]).to.equal(0);
      for (let c = 0; c < 6; c++) expect(w.weight[j * 6 + c]).to.equal(0);
      for (let r = 0; r < 3; r++) expect(after[r * 10 + j]).to.equal(0);
    }
  });

  it('compact() removes the pruned neurons without changing any output (to 1e-6), dense and CSR', async () => {
    for (const threshold of [0, 1]) {
      const model = new Sequential({ inputSize: 30, seed: 4, sparseThreshold: threshold });
      model.add(layers.dense({ units: 40, activation: 'tanh' })).add(layers.dense({ units: 20, activation: 'relu' })).add(layers.dense({ units: 5 }));
      model.compile({ optimizer: optimizers.adam({ learningRate: 0.01 }), loss: 'softmaxCrossEntropy' });
      const x = randomArray(64 * 30, 5);
      await model.fit(x, randomLabels(64, 5, 6), { epochs: 2, batchSize: 16 });
      model.prune({ amount: 0.5, scope: 'global' });
      model.prune({ layer: [0, 1], amount: 0.3, structure: 'neuron', criterion: 'taylor' });
      const ids0 = (model.layers[0] as any).neuronIds as number[];
      const dead = new Set(model.events.filter((e) => e.kind === 'prune' && e.neuronIds.length).flatMap((e) => e.neuronIds));
      const before = await model.predict(x);
      const events = model.compact();
      const after = await model.predict(x);
      expect(maxAbsDiff(before, after)).to.be.below(1e-6);
      expect(events.filter((e) => e.kind === 'compact').map((e) => e.count)).to.deep.equal([12, 6]);
      expect((model.layers[0] as any).units).to.equal(28);
      expect((model.layers[1] as any).inputs).to.equal(28);
      expect((model.layers[1] as any).units).to.equal(14);
      expect((model.layers[2] as any).inputs).to.equal(14);
      expect((model.layers[0] as any).neuronIds).to.deep.equal(ids0.filter((id) => !dead.has(id)));
      expect((model.layers[0] as any).deadUnits).to.equal(0);
    }
  });

  it('keeps optimizer state aligned through compaction: training after compact equals training the uncompacted model', async () => {
    const x = randomArray(128 * 10, 1);
    const y = randomLabels(128, 3, 2);
    const build = () => {
      const m = new Sequential({ inputSize: 10, seed: 9, sparseThreshold: 0 });
      m.add(layers.dense({ units: 16, activation: 'relu' })).add(layers.dense({ units: 3 }));
      m.compile({ optimizer: optimizers.adam({ learningRate: 0.01 }), loss: 'softmaxCrossEntropy' });
      return m;
    };
    const a = build();
    const b = build();
    for (const m of [a, b]) {
      await m.fit(x, y, { epochs: 2, batchSize: 16, shuffle: false });
      m.prune({ layer: 0, amount: 0.25, structure: 'neuron', criterion: 'l1' });
    }
    a.compact();
    for (const m of [a, b]) await m.fit(x, y, { epochs: 2, batchSize: 16, shuffle: false });
    // Adam moments moved with their weights: same function, same weights on live units.
    const xa = randomArray(20 * 10, 3);
    expect(maxAbsDiff(await a.predict(xa), await b.predict(xa))).to.be.below(1e-5);
    const alive = (b.layers[0] as any).neuronIds.map((id: number) => (a.layers[0] as any).neuronIds.includes(id));
    const wa = (a.layers[0] as any).getWeights().weight;
    const wb = (b.layers[0] as any).getWeights().weight;
    let row = 0;
    alive.forEach((isAlive: boolean, j: number) => {
      if (!isAlive) return;
      for (let c = 0; c < 10; c++) expect(wa[row * 10 + c]).to.be.closeTo(wb[j * 10 + c], 1e-6);
      row++;
    });
  });

  it('ranks neurons across layers on normalised scores with scope global, keeping at least one per layer', () => {
    const model = compiledMlp({ inputSize: 8, hidden: [6, 4], outputs: 2 });
    const r = model.prune({ amount: 0.9, structure: 'neuron', criterion: 'l2', scope: 'global' });
    expect(r.removed).to.equal(8);
    expect((model.layers[0] as any).units - (model.layers[0] as any).deadUnits).to.be.at.least(1);
    expect((model.layers[1] as any).units - (model.layers[1] as any).deadUnits).to.be.at.least(1);
    expect(r.events.every((e) => e.criterion === 'l2-global')).to.equal(true);
  });

  it('scores activation and taylor criteria from training statistics', async () => {
    const model = compiledMlp({ inputSize: 8, hidden: [12], outputs: 3 });
    // A unit that never activates has activation score 0: it goes first.
    const w = (model.layers[0] as any).getWeights();
    for (let c = 0; c < 8; c++) w.weight[3 * 8 + c] = 0;
    w.bias[3] = -5;
    (model.layers[0] as any).setWeights(w);
    await model.fit(randomArray(64 * 8, 1), randomLabels(64, 3, 2), { epochs: 1, batchSize: 16 });
    const scores = model.native.neuronScores(0, 'activation');
    expect(scores[3]).to.equal(0);
    const r = model.prune({ layer: 0, amount: 0.1, structure: 'neuron', criterion: 'activation' });
    expect(r.events[0].neuronIds).to.deep.equal([(model.layers[0] as any).neuronIds[3]]);
    const taylor = model.native.neuronScores(0, 'taylor');
    expect(taylor[3]).to.equal(-Infinity); // dead now
    expect(Array.from(taylor).filter((s) => s > 0).length).to.be.greaterThan(5);
  });

  it('never prunes the output layer and never empties a layer', () => {
    const model = compiledMlp({ inputSize: 4, hidden: [1], outputs: 2 });
    expect(() => model.prune({ layer: 1, amount: 0.5, structure: 'neuron' })).to.throw(RangeError, 'output layer');
    const r = model.prune({ layer: 0, amount: 0.99, structure: 'neuron' });
    expect(r.removed).to.equal(0);
    expect((model.layers[0] as any).deadUnits).to.equal(0);
  });

  it('calls onPrune and onCompact during fit when a callback changes the structure', async () => {
    const model = compiledMlp({ inputSize: 8, hidden: [16], outputs: 2 });
    const seen: string[] = [];
    await model.fit(randomArray(40 * 8, 1), randomLabels(40, 2, 2), {
      epochs: 2,
      batchSize: 10,
      callbacks: [
        {
          onEpochEnd: (epoch) => {
            if (epoch === 0) {
              model.prune({ layer: 0, amount: 0.25, structure: 'neuron' });
              model.compact();
            }
          },
          onPrune: (e) => void seen.push(`prune:${e.layer}:${e.neuronIds.length}:${e.epoch}`),
          onCompact: (e) => void seen.push(`compact:${e.layer}:${e.count}:${e.step}`),
        },
      ],
    });
    expect(seen).to.deep.equal(['prune:0:4:0', 'compact:0:4:4']);
    expect((model.layers[0] as any).units).to.equal(12);
  });

  it('DropConnect changes training but not evaluation, on dense and CSR weights', async () => {
    for (const threshold of [0, 1]) {
      const make = (rate: number) => {
        const m = new Sequential({ inputSize: 10, seed: 3, sparseThreshold: threshold });
        m.add(layers.dense({ units: 20, activation: 'relu', dropConnect: rate })).add(layers.dense({ units: 3 }));
        m.compile({ optimizer: optimizers.sgd({ learningRate: 0.1 }), loss: 'softmaxCrossEntropy' });
        m.prune({ layer: 0, amount: 0.5 });
        return m;
      };
      const x = randomArray(50 * 10, 1);
      const y = randomLabels(50, 3, 2);
      const plain = make(0);
      const dc = make(0.5);
      expect(maxAbsDiff(await plain.predict(x), await dc.predict(x))).to.equal(0);
      const g1 = await plain.computeGradients(x, y);
      const g2 = await dc.computeGradients(x, y);
      expect(maxAbsDiff(g1[0].weight, g2[0].weight)).to.equal(0);
      await plain.fit(x, y, { epochs: 2, batchSize: 10 });
      await dc.fit(x, y, { epochs: 2, batchSize: 10 });
      const diff = maxAbsDiff((plain.layers[0] as any).getWeights().weight, (dc.layers[0] as any).getWeights().weight);
      expect(diff).to.be.greaterThan(1e-4);
      const w = (dc.layers[0] as any).getWeights().weight;
      expect(Array.from(w as Float32Array).filter((v) => v === 0).length).to.be.at.least(100);
      expect(maxAbs(w)).to.be.below(10);
    }
  });
});
