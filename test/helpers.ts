// Shared helpers for the model tests: small seeded models and data.
import * as fs from 'fs';
import * as path from 'path';
import { Sequential, layers, optimizers } from '../lib/index';
import type { ActivationName } from '../lib/layers';
import { mulberry32 } from '../lib/data/random';

export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const rnd = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rnd() * 2 - 1) * scale;
  return out;
}

export function randomLabels(n: number, classes: number, seed: number): Int32Array {
  const rnd = mulberry32(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(rnd() * classes);
  return out;
}

export interface MlpOptions {
  inputSize: number;
  hidden: number[];
  outputs: number;
  activation?: ActivationName;
  seed?: number;
  dropout?: number;
}

export function mlp(o: MlpOptions): Sequential {
  const model = new Sequential({ inputSize: o.inputSize, seed: o.seed ?? 1 });
  for (const units of o.hidden) {
    model.add(layers.dense({ units, activation: o.activation ?? 'relu' }));
    if (o.dropout) model.add(layers.dropout({ rate: o.dropout }));
  }
  model.add(layers.dense({ units: o.outputs }));
  return model;
}

export function compiledMlp(o: MlpOptions, lr = 0.05, loss: 'softmaxCrossEntropy' | 'meanSquaredError' = 'softmaxCrossEntropy') {
  const model = mlp(o);
  model.compile({ optimizer: optimizers.sgd({ learningRate: lr, momentum: 0.9 }), loss });
  return model;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Encodes an IDX file of unsigned bytes: zero, zero, 0x08, ndims, big-endian dims, values. */
export function idxBytes(dims: number[], values: ArrayLike<number>): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, Buffer.from(Uint8Array.from(values))]);
}

/**
 * Writes a 4-class set of 6 x 6 images in which class k lights quadrant k
 * (plus a little seeded noise): easy enough for a tiny MLP to learn in seconds.
 */
export function writeQuadrantSet(dir: string, train: number, test: number): void {
  let state = 12345;
  const rand = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648);
  const split = (stem: string, n: number) => {
    const pixels: number[] = [];
    const labels: number[] = [];
    for (let i = 0; i < n; i++) {
      const k = i % 4;
      labels.push(k);
      for (let r = 0; r < 6; r++) {
        for (let c = 0; c < 6; c++) {
          const quadrant = (r < 3 ? 0 : 2) + (c < 3 ? 0 : 1);
          pixels.push(Math.min(255, (quadrant === k ? 200 : 0) + Math.floor(rand() * 50)));
        }
      }
    }
    fs.writeFileSync(path.join(dir, `${stem}-images-idx3-ubyte`), idxBytes([n, 6, 6], pixels));
    fs.writeFileSync(path.join(dir, `${stem}-labels-idx1-ubyte`), idxBytes([n], labels));
  };
  split('train', train);
  split('t10k', test);
}
