import { expect } from 'chai';
import { Sequential, layers, loadModel, optimizers, plasticity } from '../lib/index';
import { maxAbsDiff, randomArray, randomLabels } from './helpers';

function mlp(seed = 1, threshold?: number, hidden = [32, 16]) {
  const m = new Sequential({ inputSize: 24, seed, ...(threshold === undefined ? {} : { sparseThreshold: threshold }) });
  for (const h of hidden) m.add(layers.dense({ units: h, activation: 'relu' }));
  m.add(layers.dense({ units: 4 }));
  m.compile({ optimizer: optimizers.sgd({ learningRate: 0.05, momentum: 0.9 }), loss: 'softmaxCrossEntropy' });
  return m;
}

const x = randomArray(160 * 24, 1);
const y = randomLabels(160, 4, 2);
const nnzOf = (m: Sequential) => (m.layers as any[]).reduce((s, l) => s + l.nnz, 0);
const sizeOf = (m: Sequential) => (m.layers as any[]).reduce((s, l) => s + l.units * l.inputs, 0);

describe('plasticity: sparse training, reinitialisation, dropin and the cycle', () => {
  it('sparsify() reaches the overall sparsity with Erdos-Renyi densities (wider layers sparser)', () => {
    const m = mlp(1, 0.5);
    m.sparsify({ sparsity: 0.8, distribution: 'erdos-renyi' });
    expect(nnzOf(m) / sizeOf(m)).to.be.closeTo(0.2, 0.01);
    const d = (m.layers as any[]).map((l) => l.density);
    // density ~ (in + out) / (in x out): 24x32 > 32x16 ... the 16x4 output layer is densest.
    expect(d[2]).to.be.greaterThan(d[1]);
    expect(d[1]).to.be.greaterThan(d[0] - 0.05);
    expect((m.layers as any[]).map((l) => l.format)).to.include('csr');
    const u = mlp(2);
    u.sparsify({ sparsity: 0.5, distribution: 'uniform' });
    (u.layers as any[]).forEach((l) => expect(l.density).to.be.closeTo(0.5, 0.02));
  });

  it('sparsify() mid-training gives the kept weights fresh optimizer state, in dense and CSR layers alike', async () => {
    for (const threshold of [0, 1]) {  // the layers stay dense with a mask, or are CSR before and after
      const m = mlp(6, threshold);
      if (threshold) m.prune({ amount: 0.1, scope: 'global' });  // CSR from the start
      await m.fit(x, y, { epochs: 1, batchSize: 16 });
      const before = m.native.exportState();
      expect(before.layers[0].weightMoments[0].some((v) => v !== 0)).to.equal(true);
      m.sparsify({ sparsity: 0.5, distribution: 'uniform', layers: [0] });
      const after = m.native.exportState();
      expect(after.layers[0].format).to.equal(threshold ? 'csr' : 'dense');
      expect(after.layers[0].weightMoments[0].every((v) => v === 0), `${after.layers[0].format}: momentum after sparsify`).to.equal(true);
      expect(after.layers[1].weightMoments).to.deep.equal(before.layers[1].weightMoments);  // other layers keep theirs
      // lastRescales(): the thinned layer and its factor, 1/sqrt(density): each kept weight is its old value times it.
      const { layers: thinned, scales } = m.native.lastRescales();
      expect(Array.from(thinned)).to.deep.equal([0]);
      expect(scales[0]).to.equal(Math.fround(1 / Math.sqrt(0.5)));
      const at = (l: typeof before.layers[0], r: number, c: number) => {
        if (l.format !== 'csr') return l.weight[r * l.inputs + c];
        for (let k = Number(l.indptr![r]); k < Number(l.indptr![r + 1]); k++) if (l.indices![k] === c) return l.weight[k];
        return 0;
      };
      let kept = 0;
      for (let r = 0; r < after.layers[0].units; r++)
        for (let c = 0; c < after.layers[0].inputs; c++) {
          const v = at(after.layers[0], r, c);
          if (v === 0) continue;
          kept++;
          expect(v).to.equal(Math.fround(at(before.layers[0], r, c) * scales[0]));
        }
      expect(kept).to.be.greaterThan(0);
      m.compact();  // renumbers nothing here, but every record of the last change goes
      expect(m.native.lastRescales().layers.length).to.equal(0);
    }
  });

  it('SET keeps the sparsity exact while dropping and regrowing at random', async () => {
    const m = mlp(3);
    const regrown: number[] = [];
    await m.fit(x, y, { epochs: 4, batchSize: 16, callbacks: [plasticity.set({ sparsity: 0.7, dropFraction: 0.3, every: 10 }), { onStructure: (e) => void (e.kind === 'regrow' && regrown.push(e.count)) }] });
    // 4 rounds; ERK leaves the small output layer dense, so it has nothing to regrow.
    expect(regrown.length).to.equal(2 * 4);
    const counts = (m.layers as any[]).map((l) => l.nnz);
    expect(nnzOf(m) / sizeOf(m)).to.be.closeTo(0.3, 0.01);
    // Another round (after some training, so the last round's zero-valued
    // newcomers are no longer the smallest) changes the pattern, not the counts.
    await m.fit(x, y, { epochs: 1, batchSize: 16 });
    const before = (m.layers[0] as any).getWeights().weight.map((v: number) => (v !== 0 ? 1 : 0));
    m.native.regrow([0], 0.3, false);
    expect((m.layers as any[]).map((l) => l.nnz)).to.deep.equal(counts);
    const after = (m.layers[0] as any).getWeights().weight;
    const changed = before.filter((b: number, i: number) => b === 1 && after[i] === 0).length;
    expect(changed).to.be.greaterThan(0);
  });

  it('RigL regrows exactly the missing connections with the largest gradient, starting at zero', async () => {
    const m = mlp(4, 1);
    m.sparsify({ sparsity: 0.8, distribution: 'uniform' });
    m.native.setKeepLastBatch(true);
    await m.fit(x, y, { epochs: 1, batchSize: 160, shuffle: false }); // the kept batch is all of x
    // The dense gradient at every position, from a dense twin with the same weights.
    const twin = mlp(4, 0);
    (m.layers as any[]).forEach((l, i) => (twin.layers[i] as any).setWeights(l.getWeights()));
    const g = (await twin.computeGradients(x, y))[0].weight;
    const w = (m.layers[0] as any).getWeights().weight;
    const k = Math.floor(0.25 * (m.layers[0] as any).nnz);
    const empty = [...w.keys()].filter((i) => w[i] === 0).sort((a, b) => Math.abs(g[b]) - Math.abs(g[a]));
    const expected = new Set(empty.slice(0, k));
    m.native.regrow([0], 0.25, true);
    const after = (m.layers[0] as any).getWeights().weight;
    const state = m.native.exportState().layers[0];
    const stored = new Set<number>();
    for (let r = 0; r < 32; r++) for (let e = Number(state.indptr![r]); e < Number(state.indptr![r + 1]); e++) stored.add(r * 24 + state.indices![e]);
    const grown = [...stored].filter((i) => w[i] === 0);
    expect(grown.length).to.equal(k);
    for (const i of grown) {
      expect(expected.has(i), `position ${i}`).to.equal(true);
      expect(after[i]).to.equal(0);
    }
    expect(m.events[m.events.length - 1]).to.include({ kind: 'regrow', criterion: 'gradient', count: k });
  });

  it('RigL with an explicit batch (x, y) regrows exactly as with that batch kept from training', async () => {
    const kept = mlp(4, 1);
    kept.sparsify({ sparsity: 0.8, distribution: 'uniform' });
    kept.native.setKeepLastBatch(true);
    await kept.fit(x, y, { epochs: 1, batchSize: 160, shuffle: false }); // the kept batch is all of x
    const given = await loadModel(kept.toBuffer());
    kept.native.regrow([0], 0.25, true);
    given.native.regrow([0], 0.25, true, x, y);  // nothing kept here: the batch is passed in
    expect(given.native.exportState().layers[0].indices).to.deep.equal(kept.native.exportState().layers[0].indices);
    expect(() => given.native.regrow([0], 0.25, true, x.subarray(0, 5), y)).to.throw(RangeError, /multiple of inputSize/);
    expect(() => given.native.regrow([0], 0.25, true, x, y.subarray(0, 3))).to.throw(RangeError, /one label per sample/);
    expect(() => (given.native.regrow as (...a: unknown[]) => number)([0], 0.25, true, x)).to.throw(TypeError, /y must be/);
    // A batch with a bad label is refused before the kept batch is touched: RigL still reads it.
    const bad = Int32Array.from(y).fill(99, 0, 1);
    expect(() => kept.native.regrow([0], 0.1, true, x, bad)).to.throw(RangeError, /label 99/);
    expect(kept.native.regrow([0], 0.1, true)).to.be.greaterThan(0);
  });

  it('RigL decays its drop fraction with a cosine and stops at `until`', async () => {
    const schedule = plasticity.rigl({ sparsity: 0.8, dropFraction: 0.4, every: 5, until: 30 }) as any;
    expect(schedule.dropFractionAt(0)).to.be.closeTo(0.4, 1e-12);
    expect(schedule.dropFractionAt(15)).to.be.closeTo(0.2, 1e-12);
    expect(schedule.dropFractionAt(30)).to.equal(0);
    const m = mlp(5);
    const steps: number[] = [];
    await m.fit(x, y, { epochs: 5, batchSize: 16, callbacks: [schedule, { onStructure: (e) => void (e.kind === 'regrow' && e.layer === 0 && steps.push(e.step)) }] });
    expect(steps).to.deep.equal([5, 10, 15, 20, 25]);
    expect(nnzOf(m) / sizeOf(m)).to.be.closeTo(0.2, 0.01);
  });

  it('continual backprop replaces mature low-utility units: fresh incoming, zero outgoing, age 0', async () => {
    const m = mlp(6, undefined, [32]);
    const reinit: any[] = [];
    await m.fit(x, y, {
      epochs: 3,
      batchSize: 16,
      callbacks: [plasticity.continualBackprop({ replacementRate: 0.01, maturity: 5 }), { onReinit: (e) => void reinit.push(e) }],
    });
    expect(reinit.length).to.be.greaterThan(3);
    const last = reinit[reinit.length - 1];
    expect(last.criterion).to.equal('utility');
    const unit = (m.layers[0] as any).neuronIds.indexOf(last.neuronIds[0]);
    if (last.step === m.step) {
      const out = (m.layers[1] as any).getWeights().weight;
      for (let r = 0; r < 4; r++) expect(out[r * 32 + unit]).to.equal(0);
      expect(m.native.unitStats(0).ages[unit]).to.equal(0);
    }
    // Disabled again after fit: a plain fit reinitialises nothing.
    const count = m.events.length;
    await m.fit(x, y, { epochs: 1, batchSize: 16 });
    expect(m.events.length).to.equal(count);
  });

  it('ReDo resets a dormant unit and leaves the active ones alone', async () => {
    const m = mlp(7, undefined, [16]);
    const w = (m.layers[0] as any).getWeights();
    w.weight.fill(0, 5 * 24, 6 * 24);
    w.bias[5] = -3; // relu(-3) = 0 for every input: dormant
    (m.layers[0] as any).setWeights(w);
    const active = w.weight.slice(0, 5 * 24);
    await m.fit(x, y, { epochs: 1, batchSize: 160, callbacks: [{ onEpochEnd: () => void 0 }] });
    const before = (m.layers[0] as any).getWeights().weight.slice(0, 5 * 24);
    const reset = m.native.redo(0.05);
    expect(reset).to.equal(1);
    const after = (m.layers[0] as any).getWeights();
    expect(Math.hypot(...after.weight.subarray(5 * 24, 6 * 24))).to.be.greaterThan(0.1);
    expect(after.bias[5]).to.equal(0);
    expect(maxAbsDiff(after.weight.subarray(0, 5 * 24), before)).to.equal(0);
    expect(active.length).to.equal(120);
    const e = m.events[m.events.length - 1];
    expect(e).to.include({ kind: 'reinit', criterion: 'dormant', count: 1 });
    expect(e.scores[0]).to.be.below(0.05);
  });

  it('dropin grows every N steps up to maxUnits, and on a loss plateau', async () => {
    const every = mlp(8);
    await every.fit(x, y, { epochs: 2, batchSize: 16, callbacks: [plasticity.dropin({ layer: 0, count: 4, when: 'every', every: 5, maxUnits: 42 })] });
    expect((every.layers[0] as any).units).to.equal(42);
    const plateau = mlp(9);
    await plateau.fit(x, y, { epochs: 4, batchSize: 16, callbacks: [plasticity.dropin({ layer: 1, count: 3, patience: 1, minDelta: 1e9, monitor: 'loss' })] });
    // The first epoch sets the baseline; each later one counts as a plateau.
    expect((plateau.layers[1] as any).units).to.equal(16 + 3 * 3);
  });

  it('the drop-in & out cycle prunes, grows where the signal is, and stays within the budget', async () => {
    const m = mlp(10);
    const budget = m.countParams() + 200;
    const cycle = plasticity.cycle({ grow: { count: 8 }, prune: { amount: 0.1, criterion: 'taylor' }, budget, every: 10 }) as any;
    await m.fit(x, y, { epochs: 3, batchSize: 16, callbacks: [cycle] });
    expect(cycle.decisions.length).to.equal(3);
    for (const d of cycle.decisions) expect(d.params).to.be.at.most(budget);
    const kinds = new Set(m.events.map((e) => e.kind));
    expect(kinds.has('prune') && kinds.has('compact') && kinds.has('grow')).to.equal(true);
    expect(cycle.decisions.some((d: any) => d.grown > 0)).to.equal(true);
    expect(Object.keys(cycle.decisions[0].need).length).to.equal(2);
  });

  it('rejects bad schedule options', () => {
    expect(() => plasticity.set({ sparsity: 1 })).to.throw(RangeError, 'sparsity');
    expect(() => plasticity.set({ sparsity: '0.9' as any })).to.throw(TypeError, 'sparsity');
    expect(() => plasticity.rigl({ sparsity: 0.9 } as any)).to.throw(TypeError, 'until');
    expect(() => plasticity.continualBackprop({ replacementRate: 2 })).to.throw(RangeError, 'replacementRate');
    expect(() => plasticity.redo({ every: 0 })).to.throw(RangeError, 'every');
    expect(() => plasticity.dropin({ layer: 0, count: 1, when: 'every' } as any)).to.throw(TypeError, 'every');
    expect(() => plasticity.dropin({ layer: 0, count: 0 })).to.throw(RangeError, 'count');
    expect(() => plasticity.cycle({ grow: { count: 1 }, prune: { amount: 1 }, budget: 10 })).to.throw(RangeError, 'prune.amount');
    expect(() => plasticity.gradualMagnitude({ finalSparsity: 0.5, startStep: 10, endStep: 5 })).to.throw(RangeError, 'endStep');
    // A layer listed twice would be changed twice per update: refused, naming the option.
    expect(() => plasticity.set({ layers: [0, 2, 0] })).to.throw(RangeError, 'plasticity.set(): layers lists a layer twice: [0, 2, 0]');
    expect(() => plasticity.rigl({ until: 10, layers: [1, 1] })).to.throw(RangeError, 'layers lists a layer twice');
    expect(() => plasticity.gradualMagnitude({ finalSparsity: 0.5, endStep: 5, layers: [0, 0] })).to.throw(RangeError, 'layers lists a layer twice');
    expect(() => plasticity.gradualMagnitude({ finalSparsity: 0.5, endStep: 5, layers: [0.5] })).to.throw(TypeError, 'layers');
  });

  it('rejects a schedule aimed at a layer that cannot take it', async () => {
    const m = mlp(11);
    let error: any;
    try {
      await m.fit(x, y, { epochs: 1, batchSize: 16, callbacks: [plasticity.dropin({ layer: 9, count: 1 })] });
    } catch (e) {
      error = e;
    }
    expect(error).to.be.instanceOf(RangeError);
    expect(m.step).to.equal(0);
  });
});

describe('plasticity: models built sparse', () => {
  it('layers.dense({ density }) builds CSR directly with that density and He scale per actual fan-in', () => {
    const m = new Sequential({ inputSize: 1000, seed: 2 });
    m.add(layers.dense({ units: 5000, activation: 'relu', density: layers.erdosRenyiDensity(20, 1000, 5000) }));
    m.add(layers.dense({ units: 10 }));
    const l = m.layers[0] as any;
    expect(l.format).to.equal('csr');
    m.compile({ optimizer: optimizers.sgd(), loss: 'softmaxCrossEntropy' });
    expect(l.format).to.equal('csr');
    expect(l.nnz).to.equal(5000 * Math.round(1000 * layers.erdosRenyiDensity(20, 1000, 5000)));
    expect(l.bytes).to.be.below(5000 * 24 * 16 + 8 * 5001 + 1);
    const state = m.native.exportState().layers[0];
    let sq = 0;
    for (const v of state.weight) sq += v * v;
    expect(Math.sqrt(sq / state.weight.length)).to.be.closeTo(Math.sqrt(2 / 24), 0.02);
  });

  it('SET on a model built sparse keeps its density (no sparsity given)', async () => {
    const m = new Sequential({ inputSize: 24, seed: 3 });
    m.add(layers.dense({ units: 64, activation: 'relu', density: 0.25 })).add(layers.dense({ units: 4 }));
    m.compile({ optimizer: optimizers.sgd({ learningRate: 0.05 }), loss: 'softmaxCrossEntropy' });
    const nnz = (m.layers[0] as any).nnz;
    await m.fit(x, y, { epochs: 2, batchSize: 16, callbacks: [plasticity.set({ dropFraction: 0.3, every: 5 })] });
    expect((m.layers[0] as any).nnz).to.equal(nnz);
    expect(m.events.filter((e) => e.kind === 'regrow').length).to.be.greaterThan(2);
  });

  it('eventsSince(from) and eventCount read the log without copying all of it', async () => {
    const m = new Sequential({ inputSize: 24, seed: 3 });
    m.add(layers.dense({ units: 64, activation: 'relu', density: 0.25 })).add(layers.dense({ units: 4 }));
    expect(m.eventCount).to.equal(0);
    expect(m.eventsSince(0)).to.deep.equal([]);
    m.compile({ optimizer: optimizers.sgd({ learningRate: 0.05 }), loss: 'softmaxCrossEntropy' });
    await m.fit(x, y, { epochs: 2, batchSize: 16, callbacks: [plasticity.set({ dropFraction: 0.3, every: 5 })] });
    const all = m.events;
    expect(m.eventCount).to.equal(all.length).and.to.be.greaterThan(2);
    for (const from of [0, 1, all.length - 1, all.length, all.length + 5]) expect(m.eventsSince(from)).to.deep.equal(all.slice(from));
    expect(() => m.eventsSince(-1)).to.throw(RangeError, 'from');
    expect(() => m.eventsSince(1.5)).to.throw(RangeError, 'from');
    expect(() => m.eventsSince('2' as any)).to.throw(TypeError, 'from');
  });

  it('eventLimit keeps the newest events, counts the dropped ones, and survives save/load', async () => {
    const build = (eventLimit: number) => {
      const m = new Sequential({ inputSize: 24, seed: 3, eventLimit });
      m.add(layers.dense({ units: 64, activation: 'relu', density: 0.25 })).add(layers.dense({ units: 4 }));
      m.compile({ optimizer: optimizers.sgd({ learningRate: 0.05 }), loss: 'softmaxCrossEntropy' });
      return m;
    };
    const m = build(8);
    const all = build(0); // the same run, keeping every event
    for (const model of [m, all]) {
      await model.fit(x, y, { epochs: 6, batchSize: 16, callbacks: [plasticity.set({ dropFraction: 0.3, every: 1 })] });
    }
    const kept = m.events;
    expect(all.eventsDropped).to.equal(0);
    expect(m.eventCount).to.equal(all.eventCount);
    expect(kept).to.deep.equal(all.events.slice(-kept.length)); // the newest ones
    expect(m.eventCount).to.be.greaterThan(12);
    expect(kept.length).to.be.within(8, 9); // trimmed in batches of limit/8 (at least 1) over the limit
    expect(m.eventsDropped).to.equal(m.eventCount - kept.length);
    // Indices count the dropped events: from the first kept index on, eventsSince is the kept tail.
    expect(m.eventsSince(m.eventsDropped)).to.deep.equal(kept);
    expect(m.eventsSince(m.eventCount - 2)).to.deep.equal(kept.slice(-2));
    expect(m.eventsSince(0)).to.deep.equal(kept); // older events are gone
    // A checkpoint keeps the count, and toJSON the limit.
    const again = await loadModel(m.toBuffer());
    expect(again.eventCount).to.equal(m.eventCount);
    expect(again.eventsDropped).to.equal(m.eventsDropped);
    expect(again.events).to.deep.equal(kept);
    expect(again.eventLimit).to.equal(8);
    expect(() => new Sequential({ inputSize: 2, eventLimit: -1 })).to.throw(RangeError, 'eventLimit');
    expect(() => new Sequential({ inputSize: 2, eventLimit: 1.5 })).to.throw(RangeError, 'eventLimit');
    expect(() => new Sequential({ inputSize: 2, eventLimit: '9' as any })).to.throw(TypeError, 'eventLimit');
    expect(new Sequential({ inputSize: 2 }).eventLimit).to.equal(100_000);
  });

  it('releaseMemory() frees the training scratch and training goes on exactly as before', async () => {
    const build = () => {
      const m = new Sequential({ inputSize: 24, seed: 5 });
      m.add(layers.dense({ units: 48, activation: 'relu', density: 0.3 })).add(layers.dense({ units: 32, activation: 'relu', density: 0.3 })).add(layers.dense({ units: 4 }));
      m.compile({ optimizer: optimizers.sgd({ learningRate: 0.05, momentum: 0.9 }), loss: 'softmaxCrossEntropy' });
      return m;
    };
    const a = build();
    const b = build();
    for (const m of [a, b]) await m.fit(x, y, { epochs: 1, batchSize: 16 });
    a.releaseMemory();
    a.releaseMemory(); // twice is fine
    const ha = await a.fit(x, y, { epochs: 2, batchSize: 16 });
    const hb = await b.fit(x, y, { epochs: 2, batchSize: 16 });
    expect(ha.history.loss).to.deep.equal(hb.history.loss);
    for (let i = 0; i < 3; i++) expect((a.layers[i] as any).getWeights()).to.deep.equal((b.layers[i] as any).getWeights());
    const running = a.fit(x, y, { epochs: 1, batchSize: 16 });
    expect(() => a.releaseMemory()).to.throw(Error, 'releaseMemory');
    await running;
  });

  it('rejects a density outside (0, 1]', () => {
    expect(() => layers.dense({ units: 3, density: 0 })).to.throw(RangeError, 'density');
    expect(() => layers.dense({ units: 3, density: 1.5 })).to.throw(RangeError, 'density');
    expect(() => layers.erdosRenyiDensity(0, 3, 3)).to.throw(RangeError, 'epsilon');
  });
});
