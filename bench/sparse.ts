// Sparse (CSR) products against our dense GEMM and against Eigen: the forward
// product (spmm vs gemm NN) and a whole training step's products (spmm +
// spmm_t + sddmm vs gemm NN + TN + NT) per layer shape, batch and sparsity;
// bytes per stored weight; the crossover sparsity. Ours and Eigen run
// interleaved per shape (ours, Eigen, ours, Eigen, ...) so both see the same
// machine state; the dense/sparse ratio is measured inside one process, each
// round alternating dense and sparse.
//
//   node --import tsx bench/sparse.ts [--quick] [--threads 1,2] [--shapes 784x300,...]
//        [--batches 1,32,128] [--sparsities 0,0.5,...] [--json]
//
// First it prints the ceiling of this core (sparseCeilingLines below): how
// fast the CSR access pattern alone runs, so the measured speed-ups can be read
// against what the hardware allows.
//
// Needs build/native/neuroplastic_sparse_bench (npm run build:native, with
// NEUROPLASTIC_BUILD_DIR for another build folder). The Eigen harness
// (bench/peers/eigen_spmm.cpp) is compiled on first use into build/bench/ when
// /usr/include/eigen3 exists (Debian libeigen3-dev), and skipped otherwise.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { benchBuildDir, buildPeerHarness, nativeBenchProgram, runJsonLines } from './harness';
import { median, type BenchResult } from './types';

/** A BenchResult (bench/types.ts) of the sparse sweep, with its extra fields. */
export interface SparseBenchResult extends BenchResult {
  bench: 'spmm' | 'sparse-step';
  /** 'neuroplastic' (CSR), 'neuroplastic-dense' (our GEMM on the same layer, zeros included) or 'eigen'. Shape OUTxIN. */
  impl: string;
  /** dense: our dense time / this time (speed-up); eigen: Eigen's time / this time. */
  ratio_to: { dense?: number; eigen?: number };
  nnz: number;
  /** CSR memory per stored weight: 4 value + 4 index + row pointers / nnz. */
  bytes_per_weight: number;
}

export interface SparseBenchOptions {
  quick?: boolean;
  threads?: number[];
  shapes?: string[];
  batches?: number[];
  sparsities?: number[];
  rounds?: number; // ours/Eigen pairs per shape; the median over rounds is reported
  buildDir?: string; // default: NEUROPLASTIC_BUILD_DIR or <repo>/build
  log?: (line: string) => void;
}

const EIGEN_INCLUDE = '/usr/include/eigen3';

interface RawRow {
  impl: string;
  shape: string;
  rows: number;
  cols: number;
  batch: number;
  sparsity: number;
  nnz: number;
  threads: number;
  simd: string;
  dense_ms?: number;
  spmm_ms: number;
  dense_step_ms?: number;
  sparse_step_ms: number;
  bytes_per_weight: number;
  version?: string;
}

/** Builds the Eigen harness if needed; returns its path, or undefined (reason logged). */
export function buildEigenHarness(buildDir: string, log: (s: string) => void): string | undefined {
  if (!existsSync(EIGEN_INCLUDE)) {
    log(`sparse: Eigen skipped (no ${EIGEN_INCLUDE}; apt-get install -y libeigen3-dev)`);
    return undefined;
  }
  return buildPeerHarness({
    buildDir,
    source: 'eigen_spmm.cpp',
    output: 'eigen_spmm',
    compiler: process.env.CXX ?? 'g++',
    flags: (src, out) => ['-O3', '-march=native', '-fopenmp', '-std=c++17', `-I${EIGEN_INCLUDE}`, src, '-o', out],
    tag: 'sparse',
    peer: 'Eigen',
    log,
  });
}

const DEFAULT_SHAPES = ['784x300', '1024x1024', '4096x4096'];

/**
 * What any CSR kernel can reach on this core: the forward product's access
 * pattern alone (build/native/neuroplastic_sparse_ceiling) from X rows in L1,
 * in L2 and beyond, against the FMA peak and our dense GEMM. Returns its
 * printed lines, or one line saying why it did not run.
 */
export function sparseCeilingLines(buildDir: string, quick: boolean): string[] {
  const file = path.join(buildDir, 'native', 'neuroplastic_sparse_ceiling');
  if (!existsSync(file)) return [`sparse ceiling: ${file} not found; build it with \`npm run build:native\``];
  const res = spawnSync(file, ['--rounds', quick ? '3' : '7'], { encoding: 'utf8' });
  if (res.error || res.status !== 0) return [`sparse ceiling failed: ${res.error?.message ?? res.stderr}`];
  return res.stdout.trimEnd().split('\n');
}

export async function runSparseBench(opts: SparseBenchOptions = {}): Promise<SparseBenchResult[]> {
  const quick = opts.quick ?? false;
  const log = opts.log ?? ((s: string) => console.error(s));
  const buildDir = benchBuildDir(opts.buildDir);
  const ours = nativeBenchProgram(buildDir, 'neuroplastic_sparse_bench', 'sparse');
  const eigen = buildEigenHarness(buildDir, log);
  const threads = opts.threads ?? [1, Math.max(1, os.cpus().length)].filter((t, i, a) => a.indexOf(t) === i);
  const shapes = opts.shapes ?? DEFAULT_SHAPES;
  const batches = opts.batches ?? (quick ? [128] : [1, 32, 128]);
  const sparsities = opts.sparsities ?? (quick ? [0.5, 0.9, 0.99] : [0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99]);
  const rounds = opts.rounds ?? (quick ? 1 : 2);
  const timing = quick ? ['--reps', '3', '--min-ms', '20'] : ['--reps', '5', '--min-ms', '60'];
  for (const line of sparseCeilingLines(buildDir, quick)) log(line);

  const results: SparseBenchResult[] = [];
  for (const t of threads) {
    for (const shape of shapes) {
      const args = ['--shapes', shape, '--batches', batches.join(','), '--sparsities', sparsities.join(','),
        '--threads', String(t), ...timing];
      const ourRows = new Map<string, RawRow[]>();
      const eigenRows = new Map<string, RawRow[]>();
      const key = (r: { batch: number; sparsity: number }) => `${r.batch}|${r.sparsity}`;
      for (let round = 0; round < rounds; ++round) {
        for (const row of runJsonLines<RawRow>(ours, args)) ourRows.set(key(row), [...(ourRows.get(key(row)) ?? []), row]);
        if (eigen) {
          for (const row of runJsonLines<RawRow>(eigen, args)) eigenRows.set(key(row), [...(eigenRows.get(key(row)) ?? []), row]);
        }
      }
      for (const [k, rows] of ourRows) {
        const r0 = rows[0];
        const denseMs = median(rows.map((r) => r.dense_ms ?? NaN));
        const spmmMs = median(rows.map((r) => r.spmm_ms));
        const denseStepMs = median(rows.map((r) => r.dense_step_ms ?? NaN));
        const stepMs = median(rows.map((r) => r.sparse_step_ms));
        const eRows = eigenRows.get(k);
        const eSpmm = eRows ? median(eRows.map((r) => r.spmm_ms)) : undefined;
        const eStep = eRows ? median(eRows.map((r) => r.sparse_step_ms)) : undefined;
        const base = { shape, sparsity: r0.sparsity, batch: r0.batch, threads: t, nnz: r0.nnz };
        const sparseFlop = 2 * r0.nnz * r0.batch;
        const denseFlop = 2 * r0.rows * r0.cols * r0.batch;
        const gf = (flop: number, ms: number) => flop / (ms * 1e6);
        const ratio = (dense: number, eigenMs: number | undefined, ms: number) =>
          eigenMs === undefined ? { dense: dense / ms } : { dense: dense / ms, eigen: eigenMs / ms };
        results.push(
          { ...base, bench: 'spmm', impl: 'neuroplastic', simd: r0.simd, median_ms: spmmMs, gflops: gf(sparseFlop, spmmMs),
            ratio_to: ratio(denseMs, eSpmm, spmmMs), bytes_per_weight: r0.bytes_per_weight },
          { ...base, bench: 'spmm', impl: 'neuroplastic-dense', simd: r0.simd, median_ms: denseMs, gflops: gf(denseFlop, denseMs),
            ratio_to: {}, bytes_per_weight: 4 / Math.max(1 - r0.sparsity, 1e-9) },
          { ...base, bench: 'sparse-step', impl: 'neuroplastic', simd: r0.simd, median_ms: stepMs,
            gflops: gf(3 * sparseFlop, stepMs), ratio_to: ratio(denseStepMs, eStep, stepMs), bytes_per_weight: r0.bytes_per_weight },
          { ...base, bench: 'sparse-step', impl: 'neuroplastic-dense', simd: r0.simd, median_ms: denseStepMs,
            gflops: gf(3 * denseFlop, denseStepMs), ratio_to: {}, bytes_per_weight: 4 / Math.max(1 - r0.sparsity, 1e-9) },
        );
        if (eRows && eSpmm !== undefined && eStep !== undefined) {
          const e0 = eRows[0];
          const meta = { version: e0.version, layout: 'RowMajor sparse x RowMajor dense' };
          results.push(
            { ...base, ...meta, bench: 'spmm', impl: 'eigen', simd: e0.simd, median_ms: eSpmm, gflops: gf(sparseFlop, eSpmm),
              ratio_to: { dense: denseMs / eSpmm }, bytes_per_weight: e0.bytes_per_weight },
            { ...base, ...meta, bench: 'sparse-step', impl: 'eigen', simd: e0.simd, median_ms: eStep,
              gflops: gf(3 * sparseFlop, eStep), ratio_to: { dense: denseStepMs / eStep }, bytes_per_weight: e0.bytes_per_weight },
          );
        }
      }
    }
  }
  return results;
}

export interface Crossover {
  bench: 'spmm' | 'sparse-step';
  shape: string;
  batch: number;
  threads: number;
  /** Lowest measured sparsity from which ours beats dense at every higher measured sparsity, or undefined. */
  measured?: number;
  /** Where the speed-up crosses 1, linear between the neighbouring measured sparsities. */
  interpolated?: number;
}

/** The crossover sparsity per bench, shape, batch and thread count. */
export function crossovers(results: SparseBenchResult[]): Crossover[] {
  const out: Crossover[] = [];
  const ours = results.filter((r) => r.impl === 'neuroplastic');
  const groups = new Map<string, SparseBenchResult[]>();
  for (const r of ours) {
    const k = `${r.bench}|${r.shape}|${r.batch}|${r.threads}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  for (const [k, rows] of groups) {
    const [bench, shape, batch, threads] = k.split('|');
    const sorted = [...rows].sort((a, b) => a.sparsity - b.sparsity);
    let i = sorted.length;
    while (i > 0 && (sorted[i - 1].ratio_to.dense ?? 0) >= 1) i--;
    const c: Crossover = { bench: bench as Crossover['bench'], shape, batch: Number(batch), threads: Number(threads) };
    if (i < sorted.length) {
      c.measured = sorted[i].sparsity;
      if (i === 0) c.interpolated = sorted[0].sparsity;
      else {
        const lo = sorted[i - 1], hi = sorted[i];
        const a = lo.ratio_to.dense ?? 0, b = hi.ratio_to.dense ?? 0;
        c.interpolated = lo.sparsity + ((1 - a) / Math.max(b - a, 1e-9)) * (hi.sparsity - lo.sparsity);
      }
    }
    out.push(c);
  }
  return out;
}

const fmt = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));

/** One row per threads x shape x batch x sparsity: ms and speed-ups, then the crossovers. */
export function formatSparseTable(results: SparseBenchResult[]): string {
  const head = ['thr', 'shape', 'batch', 'sparsity', 'dense ms', 'spmm ms', 'x dense', 'eigen ms', 'x eigen',
    'dstep ms', 'sstep ms', 'x dense', 'estep ms', 'x eigen', 'B/w'];
  const find = (bench: string, impl: string, r: SparseBenchResult) =>
    results.find((x) => x.bench === bench && x.impl === impl && x.shape === r.shape && x.batch === r.batch &&
      x.sparsity === r.sparsity && x.threads === r.threads);
  const rows = results
    .filter((r) => r.bench === 'spmm' && r.impl === 'neuroplastic')
    .map((r) => {
      const dense = find('spmm', 'neuroplastic-dense', r);
      const eig = find('spmm', 'eigen', r);
      const step = find('sparse-step', 'neuroplastic', r);
      const dstep = find('sparse-step', 'neuroplastic-dense', r);
      const estep = find('sparse-step', 'eigen', r);
      return [String(r.threads), r.shape, String(r.batch), fmt(r.sparsity, 3), fmt(dense?.median_ms, 4), fmt(r.median_ms, 4),
        fmt(r.ratio_to.dense), fmt(eig?.median_ms, 4), fmt(r.ratio_to.eigen), fmt(dstep?.median_ms, 4), fmt(step?.median_ms, 4),
        fmt(step?.ratio_to.dense), fmt(estep?.median_ms, 4), fmt(step?.ratio_to.eigen), fmt(r.bytes_per_weight, 3)];
    });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const table = [head, ...rows].map((r) => r.map((c, i) => c.padStart(widths[i])).join('  ')).join('\n');
  const cross = crossovers(results)
    .sort((a, b) => a.bench.localeCompare(b.bench) || a.threads - b.threads || a.shape.localeCompare(b.shape) || a.batch - b.batch)
    .map((c) => `  ${c.bench.padEnd(11)} threads ${c.threads} ${c.shape.padStart(9)} batch ${String(c.batch).padStart(4)}: ` +
      (c.measured === undefined ? 'dense wins at every measured sparsity'
        : c.measured === c.interpolated ? `beats dense at every measured sparsity (from ${fmt(c.measured)})`
          : `beats dense from sparsity ${fmt(c.measured)} (crossing ~${fmt(c.interpolated)})`));
  return `${table}\n\ncrossover (lowest sparsity where CSR beats our dense GEMM):\n${cross.join('\n')}`;
}

function parseArgs(argv: string[]): SparseBenchOptions & { json: boolean } {
  const opts: SparseBenchOptions & { json: boolean } = { json: false };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const list = (): string[] => {
      const v = argv[++i];
      if (v === undefined) throw new RangeError(`sparse bench: ${a} needs a comma-separated value`);
      return v.split(',');
    };
    if (a === '--quick') opts.quick = true;
    else if (a === '--json') opts.json = true;
    else if (a === '--threads') opts.threads = list().map(Number);
    else if (a === '--shapes') opts.shapes = list();
    else if (a === '--batches') opts.batches = list().map(Number);
    else if (a === '--sparsities') opts.sparsities = list().map(Number);
    else if (a === '--rounds') opts.rounds = Number(list()[0]);
    else if (a === '--build-dir') opts.buildDir = list()[0];
    else throw new RangeError(`sparse bench: unknown argument ${a}`);
  }
  if (opts.threads?.some((t) => !Number.isInteger(t) || t < 1)) {
    throw new RangeError(`sparse bench: --threads must be positive integers, got ${opts.threads.join(',')}`);
  }
  if (opts.batches?.some((b) => !Number.isInteger(b) || b < 1)) {
    throw new RangeError(`sparse bench: --batches must be positive integers, got ${opts.batches.join(',')}`);
  }
  if (opts.sparsities?.some((s) => !(s >= 0 && s < 1))) {
    throw new RangeError(`sparse bench: --sparsities must be in [0, 1), got ${opts.sparsities.join(',')}`);
  }
  if (opts.shapes?.some((s) => !/^\d+x\d+$/.test(s))) {
    throw new RangeError(`sparse bench: --shapes must be OUTxIN, got ${opts.shapes.join(',')}`);
  }
  return opts;
}

if (require.main === module) {
  const opts = parseArgs(process.argv.slice(2));
  runSparseBench(opts).then(
    (results) => {
      if (opts.json) console.log(JSON.stringify(results, null, 2));
      else console.log(formatSparseTable(results));
    },
    (err: Error) => {
      console.error(err.message);
      process.exit(1);
    },
  );
}
