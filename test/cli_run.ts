// Runs the `neuroplastic` command line as a child process from the TypeScript
// source (node --import tsx lib/cli/main.ts), so the CLI tests need no build.
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as path from 'path';

export const ROOT = path.resolve(__dirname, '..');
export const MAIN = path.join(ROOT, 'lib', 'cli', 'main.ts');

export interface Run {
  code: number | null;
  /** The signal that ended the process, when one did (code is then null). */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function cli(...args: string[]): Run {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, NEUROPLASTIC_DEBUG: '' },
    timeout: 120_000,
  });
  if (r.error) throw r.error;
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** The JSON object on the last line of stdout (what --json promises). */
export function lastJson(run: Run): Record<string, any> {
  // A process killed by a signal has no exit code: say which signal, and what it printed.
  expect(run.code, `${run.signal ? `killed by ${run.signal}; ` : ''}stderr: ${run.stderr.slice(-2000)}; stdout: ${run.stdout.slice(-500)}`).to.equal(0);
  const lines = run.stdout.trimEnd().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}
