// `neuroplastic train --prune / --prune-neurons`: pruning while training from
// the command line. Runs the CLI as a child process from the TypeScript source,
// like test/50.cli.test.ts, so no build is needed.
import { expect } from 'chai';
import { cli, lastJson } from './cli_run';



interface LayerRow {
  units: number;
  inputs: number;
  nnz: number;
  density: number;
  format: string;
  bytes: number;
}

describe('cli: neuroplastic train --prune / --prune-neurons', function () {
  this.timeout(180_000);

  it('--help lists the pruning options', () => {
    const r = cli('train', '--help');
    expect(r.code).to.equal(0);
    for (const option of ['--prune ', '--prune-neurons', '--prune-criterion', '--prune-neurons-epoch']) {
      expect(r.stdout).to.include(option);
    }
  });

  it('--prune 0.9 prunes 90% of the weights during training, stores sparse layers as CSR and keeps the accuracy', () => {
    const r = lastJson(cli('train', '--prune', '0.9', '--epochs', '3', '--json', '--quiet'));
    const rows = r.layers as LayerRow[];
    expect(rows.map((l) => [l.units, l.inputs])).to.deep.equal([[300, 784], [100, 300], [10, 100]]);
    const nnz = rows.reduce((s, l) => s + l.nnz, 0);
    const weights = rows.reduce((s, l) => s + l.units * l.inputs, 0);
    expect(r.nnz).to.equal(nnz);
    expect(nnz / weights).to.be.at.most(0.1 + 1e-3);
    expect(r.density).to.be.closeTo(nnz / weights, 1e-9);
    expect(r.compression).to.be.closeTo(weights / nnz, 1e-9);
    expect(r.compression).to.be.at.least(9.9);
    expect(rows.some((l) => l.format === 'csr')).to.equal(true);
    for (const l of rows) {
      expect(l.density).to.be.closeTo(l.nnz / (l.units * l.inputs), 1e-9);
      expect(l.bytes).to.be.greaterThan(0);
    }
    expect(r.accuracy).to.be.greaterThan(0.85);
    expect(r.pruning.sparsity).to.equal(0.9);
    const { startStep, endStep, every } = r.pruning.schedule;
    const total = 3 * Math.ceil(r.data.train / r.batchSize);
    expect(startStep).to.be.within(0.05 * total, 0.15 * total);
    expect(endStep).to.be.within(0.6 * total, 0.8 * total);
    expect(every).to.be.within(1, 0.02 * total);
  });

  it('--prune-neurons 0.3 removes 30% of each hidden layer mid-training and compacts it', () => {
    const r = lastJson(cli('train', '--prune-neurons', '0.3', '--epochs', '2', '--json', '--quiet'));
    const rows = r.layers as LayerRow[];
    expect(rows.map((l) => [l.units, l.inputs])).to.deep.equal([[210, 784], [70, 210], [10, 70]]);
    expect(r.nnz).to.equal(210 * 784 + 70 * 210 + 10 * 70);
    expect(r.density).to.equal(1);
    expect(r.compression).to.be.closeTo((784 * 300 + 300 * 100 + 100 * 10) / r.nnz, 1e-9);
    expect(r.params).to.equal(r.nnz + 210 + 70 + 10);
    expect(r.pruning).to.include({ neurons: 0.3, criterion: 'l2', neuronsEpoch: 1 });
    expect(r.accuracy).to.be.greaterThan(0.8);
  });

  it('--prune-criterion and --prune-neurons-epoch choose how and when neurons go', () => {
    const r = lastJson(cli('train', '--hidden', '40,20', '--prune-neurons', '0.5', '--prune-criterion', 'taylor',
      '--prune-neurons-epoch', '1', '--epochs', '1', '--json', '--quiet'));
    expect((r.layers as LayerRow[]).map((l) => l.units)).to.deep.equal([20, 10, 10]);
    expect(r.pruning).to.include({ neurons: 0.5, criterion: 'taylor', neuronsEpoch: 1 });
  });

  it('the text report shows nonzero weights, compression and the per-layer formats', () => {
    const r = cli('train', '--hidden', '64', '--prune', '0.75', '--epochs', '1', '--quiet');
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/nonzero weights\s+\d+\s+\(density 0\.2\d\d\)/);
    expect(r.stdout).to.match(/compression\s+\d+\.\dx/);
    expect(r.stdout).to.match(/density\s+format\s+bytes/);
  });

  it('bad pruning values exit 2 with a message naming the option', () => {
    const cases: [string[], RegExp][] = [
      [['--prune', '1'], /--prune must be a number in \[0, 1\), got "1"/],
      [['--prune', '-0.5'], /--prune must be a number in \[0, 1\)/],
      [['--prune', 'lots'], /--prune must be a number/],
      [['--prune'], /--prune needs a value/],
      [['--prune-neurons', '1.5'], /--prune-neurons must be a number in \[0, 1\), got "1.5"/],
      [['--prune-neurons', '0.3', '--prune-criterion', 'magnitude'], /--prune-criterion must be one of l1, l2, activation, taylor, random/],
      [['--prune-criterion', 'l1'], /--prune-criterion applies to --prune-neurons only/],
      [['--prune-neurons', '0.3', '--epochs', '2', '--prune-neurons-epoch', '3'], /--prune-neurons-epoch must be at most --epochs \(2\)/],
    ];
    for (const [args, message] of cases) {
      const r = cli('train', ...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).to.equal(2);
      expect(r.stderr).to.match(message);
      expect(r.stdout).to.equal('');
    }
  });
});
