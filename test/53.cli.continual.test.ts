// `neuroplastic continual` and `neuroplastic report`, run as child processes
// from the TypeScript source (node --import tsx lib/cli/main.ts).
import { expect } from 'chai';
import { cli, lastJson } from './cli_run';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';



describe('cli: continual and report', function () {
  this.timeout(120_000);
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-cli-continual-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('continual --tasks 2 --json prints the result as one JSON object', () => {
    const run = cli('continual', '--tasks', '2', '--json');
    const r = lastJson(run);
    expect(r.command).to.equal('continual');
    expect(r.method).to.equal('sgd');
    expect(r.tasks).to.deep.equal(['permuted-0', 'permuted-1']);
    expect(r.accuracy.map((row: number[]) => row.length)).to.deep.equal([1, 2]);
    expect(r.plasticity).to.have.length(2);
    // one epoch of the bundled digits is enough for a clearly-better-than-chance model
    for (const p of r.plasticity) expect(p).to.be.greaterThan(0.5);
    expect(r.averageAccuracy[1]).to.be.closeTo((r.accuracy[1][0] + r.accuracy[1][1]) / 2, 1e-12);
    expect(r.forgetting).to.have.length(2);
    expect(r.deadUnitFraction).to.have.length(2);
    expect(r.params[1]).to.equal(784 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10);
    expect(r.architecture).to.deep.equal([784, 100, 100, 10]);
    expect(run.stderr).to.match(/task 1\/2/);
  });

  it('continual prints one line per task and a summary; --report writes the page', () => {
    const html = path.join(dir, 'cycle.html');
    const run = cli('continual', '--tasks', '2', '--method', 'cycle', '--hidden', '32', '--train-samples', '1000', '--test-samples', '200', '--report', html);
    expect(run.code, run.stderr).to.equal(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).to.match(/^neuroplastic continual: 2 permuted .* method cycle/);
    expect(lines[1]).to.match(/^task 1\/2 +new-task acc \d+\.\d+% +average acc .* dead units .* params \d+/);
    expect(lines[2]).to.match(/^task 2\/2/);
    expect(run.stdout).to.match(/final average accuracy .* new-task accuracy: first 1 .* last 1/);
    const page = fs.readFileSync(html, 'utf8');
    expect(page).to.include('<svg');
    expect(page).to.include('<td>compact</td>');
  });

  it('report --from renders the JSON of continual --json and train --json', () => {
    const json = path.join(dir, 'run.json');
    const run = cli('continual', '--tasks', '2', '--hidden', '16', '--train-samples', '500', '--method', 'cbp', '--json', '--quiet');
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stderr).to.equal('');
    fs.writeFileSync(json, run.stdout);
    const out = path.join(dir, 'run.html');
    const rep = cli('report', '--from', json, '--out', out);
    expect(rep.code, rep.stderr).to.equal(0);
    expect(rep.stdout).to.include(`wrote ${out}`);
    const page = fs.readFileSync(out, 'utf8');
    expect(page).to.include('Accuracy matrix');
    expect(page).to.not.match(/https?:\/\//);

    const train = cli('train', '--epochs', '1', '--hidden', '16', '--json', '--quiet');
    expect(train.code, train.stderr).to.equal(0);
    const tjson = path.join(dir, 'train.json');
    fs.writeFileSync(tjson, train.stdout);
    const tout = path.join(dir, 'train.html');
    expect(cli('report', '--from', tjson, '--out', tout, '--title', 'T').code).to.equal(0);
    expect(fs.readFileSync(tout, 'utf8')).to.include('Accuracy per epoch');
  });

  it('bad arguments exit 2 naming the option', () => {
    const cases: [string[], RegExp][] = [
      [['continual', '--tasks', '0'], /--tasks must be an integer in \[1, 100000\]/],
      [['continual', '--method', 'magic'], /--method must be one of sgd, cbp, redo, cycle, dropin/],
      [['continual', '--lr', '-1'], /--lr must be a number > 0/],
      [['continual', '--hidden', '10,x'], /--hidden/],
      [['continual', '--bogus'], /unknown option --bogus/],
      [['continual', '--evaluate-on', 'future'], /--evaluate-on/],
      [['report', '--out', 'x.html'], /--from is required/],
      [['report', '--from', 'x.json'], /--out is required/],
    ];
    for (const [args, re] of cases) {
      const r = cli(...args);
      expect(r.code, args.join(' ')).to.equal(2);
      expect(r.stderr).to.match(re);
      expect(r.stdout).to.equal('');
    }
    // a missing file is a failure while running: exit 1
    const missing = cli('report', '--from', path.join(dir, 'nope.json'), '--out', path.join(dir, 'x.html'));
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.match(/--from .*nope\.json: file not found/);
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, '{"nothing": 1}');
    expect(cli('report', '--from', bad, '--out', path.join(dir, 'x.html')).stderr).to.match(/unrecognised JSON/);
  });

  it('--help lists the options and the JSON shape', () => {
    const c = cli('continual', '--help');
    expect(c.code).to.equal(0);
    expect(c.stdout).to.include('--epochs-per-task');
    expect(c.stdout).to.include('cbp');
    const r = cli('report', '--help');
    expect(r.code).to.equal(0);
    expect(r.stdout).to.include('"events"');
    const top = cli('--help');
    expect(top.stdout).to.match(/continual/);
    expect(top.stdout).to.match(/report/);
  });
});
