// Bad input gets a TypeError or RangeError that names the argument and the
// value, and leaves the model as it was. Nothing crashes the process.
import { expect } from 'chai';
import { Sequential, layers, optimizers } from '../lib/index';
import { addon } from '../lib/native';
import { compiledMlp, randomArray, randomLabels } from './helpers';

function throws(fn: () => unknown, kind: ErrorConstructor | RangeErrorConstructor | TypeErrorConstructor, ...words: string[]) {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error, 'expected an error').to.be.instanceOf(kind);
  for (const w of words) expect((error as Error).message).to.include(w);
}

async function rejects(p: Promise<unknown>, kind: ErrorConstructor | RangeErrorConstructor | TypeErrorConstructor, ...words: string[]) {
  let error: unknown;
  try {
    await p;
  } catch (e) {
    error = e;
  }
  expect(error, 'expected a rejection').to.be.instanceOf(kind);
  for (const w of words) expect((error as Error).message).to.include(w);
  return error as Error & { code?: string };
}

describe('model: bad input is rejected clearly', () => {
  it('checks Sequential options', () => {
    throws(() => new Sequential({ inputSize: 0 }), RangeError, 'inputSize', 'positive integer', 'got 0');
    throws(() => new Sequential({ inputSize: 1.5 }), RangeError, 'inputSize', '1.5');
    throws(() => new Sequential({ inputSize: '784' as any }), TypeError, 'inputSize', '"784"');
    throws(() => new Sequential(undefined as any), TypeError, 'inputSize');
    throws(() => new Sequential({ inputSize: 4, seed: -1 }), RangeError, 'seed');
    throws(() => new Sequential({ inputSize: 4, device: 'gpu' as any }), RangeError, 'device', "'cpu'");
    throws(() => new Sequential({ inputSize: 4, inputsize: 3 } as any), TypeError, "unknown option 'inputsize'");
  });

  it('checks layer and optimizer factories', () => {
    throws(() => layers.dense({ units: 0 }), RangeError, 'dense()', 'units must be a positive integer', 'got 0');
    throws(() => layers.dense({ units: 'ten' as any }), TypeError, 'units', '"ten"');
    throws(() => layers.dense({ units: 4, activation: 'gelu' as any }), RangeError, 'activation', "'relu'", '"gelu"');
    throws(() => layers.dropout({ rate: 1 }), RangeError, 'dropout()', 'rate', 'got 1');
    throws(() => layers.dropout({ rate: -0.1 }), RangeError, 'rate');
    throws(() => optimizers.sgd({ learningRate: 0 }), RangeError, 'learningRate', 'got 0');
    throws(() => optimizers.sgd({ learningRate: NaN }), RangeError, 'learningRate', 'NaN');
    throws(() => optimizers.sgd({ momentum: 1 }), RangeError, 'momentum');
    throws(() => optimizers.sgd({ nesterov: true }), RangeError, 'nesterov needs momentum');
    throws(() => optimizers.adam({ beta1: 1 }), RangeError, 'beta1');
    throws(() => optimizers.adam({ lr: 0.1 } as any), TypeError, "unknown option 'lr'");
  });

  it('checks model assembly and compile', () => {
    const model = new Sequential({ inputSize: 4 });
    throws(() => model.add({ units: 3 } as any), TypeError, 'layers.dense()');
    throws(() => model.compile({ optimizer: optimizers.sgd(), loss: 'softmaxCrossEntropy' }), Error, 'at least one layers.dense()');
    const dense = layers.dense({ units: 3 });
    model.add(dense);
    throws(() => model.add(dense), Error, 'already in the model');
    throws(() => new Sequential({ inputSize: 2 }).add(dense), Error, 'another model');
    throws(() => model.compile({ optimizer: { kind: 'sgd' } as any, loss: 'softmaxCrossEntropy' }), TypeError, 'optimizer');
    throws(() => model.compile({ optimizer: optimizers.sgd(), loss: 'hinge' as any }), RangeError, 'loss', '"hinge"');
    const withDropoutLast = new Sequential({ inputSize: 4 }).add(layers.dense({ units: 3 })).add(layers.dropout({ rate: 0.5 }));
    throws(() => withDropoutLast.compile({ optimizer: optimizers.sgd(), loss: 'softmaxCrossEntropy' }), Error, 'dropout layer cannot be the last');
    model.compile({ optimizer: optimizers.sgd(), loss: 'softmaxCrossEntropy' });
    throws(() => model.add(layers.dense({ units: 2 })), Error, 'already built');
  });

  it('checks fit() arguments before training and leaves the model untouched', async () => {
    const model = compiledMlp({ inputSize: 4, hidden: [3], outputs: 2 });
    const x = randomArray(10 * 4, 1);
    const y = randomLabels(10, 2, 1);
    const before = Array.from((model.layers[0] as any).getWeights().weight);
    await rejects(model.fit([1, 2, 3, 4] as any, y), TypeError, 'x must be a Float32Array', 'Array(4)');
    await rejects(model.fit(new Float64Array(40) as any, y), TypeError, 'x must be a Float32Array', 'Float64Array');
    await rejects(model.fit(new Float32Array(41), y), RangeError, 'x has 41 values', 'inputSize 4');
    await rejects(model.fit(x, new Int32Array(9)), RangeError, 'y has 9 labels for 10 samples');
    await rejects(model.fit(x, Int32Array.from([0, 1, 2, 0, 1, 0, 1, 0, 1, 0])), RangeError, 'y[2] is 2', '2 classes');
    await rejects(model.fit(x, Int32Array.from([0, -1, 0, 0, 1, 0, 1, 0, 1, 0])), RangeError, 'y[1] is -1');
    await rejects(model.fit(x, new Float32Array(10)), RangeError, 'n x outputs = 10 x 2 = 20');
    await rejects(model.fit(x, [0, 1] as any), TypeError, 'y must be an Int32Array or Uint8Array');
    await rejects(model.fit(x, y, { batchSize: 0 }), RangeError, 'batchSize must be a positive integer', 'got 0');
    await rejects(model.fit(x, y, { batchSize: 2.5 }), RangeError, 'batchSize', '2.5');
    await rejects(model.fit(x, y, { epochs: 0 }), RangeError, 'epochs', 'got 0');
    await rejects(model.fit(x, y, { epoch: 3 } as any), TypeError, "unknown option 'epoch'");
    await rejects(model.fit(x, y, { callbacks: {} as any }), TypeError, 'callbacks must be an array');
    await rejects(model.fit(x, y, { callbacks: [{ onEpochEnd: 3 }] as any }), TypeError, 'callbacks[0].onEpochEnd must be a function');
    await rejects(model.fit(x, y, { signal: {} as any }), TypeError, 'signal must be an AbortSignal');
    await rejects(model.fit(x, y, { validationData: [x] as any }), TypeError, 'validationData must be [x, y]');
    const bad = x.slice();
    bad[5] = NaN;
    await rejects(model.fit(bad, y), RangeError, 'x[5]', 'sample 1', 'NaN');
    expect(Array.from((model.layers[0] as any).getWeights().weight)).to.deep.equal(before);
    expect(model.step).to.equal(0);
  });

  it('needs compile() before fit/evaluate/computeGradients, and class labels need softmaxCrossEntropy', async () => {
    const model = new Sequential({ inputSize: 2 }).add(layers.dense({ units: 2 }));
    await rejects(model.fit(new Float32Array(2), new Int32Array(1)), Error, 'compile');
    await rejects(model.evaluate(new Float32Array(2), new Int32Array(1)), Error, 'compile');
    model.compile({ optimizer: optimizers.sgd(), loss: 'meanSquaredError' });
    await rejects(model.fit(new Float32Array(2), new Int32Array(1)), TypeError, "need loss 'softmaxCrossEntropy'");
  });

  it('stops fit() with a clear error when the loss becomes NaN, without writing NaN into the weights', async () => {
    const model = new Sequential({ inputSize: 8, seed: 1 });
    model.add(layers.dense({ units: 16, activation: 'relu' }));
    model.add(layers.dense({ units: 4 }));
    model.compile({ optimizer: optimizers.sgd({ learningRate: 1e30 }), loss: 'softmaxCrossEntropy' });
    const error = await rejects(model.fit(randomArray(64 * 8, 1), randomLabels(64, 4, 2), { epochs: 5, batchSize: 8 }), Error, 'loss became', 'step');
    expect(error.code).to.equal('ERR_NEUROPLASTIC_NONFINITE_LOSS');
    for (const layer of model.layers as any[]) {
      const { weight, bias } = layer.getWeights();
      expect(weight.every(Number.isFinite) && bias.every(Number.isFinite)).to.equal(true);
    }
    expect(model.isTraining).to.equal(false);
  });

  it('rejects a second fit, and predict/evaluate/setWeights, while a fit is running', async () => {
    const model = compiledMlp({ inputSize: 64, hidden: [128], outputs: 4 });
    const x = randomArray(4000 * 64, 1);
    const y = randomLabels(4000, 4, 2);
    const running = model.fit(x, y, { epochs: 3, batchSize: 8 });
    await rejects(model.fit(x, y), Error, 'already training');
    await rejects(model.predict(x), Error, 'training');
    await rejects(model.evaluate(x, y), Error, 'training');
    throws(() => (model.layers[0] as any).setWeights({ bias: new Float32Array(128) }), Error, 'training');
    throws(() => (model.layers[0] as any).getWeights(), Error, 'training');
    await running;
    expect(model.step).to.equal(3 * 500);
    await model.predict(x.subarray(0, 64));
  });

  it('checks setWeights shapes and values', () => {
    const model = compiledMlp({ inputSize: 3, hidden: [2], outputs: 2 });
    const layer = model.layers[0] as any;
    throws(() => layer.setWeights({ weight: new Float32Array(5) }), RangeError, 'weight must have units x inputs = 2 x 3 = 6', 'got 5');
    throws(() => layer.setWeights({ bias: new Float32Array(3) }), RangeError, 'bias must have 2 elements');
    throws(() => layer.setWeights({ weight: new Float32Array([1, 2, 3, 4, 5, Infinity]) }), RangeError, 'weight[5] is Infinity');
    throws(() => layer.setWeights({ weight: [1, 2, 3, 4, 5, 6] }), TypeError, 'weight must be a Float32Array');
    throws(() => layer.setWeights({}), TypeError, 'pass { weight }');
    throws(() => layers.dense({ units: 2 }).getWeights(), Error, 'not part of a model');
  });

  it('the native addon re-checks what it is given and throws instead of crashing', async () => {
    const { NativeModel } = addon();
    throws(() => new NativeModel({ inputSize: 0, seed: 0, layers: [] } as any), RangeError, 'inputSize');
    throws(() => new NativeModel({ inputSize: 4, seed: 0, layers: [{ units: -1 }] } as any), RangeError, 'units');
    const native = new NativeModel({ inputSize: 4, seed: 0, layers: [{ units: 2, activation: 'relu', inputDropout: 0, init: 'auto', useBias: true }] });
    throws(() => native.getWeights(5), RangeError, 'layer');
    throws(() => native.setWeights(0, new Float32Array(3), null), RangeError, 'weight must have 8 elements');
    const data = native.createDataset(new Float32Array(8), new Int32Array(2));
    await rejects(Promise.resolve().then(() => native.trainBatches(data, new Int32Array(2), 0, 1, 2)), Error, 'compiled');
    native.compile({ kind: 'sgd', learningRate: 0.1 }, 'softmaxCrossEntropy');
    throws(() => native.trainBatches({} as any, new Int32Array(2), 0, 1, 2), TypeError, 'createDataset');
    throws(() => native.trainBatches(12345 as any, new Int32Array(2), 0, 1, 2), RangeError, 'not a live handle');
    throws(() => native.trainBatches(data, new Int32Array([0, 7]), 0, 1, 2), RangeError, 'order[1]');
    throws(() => native.trainBatches(data, new Int32Array(1), 0, 1, 2), RangeError, 'order');
    throws(() => native.trainBatches(data, new Int32Array(2), 0, 5, 2), RangeError, 'batchCount');
    throws(() => native.createDataset(new Float32Array(7), new Int32Array(2)), RangeError, 'multiple');
    throws(() => native.createDataset(new Float32Array(8), new Int32Array(3)), RangeError, 'labels for 2 samples');
    const bad = native.createDataset(new Float32Array(8), new Int32Array([0, 9]));
    const error = await rejects(native.trainBatches(bad, new Int32Array([0, 1]), 0, 1, 2), RangeError, 'label 9');
    expect(error.code).to.equal('ERR_OUT_OF_RANGE');
  });
});

describe('model: JS may do anything with its arrays while fit runs', () => {
  it('survives x.buffer being transferred away and collected mid-fit (fit trains from its own copy)', async () => {
    const v8 = await import('v8');
    const vm = await import('vm');
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const model = compiledMlp({ inputSize: 64, hidden: [64], outputs: 4 });
    const x = randomArray(3000 * 64, 1);
    const y = randomLabels(3000, 4, 2);
    const running = model.fit(x, y, { epochs: 3, batchSize: 8 });
    await new Promise((r) => setTimeout(r, 5));
    const buffer = x.buffer as ArrayBuffer;
    let moved: ArrayBuffer | null = structuredClone(buffer, { transfer: [buffer] });
    expect(x.length).to.equal(0);
    moved = null;
    void moved;
    gc();
    await running;
    expect(model.step).to.equal(3 * 375);
  });
});
