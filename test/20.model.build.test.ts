import { expect } from 'chai';
import { Sequential, layers, optimizers, runtime } from '../lib/index';
import { compiledMlp, mlp, randomArray } from './helpers';

describe('model: building and inspecting', () => {
  it('reports the native runtime (SIMD level, threads, cache sizes)', () => {
    const r = runtime();
    expect(['scalar', 'avx2', 'avx512']).to.include(r.simd);
    expect(r.threads).to.be.at.least(1);
    // The sizes the CSR kernels block for: what the OS says, clamped to a sane range.
    expect(r.cache.l1d).to.be.within(16 * 1024, 256 * 1024);
    expect(r.cache.l2).to.be.within(128 * 1024, 4 * 1024 * 1024);
    expect(r.cache.l2).to.be.above(r.cache.l1d);
    expect(r.version).to.match(/^\d+\.\d+\.\d+/);
  });

  it('builds LeNet-300-100 with the expected shapes and parameter count', () => {
    const model = compiledMlp({ inputSize: 784, hidden: [300, 100], outputs: 10 });
    expect(model.countParams()).to.equal(784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10);
    const [l0, l1, l2] = model.layers as any[];
    expect([l0.units, l0.inputs, l1.units, l1.inputs, l2.units, l2.inputs]).to.deep.equal([300, 784, 100, 300, 10, 100]);
    expect(l0.nnz).to.equal(300 * 784);
    expect(l0.density).to.equal(1);
    expect(l0.format).to.equal('dense');
    expect(model.outputSize).to.equal(10);
    expect(model.step).to.equal(0);
  });

  it('gives every neuron a distinct stable id', () => {
    const model = compiledMlp({ inputSize: 8, hidden: [5, 4], outputs: 3 });
    const ids = model.layers.flatMap((l: any) => l.neuronIds as number[]);
    expect(ids).to.have.length(12);
    expect(new Set(ids).size).to.equal(12);
  });

  it('round-trips weights through setWeights/getWeights', () => {
    const model = compiledMlp({ inputSize: 7, hidden: [5], outputs: 3 });
    const layer = model.layers[0] as any;
    const weight = randomArray(35, 3);
    const bias = randomArray(5, 4);
    layer.setWeights({ weight, bias });
    const got = layer.getWeights();
    expect(Array.from(got.weight)).to.deep.equal(Array.from(weight));
    expect(Array.from(got.bias)).to.deep.equal(Array.from(bias));
    layer.setWeights({ bias: new Float32Array(5) });
    expect(Array.from(layer.getWeights().weight)).to.deep.equal(Array.from(weight));
  });

  it('initialises He-normal for relu layers (std close to sqrt(2/fan_in)) and zero biases', () => {
    const model = mlp({ inputSize: 400, hidden: [200], outputs: 10 });
    const { weight, bias } = (model.layers[0] as any).getWeights();
    let sum = 0;
    let sq = 0;
    for (const v of weight) {
      sum += v;
      sq += v * v;
    }
    const mean = sum / weight.length;
    const std = Math.sqrt(sq / weight.length - mean * mean);
    expect(std).to.be.closeTo(Math.sqrt(2 / 400), 0.003);
    expect(Math.abs(mean)).to.be.below(0.003);
    expect(Array.from(bias).every((b) => b === 0)).to.equal(true);
  });

  it('is reproducible: the same seed gives the same initial weights, another seed different ones', () => {
    const a = (mlp({ inputSize: 10, hidden: [6], outputs: 2, seed: 5 }).layers[0] as any).getWeights().weight;
    const b = (mlp({ inputSize: 10, hidden: [6], outputs: 2, seed: 5 }).layers[0] as any).getWeights().weight;
    const c = (mlp({ inputSize: 10, hidden: [6], outputs: 2, seed: 6 }).layers[0] as any).getWeights().weight;
    expect(Array.from(a)).to.deep.equal(Array.from(b));
    expect(Array.from(a)).to.not.deep.equal(Array.from(c));
  });

  it('summary() lists units, inputs, params, nnz, density, format and bytes per layer', () => {
    const model = new Sequential({ inputSize: 784, seed: 1, name: 'lenet' });
    model.add(layers.dense({ units: 300, activation: 'relu' }));
    model.add(layers.dropout({ rate: 0.2 }));
    model.add(layers.dense({ units: 10 }));
    model.compile({ optimizer: optimizers.adam(), loss: 'softmaxCrossEntropy' });
    const text = model.summary({ print: false });
    for (const word of ['units', 'inputs', 'params', 'nnz', 'density', 'format', 'bytes', 'dense(relu)', 'dropout(0.2)', '235500', 'lenet']) {
      expect(text).to.include(word);
    }
    expect(text).to.include(`Total parameters: ${784 * 300 + 300 + 300 * 10 + 10}`);
  });
});
