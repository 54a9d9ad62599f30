import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CheckpointError, Sequential, layers, loadModel, optimizers } from '../lib/index';
import { encode } from '../lib/checkpoint/safetensors';
import { mulberry32 } from '../lib/data/random';
import { maxAbsDiff, randomArray, randomLabels } from './helpers';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'np-ckpt-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function build(optimizer = optimizers.adam({ learningRate: 0.01 }), threshold?: number) {
  const m = new Sequential({ inputSize: 20, seed: 3, ...(threshold === undefined ? {} : { sparseThreshold: threshold }) });
  m.add(layers.dense({ units: 32, activation: 'relu' })).add(layers.dropout({ rate: 0.2 }));
  m.add(layers.dense({ units: 16, activation: 'tanh' })).add(layers.dense({ units: 4 }));
  m.compile({ optimizer, loss: 'softmaxCrossEntropy' });
  return m;
}

function sameBits(a: Float32Array, b: Float32Array) {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function header(buf: Buffer) {
  const n = Number(buf.readBigUInt64LE(0));
  return { n, json: JSON.parse(buf.toString('utf8', 8, 8 + n)) };
}

describe('checkpoints: safetensors save and load', () => {
  const x = randomArray(256 * 20, 1);
  const y = randomLabels(256, 4, 2);

  for (const [name, optimizer, threshold] of [
    ['adam, dense', optimizers.adam({ learningRate: 0.01 }), 0],
    ['sgd momentum, CSR', optimizers.sgd({ learningRate: 0.05, momentum: 0.9, nesterov: true }), 1],
  ] as const) {
    it(`resumes bit-exactly after pruning and compaction (${name})`, async () => {
      const a = build(optimizer, threshold);
      await a.fit(x, y, { epochs: 2, batchSize: 16 });
      a.prune({ amount: 0.6, scope: 'global' });
      a.prune({ layer: 0, amount: 0.25, structure: 'neuron', criterion: 'taylor' });
      a.compact();
      await a.fit(x, y, { epochs: 1, batchSize: 16 });
      const file = path.join(tmp, `resume-${threshold}.safetensors`);
      await a.save(file);
      const b = await loadModel(file);
      expect(b.step).to.equal(a.step);
      expect(b.events).to.deep.equal(a.events);
      expect(b.layers.map((l: any) => l.neuronIds)).to.deep.equal(a.layers.map((l: any) => l.neuronIds));
      expect(b.layers.map((l: any) => l.format)).to.deep.equal(a.layers.map((l: any) => l.format));
      await a.fit(x, y, { epochs: 2, batchSize: 16 });
      await b.fit(x, y, { epochs: 2, batchSize: 16 });
      expect(sameBits(await a.predict(x), await b.predict(x))).to.equal(true);
      (a.layers as any[]).forEach((l, i) => {
        if (l.kind === 'dense') expect(sameBits(l.getWeights().weight, (b.layers[i] as any).getWeights().weight)).to.equal(true);
      });
    });
  }

  it('resumes bit-exactly with wide CSR layers whose W^T copy is blocked per batch size', async function () {
    // 1100 units, half pruned: W^T's copy is column-blocked, and the blocks
    // for batch 128 differ from those for batch 100. The original model built
    // its copy at 128; the loaded one builds it first at 100. Both must then
    // sum in the same order at 100.
    this.timeout(120_000);
    const make = () => {
      const m = new Sequential({ inputSize: 16, seed: 9, sparseThreshold: 1 });
      m.add(layers.dense({ units: 1100, activation: 'relu' })).add(layers.dense({ units: 1100, activation: 'relu' })).add(layers.dense({ units: 5 }));
      m.compile({ optimizer: optimizers.sgd({ learningRate: 0.02, momentum: 0.9 }), loss: 'softmaxCrossEntropy' });
      m.prune({ amount: 0.5, scope: 'layer' });
      return m;
    };
    const xs = randomArray(384 * 16, 21);
    const ys = randomLabels(384, 5, 22);
    const a = make();
    await a.fit(xs, ys, { epochs: 1, batchSize: 128 });
    const b = await loadModel(a.toBuffer());
    expect(b.layers.map((l: any) => l.format)).to.deep.equal(['csr', 'csr', 'csr']);
    await a.fit(xs.subarray(0, 300 * 16), ys.subarray(0, 300), { epochs: 1, batchSize: 100 });
    await b.fit(xs.subarray(0, 300 * 16), ys.subarray(0, 300), { epochs: 1, batchSize: 100 });
    (a.layers as any[]).forEach((l, i) => {
      expect(sameBits(l.getWeights().weight, (b.layers[i] as any).getWeights().weight), `layer ${i}`).to.equal(true);
    });
  });

  it('round-trips through a Buffer, and keeps the pruned positions pruned', async () => {
    const a = build(undefined, 0);
    a.prune({ amount: 0.5, layer: 0 });
    const b = await loadModel(a.toBuffer());
    expect((b.layers[0] as any).nnz).to.equal((a.layers[0] as any).nnz);
    await b.fit(x, y, { epochs: 1, batchSize: 32 });
    const w = (b.layers[0] as any).getWeights().weight;
    const w0 = (a.layers[0] as any).getWeights().weight;
    for (let i = 0; i < w.length; i++) if (w0[i] === 0) expect(w[i]).to.equal(0);
  });

  it('reads tensors in place when aligned, and copies them when a foreign writer left them unaligned', async () => {
    const a = build(undefined, 0.5);
    a.prune({ amount: 0.6, scope: 'global' });  // CSR layers too: I64 row pointers, I32 indices
    const buf = a.toBuffer();
    const { decode, readTensor } = await import('../lib/checkpoint/safetensors');
    const decoded = decode(buf, 'test');
    for (const name of decoded.tensors.keys()) {
      const t = readTensor(decoded, name, 'test');
      expect(t.data.buffer, `${name} (${t.dtype}) read in place`).to.equal(buf.buffer);  // every tensor aligned: a view, not a copy
    }
    // Whatever the order given: an odd byte tensor first still leaves the wider ones aligned.
    const mixed = encode(new Map<string, { shape: number[]; data: Uint8Array | Float32Array | Float64Array | BigInt64Array }>([
      ['a', { shape: [3], data: new Uint8Array([1, 2, 3]) }],
      ['b', { shape: [3], data: new Float32Array([1.5, 2.5, 3.5]) }],
      ['c', { shape: [1], data: new Float64Array([0.25]) }],
      ['d', { shape: [1], data: new BigInt64Array([7n]) }],
    ]), {});
    const m = decode(mixed, 'mixed');
    expect([...m.tensors.keys()]).to.deep.equal(['a', 'b', 'c', 'd']);
    for (const name of ['a', 'b', 'c', 'd']) expect(readTensor(m, name, 'mixed').data.buffer, name).to.equal(mixed.buffer);
    expect(Array.from(readTensor(m, 'b', 'mixed').data as Float32Array)).to.deep.equal([1.5, 2.5, 3.5]);
    expect(Array.from(readTensor(m, 'a', 'mixed').data as Uint8Array)).to.deep.equal([1, 2, 3]);
    const aligned = readTensor(decoded, 'layers.0.bias', 'test');
    // One more byte of header padding shifts every tensor off its alignment: still the same model.
    const n = Number(buf.readBigUInt64LE(0));
    const shifted = Buffer.concat([Buffer.alloc(8), buf.subarray(8, 8 + n), Buffer.from(' '), buf.subarray(8 + n)]);
    shifted.writeBigUInt64LE(BigInt(n + 1), 0);
    const copied = readTensor(decode(shifted, 'test'), 'layers.0.bias', 'test');
    expect(copied.data.buffer).to.not.equal(shifted.buffer);
    expect(Array.from(copied.data as Float32Array)).to.deep.equal(Array.from(aligned.data as Float32Array));
    const b = await loadModel(shifted);
    expect(await b.predict(x)).to.deep.equal(await a.predict(x));
    expect(b.native.exportState().layers).to.deep.equal(a.native.exportState().layers);
  });

  it('writes spec-conformant safetensors: plain F32 [out, in] dense weights, CSR as indptr/indices/values', async () => {
    const a = build(optimizers.sgd({ learningRate: 0.1 }), 0.5);
    a.prune({ amount: 0.9, layer: 0 });
    const buf = a.toBuffer();
    const { n, json } = header(buf);
    expect((8 + n) % 8).to.equal(0);
    expect(json['layers.1.weight']).to.deep.include({ dtype: 'F32', shape: [16, 32] });
    expect(json['layers.1.bias']).to.deep.include({ dtype: 'F32', shape: [16] });
    expect(json['layers.0.weight.indptr']).to.deep.include({ dtype: 'I64', shape: [33] });
    expect(json['layers.0.weight.indices'].dtype).to.equal('I32');
    expect(json['layers.0.weight.values'].dtype).to.equal('F32');
    expect(JSON.parse(json.__metadata__['layers.0.weight.shape'])).to.deep.equal([32, 20]);
    expect(json.__metadata__.format).to.equal('neuroplastic');
    const [begin, end] = json['layers.1.weight'].data_offsets;
    const raw = buf.subarray(8 + n + begin, 8 + n + end);
    const weight = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
    expect(Array.from(weight)).to.deep.equal(Array.from((a.layers[2] as any).getWeights().weight));
  });

  it('is readable by PyTorch users: dense tensors load into torch.nn.Linear with the same outputs', async function () {
    // Under `npm run test:asan` the sanitizer runtime is preloaded into every
    // child; Python is not ours to check, and LeakSanitizer's exit-time tracer
    // crashes (SIGABRT) on torch's threads, so Python runs without it.
    const env = { ...process.env, LD_PRELOAD: (process.env.LD_PRELOAD ?? '').split(':').filter((lib) => !/lib[a-z]*san\.so/.test(lib)).join(':') };
    // Debian's python3-torch lives in the system python, which may not be first on PATH.
    const python = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import torch, numpy'], { env }).status === 0);
    if (!python) {
      console.log('      (skipped: needs python3 with torch and numpy, e.g. Debian python3-torch; not installed here)');
      this.skip();
    }
    const a = new Sequential({ inputSize: 6, seed: 2 });
    a.add(layers.dense({ units: 5, activation: 'relu' })).add(layers.dense({ units: 3 }));
    const file = path.join(tmp, 'torch.safetensors');
    await a.save(file);
    const input = randomArray(4 * 6, 9);
    const script = `
import json, struct, sys, numpy as np, torch
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
h = json.loads(raw[8:8 + n])
def t(name):
    e = h[name]; b, e2 = e['data_offsets']
    return torch.from_numpy(np.frombuffer(raw[8 + n + b: 8 + n + e2], dtype=np.float32).reshape(e['shape']).copy())
net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
net[0].weight.data = t('layers.0.weight'); net[0].bias.data = t('layers.0.bias')
net[2].weight.data = t('layers.1.weight'); net[2].bias.data = t('layers.1.bias')
x = torch.tensor(json.loads(sys.argv[2]), dtype=torch.float32).reshape(4, 6)
print(json.dumps(net(x).detach().numpy().ravel().tolist()))
`;
    const r = spawnSync(python, ['-c', script, file, JSON.stringify(Array.from(input))], { encoding: 'utf8', env });
    expect(r.status, `python exited with status ${r.status}, signal ${r.signal}: ${r.stderr}`).to.equal(0);
    const torchOut = JSON.parse(r.stdout);
    expect(maxAbsDiff(await a.predict(input), torchOut)).to.be.below(1e-5);
  });

  it('imports a plain safetensors file of Linear layers (weight [out, in], bias [out])', async () => {
    const w1 = randomArray(5 * 4, 1);
    const b1 = randomArray(5, 2);
    const w2 = randomArray(2 * 5, 3);
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>([
      ['10.weight', { shape: [2, 5], data: w2 }],
      ['2.weight', { shape: [5, 4], data: w1 }],
      ['2.bias', { shape: [5], data: b1 }],
    ]);
    const model = await loadModel(encode(tensors, {}), { activations: ['tanh', 'linear'] });
    expect(model.layers.map((l: any) => [l.units, l.inputs, l.activation])).to.deep.equal([[5, 4, 'tanh'], [2, 5, 'linear']]);
    const input = randomArray(3 * 4, 4);
    const out = await model.predict(input);
    for (let s = 0; s < 3; s++) {
      const h = Array.from({ length: 5 }, (_, j) => Math.tanh(b1[j] + [0, 1, 2, 3].reduce((acc, c) => acc + w1[j * 4 + c] * input[s * 4 + c], 0)));
      for (let o = 0; o < 2; o++) expect(out[s * 2 + o]).to.be.closeTo(h.reduce((acc, v, j) => acc + w2[o * 5 + j] * v, 0), 1e-5);
    }
    const broken = new Map([...tensors].filter(([k]) => k !== '10.weight'));
    broken.set('10.weight', { shape: [2, 4], data: randomArray(8, 1) });
    await loadModel(encode(broken, {})).then(
      () => expect.fail('should reject'),
      (e) => expect(e.message).to.include('do not chain'),
    );
  });

  it('writes atomically: no temporary file is left, an existing file is replaced whole', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'atomic-'));
    const file = path.join(dir, 'model.safetensors');
    fs.writeFileSync(file, 'old contents');
    const a = build();
    await a.save(file);
    expect(fs.readdirSync(dir)).to.deep.equal(['model.safetensors']);
    expect((await loadModel(file)).step).to.equal(0);
    let error: any;
    try {
      await a.save(path.join(dir, 'missing-dir', 'model.safetensors'));
    } catch (e) {
      error = e;
    }
    expect(error?.code).to.equal('ENOENT');
    expect(fs.readdirSync(dir)).to.deep.equal(['model.safetensors']);
  });

  it('rejects a file truncated at every sixteenth of its length, naming the file', async () => {
    const a = build(undefined, 1);
    a.prune({ amount: 0.7, scope: 'global' });
    const buf = a.toBuffer();
    for (let k = 0; k < 16; k++) {
      const cut = Math.floor((buf.length * k) / 16);
      const file = path.join(tmp, `cut-${k}.safetensors`);
      fs.writeFileSync(file, buf.subarray(0, cut));
      let error: any;
      try {
        await loadModel(file);
      } catch (e) {
        error = e;
      }
      expect(error, `cut at ${cut}`).to.be.instanceOf(CheckpointError);
      expect(error.message).to.include(file);
    }
  });

  it('survives 1,000 random bit flips: each is rejected with a CheckpointError or loads (flips in float data)', async () => {
    const a = build(undefined, 1);
    a.prune({ amount: 0.7, scope: 'global' });
    a.prune({ layer: 0, amount: 0.2, structure: 'neuron' });
    const buf = a.toBuffer();
    const { n } = header(buf);
    const rnd = mulberry32(7);
    let rejected = 0;
    let loaded = 0;
    for (let i = 0; i < 1000; i++) {
      const copy = Buffer.from(buf);
      // Half the flips hit the header (where structure lives), half the data.
      const at = i % 2 === 0 ? 8 + Math.floor(rnd() * n) : 8 + n + Math.floor(rnd() * (buf.length - 8 - n));
      copy[at] ^= 1 << Math.floor(rnd() * 8);
      try {
        const m = await loadModel(copy);
        await m.predict(x.subarray(0, 20 * 4));
        loaded++;
      } catch (e) {
        if (!(e instanceof CheckpointError)) throw new Error(`flip at byte ${at}: ${(e as Error).stack}`);
        rejected++;
      }
    }
    expect(rejected + loaded).to.equal(1000);
    expect(rejected).to.be.greaterThan(200);
  });

  it('rejects foreign and malformed files with clear errors', async () => {
    const cases: [Buffer, string][] = [
      [Buffer.alloc(0), 'too short'],
      [Buffer.from('hello world, not safetensors'), 'runs past the end'],
      [(() => { const b = Buffer.alloc(8 + 4); b.writeBigUInt64LE(4n); b.write('[1] ', 8); return b; })(), 'not a JSON object'],
      [(() => { const h = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}'; const b = Buffer.alloc(8 + h.length + 4); b.writeBigUInt64LE(BigInt(h.length)); b.write(h, 8); return b; })(), 'needs 8 bytes'],
      [(() => { const h = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}'; const b = Buffer.alloc(8 + h.length + 6); b.writeBigUInt64LE(BigInt(h.length)); b.write(h, 8); return b; })(), 'overlaps'],
      [(() => { const h = '{"a":{"dtype":"Q9","shape":[1],"data_offsets":[0,4]}}'; const b = Buffer.alloc(8 + h.length + 4); b.writeBigUInt64LE(BigInt(h.length)); b.write(h, 8); return b; })(), 'unknown dtype'],
      [encode(new Map([['x', { shape: [2], data: new Float32Array(2) }]]), {}), "no '<name>.weight' tensors"],
      [encode(new Map(), { format: 'neuroplastic', 'format.version': '99' }), 'version "99" is not supported'],
    ];
    for (const [buf, words] of cases) {
      let error: any;
      try {
        await loadModel(buf);
      } catch (e) {
        error = e;
      }
      expect(error, words).to.be.instanceOf(CheckpointError);
      expect(error.message).to.include(words);
    }
    await loadModel(path.join(tmp, 'nope.safetensors')).then(
      () => expect.fail('should reject'),
      (e) => expect(e.message).to.include('nope.safetensors: cannot read (ENOENT)'),
    );
  });

  it('checks arguments and refuses to save while a training step runs', async () => {
    const a = build();
    let error: any;
    try {
      await a.save('' as any);
    } catch (e) {
      error = e;
    }
    expect(error).to.be.instanceOf(TypeError);
    await loadModel(42 as any).then(
      () => expect.fail('should reject'),
      (e) => expect(e).to.be.instanceOf(TypeError),
    );
    const running = a.fit(randomArray(2000 * 20, 1), randomLabels(2000, 4, 2), { epochs: 1, batchSize: 8 });
    await a.save(path.join(tmp, 'during.safetensors')).then(
      () => expect.fail('should reject'),
      (e) => expect(e.message).to.include('training'),
    );
    await running;
  });

  it('exports the architecture with toJSON() and rebuilds it with Sequential.fromJSON()', () => {
    const a = build();
    const config = a.toJSON();
    expect(config.layers.map((l) => l.kind)).to.deep.equal(['dense', 'dropout', 'dense', 'dense']);
    expect(config.compile?.optimizer.kind).to.equal('adam');
    const b = Sequential.fromJSON(JSON.parse(JSON.stringify(config)));
    expect(b.toJSON()).to.deep.equal(config);
  });
});
