// Dense GEMM: our kernels at every SIMD level against OpenBLAS sgemm, run
// interleaved per shape (ours, OpenBLAS, ours, OpenBLAS, ...) so both see the
// same machine state, and reported as GFLOP/s plus a speed ratio.
//
//   node --import tsx bench/gemm.ts [--quick] [--threads 1,2] [--json]
//
// Needs build/native/neuroplastic_native_bench (npm run build:native). The
// OpenBLAS harness (bench/peers/openblas_sgemm.c) is compiled on first use into
// build/bench/ when the cblas header is installed, and skipped otherwise.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { benchBuildDir, buildPeerHarness, nativeBenchProgram, runJsonLines } from './harness';
import { median } from './types';

export interface BenchResult {
  bench: 'gemm';
  impl: string; // 'neuroplastic' | 'openblas'
  shape: string; // MxNxK: C[M x N] = op(A)[M x K] * op(B)[K x N]
  trans: string; // nn | tn | nt (forward, backward data, weight gradient)
  sparsity: 0;
  batch: number; // N: the batch dimension of a feature-major layer
  threads: number;
  simd: string; // our level, or OpenBLAS's core name
  median_ms: number;
  gflops: number;
  ratio_to: { openblas?: number }; // our speed / OpenBLAS speed, same shape, trans, threads
}

export interface GemmBenchOptions {
  threads: number[];
  quick?: boolean;
  shapes?: string[];
  trans?: string[];
  levels?: string[]; // default: every level (the native bench skips those the CPU lacks)
  rounds?: number; // A B pairs per shape; the median over rounds is reported
  buildDir?: string; // default: NEUROPLASTIC_BUILD_DIR or <repo>/build
  log?: (line: string) => void;
}


// The acceptance shapes: layers of 128 and 256 units, fan-in and batch from
// 784 (MNIST) to 4096.
function defaultShapes(quick: boolean): string[] {
  if (quick) return ['128x784x1024', '256x1024x1024', '256x4096x4096'];
  const out: string[] = [];
  for (const m of [128, 256]) for (const n of [784, 1024, 4096]) for (const k of [784, 1024, 4096]) out.push(`${m}x${n}x${k}`);
  return out;
}

interface RawResult {
  impl: string;
  shape: string;
  n: number;
  trans: string;
  threads: number;
  simd: string;
  median_ms: number;
  gflops: number;
}

function cblasHeader(): string | undefined {
  return ['/usr/include/x86_64-linux-gnu/cblas.h', '/usr/include/cblas.h', '/usr/include/openblas/cblas.h'].find(
    (p) => existsSync(p),
  );
}

// Builds the OpenBLAS harness if needed; returns its path, or undefined (with
// the reason logged) when OpenBLAS is not installed.
function buildOpenblasHarness(buildDir: string, log: (s: string) => void): string | undefined {
  const header = cblasHeader();
  if (header === undefined) {
    log('gemm: OpenBLAS skipped (no cblas.h; apt-get install -y libopenblas-dev)');
    return undefined;
  }
  return buildPeerHarness({
    buildDir,
    source: 'openblas_sgemm.c',
    output: 'openblas_sgemm',
    compiler: process.env.CC ?? 'cc',
    flags: (src, out) => ['-O2', src, '-o', out, '-I', path.dirname(header), '-lopenblas', '-lm'],
    tag: 'gemm',
    peer: 'OpenBLAS',
    log,
  });
}

export async function runGemmBench(opts: GemmBenchOptions): Promise<BenchResult[]> {
  const quick = opts.quick ?? false;
  const log = opts.log ?? ((s: string) => console.error(s));
  const buildDir = benchBuildDir(opts.buildDir);
  const ours = nativeBenchProgram(buildDir, 'neuroplastic_native_bench', 'gemm');
  const openblas = buildOpenblasHarness(buildDir, log);
  const shapes = opts.shapes ?? defaultShapes(quick);
  const trans = opts.trans ?? ['nn', 'tn', 'nt'];
  // The scalar fallback runs at ~1/7 of AVX-512: by default it is measured only
  // on shapes up to 1 GFLOP, so the full table stays a few minutes long.
  const levelsFor = (shape: string): string[] => {
    if (opts.levels) return opts.levels;
    const [m, n, k] = shape.split('x').map(Number);
    return 2 * m * n * k <= 1e9 ? ['scalar', 'avx2', 'avx512'] : ['avx2', 'avx512'];
  };
  const rounds = opts.rounds ?? (quick ? 1 : 2);
  const timing = quick ? ['--reps', '5', '--min-ms', '30'] : ['--reps', '9', '--min-ms', '150'];

  // OpenBLAS picks its AVX-512 kernels only with these unset (BENCH.md); ours
  // never read them, and they stay set for everything else in this process.
  const blasEnv: NodeJS.ProcessEnv = { ...process.env };
  delete blasEnv.OPENBLAS_CORETYPE;
  delete blasEnv.OPENBLAS_L2_SIZE;

  const results: BenchResult[] = [];
  for (const threads of opts.threads) {
    for (const shape of shapes) {
      for (const tr of trans) {
        const args = ['--shapes', shape, '--trans', tr, '--threads', String(threads), ...timing];
        const ourMs = new Map<string, number[]>(); // per level
        const blasMs: number[] = [];
        let blasCore = 'openblas';
        for (let r = 0; r < rounds; ++r) {
          for (const row of runJsonLines<RawResult>(ours, [...args, '--levels', levelsFor(shape).join(',')], process.env)) {
            ourMs.set(row.simd, [...(ourMs.get(row.simd) ?? []), row.median_ms]);
          }
          if (openblas) {
            const [row] = runJsonLines<RawResult>(openblas, args, blasEnv);
            blasMs.push(row.median_ms);
            blasCore = row.simd;
          }
        }
        const [m, n, k] = shape.split('x').map(Number);
        const flop = 2 * m * n * k;
        const base = { bench: 'gemm' as const, shape, trans: tr, sparsity: 0 as const, batch: n, threads };
        const blasMedian = blasMs.length ? median(blasMs) : undefined;
        for (const [simd, ms] of ourMs) {
          const med = median(ms);
          results.push({
            ...base,
            impl: 'neuroplastic',
            simd,
            median_ms: med,
            gflops: flop / (med * 1e6),
            ratio_to: blasMedian === undefined ? {} : { openblas: blasMedian / med },
          });
        }
        if (blasMedian !== undefined) {
          results.push({ ...base, impl: 'openblas', simd: blasCore, median_ms: blasMedian, gflops: flop / (blasMedian * 1e6), ratio_to: {} });
        }
      }
    }
  }
  return results;
}

// One row per shape x trans x threads: GFLOP/s per level, OpenBLAS, and the
// best level's ratio.
export function formatGemmTable(results: BenchResult[]): string {
  const levels = [...new Set(results.filter((r) => r.impl === 'neuroplastic').map((r) => r.simd))];
  const keys = [...new Set(results.map((r) => `${r.threads}|${r.shape}|${r.trans}`))];
  const head = ['threads', 'shape(MxNxK)', 'trans', ...levels.map((l) => `${l} GF/s`), 'openblas GF/s', 'best/openblas'];
  const rows = keys.map((key) => {
    const [threads, shape, trans] = key.split('|');
    const mine = results.filter((r) => `${r.threads}|${r.shape}|${r.trans}` === key);
    const blas = mine.find((r) => r.impl === 'openblas');
    const ours = mine.filter((r) => r.impl === 'neuroplastic');
    const best = Math.max(...ours.map((r) => r.ratio_to.openblas ?? NaN));
    return [
      threads,
      shape,
      trans,
      ...levels.map((l) => ours.find((r) => r.simd === l)?.gflops.toFixed(1) ?? '-'),
      blas ? blas.gflops.toFixed(1) : '-',
      Number.isFinite(best) ? `${best.toFixed(2)}x${best < 0.85 ? ' <0.85' : ''}` : '-',
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padStart(widths[i])).join('  ')).join('\n');
}

function parseArgs(argv: string[]): GemmBenchOptions & { json: boolean } {
  const opts: GemmBenchOptions & { json: boolean } = { threads: [1, 2], json: false };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const list = (): string[] => {
      const v = argv[++i];
      if (v === undefined) throw new RangeError(`gemm bench: ${a} needs a comma-separated value`);
      return v.split(',');
    };
    if (a === '--quick') opts.quick = true;
    else if (a === '--json') opts.json = true;
    else if (a === '--threads') opts.threads = list().map(Number);
    else if (a === '--shapes') opts.shapes = list();
    else if (a === '--trans') opts.trans = list();
    else if (a === '--levels') opts.levels = list();
    else if (a === '--rounds') opts.rounds = Number(list()[0]);
    else if (a === '--build-dir') opts.buildDir = list()[0];
    else throw new RangeError(`gemm bench: unknown argument ${a}`);
  }
  if (opts.threads.some((t) => !Number.isInteger(t) || t < 1)) {
    throw new RangeError(`gemm bench: --threads must be positive integers, got ${opts.threads.join(',')}`);
  }
  return opts;
}

if (require.main === module) {
  const opts = parseArgs(process.argv.slice(2));
  runGemmBench(opts).then(
    (results) => {
      if (opts.json) console.log(JSON.stringify(results, null, 2));
      else console.log(formatGemmTable(results));
    },
    (err: Error) => {
      console.error(err.message);
      process.exit(1);
    },
  );
}
