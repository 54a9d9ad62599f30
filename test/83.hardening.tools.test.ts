// Hardening of the tools around training found by an audit: the report's
// input checks and long runs, continual --report, the continual harness's
// up-front checks, and the IDX loaders' checks of what the files hold.
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CliError } from '../lib/cli/args';
import { continualCommand } from '../lib/cli/continual';
import * as continual from '../lib/continual';
import { loadFashionMnist, loadIdx, type Dataset, type TrainTest } from '../lib/data';
import * as report from '../lib/report';
import { MAX_HEAT_CELLS } from '../lib/report/svg';
import { cli } from './cli_run';
import { compiledMlp, idxBytes, randomArray } from './helpers';

/** Writes a t10k split of `labels.length` images of rows x cols into dir; returns the two paths. */
function writeTestSplit(dir: string, labels: number[], rows = 28, cols = 28): { images: string; labels: string } {
  const images = path.join(dir, 't10k-images-idx3-ubyte');
  const labelFile = path.join(dir, 't10k-labels-idx1-ubyte');
  fs.writeFileSync(images, idxBytes([labels.length, rows, cols], new Uint8Array(labels.length * rows * cols).fill(7)));
  fs.writeFileSync(labelFile, idxBytes([labels.length], labels));
  return { images, labels: labelFile };
}

/** A tiny in-memory data set whose labels are given. */
function dataset(labels: number[], features = 4): Dataset {
  const n = labels.length;
  return { x: randomArray(n * features, n), y: Uint8Array.from(labels), n, features, classes: 10, name: 'tiny' };
}

describe('tools hardening: report input is checked where it is read', () => {
  it('fromJson names the path of a field of the wrong shape', () => {
    const cases: [unknown, string][] = [
      [{ continual: { accuracy: 5 } }, 'report.fromJson(): continual.accuracy must be a matrix of numbers'],
      [{ continual: { accuracy: [[0.5], 0.4] } }, 'continual.accuracy[1] must be a row of numbers'],
      [{ continual: { accuracy: [[0.5], [0.1, 'x']] } }, 'continual.accuracy[1][1] must be a number or null, got "x"'],
      [{ continual: { plasticity: 'high' } }, 'continual.plasticity must be an array of numbers, got "high"'],
      [{ continual: { units: [[10, 4], 3] } }, 'continual.units[1] must be a row of numbers'],
      [{ model: { architecture: '784-10' } }, 'model.architecture must be an array of numbers, got "784-10"'],
      [{ model: { layers: [null] } }, 'model.layers[0] must be a layer object'],
      [{ events: [null] }, 'events[0] must be an event object'],
      [{ events: [{ step: 1, kind: 'prune', layer: 0, neuronIds: 'abc' }] }, 'events[0].neuronIds must be an array of numbers'],
      [{ events: [{ step: 1, kind: 'prune', layer: 0, count: '3' }] }, 'events[0].count must be a number or null, got "3"'],
      [{ history: { loss: [1, {}] } }, 'history.loss[1] must be a number or null'],
      [{ meta: { a: { b: 1 } } }, 'meta.a must be a string, number or boolean'],
      [{ compare: [{ name: 'sgd', result: { plasticity: [0.5, 'x'] } }] }, 'compare[0].result.plasticity[1] must be a number or null'],
      [{ title: 5 }, 'title must be a string, got 5'],
      // the saved outputs of the CLI are checked with the document's own field names
      [{ command: 'continual', accuracy: [[0.5], [0.4, true]] }, 'report.fromJson(): accuracy[1][1] must be a number or null, got true'],
      [{ command: 'continual', result: { accuracy: 5 } }, 'result.accuracy must be a matrix of numbers'],
      [{ command: 'continual', accuracy: [[1]], layers: [{ units: 'many' }] }, 'layers[0].units must be a number or null, got "many"'],
      [{ command: 'train', history: { accuracy: 'x' } }, 'history.accuracy must be an array of numbers'],
      [{ command: 'train', params: [1, 2] }, 'params must be a number or null, got Array(2)'],
    ];
    for (const [doc, message] of cases) {
      expect(() => report.fromJson(doc), JSON.stringify(doc)).to.throw(TypeError, message);
    }
    // null stands for NaN in JSON, and for an absent optional field
    const ok = report.fromJson({ continual: { accuracy: [[null], [0.5, null]], plasticity: [null, 0.5] }, title: null, events: [{ step: 1, kind: 'prune', layer: 0, densityBefore: null }] });
    expect(report.render(ok)).to.include('not evaluated');
  });

  it('render checks its input too, naming the field', () => {
    expect(() => report.render({ events: [{ kind: 'prune' }] } as never)).to.throw(TypeError, 'report.render(): events[0].step must be a number, got undefined');
    expect(() => report.render({ continual: { accuracy: 5 } } as never)).to.throw(TypeError, 'report.render(): continual.accuracy must be a matrix');
    expect(() => report.render(5 as never)).to.throw(TypeError, 'report.render(): input must be an object');
  });

  describe('the report command', function () {
    this.timeout(60_000);
    let dir: string;
    before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-tools-report-')); });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('blames --from, not --out, for a bad document; only a bad --out path names --out', () => {
      const bad = path.join(dir, 'bad.json');
      fs.writeFileSync(bad, '{"continual":{"accuracy":5}}');
      const out = path.join(dir, 'ok.html');
      const r = cli('report', '--from', bad, '--out', out);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.include(`--from ${bad}: continual.accuracy must be a matrix of numbers`);
      expect(r.stderr).to.not.include('--out');
      expect(fs.existsSync(out)).to.equal(false);

      const good = path.join(dir, 'good.json');
      fs.writeFileSync(good, '{"events":[]}');
      const missing = path.join(dir, 'no-such-folder', 'r.html');
      const w = cli('report', '--from', good, '--out', missing);
      expect(w.code).to.equal(2);
      expect(w.stderr).to.include(`--out ${missing}: folder ${path.dirname(missing)} does not exist`);
    });
  });
});

describe('tools hardening: reports of long runs', () => {
  it('renders 150,000 tasks and 150,000 epochs without overflowing the stack', () => {
    const T = 150_000;
    const curve = Array.from({ length: T }, (_, i) => 0.5 + 0.4 * Math.sin(i));
    const html = report.render({
      continual: { plasticity: curve, averageAccuracy: curve, deadUnitFraction: curve, params: curve, units: curve.map(() => [100, 10]), accuracy: [] },
      history: { loss: curve, accuracy: curve },
    });
    expect(html).to.include('Accuracy per epoch');
    expect(html).to.include('Units per layer');
  });

  it('draws a long accuracy matrix as a heat map of task blocks (mean of each block)', () => {
    const T = 1000;
    // the 'seen' triangle, 500,500 entries of 0.5
    const accuracy = Array.from({ length: T }, (_, i) => new Array<number>(i + 1).fill(0.5));
    const html = report.render({ continual: { accuracy } });
    const map = html.slice(html.indexOf('Accuracy matrix'));
    const cells = (map.match(/<rect/g) ?? []).length;
    expect(cells).to.be.at.most(MAX_HEAT_CELLS * MAX_HEAT_CELLS + 10); // + the colour scale
    const size = Math.ceil(T / MAX_HEAT_CELLS);
    expect(map).to.include(`mean over ${size} x ${size} tasks`);
    // the first diagonal block holds the triangle 1 + 2 + ... + size; the one right of it nothing
    expect(map).to.include(`after tasks 0-${size - 1}, tasks 0-${size - 1}: mean 50.0% of ${(size * (size + 1)) / 2} entries`);
    expect(map).to.include(`after tasks 0-${size - 1}, tasks ${size}-${2 * size - 1}: not evaluated`);
  });
});

describe('tools hardening: continual --report', function () {
  this.timeout(120_000);
  let dir: string;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-tools-continual-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const SMALL = ['--tasks', '1', '--hidden', '8', '--train-samples', '100', '--test-samples', '50'];

  it('refuses a report path whose folder is missing before training (exit 2, naming --report)', () => {
    const file = path.join(dir, 'missing', 'r.html');
    const r = cli('continual', ...SMALL, '--json', '--report', file);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.include(`--report ${file}: folder ${path.dirname(file)} does not exist`);
    expect(r.stderr).to.not.match(/task 1\/1/);
    expect(r.stdout).to.equal('');
    const folder = cli('continual', ...SMALL, '--report', dir);
    expect(folder.code).to.equal(2);
    expect(folder.stderr).to.include(`--report ${dir}: ${dir} is a folder`);
  });

  it('prints the --json results before writing the report, so a failing write loses nothing', async () => {
    const folder = path.join(dir, 'vanishing');
    fs.mkdirSync(folder);
    let stdout = '';
    const io = {
      stdout: { write: (s: string) => { stdout += s; return true; } },
      // The folder passes the check at the start, then disappears during the run.
      stderr: { write: (s: string) => { if (/^task 1\/1/.test(s)) fs.rmSync(folder, { recursive: true }); return true; } },
      stderrIsTTY: false,
    } as never;
    let error: unknown;
    try {
      await continualCommand.run([...SMALL, '--json', '--report', path.join(folder, 'r.html')], io);
    } catch (err) {
      error = err;
    }
    expect(error).to.be.instanceOf(CliError);
    expect((error as Error).message).to.match(/^--report /);
    const result = JSON.parse(stdout.trimEnd().split('\n').pop()!);
    expect(result.command).to.equal('continual');
    expect(result.plasticity).to.have.length(1);
  });
});

describe('tools hardening: the continual harness checks up front', () => {
  it('splitClasses names a group with no test (or train) samples when the stream is built', () => {
    const both = [0, 1, 2, 0, 1, 2];
    const noTwo = [0, 1, 0, 1];
    const d: TrainTest = { train: dataset(both), test: dataset(noTwo) };
    expect(() => continual.splitClasses(d, [[0, 1], [2]])).to.throw(RangeError,
      'continual.splitClasses(): groups[1] (labels 2) has no samples in the test split');
    const swapped: TrainTest = { train: dataset(noTwo), test: dataset(both) };
    expect(() => continual.splitClasses(swapped, [[0], [1, 2]])).to.not.throw();
    expect(() => continual.splitClasses(swapped, [[0], [2]])).to.throw(RangeError, 'groups[1] (labels 2) has no samples in the train split');
  });

  it('run() checks epochsPerTask, batchSize and shuffle against fit()\'s limits before training', async () => {
    const d: TrainTest = { train: dataset([0, 1, 2, 0]), test: dataset([0, 1, 2]) };
    const tasks = continual.permuted(d, 2, 1);
    const model = compiledMlp({ inputSize: 4, hidden: [4], outputs: 3 });
    const cases: [object, RegExp][] = [
      [{ epochsPerTask: 1e300 }, /^continual\.run\(\): epochsPerTask must be a positive integer \(at most 1000000000\), got 1e\+300$/],
      [{ batchSize: 2 ** 25 }, /^continual\.run\(\): batchSize must be a positive integer \(at most 16777216\)/],
      [{ shuffle: 'yes' }, /^continual\.run\(\): shuffle must be a boolean/],
      [{ callbacks: {} }, /^continual\.run\(\): callbacks must be an array/],
    ];
    for (const [options, re] of cases) {
      let error: unknown;
      try {
        await continual.run(model, tasks, options as never);
      } catch (err) {
        error = err;
      }
      expect(error, JSON.stringify(options)).to.be.instanceOf(Error);
      expect((error as Error).message).to.match(re);
    }
    expect(model.step).to.equal(0);
  });

  it('run() names the task a model cannot take before training', async () => {
    const d: TrainTest = { train: dataset([0, 1, 2, 0]), test: dataset([0, 1, 2]) };
    const tasks = continual.permuted(d, 2, 1);
    const narrow = compiledMlp({ inputSize: 5, hidden: [4], outputs: 3 });
    let error: unknown;
    try {
      await continual.run(narrow, tasks);
    } catch (err) {
      error = err;
    }
    expect((error as Error).message).to.equal('continual.run(): tasks[0] has 4 features per sample, but the model takes inputSize 5');
    const fewOutputs = compiledMlp({ inputSize: 4, hidden: [4], outputs: 2 });
    error = undefined;
    try {
      await continual.run(fewOutputs, tasks);
    } catch (err) {
      error = err;
    }
    expect((error as Error).message).to.match(/^continual\.run\(\): tasks\[0\] has \d+ classes, but the model has 2 outputs$/);
    expect(narrow.step + fewOutputs.step).to.equal(0);
  });
});

describe('tools hardening: IDX loaders check what the files hold', () => {
  let tmp: string;
  let count = 0;
  const fresh = (): string => {
    const dir = path.join(tmp, String(count++));
    fs.mkdirSync(dir);
    return dir;
  };
  before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'np-tools-idx-')); });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('rejects a split with no samples, naming the file', () => {
    const dir = fresh();
    const files = writeTestSplit(dir, []);
    expect(() => loadIdx(dir, { split: 'test' })).to.throw(Error, `loadIdx(): ${files.images} holds no images`);
    expect(() => loadFashionMnist({ dir, split: 'test' })).to.throw(Error, `loadFashionMnist(): ${files.images} holds no images`);
  });

  it('Fashion-MNIST: labels 0 to 9 and 28 x 28 images, always 10 classes', () => {
    const dir = fresh();
    const files = writeTestSplit(dir, [3, 255, 1]);
    expect(() => loadFashionMnist({ dir, split: 'test' })).to.throw(Error,
      `loadFashionMnist(): ${files.labels} has label 255 at sample 1; Fashion-MNIST has 10 classes, labelled 0 to 9`);
    writeTestSplit(dir, [3, 10, 1]);
    expect(() => loadFashionMnist({ dir, split: 'test' })).to.throw(Error, 'has label 10 at sample 1');
    writeTestSplit(dir, [3, 4, 1], 1, 1);
    expect(() => loadFashionMnist({ dir, split: 'test' })).to.throw(Error, `${files.images} holds 1 x 1 images; Fashion-MNIST images are 28 x 28`);
    // a split that lacks the last classes still has the set's 10
    writeTestSplit(dir, [3, 4, 1]);
    expect(loadFashionMnist({ dir, split: 'test' }).classes).to.equal(10);
  });

  it('loadIdx takes any byte label by default, and checks them against options.classes', () => {
    const dir = fresh();
    const files = writeTestSplit(dir, [3, 255, 1], 2, 2);
    // IDX records no class count: the largest label decides (documented)
    expect(loadIdx(dir, { split: 'test' }).classes).to.equal(256);
    expect(() => loadIdx(dir, { split: 'test', classes: 10 })).to.throw(Error,
      `loadIdx(): ${files.labels} has label 255 at sample 1; the set (options.classes) has 10 classes, labelled 0 to 9`);
    writeTestSplit(dir, [3, 4, 1], 2, 2);
    expect(loadIdx(dir, { split: 'test', classes: 12 }).classes).to.equal(12);
    expect(() => loadIdx(dir, { classes: 0 })).to.throw(RangeError, 'loadIdx(): options.classes must be a positive integer (at most 256), got 0');
  });
});
