// Hardening of the TypeScript API found by an audit: work a fit callback starts
// without awaiting it, errors thrown by onProgress, soft targets, optimizer
// values that do not survive float32, and the CLI's size limits.
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Sequential, loadModel, optimizers } from '../lib/index';
import { cli, ROOT } from './cli_run';
import { compiledMlp, randomArray, randomLabels } from './helpers';

const SOFTMAX = 'softmaxCrossEntropy' as const;

function weightsOf(model: Sequential): Float32Array[] {
  return model.layers.filter((l) => l.kind === 'dense').map((l: any) => l.getWeights().weight as Float32Array);
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

describe('api hardening: work a fit callback starts without awaiting it', () => {
  const x = randomArray(400 * 8, 1);
  const y = randomLabels(400, 3, 2);
  const model = () => compiledMlp({ inputSize: 8, hidden: [16], outputs: 3 });

  it('a predict() started in onBatchEnd and not awaited finishes before the next step, and fit goes on', async () => {
    const awaited = model();
    let expected: Float32Array | undefined;
    await awaited.fit(x, y, { batchSize: 20, shuffle: false, callbacks: [{ onBatchEnd: async (b) => { if (b === 3) expected = await awaited.predict(x); } }] });

    const m = model();
    let pending: Promise<Float32Array> | undefined;
    const history = await m.fit(x, y, { batchSize: 20, shuffle: false, callbacks: [{ onBatchEnd: (b) => { if (b === 3) pending = m.predict(x); } }] });
    assert.equal(history.epoch.length, 1);
    assert.equal(m.step, 20);
    const got = await pending!;
    // The outputs of the model after step 4, as when the callback awaits the prediction.
    assert.ok(sameBits(got, expected!), 'the prediction reads the model at the step boundary where it started');
    weightsOf(m).forEach((w, i) => assert.ok(sameBits(w, weightsOf(awaited)[i])));
  });

  it('an evaluate() started in onEpochEnd, or a save() in onBatchEnd, does not stop the next epoch', async () => {
    const m = model();
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'np81-')), 'm.safetensors');
    const pending: Promise<unknown>[] = [];
    await m.fit(x, y, {
      epochs: 2,
      batchSize: 50,
      callbacks: [
        {
          onEpochEnd: (epoch) => { if (epoch === 0) pending.push(m.evaluate(x, y)); },
          onBatchEnd: (_, logs) => { if (logs.step === 3) pending.push(m.save(file)); },
        },
      ],
    });
    assert.equal(m.step, 16);
    const [saved, evaluation] = (await Promise.all(pending)) as [undefined, { loss: number; accuracy: number }];
    assert.equal(saved, undefined);
    assert.ok(Number.isFinite(evaluation.loss));
    assert.equal((await loadModel(file)).step, 3, 'the checkpoint holds the model at the boundary where save() was called');
  });
});

describe('api hardening: an error thrown by onProgress', () => {
  // A chunk of ~1500 steps runs for a few hundred ms, so onProgress (every ~50 ms) is called
  // while it runs, from the worker through a thread-safe function.
  const x = randomArray(50_000 * 32, 3);
  const y = randomLabels(50_000, 10, 4);
  const model = () => compiledMlp({ inputSize: 32, hidden: [256, 128], outputs: 10 });

  it('thrown during a native chunk stops the chunk and rejects fit() with that error, without a warning', async () => {
    const m = model();
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }) => warnings.push(`${w.code}: ${w.message}`);
    process.on('warning', onWarning);
    const thrown: Error[] = [];
    let midChunkCalls = 0;
    try {
      await assert.rejects(
        m.fit(x, y, {
          epochs: 3,
          batchSize: 32,
          callbacks: [{
            onProgress: (p) => {
              if (p.batch === p.batches) return; // only the reports from inside the chunk
              midChunkCalls++;
              const error = new Error(`progress failed at batch ${p.batch}`);
              thrown.push(error);
              throw error;
            },
          }],
        }),
        (err) => err === thrown[0],
      );
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on a later tick
    } finally {
      process.off('warning', onWarning);
    }
    assert.equal(midChunkCalls, 1, 'no report after the first error');
    assert.ok(m.step < 1563, `the chunk was aborted (step ${m.step} of 1563)`);
    assert.deepEqual(warnings.filter((w) => w.startsWith('DEP0168')), []);
    assert.equal(m.isTraining, false);
    // The model is usable again, and the abort request does not leak into the next fit.
    const history = await m.fit(x.subarray(0, 64 * 32), y.subarray(0, 64), { batchSize: 32 });
    assert.equal(history.epoch.length, 1);
  });

  it('does not end the process under --force-node-api-uncaught-exceptions-policy=true', () => {
    const script = `
      const { Sequential, layers, optimizers } = require('./lib/index');
      const m = new Sequential({ inputSize: 32, seed: 1 });
      m.add(layers.dense({ units: 256, activation: 'relu' })).add(layers.dense({ units: 10 }));
      m.compile({ optimizer: optimizers.sgd({ learningRate: 0.01 }), loss: 'softmaxCrossEntropy' });
      const n = 50000, x = new Float32Array(n * 32).map((_, i) => Math.sin(i)), y = new Int32Array(n).map((_, i) => i % 10);
      const boom = new Error('boom');
      m.fit(x, y, { epochs: 3, callbacks: [{ onProgress: (p) => { if (p.batch < p.batches) throw boom; } }] })
        .then(() => console.log('resolved'), (e) => console.log(e === boom ? 'rejected with boom' : 'rejected: ' + e.message));`;
    const r = spawnSync(process.execPath, ['--force-node-api-uncaught-exceptions-policy=true', '--import', 'tsx', '-e', script], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'rejected with boom');
  });

  it('an abort request left over in the core does not stop the next fit', async () => {
    const m = compiledMlp({ inputSize: 8, hidden: [16], outputs: 3 });
    const x8 = randomArray(100 * 8, 5);
    // A request that arrives while no batch loop checks it (here: during a predict) is dropped
    // when that operation ends (ModelWrap::release); kept, it stopped the next fit at once.
    const prediction = m.predict(x8);
    m.native.requestAbort();
    await prediction;
    const history = await m.fit(x8, randomLabels(100, 3, 6), { batchSize: 10 });
    assert.equal(history.epoch.length, 1);
    assert.equal(m.step, 10);
  });
});

describe('api hardening: softmaxCrossEntropy float targets must be distributions', () => {
  const x = randomArray(4 * 5, 7);
  const rows = (...r: number[][]) => Float32Array.from(r.flat());

  it('rejects negative values and rows that do not sum to 1, naming the row and the value', async () => {
    const m = compiledMlp({ inputSize: 5, hidden: [6], outputs: 3 });
    await assert.rejects(m.fit(x, new Float32Array(12).fill(-5)), {
      name: 'RangeError',
      message: /^Sequential\.fit\(\): y\[0\] \(row 0, class 0\) is -5; .*must be >= 0/,
    });
    await assert.rejects(m.evaluate(x, new Float32Array(12).fill(7)), {
      name: 'RangeError',
      message: /^Sequential\.evaluate\(\): y row 0 sums to 21; .*must sum to 1/,
    });
    const soft = rows([0.9, 0.05, 0.05], [1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0.2, 0.2, 0.5]);
    await assert.rejects(m.fit(x, rows([1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0]), { validationData: [x, soft] }), {
      name: 'RangeError',
      message: /^Sequential\.fit\(\): validationData\[1\] row 3 sums to 0\.9\d*;/,
    });
    await assert.rejects(m.computeGradients(x, rows([0.5, 0.5, 0], [1, 0, 0], [0, 1.5, -0.5], [0, 0, 1])), {
      name: 'RangeError',
      message: /^Sequential\.computeGradients\(\): y\[8\] \(row 2, class 2\) is -0\.5;/,
    });
    assert.equal(m.step, 0);
    // Distributions pass (float32 rounding included), and the loss is a cross-entropy again.
    soft.set([0.1, 0.1, 0.8], 9);
    const history = await m.fit(x, soft, { epochs: 2, batchSize: 2 });
    assert.ok(history.history.loss.every((l) => l > 0));
    // meanSquaredError targets are any finite values.
    const mse = compiledMlp({ inputSize: 5, hidden: [6], outputs: 3 }, 0.01, 'meanSquaredError');
    assert.ok(Number.isFinite((await mse.fit(x, new Float32Array(12).fill(-5), { batchSize: 4 })).history.loss[0]));
  });
});

describe('api hardening: optimizer values are checked as the float32 the core uses', () => {
  const cases: [string, () => unknown, RegExp][] = [
    ['sgd learningRate 1e39', () => optimizers.sgd({ learningRate: 1e39 }), /^optimizers\.sgd\(\): learningRate must be a number > 0, got 1e\+39, which is outside float32 range/],
    ['sgd learningRate 1e-50', () => optimizers.sgd({ learningRate: 1e-50 }), /^optimizers\.sgd\(\): learningRate .*got 1e-50, which rounds to 0 in float32/],
    ['sgd momentum 1 - 1e-12', () => optimizers.sgd({ momentum: 1 - 1e-12 }), /^optimizers\.sgd\(\): momentum must be a number in \[0, 1\).*got 0\.999999999999, which rounds to 1 in float32/],
    ['sgd weightDecay 1e39', () => optimizers.sgd({ weightDecay: 1e39 }), /^optimizers\.sgd\(\): weightDecay .*outside float32 range/],
    ['sgd nesterov with momentum 1e-50', () => optimizers.sgd({ momentum: 1e-50, nesterov: true }), /^optimizers\.sgd\(\): nesterov needs momentum > 0, got momentum 1e-50 \(0 in float32\)/],
    ['adam epsilon 1e-50', () => optimizers.adam({ epsilon: 1e-50 }), /^optimizers\.adam\(\): epsilon .*got 1e-50, which rounds to 0 in float32/],
    ['adam beta2 1 - 1e-12', () => optimizers.adam({ beta2: 1 - 1e-12 }), /^optimizers\.adam\(\): beta2 .*which rounds to 1 in float32/],
    ['adamw learningRate 1e39', () => optimizers.adamw({ learningRate: 1e39 }), /^optimizers\.adam\(\): learningRate .*outside float32 range/],
  ];
  for (const [name, make, message] of cases) {
    it(`rejects ${name} in the factory`, () => assert.throws(make, { name: 'RangeError', message }));
  }

  it('an error from the native compile is reported as Sequential.compile(), with the optimizer', () => {
    const m = compiledMlp({ inputSize: 2, hidden: [2], outputs: 2 });
    // The float32 extremes the core accepts pass the factory and compile.
    m.compile({ optimizer: optimizers.adam({ learningRate: 1e-45, epsilon: 3.4e38, beta2: 0.9999999 }), loss: SOFTMAX });
    // A hand-made description skips the factory's checks.
    assert.throws(() => m.compile({ optimizer: { kind: 'sgd', learningRate: 1e-50 } as any, loss: SOFTMAX }), {
      name: 'RangeError',
      message: /^Sequential\.compile\(\): learningRate must be a positive finite number, got optimizer \{"kind":"sgd","learningRate":1e-50\}$/,
    });
    assert.throws(() => m.compile({ optimizer: { kind: 'adam', learningRate: 0.1, beta1: 1 } as any, loss: SOFTMAX }), {
      name: 'RangeError',
      message: /^Sequential\.compile\(\): beta1 and beta2 must be in \[0, 1\), got optimizer/,
    });
  });
});

describe('api hardening: the CLI checks its size limits when it parses the command line', () => {
  const usage = (args: string[], message: RegExp) => {
    const r = cli(...args);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /Sequential|optimizers\.|layers\./);
    assert.equal(r.stdout, '', 'nothing was loaded or trained');
  };

  it('train: --batch-size, --epochs and --hidden beyond the limits are usage errors naming the flag', () => {
    usage(['train', '--batch-size', '100000000', '--hidden', '4', '--epochs', '1'], /^neuroplastic: --batch-size must be at most 16777216, got "100000000"/);
    usage(['train', '--epochs', '2000000000', '--hidden', '4'], /^neuroplastic: --epochs must be at most 1000000000, got "2000000000"/);
    usage(['train', '--hidden', '4,20000000', '--epochs', '1'], /^neuroplastic: --hidden must be .*at most 65536, got "4,20000000"/);
  });

  it('train: --lr and --momentum must hold as float32', () => {
    usage(['train', '--lr', '1e308', '--hidden', '4', '--epochs', '1'], /^neuroplastic: --lr must be a number > 0 in float32, got "1e308", which rounds to Infinity/);
    usage(['train', '--lr', '1e-50', '--hidden', '4', '--epochs', '1'], /^neuroplastic: --lr .*got "1e-50", which rounds to 0 in float32/);
    usage(['train', '--momentum', '0.99999999999', '--hidden', '4', '--epochs', '1'], /^neuroplastic: --momentum .*which rounds to 1 in float32/);
  });

  it('continual: the same limits', () => {
    usage(['continual', '--batch-size', '100000000', '--tasks', '1'], /^neuroplastic: --batch-size must be at most 16777216/);
    usage(['continual', '--epochs-per-task', '2000000000', '--tasks', '1'], /^neuroplastic: --epochs-per-task must be at most 1000000000/);
    usage(['continual', '--hidden', '20000000', '--tasks', '1'], /^neuroplastic: --hidden must be .*at most 65536/);
    usage(['continual', '--lr', '1e39', '--tasks', '1'], /^neuroplastic: --lr .*which rounds to Infinity/);
  });
});
