// Fuzzing the native boundary: test/fuzz/driver.ts makes thousands of calls
// to the public API with wrong types, out-of-range, NaN/Infinity and extreme
// values, calls out of order, concurrent calls and corrupted checkpoints, in
// child processes (so a crash or a hang is observed, not suffered). Each child
// prints a JSON summary; here we require no crash (exit code 0, no signal), no
// hang (timeout), no invalid call silently accepted, no rejection without an
// Error message, no rejected call that changed the model, and >= 2,000 invalid
// calls in all. FUZZ_SEEDS / FUZZ_COUNT override the seeds and the calls per child.
import { expect } from 'chai';
import { spawn } from 'child_process';
import * as path from 'path';
import type { FuzzSummary } from './fuzz/driver';

const ROOT = path.resolve(__dirname, '..');
const DRIVER = path.join(__dirname, 'fuzz', 'driver.ts');
const SEEDS = (process.env.FUZZ_SEEDS ?? '1,2,3,4').split(',').map(Number);
const COUNT = Number(process.env.FUZZ_COUNT ?? 1500);
const TIMEOUT_MS = 90_000;

interface ChildResult {
  seed: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  hung: boolean;
  lastCase: string;
  stderrTail: string;
  summary: FuzzSummary | null;
}

function runChild(seed: number, count: number): Promise<ChildResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', DRIVER, String(seed), String(count)], {
      cwd: ROOT,
      env: { ...process.env, FUZZ_QUIET: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
    });
    let hung = false;
    const timer = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
    }, TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const cases = stderr.split('\n').filter((l) => l.startsWith('case '));
      let summary: FuzzSummary | null = null;
      try {
        summary = JSON.parse(stdout.trim().split('\n').pop() ?? '');
      } catch {
        summary = null;
      }
      resolve({
        seed,
        code,
        signal,
        hung,
        lastCase: cases[cases.length - 1] ?? '(none)',
        stderrTail: stderr.split('\n').filter((l) => !l.startsWith('case ')).join('\n').slice(-2000),
        summary,
      });
    });
  });
}

describe('fuzz: the public API under bad and extreme input (child processes)', function () {
  this.timeout(TIMEOUT_MS * 2 + 30_000);

  it(`${SEEDS.length} children x ${COUNT} calls: no crash, no hang, nothing invalid silently accepted`, async () => {
    // Two children at a time: the machines that run this have few cores.
    const results: ChildResult[] = [];
    for (let i = 0; i < SEEDS.length; i += 2) {
      results.push(...(await Promise.all(SEEDS.slice(i, i + 2).map((s) => runChild(s, COUNT)))));
    }
    const crashes = results.filter((r) => !r.hung && (r.signal !== null || r.code !== 0 || !r.summary));
    const hangs = results.filter((r) => r.hung);
    const sums = results.map((r) => r.summary).filter((s): s is FuzzSummary => s !== null);
    const total = (k: 'invalid' | 'extreme' | 'rejected' | 'accepted') => sums.reduce((a, s) => a + s[k], 0);
    const list = (k: 'silentlyAccepted' | 'badErrors' | 'badResults' | 'stateChanged' | 'internalErrors') =>
      sums.flatMap((s) => s[k].map((e) => `seed ${s.seed} ${e}`));
    console.log(
      `      fuzz: ${total('invalid')} invalid + ${total('extreme')} extreme calls; ${total('rejected')} rejected, ${total('accepted')} accepted; ` +
        `crashes ${crashes.length}, hangs ${hangs.length}, silently accepted ${list('silentlyAccepted').length}, ` +
        `bad errors ${list('badErrors').length}, bad results ${list('badResults').length}, state changed ${list('stateChanged').length}, ` +
        `internal JS errors ${list('internalErrors').length}`,
    );
    for (const e of list('internalErrors').slice(0, 5)) console.log(`      internal: ${e}`);
    expect(
      crashes.map((r) => `seed ${r.seed}: exit ${r.code} signal ${r.signal} after ${r.lastCase}\n${r.stderrTail}`),
      'crashed children',
    ).to.deep.equal([]);
    expect(hangs.map((r) => `seed ${r.seed}: hung at ${r.lastCase}`), 'hung children').to.deep.equal([]);
    expect(list('silentlyAccepted'), 'invalid calls that were accepted').to.deep.equal([]);
    expect(list('badErrors'), 'rejections without an Error message').to.deep.equal([]);
    expect(list('badResults'), 'malformed results').to.deep.equal([]);
    expect(list('stateChanged'), 'rejected calls that changed the model').to.deep.equal([]);
    expect(total('invalid')).to.be.at.least(Math.min(2000, Math.floor(SEEDS.length * COUNT * 0.8)));
  });
});
