import { expect } from 'chai';
import { Sequential, layers, optimizers, data } from '../lib/index';
import { compiledMlp, maxAbsDiff, mlp, randomArray, randomLabels } from './helpers';

describe('model: training', () => {
  it('reaches >= 0.94 held-out accuracy on the bundled MNIST (LeNet-300-100)', async function () {
    this.timeout(120000);
    const { train, test } = data.loadMnistSplits();
    const model = compiledMlp({ inputSize: 784, hidden: [300, 100], outputs: 10 }, 0.05);
    const history = await model.fit(train.x, train.y, { epochs: 8, batchSize: 64, validationData: [test.x, test.y] });
    const { accuracy, loss } = await model.evaluate(test.x, test.y);
    expect(accuracy).to.be.at.least(0.94);
    expect(loss).to.be.below(0.3);
    expect(history.history.valAccuracy[7]).to.equal(accuracy);
    expect(history.history.loss[7]).to.be.below(history.history.loss[0]);
    expect(model.step).to.equal(8 * Math.ceil(8000 / 64));
  });

  it('is deterministic: the same seed and data give bit-identical weights', async () => {
    const x = randomArray(200 * 20, 1);
    const y = randomLabels(200, 4, 2);
    const run = async () => {
      const m = compiledMlp({ inputSize: 20, hidden: [16], outputs: 4, dropout: 0.3, seed: 42 }, 0.1);
      await m.fit(x, y, { epochs: 3, batchSize: 16, shuffle: true });
      return (m.layers[0] as any).getWeights().weight as Float32Array;
    };
    const a = await run();
    const b = await run();
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).to.equal(true);
  });

  it('one SGD step equals w - lr * grad (no momentum)', async () => {
    const model = mlp({ inputSize: 5, hidden: [4], outputs: 3, activation: 'tanh' });
    model.compile({ optimizer: optimizers.sgd({ learningRate: 0.5 }), loss: 'softmaxCrossEntropy' });
    const x = randomArray(8 * 5, 3);
    const y = randomLabels(8, 3, 4);
    const before = model.layers.map((l: any) => l.getWeights());
    const grads = await model.computeGradients(x, y);
    await model.fit(x, y, { epochs: 1, batchSize: 8, shuffle: false });
    model.layers.forEach((l: any, i: number) => {
      const after = l.getWeights();
      const expected = before[i].weight.map((w: number, k: number) => w - 0.5 * grads[i].weight[k]);
      expect(maxAbsDiff(after.weight, expected)).to.be.below(1e-6);
      const expectedBias = before[i].bias.map((b: number, k: number) => b - 0.5 * grads[i].bias[k]);
      expect(maxAbsDiff(after.bias, expectedBias)).to.be.below(1e-6);
    });
  });

  it('one Adam step moves each weight by about lr * sign(grad)', async () => {
    const model = mlp({ inputSize: 5, hidden: [4], outputs: 3, activation: 'tanh' });
    model.compile({ optimizer: optimizers.adam({ learningRate: 0.01 }), loss: 'softmaxCrossEntropy' });
    const x = randomArray(8 * 5, 5);
    const y = randomLabels(8, 3, 6);
    const before = (model.layers[0] as any).getWeights().weight;
    const grads = await model.computeGradients(x, y);
    await model.fit(x, y, { epochs: 1, batchSize: 8, shuffle: false });
    const after = (model.layers[0] as any).getWeights().weight;
    for (let k = 0; k < before.length; k++) {
      const g = grads[0].weight[k];
      if (Math.abs(g) < 1e-5) continue; // epsilon dominates
      expect(before[k] - after[k]).to.be.closeTo(0.01 * Math.sign(g), 1e-4);
    }
  });

  it('learns a regression with meanSquaredError and Float32Array targets', async () => {
    const n = 256;
    const x = randomArray(n * 3, 8);
    const y = new Float32Array(n * 2);
    for (let i = 0; i < n; i++) {
      y[2 * i] = x[3 * i] + 0.5 * x[3 * i + 1];
      y[2 * i + 1] = -x[3 * i + 2];
    }
    const model = mlp({ inputSize: 3, hidden: [16], outputs: 2, activation: 'tanh' });
    model.compile({ optimizer: optimizers.adam({ learningRate: 0.01 }), loss: 'meanSquaredError' });
    const first = (await model.evaluate(x, y)).loss;
    await model.fit(x, y, { epochs: 60, batchSize: 32 });
    const last = (await model.evaluate(x, y)).loss;
    expect(last).to.be.below(first / 10);
  });

  it('keeps counting the global step across fit() calls and accepts Uint8Array labels', async () => {
    const model = compiledMlp({ inputSize: 4, hidden: [3], outputs: 2 });
    const x = randomArray(10 * 4, 1);
    const y = Uint8Array.from(randomLabels(10, 2, 1));
    await model.fit(x, y, { epochs: 2, batchSize: 4 });
    expect(model.step).to.equal(6);
    await model.fit(x, y, { epochs: 1, batchSize: 10 });
    expect(model.step).to.equal(7);
  });

  it('applies dropout only while training (evaluate and predict are deterministic)', async () => {
    const model = compiledMlp({ inputSize: 10, hidden: [32], outputs: 3, dropout: 0.5 });
    const x = randomArray(20 * 10, 9);
    const a = await model.predict(x);
    const b = await model.predict(x);
    expect(Array.from(a)).to.deep.equal(Array.from(b));
    // The same weights without dropout give the same predictions.
    const plain = compiledMlp({ inputSize: 10, hidden: [32], outputs: 3 });
    plain.layers.forEach((l: any, i) => l.setWeights((model.layers.filter((m: any) => m.kind === 'dense')[i] as any).getWeights()));
    expect(maxAbsDiff(await plain.predict(x), a)).to.be.below(1e-6);
  });

  it('calls onEpochBegin/onEpochEnd/onBatchEnd/onTrainEnd and awaits async callbacks', async () => {
    const model = compiledMlp({ inputSize: 4, hidden: [3], outputs: 2 });
    const x = randomArray(12 * 4, 1);
    const y = randomLabels(12, 2, 1);
    const events: string[] = [];
    await model.fit(x, y, {
      epochs: 2,
      batchSize: 5,
      callbacks: [
        {
          onEpochBegin: (e) => void events.push(`begin${e}`),
          onBatchEnd: async (b, logs) => {
            await new Promise((r) => setTimeout(r, 1));
            events.push(`batch${b}:${logs.size}:${logs.step}`);
          },
          onEpochEnd: (e, logs) => void events.push(`end${e}:${logs.loss > 0}`),
          onTrainEnd: (h) => void events.push(`train:${h.epoch.length}`),
        },
      ],
    });
    expect(events).to.deep.equal([
      'begin0', 'batch0:5:1', 'batch1:5:2', 'batch2:2:3', 'end0:true',
      'begin1', 'batch0:5:4', 'batch1:5:5', 'batch2:2:6', 'end1:true', 'train:2',
    ]);
  });

  it('reports progress through onProgress, ending with every batch done', async () => {
    const model = compiledMlp({ inputSize: 8, hidden: [8], outputs: 2 });
    const seen: number[] = [];
    await model.fit(randomArray(100 * 8, 1), randomLabels(100, 2, 1), {
      epochs: 1,
      batchSize: 10,
      callbacks: [{ onProgress: (p) => void seen.push(p.batch) }],
    });
    expect(seen[seen.length - 1]).to.equal(10);
  });

  it('does not block the event loop while training', async () => {
    const model = compiledMlp({ inputSize: 256, hidden: [512, 512], outputs: 10 });
    const x = randomArray(4096 * 256, 1);
    const y = randomLabels(4096, 10, 2);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const started = Date.now();
    await model.fit(x, y, { epochs: 2, batchSize: 32 });
    clearInterval(timer);
    const elapsed = Date.now() - started;
    // A blocked loop would give 0 ticks; allow for slow shared machines.
    if (elapsed > 50) expect(ticks).to.be.greaterThan(2);
  });

  it('stops at the next batch when the AbortSignal fires, rejecting with an AbortError', async () => {
    const model = compiledMlp({ inputSize: 128, hidden: [256], outputs: 10 });
    const x = randomArray(20000 * 128, 1);
    const y = randomLabels(20000, 10, 2);
    const controller = new AbortController();
    const fit = model.fit(x, y, { epochs: 50, batchSize: 16, signal: controller.signal });
    setTimeout(() => controller.abort(), 30);
    let error: any;
    try {
      await fit;
    } catch (e) {
      error = e;
    }
    expect(error?.name).to.equal('AbortError');
    expect(model.step).to.be.greaterThan(0).and.below(50 * 1250);
    expect(model.isTraining).to.equal(false);
    // The model is usable again afterwards.
    await model.fit(x.subarray(0, 128 * 16), y.subarray(0, 16), { epochs: 1, batchSize: 16 });
  });

  it('rejects an already-aborted signal before training', async () => {
    const model = compiledMlp({ inputSize: 4, hidden: [3], outputs: 2 });
    let error: any;
    try {
      await model.fit(randomArray(8, 1), randomLabels(2, 2, 1), { signal: AbortSignal.abort() });
    } catch (e) {
      error = e;
    }
    expect(error?.name).to.equal('AbortError');
    expect(model.step).to.equal(0);
  });

  it('trains a Sequential with tanh and sigmoid layers and Nesterov momentum', async () => {
    const model = new Sequential({ inputSize: 2, seed: 7 });
    model.add(layers.dense({ units: 16, activation: 'tanh' }));
    model.add(layers.dense({ units: 16, activation: 'sigmoid' }));
    model.add(layers.dense({ units: 2 }));
    model.compile({ optimizer: optimizers.sgd({ learningRate: 0.1, momentum: 0.9, nesterov: true }), loss: 'softmaxCrossEntropy' });
    // XOR-like quadrants.
    const n = 400;
    const x = randomArray(n * 2, 3);
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) y[i] = x[2 * i] * x[2 * i + 1] > 0 ? 1 : 0;
    await model.fit(x, y, { epochs: 100, batchSize: 20 });
    expect((await model.evaluate(x, y)).accuracy).to.be.above(0.9);
  });
});
