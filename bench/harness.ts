// Running the native bench programs: ours (built by `npm run build:native`)
// and the peers' small C/C++ harnesses in bench/peers/, compiled on first use
// into the build folder. Each prints one JSON object per line with --json.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { ROOT } from './types';

/** The build folder: the option, NEUROPLASTIC_BUILD_DIR, or <repo>/build. */
export function benchBuildDir(option?: string): string {
  return option ?? process.env.NEUROPLASTIC_BUILD_DIR ?? path.join(ROOT, 'build');
}

/** build/native/<name>, or an error saying how to build it. */
export function nativeBenchProgram(buildDir: string, name: string, bench: string): string {
  const file = path.join(buildDir, 'native', name);
  if (!existsSync(file)) throw new Error(`${bench} bench: ${file} not found; build it with \`npm run build:native\``);
  return file;
}

/** Runs `file args --json` and parses its JSON lines; a non-zero exit throws with its stderr. */
export function runJsonLines<T>(file: string, args: string[], env?: NodeJS.ProcessEnv): T[] {
  const res = spawnSync(file, [...args, '--json'], { env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (res.error) throw res.error;
  if (res.status !== 0) {
    throw new Error(`${path.basename(file)} ${args.join(' ')} exited with ${res.status}:\n${res.stderr}`);
  }
  return res.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as T);
}

/**
 * Compiles bench/peers/<source> into <buildDir>/bench/<output> unless an
 * up-to-date build is there; returns its path, or undefined with the reason
 * logged as "<tag>: <peer> skipped (...)".
 */
export function buildPeerHarness(o: {
  buildDir: string;
  source: string;
  output: string;
  compiler: string;
  flags: (src: string, out: string) => string[];
  tag: string;
  peer: string;
  log: (s: string) => void;
}): string | undefined {
  const src = path.join(ROOT, 'bench', 'peers', o.source);
  const out = path.join(o.buildDir, 'bench', o.output);
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs) return out;
  mkdirSync(path.dirname(out), { recursive: true });
  const cc = spawnSync(o.compiler, o.flags(src, out), { encoding: 'utf8' });
  if (cc.error || cc.status !== 0) {
    o.log(`${o.tag}: ${o.peer} skipped (compiling the harness failed: ${cc.error?.message ?? cc.stderr.trim()})`);
    return undefined;
  }
  return out;
}
