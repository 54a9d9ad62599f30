// Gradients are checked two ways: against central finite differences of the
// model's own loss (in double-checked float32, so tolerances are loose but
// meaningful), and against TF.js on identical weights (an independent
// implementation of the same maths).
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { Sequential, layers, optimizers } from '../lib/index';
import type { ActivationName } from '../lib/layers';
import { maxAbs, maxAbsDiff, randomArray, randomLabels } from './helpers';

type LossName = 'softmaxCrossEntropy' | 'meanSquaredError';

function smallModel(activation: ActivationName, loss: LossName, seed = 3): Sequential {
  const model = new Sequential({ inputSize: 6, seed });
  model.add(layers.dense({ units: 5, activation }));
  model.add(layers.dense({ units: 4, activation }));
  model.add(layers.dense({ units: 3 }));
  model.compile({ optimizer: optimizers.sgd({ learningRate: 0.1 }), loss });
  return model;
}

function targetsFor(loss: LossName, n: number, seed: number) {
  return loss === 'softmaxCrossEntropy' ? randomLabels(n, 3, seed) : randomArray(n * 3, seed);
}

describe('model: gradients', () => {
  before(() => tf.setBackend('cpu'));

  for (const loss of ['softmaxCrossEntropy', 'meanSquaredError'] as const) {
    for (const activation of ['tanh', 'sigmoid', 'relu', 'linear'] as const) {
      it(`match central finite differences (${activation}, ${loss})`, async () => {
        const model = smallModel(activation, loss);
        const n = 9;
        const x = randomArray(n * 6, 11);
        const y = targetsFor(loss, n, 12);
        const grads = await model.computeGradients(x, y);
        const eps = 1e-2;
        let checked = 0;
        for (let li = 0; li < 3; li++) {
          const layer = model.layers[li] as any;
          const { weight, bias } = layer.getWeights();
          // A handful of weights and biases per layer keeps the test fast.
          for (const [name, arr] of [['weight', weight], ['bias', bias]] as const) {
            for (let k = 0; k < arr.length; k += Math.max(1, Math.floor(arr.length / 5))) {
              const orig = arr[k];
              arr[k] = orig + eps;
              layer.setWeights({ [name]: arr });
              const up = (await model.evaluate(x, y)).loss;
              arr[k] = orig - eps;
              layer.setWeights({ [name]: arr });
              const down = (await model.evaluate(x, y)).loss;
              arr[k] = orig;
              layer.setWeights({ [name]: arr });
              const numeric = (up - down) / (2 * eps);
              const analytic = (grads[li] as any)[name][k];
              // relu has kinks: a finite difference across one is meaningless.
              const tol = activation === 'relu' ? 2e-2 : 2e-3;
              expect(Math.abs(numeric - analytic), `layer ${li} ${name}[${k}]: numeric ${numeric}, analytic ${analytic}`).to.be.below(
                tol * Math.max(1, Math.abs(numeric)),
              );
              checked++;
            }
          }
        }
        expect(checked).to.be.greaterThan(20);
      });
    }
  }

  for (const loss of ['softmaxCrossEntropy', 'meanSquaredError'] as const) {
    it(`forward and backward match TF.js on identical weights (${loss})`, async () => {
      const inputSize = 33;
      const widths = [17, 7, 5];
      const model = new Sequential({ inputSize, seed: 9 });
      model.add(layers.dense({ units: widths[0], activation: 'relu' }));
      model.add(layers.dense({ units: widths[1], activation: 'tanh' }));
      model.add(layers.dense({ units: widths[2] }));
      model.compile({ optimizer: optimizers.sgd({ learningRate: 0.1 }), loss });
      const n = 57;
      const x = randomArray(n * inputSize, 21);
      const labels = randomLabels(n, widths[2], 22);
      const targets = randomArray(n * widths[2], 23);
      const y = loss === 'softmaxCrossEntropy' ? labels : targets;

      // The same network in TF.js: kernels are [in, out], the transpose of ours.
      const weights = model.layers.map((l: any) => l.getWeights());
      const vars: tf.Variable[] = [];
      let inputs = inputSize;
      weights.forEach((w: any, i: number) => {
        const kernel = tf.transpose(tf.tensor2d(w.weight, [widths[i], inputs]));
        vars.push(tf.variable(kernel), tf.variable(tf.tensor1d(w.bias)));
        inputs = widths[i];
      });
      const xt = tf.tensor2d(x, [n, inputSize]);
      const acts = ['relu', 'tanh', 'linear'];
      const forward = () => {
        let h: tf.Tensor = xt;
        for (let i = 0; i < 3; i++) {
          h = tf.add(tf.matMul(h, vars[2 * i]), vars[2 * i + 1]);
          if (acts[i] === 'relu') h = tf.relu(h);
          if (acts[i] === 'tanh') h = tf.tanh(h);
        }
        return h as tf.Tensor2D;
      };
      const lossFn = () => {
        const out = forward();
        if (loss === 'softmaxCrossEntropy') {
          return tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(labels, 'int32'), widths[2]), out) as tf.Scalar;
        }
        return tf.losses.meanSquaredError(tf.tensor2d(targets, [n, widths[2]]), out) as tf.Scalar;
      };

      const ours = await model.predict(x);
      const theirs = forward().dataSync();
      expect(maxAbsDiff(ours, theirs)).to.be.below(1e-5 * Math.max(1, maxAbs(theirs)));

      const ourLoss = (await model.evaluate(x, y)).loss;
      const { value, grads } = tf.variableGrads(lossFn, vars);
      expect(ourLoss).to.be.closeTo(value.dataSync()[0], 1e-5);

      const ourGrads = await model.computeGradients(x, y);
      Object.values(grads).forEach(() => undefined);
      for (let i = 0; i < 3; i++) {
        const tfKernelGrad = tf.transpose(grads[vars[2 * i].name]).dataSync();
        const tfBiasGrad = grads[vars[2 * i + 1].name].dataSync();
        const scale = Math.max(1e-3, maxAbs(tfKernelGrad));
        expect(maxAbsDiff(ourGrads[i].weight, tfKernelGrad), `layer ${i} weight grad`).to.be.below(1e-4 * scale);
        expect(maxAbsDiff(ourGrads[i].bias, tfBiasGrad), `layer ${i} bias grad`).to.be.below(1e-4 * Math.max(1e-3, maxAbs(tfBiasGrad)));
      }
      tf.dispose([xt, value, ...Object.values(grads), ...vars]);
    });
  }

  it('computeGradients averages over the batch however it is chunked internally (n > 512)', async () => {
    const model = smallModel('tanh', 'softmaxCrossEntropy');
    const n = 1100;
    const x = randomArray(n * 6, 31);
    const y = randomLabels(n, 3, 32);
    const all = await model.computeGradients(x, y);
    // Mean of the gradients of two halves weighted by size equals the whole.
    const a = await model.computeGradients(x.subarray(0, 600 * 6), y.subarray(0, 600));
    const b = await model.computeGradients(x.subarray(600 * 6), y.subarray(600));
    for (let i = 0; i < 3; i++) {
      const combined = all[i].weight.map((_, k) => (600 * a[i].weight[k] + 500 * b[i].weight[k]) / n);
      expect(maxAbsDiff(all[i].weight, combined)).to.be.below(1e-5);
    }
  });

  it('computeGradients leaves the weights unchanged', async () => {
    const model = smallModel('relu', 'softmaxCrossEntropy');
    const before = (model.layers[0] as any).getWeights().weight.slice();
    await model.computeGradients(randomArray(4 * 6, 1), randomLabels(4, 3, 2));
    expect(Array.from((model.layers[0] as any).getWeights().weight)).to.deep.equal(Array.from(before));
    expect(model.step).to.equal(0);
  });
});
