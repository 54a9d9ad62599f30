// Bad input that used to crash the process or load a silently wrong model:
// setWeights on pruned positions, a predict() whose output cannot fit in
// memory, checkpoints whose numbers or bookkeeping contradict the model, a
// global prune that empties a layer, a bad Linear import, saving into a
// missing folder. Each case must fail with a clear error and leave the model
// (and the process) as it was.
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CheckpointError, Sequential, layers, loadModel, optimizers } from '../lib/index';
import { encode } from '../lib/checkpoint/safetensors';
import { randomArray, randomLabels } from './helpers';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'np-hard-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function build(sparseThreshold?: number) {
  const m = new Sequential({ inputSize: 6, seed: 5, ...(sparseThreshold === undefined ? {} : { sparseThreshold }) });
  m.add(layers.dense({ units: 8, activation: 'relu' }));
  m.add(layers.dense({ units: 6, activation: 'tanh' }));
  m.add(layers.dense({ units: 3 }));
  m.compile({ optimizer: optimizers.adam({ learningRate: 0.01 }), loss: 'softmaxCrossEntropy' });
  return m;
}

const x = randomArray(64 * 6, 11);
const y = randomLabels(64, 3, 12);

/** A trained model with a weight mask (layer 1) and pruned, not compacted, neurons (layer 0); threshold 0 keeps every layer dense. */
async function prunedModel() {
  const m = build(0);
  await m.fit(x, y, { epochs: 1, batchSize: 16 });
  m.prune({ amount: 0.5, layer: 1 });
  m.prune({ amount: 0.25, structure: 'neuron', layer: 0 });
  return m;
}

// ---- editing a saved buffer --------------------------------------------------
function split(buf: Buffer) {
  const n = Number(buf.readBigUInt64LE(0));
  return { json: JSON.parse(buf.toString('utf8', 8, 8 + n)), data: Buffer.from(buf.subarray(8 + n)) };
}

function join(json: unknown, data: Buffer): Buffer {
  const h = Buffer.from(JSON.stringify(json));
  const out = Buffer.alloc(8 + h.length + data.length);
  out.writeBigUInt64LE(BigInt(h.length));
  h.copy(out, 8);
  data.copy(out, 8 + h.length);
  return out;
}

function editMeta(buf: Buffer, key: string, edit: (value: any) => any): Buffer {
  const { json, data } = split(buf);
  json.__metadata__[key] = JSON.stringify(edit(JSON.parse(json.__metadata__[key])));
  return join(json, data);
}

function editTensor(buf: Buffer, name: string, edit: (bytes: Buffer) => void): Buffer {
  const { json, data } = split(buf);
  expect(json, `tensor ${name}`).to.have.property(name);
  const [b, e] = json[name].data_offsets;
  edit(data.subarray(b, e));
  return join(json, data);
}

async function rejects(buf: Buffer, pattern: RegExp) {
  let error: unknown;
  try {
    await loadModel(buf);
  } catch (err) {
    error = err;
  }
  expect(error, 'loadModel should reject').to.be.instanceOf(CheckpointError);
  expect((error as Error).message).to.match(pattern);
}

describe('hardening: setWeights and predict never abort the process', () => {
  it('setWeights with a nonzero weight on a pruned CSR position throws a RangeError and changes nothing', () => {
    const m = build(1);
    m.prune({ amount: 0.5, layer: 0 });
    const layer = m.layers[0] as any;
    expect(layer.format).to.equal('csr');
    const before = layer.getWeights();
    expect(() => layer.setWeights({ weight: new Float32Array(48).fill(1) })).to.throw(
      RangeError,
      /^DenseLayer\.setWeights\(\): weight\[\d+\] .* pruned; pruned positions must be 0/,
    );
    expect(layer.getWeights().weight).to.deep.equal(before.weight);
  });

  it('setWeights with a nonzero bias on a pruned unit throws a RangeError', async () => {
    const m = await prunedModel();
    const layer = m.layers[0] as any;
    const bias = new Float32Array(8).fill(0.5);
    expect(() => layer.setWeights({ bias })).to.throw(RangeError, /bias\[\d+\] is 0\.5.* is pruned; its bias must be 0/);
  });

  it('predict() whose output cannot fit in memory rejects with a RangeError and leaves the model usable', async () => {
    const m = new Sequential({ inputSize: 1, seed: 1 });
    m.add(layers.dense({ units: 1 << 20 }));
    let error: unknown;
    try {
      await m.predict(new Float32Array(1 << 16));
    } catch (err) {
      error = err;
    }
    expect(error).to.be.instanceOf(RangeError);
    expect((error as Error).message).to.match(/65536 samples x 1048576 outputs needs \d+ GB, more than this machine's/);
    expect(m.native.busy).to.not.be.ok;
    expect((await m.predict(new Float32Array(2))).length).to.equal(2 << 20);
  });
});

describe('hardening: checkpoints whose contents contradict the model are rejected', () => {
  let good: Buffer;
  before(async () => {
    good = (await prunedModel()).toBuffer();
  });

  it('a model with masks and pruned neurons still round-trips exactly', async () => {
    const m = await prunedModel();
    const back = await loadModel(m.toBuffer());
    expect(Array.from(await back.predict(x))).to.deep.equal(Array.from(await m.predict(x)));
  });

  it('rejects NaN or infinite weights, biases and optimizer moments', async () => {
    await rejects(editTensor(good, 'layers.2.weight', (b) => b.writeFloatLE(NaN, 0)), /layers\.2\.weight\[0\] is NaN; a saved model holds finite numbers only/);
    await rejects(editTensor(good, 'layers.1.bias', (b) => b.writeFloatLE(Infinity, 0)), /layers\.1\.bias\[0\] is Infinity/);
    await rejects(editTensor(good, 'layers.2.weight.moment1', (b) => b.writeFloatLE(NaN, 4)), /layers\.2\.weight\.moment1\[1\] is NaN/);
  });

  it("rejects a negative Adam second moment", async () => {
    await rejects(editTensor(good, 'layers.2.weight.moment2', (b) => b.writeFloatLE(-1, 0)), /layers\.2\.weight\.moment2\[0\] is -1; Adam's second moment is never negative/);
  });

  it('rejects a mask that says pruned where a weight is nonzero', async () => {
    await rejects(editTensor(good, 'layers.1.weight.mask', (b) => b.fill(0)), /layer 1: weight .* nonzero where the mask says pruned/);
  });

  it('rejects a layer with every unit pruned, and a pruned unit with a nonzero bias', async () => {
    await rejects(editTensor(good, 'layers.0.alive', (b) => b.fill(0)), /layer 0: every unit is marked pruned/);
    const alive = split(good);
    const [a0] = alive.json['layers.0.alive'].data_offsets;
    const dead = [...alive.data.subarray(a0, a0 + 8)].indexOf(0);
    expect(dead).to.be.at.least(0);
    await rejects(editTensor(good, 'layers.0.bias', (b) => b.writeFloatLE(0.25, 4 * dead)), /pruned unit \d+ has a nonzero bias/);
  });

  it('rejects duplicate neuron ids and a next id that would hand out existing ones', async () => {
    await rejects(editTensor(good, 'layers.0.neuron_ids', (b) => b.writeBigInt64LE(b.readBigInt64LE(8), 0)), /neuron id \d+ appears twice/);
    await rejects(editMeta(good, 'state', (s) => ({ ...s, nextNeuronId: 3 })), /neuron id \d+ is outside \[0, next id 3\)/);
  });

  it('rejects a random generator state of all zeros (it would hang fit) and malformed words', async () => {
    await rejects(editMeta(good, 'state', (s) => ({ ...s, rng: ['0', '0', '0', '0'] })), /random generator's state is all zeros/);
    await rejects(editMeta(good, 'state', (s) => ({ ...s, rng: ['1'.repeat(17), '1', '1', '1'] })), /rng must be four 64-bit words in hex/);
  });

  it('rejects non-integer counters, negative statistics counts and events naming a missing layer', async () => {
    await rejects(editMeta(good, 'state', (s) => ({ ...s, step: 1.5 })), /state\.step must be a non-negative integer, got 1\.5/);
    await rejects(
      editMeta(good, 'state', (s) => ({ ...s, layers: s.layers.map((l: any, i: number) => (i === 1 ? { ...l, statsUpdates: -2 } : l)) })),
      /statsUpdates must be a non-negative integer/,
    );
    await rejects(editMeta(good, 'events', (e) => e.map((ev: any) => ({ ...ev, layer: 99 }))), /event 0 names layer 99 of 3/);
  });

  it('rejects tensors that are not part of a model state', async () => {
    const { json, data } = split(good);
    json['layers.0.extra'] = { dtype: 'F32', shape: [1], data_offsets: [data.length, data.length + 4] };
    await rejects(join(json, Buffer.concat([data, Buffer.alloc(4)])), /tensor layers\.0\.extra is not part of a neuroplastic model state/);
  });
});

describe('hardening: structural calls and files', () => {
  it('a global prune that would empty a layer throws, names the layer, and changes nothing', () => {
    const m = new Sequential({ inputSize: 4, seed: 2 });
    m.add(layers.dense({ units: 4, activation: 'relu' })).add(layers.dropout({ rate: 0.1 })).add(layers.dense({ units: 2 }));
    (m.layers[0] as any).setWeights({ weight: new Float32Array(16).fill(10) });
    (m.layers[2] as any).setWeights({ weight: new Float32Array(8).fill(0.01) });
    const nnz = () => m.layers.map((l: any) => l.nnz);
    const before = nnz();
    const events = m.events.length;
    expect(() => m.prune({ amount: 0.5, scope: 'global' })).to.throw(
      RangeError,
      /^Sequential\.prune\(\): global pruning of 12 weights would remove all 8 of layer 2; /,
    );
    expect(nnz()).to.deep.equal(before);
    expect(m.events.length).to.equal(events);
    expect(m.prune({ amount: 0.25, scope: 'global' }).removed).to.equal(6);
  });

  it('a Linear import with NaN weights is a CheckpointError naming the file and the layer', async () => {
    const w = new Float32Array(6).fill(0.5);
    w[2] = NaN;
    const buf = encode(new Map([['fc1.weight', { shape: [2, 3], data: w }]]), {});
    await rejects(buf, /^<buffer>: Linear layer fc1: DenseLayer\.setWeights\(\): weight\[2\] is NaN/);
  });

  it('saving into a missing folder names the file, not the temporary one, and keeps the code', async () => {
    const m = build();
    const file = path.join(tmp, 'no', 'such', 'folder', 'm.safetensors');
    let error: NodeJS.ErrnoException | undefined;
    try {
      await m.save(file);
    } catch (err) {
      error = err as NodeJS.ErrnoException;
    }
    expect(error?.message).to.equal(`cannot write ${file}: the folder ${path.dirname(file)} does not exist`);
    expect(error?.code).to.equal('ENOENT');
  });
});

// The numbers of a model without its structure: how a cuda model's host half
// takes the device's numbers back (lib/cuda_model.ts), instead of importing a
// whole state.
describe('hardening: exportState(valuesOf) and setValues', () => {
  /** The numbers of a state's layers as setValues takes them. */
  const numbersOf = (s: ReturnType<Sequential['native']['exportState']>) =>
    s.layers.map((l) => ({ weight: l.weight, weightMoments: l.weightMoments, bias: l.bias, biasMoments: l.biasMoments,
      meanAbsActivation: l.meanAbsActivation, meanActivation: l.meanActivation, taylor: l.taylor, statsUpdates: l.statsUpdates }));

  it('exportState(valuesOf) gives the numbers of the layers named only, and the whole structure', async () => {
    const m = await prunedModel();
    m.native.convertLayer(2, 'csr');
    const full = m.native.exportState();
    const some = m.native.exportState([1]);
    for (const [i, l] of some.layers.entries()) {
      const f = full.layers[i];
      expect(l.weight.length, `layer ${i} weight`).to.equal(i === 1 ? f.weight.length : 0);
      expect(l.weightMoments.map((w) => w.length)).to.deep.equal(i === 1 ? f.weightMoments.map((w) => w.length) : []);
      expect(l.bias.length).to.equal(i === 1 ? f.bias.length : 0);
      for (const key of ['units', 'inputs', 'format', 'indptr', 'indices', 'mask', 'alive', 'neuronIds', 'birthStep', 'meanAbsActivation'] as const)
        expect(l[key], `layer ${i} ${key}`).to.deep.equal(f[key]);
    }
    expect(some.events).to.deep.equal(full.events);
    expect(() => m.native.exportState([3])).to.throw(RangeError, /layers\[0\] is not a dense layer index/);
  });

  it("setValues writes another model's numbers in place: the same state, the same predictions", async () => {
    const a = await prunedModel();
    a.native.convertLayer(2, 'csr');
    const b = await prunedModel();
    b.native.convertLayer(2, 'csr');
    await a.fit(x, y, { epochs: 1, batchSize: 16 });  // a moves on; b keeps the same structure
    const sa = a.native.exportState();
    b.native.setValues({ step: sa.step, layers: numbersOf(sa) });
    const sb = b.native.exportState();
    expect(sb.step).to.equal(sa.step);
    expect(sb.layers).to.deep.equal(sa.layers);
    expect(await b.predict(x)).to.deep.equal(await a.predict(x));
    // Both train on identically: the gradients were cleared, the moments taken.
    await a.fit(x, y, { epochs: 1, batchSize: 16, shuffle: false });
    await b.fit(x, y, { epochs: 1, batchSize: 16, shuffle: false });
    expect(b.native.exportState().layers).to.deep.equal(a.native.exportState().layers);
  });

  it('setValues keeps what it is not given (moments, statistics, other layers), and may set the step alone', async () => {
    const m = await prunedModel();
    const s0 = m.native.exportState();
    const w = Float32Array.from(s0.layers[2].weight, (v) => v * 2);
    m.native.setValues({ step: s0.step + 5, layers: [{}, {}, { weight: w }] });
    const s1 = m.native.exportState();
    expect(s1.step).to.equal(s0.step + 5);
    expect(s1.layers[2].weight).to.deep.equal(w);
    expect(s1.layers[2].weightMoments).to.deep.equal(s0.layers[2].weightMoments);
    expect(s1.layers[2].bias).to.deep.equal(s0.layers[2].bias);
    expect(s1.layers[0]).to.deep.equal(s0.layers[0]);
    expect(s1.rng).to.deep.equal(s0.rng);
    m.native.setValues({ step: 3, layers: [] });
    expect(m.step).to.equal(3);
    expect(m.native.exportState().layers).to.deep.equal(s1.layers);
  });

  it('setValues rejects bad numbers with a clear error and changes nothing', async () => {
    const m = await prunedModel();
    const s0 = m.native.exportState();
    const rejected = (layers: object[], pattern: RegExp, type: typeof RangeError | typeof TypeError = RangeError, step = s0.step + 1) => {
      expect(() => m.native.setValues({ step, layers } as Parameters<typeof m.native.setValues>[0])).to.throw(type, pattern);
      expect(m.native.exportState()).to.deep.equal(s0);
    };
    const ok = numbersOf(s0);
    rejected(ok.slice(0, 2), /3 layers given|2 layers given, the model has 3/);
    rejected([ok[0], { ...ok[1], weight: new Float32Array(3) }, ok[2]], /layer 1: weight has 3 entries, expected 48/);
    rejected([ok[0], { ...ok[1], weightMoments: [ok[1].weightMoments[0]] }, ok[2]], /layer 1: 1 optimizer slots given, the optimizer uses 2/);
    rejected([ok[0], { ...ok[1], bias: new Float64Array(6) }, ok[2]], /layers\[1\]\.bias must be a Float32Array/, TypeError);
    rejected([ok[0], { ...ok[1], taylor: new Float64Array(2) }, ok[2]], /layer 1: a unit statistic has 2 entries/);
    // Zeros the structure implies: a masked position of layer 1, a dead unit of layer 0 and its column in layer 1.
    const masked = s0.layers[1].mask!.indexOf(0);
    const w1 = Float32Array.from(ok[1].weight);
    w1[masked] = 1;
    rejected([ok[0], { ...ok[1], weight: w1 }, ok[2]], /layer 1: weight \d+ is nonzero where the mask says pruned/);
    const dead = s0.layers[0].alive!.indexOf(0);
    const b0 = Float32Array.from(ok[0].bias);
    b0[dead] = 1;
    rejected([{ ...ok[0], bias: b0 }, ok[1], ok[2]], new RegExp(`layer 0: dead unit ${dead} has a nonzero bias`));
    const w0 = Float32Array.from(ok[0].weight);
    w0[dead * 6 + 1] = 1;
    rejected([{ ...ok[0], weight: w0 }, ok[1], ok[2]], new RegExp(`layer 0: weight ${dead * 6 + 1} is nonzero where the mask says pruned`));
    rejected(ok, /step must be a non-negative integer/, RangeError, -1);
    // Arrays another thread could change between the checks and the copy are refused.
    const shared = new Float32Array(new SharedArrayBuffer(ok[2].bias.byteLength));
    rejected([ok[0], ok[1], { ...ok[2], bias: shared }], /layers\[2\]\.bias must not be backed by a SharedArrayBuffer/, TypeError);
    // A getter that detaches an array read before it: every JS read happens before any array is used.
    const weight = Float32Array.from(ok[2].weight);
    const sneaky = { ...ok[2], weight, get taylor() { structuredClone(weight.buffer, { transfer: [weight.buffer] }); return undefined; } };
    rejected([ok[0], ok[1], sneaky], /layer 2: weight has 0 entries/);
    // A dead unit's row, and its column in the next layer, without masks (pruning masks them; a saved state may come without).
    const n = build(0);
    await n.fit(x, y, { epochs: 1, batchSize: 16 });
    n.prune({ amount: 0.25, structure: 'neuron', layer: 0 });
    const unmasked = n.native.exportState();
    delete unmasked.layers[0].mask;
    delete unmasked.layers[1].mask;
    n.native.importState(unmasked);
    const n0 = n.native.exportState();
    const gone = n0.layers[0].alive!.indexOf(0);
    const row = Float32Array.from(n0.layers[0].weight);
    row[gone * 6] = 1;
    const column = Float32Array.from(n0.layers[1].weight);
    column[8 + gone] = 1;  // unit 1's weight from the dead unit
    expect(() => n.native.setValues({ step: n0.step, layers: [{ weight: row }, {}, {}] })).to.throw(RangeError, new RegExp(`layer 0: dead unit ${gone} has a nonzero incoming weight`));
    expect(() => n.native.setValues({ step: n0.step, layers: [{}, { weight: column }, {}] })).to.throw(RangeError, new RegExp(`layer 1: input ${gone} comes from a dead unit`));
    expect(n.native.exportState()).to.deep.equal(n0);
  });
});
