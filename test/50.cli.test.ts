// The `neuroplastic` command line, run as a child process from the TypeScript
// source (node --import tsx lib/cli/main.ts) so these tests need no build;
// test/60.package.test.ts runs the built dist/cli/main.js.
import { expect } from 'chai';
import { cli, lastJson, ROOT } from './cli_run';
import { writeQuadrantSet } from './helpers';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';



const TRAIN_OPTIONS = ['--data', '--epochs', '--batch-size', '--lr', '--momentum', '--optimizer', '--hidden',
  '--dropout', '--seed', '--json', '--quiet'];

describe('cli: neuroplastic --help / --version', () => {
  it('--help exits 0 and lists the train command', () => {
    const r = cli('--help');
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(/Usage: neuroplastic <command>/);
    expect(r.stdout).to.match(/^\s+train\s/m);
  });

  it('train --help exits 0 and lists every option', () => {
    const r = cli('train', '--help');
    expect(r.code).to.equal(0);
    for (const option of TRAIN_OPTIONS) expect(r.stdout).to.include(option);
  });

  it('--version prints the package version', () => {
    const r = cli('--version');
    expect(r.code).to.equal(0);
    expect(r.stdout.trim()).to.equal(JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version);
  });

  it('no command prints the usage to stderr and exits 2', () => {
    const r = cli();
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/Usage: neuroplastic/);
  });
});

describe('cli: neuroplastic train', () => {
  it('trains LeNet-300-100 on the bundled MNIST: --json puts one result object on the last stdout line', () => {
    const run = cli('train', '--epochs', '2', '--json');
    const r = lastJson(run);
    expect(r.accuracy).to.be.greaterThan(0.85);
    expect(r.params).to.equal(266610);
    expect(r.architecture).to.deep.equal([784, 300, 100, 10]);
    expect(r.epochs).to.equal(2);
    expect(r.loss).to.be.a('number').and.be.greaterThan(0);
    expect(r.seconds).to.be.greaterThan(0);
    expect(r.samplesPerSecond).to.be.greaterThan(0);
    expect(r.history.loss).to.have.length(2);
    expect(r.history.valAccuracy).to.have.length(2);
    expect(r.simd).to.be.a('string');
    expect(r.threads).to.be.at.least(1);
    expect(r.data).to.include({ name: 'mnist', train: 8000, test: 2000 });
    // stdout holds only the object; the header and epoch lines went to stderr
    expect(run.stdout.trimEnd().split('\n')).to.have.length(1);
    expect(run.stderr).to.match(/^neuroplastic train: mnist/);
    expect(run.stderr).to.match(/^epoch 2\/2 /m);
  });

  it('--hidden sets the hidden layers: --hidden 32 has 784*32+32+32*10+10 parameters', () => {
    const r = lastJson(cli('train', '--hidden', '32', '--epochs', '1', '--json', '--quiet'));
    expect(r.params).to.equal(784 * 32 + 32 + 32 * 10 + 10);
    expect(r.architecture).to.deep.equal([784, 32, 10]);
  });

  it('--optimizer adam, --dropout and --batch-size reach the model', () => {
    const r = lastJson(cli('train', '--hidden', '32', '--epochs', '1', '--optimizer', 'adam', '--dropout', '0.2',
      '--batch-size', '100', '--json', '--quiet'));
    expect(r.optimizer).to.include({ kind: 'adam', learningRate: 0.001 });
    expect(r.dropout).to.equal(0.2);
    expect(r.batchSize).to.equal(100);
    expect(r.accuracy).to.be.greaterThan(0.7);
  });

  it('the same --seed gives the same result', () => {
    const args = ['train', '--hidden', '16', '--epochs', '1', '--seed', '7', '--json', '--quiet'];
    const a = lastJson(cli(...args));
    const b = lastJson(cli(...args));
    expect(b.loss).to.equal(a.loss);
    expect(b.history.loss).to.deep.equal(a.history.loss);
  });

  it('without --json prints a header, a result table and the model summary to stdout, one line per epoch to stderr', () => {
    const r = cli('train', '--hidden', '16', '--epochs', '3');
    expect(r.code, r.stderr).to.equal(0);
    const out = r.stdout.split('\n');
    expect(out[0]).to.match(/^neuroplastic train: mnist \(bundled\), 8000 train \/ 2000 test.*mlp 784-16-10 relu.*threads?$/);
    expect(r.stdout).to.match(/held-out accuracy\s+0\.\d{4}/);
    expect(r.stdout).to.match(/parameters\s+12730/);
    expect(r.stdout).to.match(/samples\/s\s+\S+/);
    expect(r.stdout).to.match(/Total parameters: 12730/);
    // stderr is not a terminal here: no bar, no carriage returns, one line per epoch
    expect(r.stderr).to.not.include('\r');
    expect(r.stderr.trimEnd().split('\n').map((l) => l.slice(0, 9))).to.deep.equal(['epoch 1/3', 'epoch 2/3', 'epoch 3/3']);
  });

  it('--quiet leaves stderr empty', () => {
    const r = cli('train', '--hidden', '16', '--epochs', '1', '--quiet');
    expect(r.code).to.equal(0);
    expect(r.stderr).to.equal('');
    expect(r.stdout).to.include('held-out accuracy');
  });

  describe('--data DIR', () => {
    let tmp: string;
    before(() => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'neuroplastic-cli-'));
      writeQuadrantSet(tmp, 400, 100);
    });
    after(() => fs.rmSync(tmp, { recursive: true, force: true }));

    it('trains on the IDX files in DIR and tests on its t10k split', () => {
      const r = lastJson(cli('train', '--data', tmp, '--hidden', '16', '--epochs', '5', '--json', '--quiet'));
      expect(r.data).to.include({ name: path.basename(tmp), train: 400, test: 100, features: 36, classes: 4 });
      expect(r.params).to.equal(36 * 16 + 16 + 16 * 4 + 4);
      expect(r.accuracy).to.be.greaterThan(0.9);
    });

    it('a folder without the IDX files exits 1 and names --data and what is missing', () => {
      const empty = path.join(tmp, 'empty');
      fs.mkdirSync(empty);
      const r = cli('train', '--data', empty);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(/^neuroplastic: --data .*empty.*train-images-idx3-ubyte/);
      expect(r.stderr).to.not.match(/\n\s+at /);
    });
  });

  describe('bad command lines exit non-zero with a message naming the option and value', () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['--epochs', '0'], 2, /--epochs must be a positive integer, got "0"/],
      [['--epochs', 'abc'], 2, /--epochs must be a positive integer, got "abc"/],
      [['--epochs=2.5'], 2, /--epochs must be a positive integer, got "2.5"/],
      [['--epochs'], 2, /--epochs needs a value/],
      [['--batch-size', '-3'], 2, /--batch-size must be a positive integer, got "-3"/],
      [['--hidden', '0,5'], 2, /--hidden must be .*positive integers.*got "0,5"/],
      [['--hidden', '300,,100'], 2, /--hidden must be .*got "300,,100"/],
      [['--lr', '-1'], 2, /--lr must be a number > 0, got "-1"/],
      [['--lr', 'fast'], 2, /--lr must be a number > 0, got "fast"/],
      [['--momentum', '1'], 2, /--momentum must be a number in \[0, 1\), got "1"/],
      [['--dropout', '1.5'], 2, /--dropout must be a number in \[0, 1\), got "1.5"/],
      [['--optimizer', 'rmsprop'], 2, /--optimizer must be one of sgd, adam, got "rmsprop"/],
      [['--optimizer', 'adam', '--momentum', '0.5'], 2, /--momentum applies to --optimizer sgd only/],
      [['--seed', '-1'], 2, /--seed must be a non-negative integer, got "-1"/],
      [['--json=yes'], 2, /--json takes no value/],
      [['--frobnicate', '3'], 2, /unknown option --frobnicate/],
      [['extra'], 2, /unexpected argument "extra"/],
      [['--data', '/nonexistent/neuroplastic-data'], 1, /--data \/nonexistent\/neuroplastic-data: directory not found/],
    ];
    for (const [args, code, message] of cases) {
      it(`train ${args.join(' ')} -> exit ${code}`, () => {
        const r = cli('train', ...args);
        expect(r.code, r.stderr).to.equal(code);
        expect(r.stderr).to.match(/^neuroplastic: /);
        expect(r.stderr).to.match(message);
        if (code === 2) expect(r.stderr).to.include("Try 'neuroplastic train --help'");
        expect(r.stderr).to.not.match(/\n\s+at /);
        expect(r.stdout).to.equal('');
      });
    }

    it('an unknown command says which commands exist and exits 2', () => {
      const r = cli('fly');
      expect(r.code).to.equal(2);
      expect(r.stderr).to.match(/unknown command "fly" \(commands: .*train.*\)/);
    });

    it('an option before the command exits 2', () => {
      const r = cli('--epochs', '3', 'train');
      expect(r.code).to.equal(2);
      expect(r.stderr).to.match(/unknown option --epochs/);
    });
  });
});
