// The whole model (not just the GEMM kernels, which the native tests cover)
// gives the same results at every SIMD level this CPU supports.
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as path from 'path';
import { runtime } from '../lib/index';
import { addon } from '../lib/native';
import { compiledMlp, maxAbs, maxAbsDiff, randomArray, randomLabels } from './helpers';

const LEVELS = ['scalar', 'avx2', 'avx512'] as const;

describe('model: SIMD levels', () => {
  const detected = runtime().simdDetected;
  const supported = LEVELS.slice(0, LEVELS.indexOf(detected as (typeof LEVELS)[number]) + 1);
  const original = runtime().simd;
  after(() => addon().setSimdLevel(original));

  async function trainAt(level: string) {
    expect(addon().setSimdLevel(level)).to.equal(true);
    const model = compiledMlp({ inputSize: 33, hidden: [65, 17], outputs: 7, seed: 3 }, 0.05);
    const x = randomArray(257 * 33, 1);
    const y = randomLabels(257, 7, 2);
    await model.fit(x, y, { epochs: 2, batchSize: 31 });
    return model.predict(x);
  }

  it(`trains to the same predictions at every supported level (${supported.join(', ')})`, async () => {
    const reference = await trainAt('scalar');
    for (const level of supported.slice(1)) {
      const out = await trainAt(level);
      // Different summation orders only: differences stay at rounding level.
      expect(maxAbsDiff(out, reference), level).to.be.below(1e-3 * Math.max(1, maxAbs(reference)));
    }
  });

  it('refuses a level this CPU lacks and rejects unknown names', () => {
    for (const level of LEVELS) expect(addon().setSimdLevel(level)).to.equal(supported.includes(level));
    expect(() => addon().setSimdLevel('sse9')).to.throw(RangeError, "'scalar', 'avx2' or 'avx512'");
    addon().setSimdLevel(original);
  });

  it('NEUROPLASTIC_SIMD forces a level; an unknown value warns and falls back', () => {
    const script = `const { runtime } = require(${JSON.stringify(path.resolve(__dirname, '../lib/index.ts'))}); console.log(runtime().simd);`;
    const run = (value: string) =>
      spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { env: { ...process.env, NEUROPLASTIC_SIMD: value }, encoding: 'utf8' });
    const forced = run('scalar');
    expect(forced.status).to.equal(0);
    expect(forced.stdout.trim()).to.equal('scalar');
    const bogus = run('bogus');
    expect(bogus.status).to.equal(0);
    expect(bogus.stdout.trim()).to.equal(detected);
    expect(bogus.stderr).to.match(/NEUROPLASTIC_SIMD/);
  });

  it('NEUROPLASTIC_THREADS sets the size of the thread pool', () => {
    const script = `const { runtime } = require(${JSON.stringify(path.resolve(__dirname, '../lib/index.ts'))}); console.log(runtime().threads);`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { env: { ...process.env, NEUROPLASTIC_THREADS: '3' }, encoding: 'utf8' });
    expect(r.stdout.trim()).to.equal('3');
  });
});
