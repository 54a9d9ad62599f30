// The continual-learning harness: task streams (permuted, split classes), the
// metrics of the accuracy matrix, and a run on a real tiny model.
import { expect } from 'chai';
import { Sequential, layers, optimizers, plasticity } from '../lib/index';
import * as continual from '../lib/continual';
import type { Dataset, TrainTest } from '../lib/data';
import type { DenseLayer } from '../lib/layers';
import { mulberry32 } from '../lib/data/random';

/** A small synthetic set: class k lights feature block k (plus noise), `classes` blocks of `width` features. */
function blocks(n: number, classes: number, width: number, seed: number, name: string): Dataset {
  const rnd = mulberry32(seed);
  const features = classes * width;
  const x = new Float32Array(n * features);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const k = i % classes;
    y[i] = k;
    for (let f = 0; f < features; f++) x[i * features + f] = 0.1 * rnd() + (Math.floor(f / width) === k ? 0.8 : 0);
  }
  return { x, y, n, features, classes, name };
}

function synthetic(): TrainTest {
  return { train: blocks(200, 4, 4, 1, 'syn-train'), test: blocks(80, 4, 4, 2, 'syn-test') };
}

function sortedRow(x: Float32Array, r: number, f: number): number[] {
  return Array.from(x.subarray(r * f, (r + 1) * f)).sort((a, b) => a - b);
}

describe('continual: task streams', () => {
  it('permuted tasks permute each sample (same values), seeded, task 0 the identity', () => {
    const d = synthetic();
    const tasks = continual.permuted(d, 3, 7, { limit: 50, testLimit: 20 });
    expect(tasks).to.have.length(3);
    const f = d.train.features;
    const t0 = tasks[0].train();
    expect(t0.n).to.equal(50);
    expect(Array.from(t0.x)).to.deep.equal(Array.from(d.train.x.subarray(0, 50 * f)));
    for (const task of tasks.slice(1)) {
      const tr = task.train();
      expect(tr.n).to.equal(50);
      expect(Array.from(tr.y)).to.deep.equal(Array.from(d.train.y.subarray(0, 50)));
      expect(Array.from(tr.x)).to.not.deep.equal(Array.from(t0.x));
      for (let r = 0; r < tr.n; r++) expect(sortedRow(tr.x, r, f)).to.deep.equal(sortedRow(d.train.x, r, f));
      const te = task.test();
      expect(te.n).to.equal(20);
      for (let r = 0; r < te.n; r++) expect(sortedRow(te.x, r, f)).to.deep.equal(sortedRow(d.test.x, r, f));
    }
    // the same permutation for train and test, and the documented one
    const perm = continual.taskPermutation(f, 7, 1);
    expect(Array.from(perm).sort((a, b) => a - b)).to.deep.equal([...Array(f).keys()]);
    const tr1 = tasks[1].train();
    for (let k = 0; k < f; k++) expect(tr1.x[k]).to.equal(d.train.x[perm[k]]);
    // seeded: the same seed gives the same tasks, another seed other ones
    expect(Array.from(continual.permuted(d, 3, 7)[2].test().x)).to.deep.equal(Array.from(continual.permuted(d, 3, 7)[2].test().x));
    expect(Array.from(continual.permuted(d, 3, 8)[2].test().x)).to.not.deep.equal(Array.from(tasks[2].test().x));
    // identityFirst: false permutes task 0 too
    expect(Array.from(continual.permuted(d, 1, 7, { identityFirst: false })[0].train().x)).to.not.deep.equal(Array.from(d.train.x));
  });

  it('permuted tasks are built lazily and validate their arguments', () => {
    const d = synthetic();
    // 10,000 tasks: cheap, since nothing is permuted before it is asked for
    const tasks = continual.permuted(d, 10000, 1);
    expect(tasks).to.have.length(10000);
    expect(tasks[9999].test().n).to.equal(80);
    expect(() => continual.permuted(d, 0, 1)).to.throw(/n/);
    expect(() => continual.permuted({} as TrainTest, 2, 1)).to.throw(/dataset/);
    expect(() => continual.permuted(d, 2, 1, { bogus: 1 } as never)).to.throw(/bogus/);
  });

  it('splitClasses partitions the labels', () => {
    const d = synthetic();
    const tasks = continual.splitClasses(d, [[0, 1], [2], [3]]);
    expect(tasks.map((t) => t.name)).to.deep.equal(['classes-0-1', 'classes-2', 'classes-3']);
    const groups = [[0, 1], [2], [3]];
    let trainTotal = 0;
    let testTotal = 0;
    tasks.forEach((t, i) => {
      const tr = t.train();
      const te = t.test();
      expect(t.classes).to.equal(4);
      for (const label of tr.y) expect(groups[i]).to.include(label);
      for (const label of te.y) expect(groups[i]).to.include(label);
      // every sample of these labels, in order
      const expected = Array.from(d.train.y).filter((l) => groups[i].includes(l));
      expect(Array.from(tr.y)).to.deep.equal(expected);
      trainTotal += tr.n;
      testTotal += te.n;
    });
    expect(trainTotal).to.equal(d.train.n);
    expect(testTotal).to.equal(d.test.n);
    expect(() => continual.splitClasses(d, [[0, 1], [1, 2]])).to.throw(/disjoint/);
    expect(() => continual.splitClasses(d, [[0, 9]])).to.throw(/label 9/);
    expect(() => continual.splitClasses(d, [])).to.throw(/groups/);
  });
});

describe('continual: metrics', () => {
  it('summarize() computes average accuracy, forgetting and plasticity', () => {
    const acc = [
      [0.9],
      [0.7, 0.8],
      [0.6, 0.75, 0.95],
    ];
    const s = continual.summarize(acc);
    expect(s.plasticity).to.deep.equal([0.9, 0.8, 0.95]);
    expect(s.averageAccuracy[0]).to.be.closeTo(0.9, 1e-12);
    expect(s.averageAccuracy[1]).to.be.closeTo(0.75, 1e-12);
    expect(s.averageAccuracy[2]).to.be.closeTo((0.6 + 0.75 + 0.95) / 3, 1e-12);
    // task 0: best of 0.9, 0.7 minus final 0.6; task 1: 0.8 - 0.75; the last task: 0
    expect(s.forgetting[0]).to.be.closeTo(0.3, 1e-12);
    expect(s.forgetting[1]).to.be.closeTo(0.05, 1e-12);
    expect(s.forgetting[2]).to.equal(0);
    // with 'all' rows, accuracies before a task was trained do not count
    const all = continual.summarize([
      [0.9, 0.95],
      [0.5, 0.8],
    ]);
    expect(all.forgetting[0]).to.be.closeTo(0.4, 1e-12);
    expect(all.averageAccuracy[0]).to.be.closeTo(0.9, 1e-12);
    expect(all.averageAccuracy[1]).to.be.closeTo(0.65, 1e-12);
  });

  it('run() fills the matrix in the right order (stubbed model)', async () => {
    // A stand-in model whose accuracy on task j after training i tasks is scripted:
    // evaluate() finds the task by the first label of its test split.
    const script = [
      [0.9, 0.1, 0.2],
      [0.6, 0.8, 0.3],
      [0.5, 0.7, 0.95],
    ];
    let trained = -1;
    const fits: number[] = [];
    const model = {
      step: 0,
      eventCount: 0,
      eventsSince: () => [],
      layers: [],
      countParams: () => 42,
      fit: async (_x: Float32Array, y: Uint8Array) => {
        trained++;
        fits.push(y[0]);
        return { epoch: [0], history: { loss: [1], accuracy: [0.5], valLoss: [], valAccuracy: [], seconds: [0] } };
      },
      evaluate: async (_x: Float32Array, y: Uint8Array) => ({ loss: 0, accuracy: script[trained][y[0]] }),
    };
    const task = (j: number): continual.Task => ({
      name: `t${j}`,
      features: 1,
      classes: 3,
      train: () => ({ x: new Float32Array(1), y: Uint8Array.of(j), n: 1 }),
      test: () => ({ x: new Float32Array(1), y: Uint8Array.of(j), n: 1 }),
    });
    const tasks = [task(0), task(1), task(2)];
    const ends: number[] = [];
    const seen = await continual.run(model as never, tasks, { onTaskEnd: (t) => void ends.push(t.task) });
    expect(fits).to.deep.equal([0, 1, 2]);
    expect(ends).to.deep.equal([0, 1, 2]);
    expect(seen.tasks).to.deep.equal(['t0', 't1', 't2']);
    expect(seen.accuracy).to.deep.equal([[0.9], [0.6, 0.8], [0.5, 0.7, 0.95]]);
    expect(seen.plasticity).to.deep.equal([0.9, 0.8, 0.95]);
    expect(seen.averageAccuracy[2]).to.be.closeTo((0.5 + 0.7 + 0.95) / 3, 1e-12);
    expect(seen.forgetting[0]).to.be.closeTo(0.4, 1e-12);
    expect(seen.forgetting[1]).to.be.closeTo(0.1, 1e-12);
    expect(seen.forgetting[2]).to.equal(0);
    expect(seen.params).to.deep.equal([42, 42, 42]);
    expect(seen.deadUnitFraction).to.deep.equal([0, 0, 0]);

    trained = -1;
    const all = await continual.run(model as never, tasks, { evaluateOn: 'all' });
    expect(all.accuracy).to.deep.equal(script);
    expect(all.forgetting[0]).to.be.closeTo(0.4, 1e-12);

    trained = -1;
    const fresh = await continual.run(model as never, tasks, { evaluateOn: 'new' });
    expect(fresh.plasticity).to.deep.equal([0.9, 0.8, 0.95]);
    expect(fresh.accuracy[2].slice(0, 2).every(Number.isNaN)).to.equal(true);
  });

  it('deadUnitFraction() counts relu units that never fire', () => {
    const model = new Sequential({ inputSize: 3, seed: 1 });
    model.add(layers.dense({ units: 4, activation: 'relu' }));
    model.add(layers.dense({ units: 2 }));
    model.compile({ optimizer: optimizers.sgd({ learningRate: 0.1 }), loss: 'softmaxCrossEntropy' });
    // inputs >= 0: units with all-negative weights and bias are dead
    const weight = Float32Array.from([1, 1, 1, -1, -1, -1, 0.5, 0, 0, -2, -1, -3]);
    (model.layers[0] as DenseLayer).setWeights({ weight, bias: Float32Array.from([0, -0.1, 0, -1]) });
    const x = Float32Array.from([1, 2, 3, 0.5, 0.1, 0.2]);
    expect(continual.deadUnitFraction(model.layers, x, 2)).to.equal(0.5);
  });
});

describe('continual: run on a real model', () => {
  it('trains a tiny MLP on permuted tasks and reports consistent metrics', async function () {
    this.timeout(60000);
    const d = synthetic();
    const tasks = continual.permuted(d, 3, 1);
    const model = new Sequential({ inputSize: d.train.features, seed: 3 });
    model.add(layers.dense({ units: 12, activation: 'relu' }));
    model.add(layers.dense({ units: 4 }));
    model.compile({ optimizer: optimizers.sgd({ learningRate: 0.1, momentum: 0.9 }), loss: 'softmaxCrossEntropy' });
    const cycle = plasticity.cycle({ prune: { amount: 0.25 }, grow: { count: 3 }, budget: model.countParams(), every: 20 });
    const r = await continual.run(model, tasks, { epochsPerTask: 5, batchSize: 8, callbacks: [cycle] });
    expect(r.accuracy.map((row) => row.length)).to.deep.equal([1, 2, 3]);
    for (let i = 0; i < 3; i++) {
      expect(r.plasticity[i]).to.equal(r.accuracy[i][i]);
      expect(r.averageAccuracy[i]).to.be.closeTo(r.accuracy[i].reduce((a, b) => a + b, 0) / (i + 1), 1e-12);
    }
    expect(r.forgetting[0]).to.be.closeTo(Math.max(r.accuracy[0][0], r.accuracy[1][0]) - r.accuracy[2][0], 1e-12);
    // the blocks are easy: every task is learnt
    for (const p of r.plasticity) expect(p).to.be.greaterThan(0.9);
    expect(r.units).to.have.length(3);
    expect(r.units[2][1]).to.equal(4);
    expect(r.params[2]).to.equal(model.countParams());
    expect(r.steps[2]).to.equal(model.step);
    expect(r.events.length).to.be.greaterThan(0);
    expect(r.events.every((e) => e.task >= 0 && e.task < 3)).to.equal(true);
    expect(r.seconds.every((s) => s >= 0)).to.equal(true);
    for (const f of r.deadUnitFraction) expect(f).to.be.within(0, 1);
  });

  it('rejects bad arguments', async () => {
    const model = new Sequential({ inputSize: 16, seed: 1 });
    model.add(layers.dense({ units: 4 }));
    model.compile({ optimizer: optimizers.sgd({ learningRate: 0.1 }), loss: 'softmaxCrossEntropy' });
    const tasks = continual.permuted(synthetic(), 1, 1);
    const fails = async (p: Promise<unknown>, re: RegExp) => {
      let err: unknown;
      try {
        await p;
      } catch (e) {
        err = e;
      }
      expect(String(err)).to.match(re);
    };
    await fails(continual.run(model, [], {}), /tasks/);
    await fails(continual.run(model, tasks, { evaluateOn: 'some' as never }), /evaluateOn/);
    await fails(continual.run(model, tasks, { epochsPerTask: 0 }), /epochsPerTask/);
    await fails(continual.run(model, tasks, { extra: 1 } as never), /extra/);
  });
});
