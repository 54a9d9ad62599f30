// `neuroplastic inspect FILE`: layers, parameters, step/epoch, optimizer and
// the event timeline of a checkpoint (text and --json), tensors of a foreign
// safetensors file, and clear errors (exit 1) for missing or corrupt files.
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Sequential, layers, optimizers } from '../lib/index';
import { encode } from '../lib/checkpoint/safetensors';
import { inspectFile } from '../lib/cli/inspect';
import { randomArray, randomLabels } from './helpers';

const ROOT = path.resolve(__dirname, '..');
const MAIN = path.join(ROOT, 'lib', 'cli', 'main.ts');

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, NEUROPLASTIC_DEBUG: '' },
    timeout: 60_000,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('cli: inspect', function () {
  this.timeout(120_000);
  let dir: string;
  let file: string;
  let model: Sequential;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-inspect-'));
    file = path.join(dir, 'model.safetensors');
    model = new Sequential({ inputSize: 6, seed: 4, name: 'tiny' });
    model.add(layers.dense({ units: 12, activation: 'relu' }));
    model.add(layers.dropout({ rate: 0.1 }));
    model.add(layers.dense({ units: 3 }));
    model.compile({ optimizer: optimizers.sgd({ learningRate: 0.05, momentum: 0.9 }), loss: 'softmaxCrossEntropy' });
    await model.fit(randomArray(40 * 6, 1), randomLabels(40, 3, 2), { epochs: 2, batchSize: 10 });
    model.prune({ structure: 'neuron', layer: 0, amount: 0.25, criterion: 'l1' });
    model.compact();
    model.prune({ amount: 0.8 });
    await model.save(file);
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('describes layers, parameters, step, epoch, optimizer and events (JSON API)', async () => {
    const r = await inspectFile(file, { events: 50, ids: 3 });
    expect(r.kind).to.equal('neuroplastic');
    expect(r.bytes).to.equal(fs.statSync(file).size);
    expect(r.layers!.map((l) => [l.position, l.units, l.inputs])).to.deep.equal([
      [0, (model.layers[0] as { units: number }).units, 6],
      [2, 3, (model.layers[0] as { units: number }).units],
    ]);
    expect(r.layers![0].units).to.equal(9);
    for (const [i, l] of r.layers!.entries()) {
      const live = model.layers[l.position] as ReturnType<typeof layers.dense>;
      expect(l.nnz).to.equal(live.nnz);
      expect(l.format).to.equal(live.format);
      expect(l.density).to.be.closeTo(live.density, 1e-12);
      expect(l.fileBytes, `layer ${i}`).to.be.greaterThan(0);
    }
    expect(r.dropout).to.deep.equal([{ position: 1, rate: 0.1 }]);
    expect(r.params).to.equal(model.countParams());
    expect(r.step).to.equal(model.step).and.to.equal(8);
    expect(r.epoch).to.equal(1);
    expect(r.optimizer).to.include({ kind: 'sgd', learningRate: 0.05, momentum: 0.9 });
    expect(r.loss).to.equal('softmaxCrossEntropy');
    expect(r.eventCount).to.equal(model.events.length);
    const prune = r.events!.find((e) => e.kind === 'prune' && e.criterion === 'l1')!;
    expect(prune).to.include({ layer: 0, count: 3, neuronIdCount: 3, step: 8 });
    expect(prune.neuronIds).to.have.length(3);
    expect(r.eventsByKind).to.include.keys('prune', 'compact');
  });

  it('prints a report, and one JSON object with --json', () => {
    const text = cli('inspect', file);
    expect(text.code, text.stderr).to.equal(0);
    expect(text.stdout).to.match(/neuroplastic checkpoint \(format 1\)/);
    expect(text.stdout).to.match(/Model: tiny \(inputSize 6, outputs 3\)/);
    expect(text.stdout).to.match(/Step 8, epoch 1; optimizer sgd \(learningRate 0\.05, momentum 0\.9\)/);
    expect(text.stdout).to.match(/dense\(relu\)\s+9\s+6/);
    expect(text.stdout).to.match(/Total parameters: \d+/);
    expect(text.stdout).to.match(/Events: \d+ \(prune \d+, compact 1/);
    const json = cli('inspect', '--json', file, '--events', '1');
    expect(json.code, json.stderr).to.equal(0);
    const lines = json.stdout.trim().split('\n');
    expect(lines).to.have.length(1);
    const r = JSON.parse(lines[0]);
    expect(r.command).to.equal('inspect');
    expect(r.events).to.have.length(1);
    expect(r.eventCount).to.be.greaterThan(1);
  });

  it('lists the tensors of a safetensors file that is not a neuroplastic checkpoint', async () => {
    const plain = path.join(dir, 'plain.safetensors');
    const tensors = new Map([
      ['fc1.weight', { shape: [4, 3], data: new Float32Array(12) }],
      ['fc1.bias', { shape: [4], data: new Float32Array(4) }],
    ]);
    fs.writeFileSync(plain, encode(tensors, { source: 'test' }));
    const r = await inspectFile(plain, { events: 5, ids: 5 });
    expect(r.kind).to.equal('safetensors');
    expect(r.tensors).to.deep.equal([
      { name: 'fc1.bias', dtype: 'F32', shape: [4], bytes: 16 },
      { name: 'fc1.weight', dtype: 'F32', shape: [4, 3], bytes: 48 },
    ]);
    expect(r.metadataKeys).to.deep.equal(['source']);
  });

  it('fails clearly (exit 1) on a missing, truncated or corrupt file, and exit 2 without FILE', () => {
    const missing = cli('inspect', path.join(dir, 'nope.safetensors'));
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.match(/nope\.safetensors: cannot read \(no such file\)/);
    const truncated = path.join(dir, 'truncated.safetensors');
    fs.writeFileSync(truncated, fs.readFileSync(file).subarray(0, 100));
    const t = cli('inspect', truncated);
    expect(t.code).to.equal(1);
    expect(t.stderr).to.match(/truncated\.safetensors: .*(truncated|runs past)/);
    expect(t.stderr).not.to.match(/\n\s+at /); // no stack
    const corrupt = path.join(dir, 'corrupt.safetensors');
    const bytes = Buffer.from(fs.readFileSync(file));
    bytes[8] = '['.charCodeAt(0); // the JSON header is no longer an object
    fs.writeFileSync(corrupt, bytes);
    const c = cli('inspect', corrupt, '--json');
    expect(c.code).to.equal(1);
    expect(c.stdout).to.equal('');
    expect(c.stderr).to.match(/corrupt\.safetensors: header is not a JSON object/);
    const none = cli('inspect');
    expect(none.code).to.equal(2);
    expect(none.stderr).to.match(/FILE is missing/);
  });

  it('says how many older events the log limit dropped', async () => {
    const m = new Sequential({ inputSize: 4, seed: 1, eventLimit: 3 });
    m.add(layers.dense({ units: 4, activation: 'relu' })).add(layers.dense({ units: 2 }));
    for (let i = 0; i < 7; i++) m.grow({ layer: 0, count: 1, init: 'zero' });
    const limited = path.join(dir, 'limited.safetensors');
    await m.save(limited);
    const r = await inspectFile(limited, { events: 10, ids: 3 });
    expect(r.eventCount).to.equal(3);
    expect(r.eventsDropped).to.equal(4);
    expect(cli('inspect', limited).stdout).to.match(/Events: 3 \(grow 3\); 4 older ones dropped by the log limit/);
  });
});
