// `npm run bench`: the benchmark report. See bench/README.md and BENCH.md.
//
//   npm run bench -- [--gemm] [--train] [--small] [--sparse] [--accuracy] [--plasticity] [--dst] [--quick] [--threads 1,2]
//                    [--peers all|none|pytorch,pytorch-default,tfjs-cpu,tfjs-wasm] [--json FILE] [--svg FILE]
//
// With no subset flag every speed bench runs (gemm, train, small, sparse); the
// accuracy study (--accuracy, minutes of training) runs only when asked for. The machine header is printed first,
// then each table as soon as it is measured.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { checkDevice, cudaOrdinal, type Device } from '../lib/device';
import type { BenchResult, MachineInfo } from './types';
import { formatMachine, machineInfo } from './types';

interface MainOptions {
  gemm: boolean;
  train: boolean;
  small: boolean;
  sparse: boolean;
  accuracy: boolean;
  plasticity: boolean;
  dst: boolean;
  quick: boolean;
  threads?: number[];
  peers: 'all' | 'none' | string[];
  json?: string;
  svg?: string;
}

const USAGE = `usage: npm run bench -- [--gemm] [--train] [--small] [--sparse] [--accuracy] [--plasticity] [--dst] [--quick] [--threads 1,2]
                      [--peers all|none|pytorch,pytorch-default,tfjs-cpu,tfjs-wasm] [--json FILE] [--svg FILE]
  --gemm     dense GEMM GFLOP/s per shape and SIMD level, against OpenBLAS sgemm
  --train    training steps of 784-300-100-10 and 784-1024-1024-10 at batch 128
             (samples/s), against PyTorch CPU and TF.js cpu/wasm
  --small    training steps of 784-32-10 at batch 8 (microseconds per step)
  --sparse   CSR products and steps vs our dense path and Eigen per sparsity (crossover),
             and full-epoch training of 784-4096-4096-10 dense vs 90/95/99% sparse
  --accuracy LeNet-300-100 on Fashion-MNIST: test accuracy vs compression (4x..60x) under
             gradual magnitude pruning, against the dense baseline (minutes)
  --plasticity loss of plasticity over 60 permuted Fashion-MNIST tasks: new-task accuracy of
             plain SGD, continual backprop, ReDo and the drop-in & out cycle (minutes)
  --dst      structural growth cost vs layer width, SET/RigL vs dense at 90% sparsity, SET
             784-3000x3-10 vs the reference, and 10k..1M-wide sparse layers (minutes)
  (no subset flag: gemm, train, small and sparse; --accuracy, --plasticity and --dst only when given)
  --quick    few repetitions: a smoke test of the harness, not numbers to quote
  --threads  thread counts to run (default: 1 and all cores)
  --peers    which peers to measure next to us (default all)
  --json     write { machine, results } to FILE
  --svg      write a bar chart to FILE
  --device cuda  the GPU benches instead, on GPU 0 or, with cuda:N, GPU N (bench/cuda.ts: GEMM, CSR SpMM vs dense and cuSPARSE,
             784-4096-4096-10 training GPU vs CPU); its own flags: --quick, --json FILE`;

function parseArgs(argv: string[]): MainOptions {
  const o: MainOptions = { gemm: false, train: false, small: false, sparse: false, accuracy: false, plasticity: false, dst: false, quick: false, peers: 'all' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new RangeError(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case '--gemm': o.gemm = true; break;
      case '--train': o.train = true; break;
      case '--small': o.small = true; break;
      case '--sparse': o.sparse = true; break;
      case '--accuracy': o.accuracy = true; break;
      case '--plasticity': o.plasticity = true; break;
      case '--dst': o.dst = true; break;
      case '--quick': o.quick = true; break;
      case '--json': o.json = value(); break;
      case '--svg': o.svg = value(); break;
      case '--threads': {
        const v = value();
        const list = v.split(',').map((s) => Number(s.trim()));
        if (list.length === 0 || list.some((t) => !Number.isInteger(t) || t < 1 || t > 1024)) {
          throw new RangeError(`--threads must be a comma-separated list of positive integers, got ${v}`);
        }
        o.threads = [...new Set(list)];
        break;
      }
      case '--peers': {
        const v = value();
        if (v === 'all' || v === 'none') o.peers = v;
        else {
          const list = v.split(',').map((s) => s.trim());
          const known = ['pytorch', 'pytorch-default', 'tfjs-cpu', 'tfjs-wasm'];
          const bad = list.filter((p) => !known.includes(p));
          if (bad.length) throw new RangeError(`--peers: unknown peer ${bad.join(', ')} (known: ${known.join(', ')}, all, none)`);
          o.peers = list;
        }
        break;
      }
      case '-h':
      case '--help':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new RangeError(`unknown option ${a}`);
    }
  }
  if (!o.gemm && !o.train && !o.small && !o.sparse && !o.accuracy && !o.plasticity && !o.dst) o.gemm = o.train = o.small = o.sparse = true;
  return o;
}

function section(title: string): void {
  console.log('');
  console.log(`== ${title} ${'='.repeat(Math.max(0, 70 - title.length))}`);
}

/** bench/gemm.ts belongs to another piece of work: load it if it is there. */
async function runGemm(threads: number[], quick: boolean, machine: MachineInfo): Promise<BenchResult[] | null> {
  const file = path.join(__dirname, 'gemm.ts');
  if (!fs.existsSync(file)) {
    console.log('skip gemm: bench/gemm.ts is not in this checkout');
    return [];
  }
  let mod: Record<string, unknown>;
  try {
    // A computed specifier: main.ts must type-check and run without gemm.ts.
    const spec = './gemm';
    mod = (await import(spec)) as Record<string, unknown>;
  } catch (err) {
    console.log(`skip gemm: bench/gemm.ts did not load: ${(err as Error).message}`);
    return [];
  }
  const run = mod.runGemmBench as ((o: { threads: number[]; quick?: boolean; log?: (s: string) => void }) => Promise<BenchResult[]>) | undefined;
  if (typeof run !== 'function') {
    console.log('skip gemm: bench/gemm.ts does not export runGemmBench');
    return [];
  }
  let results: BenchResult[];
  try {
    results = await run({ threads, quick, log: (s) => console.log(s) });
  } catch (err) {
    console.log(`gemm bench failed: ${(err as Error).message}`);
    return null;
  }
  const format = mod.formatGemmTable as ((r: BenchResult[]) => string) | undefined;
  if (typeof format === 'function') console.log(format(results));
  else {
    for (const r of results) {
      console.log(`${r.impl} ${r.shape} ${String(r.trans ?? '')} ${r.threads} thr ${r.simd}: ${r.gflops.toFixed(1)} GFLOP/s`);
    }
  }
  const blas = results.find((r) => r.impl === 'openblas');
  machine.peers.push(blas
    ? { impl: 'openblas', available: true, note: `sgemm, core ${blas.simd}` }
    : { impl: 'openblas', available: false, note: 'no OpenBLAS rows (harness missing or skipped)' });
  return results;
}

/** bench/sparse.ts belongs to another piece of work: load it if it is there. */
async function runSparseKernels(threads: number[], quick: boolean): Promise<BenchResult[] | null> {
  const file = path.join(__dirname, 'sparse.ts');
  if (!fs.existsSync(file)) {
    console.log('skip sparse kernels: bench/sparse.ts is not in this checkout');
    return [];
  }
  let mod: Record<string, unknown>;
  try {
    // A computed specifier: main.ts must type-check and run without sparse.ts.
    const spec = './sparse';
    mod = (await import(spec)) as Record<string, unknown>;
  } catch (err) {
    console.log(`skip sparse kernels: bench/sparse.ts did not load: ${(err as Error).message}`);
    return [];
  }
  const run = mod.runSparseBench as
    | ((o: { quick?: boolean; threads?: number[]; log?: (s: string) => void }) => Promise<BenchResult[]>)
    | undefined;
  if (typeof run !== 'function') {
    console.log('skip sparse kernels: bench/sparse.ts does not export runSparseBench');
    return [];
  }
  let results: BenchResult[];
  try {
    results = await run({ quick, threads, log: (s) => console.log(s) });
  } catch (err) {
    console.log(`sparse kernel bench failed: ${(err as Error).message}`);
    return null;
  }
  const format = mod.formatSparseTable as ((r: BenchResult[]) => string) | undefined;
  if (typeof format === 'function') console.log(format(results));
  else {
    for (const r of results) {
      console.log(`${r.bench} ${r.impl} ${r.shape} s=${r.sparsity} b=${r.batch} ${r.threads} thr: ${r.median_ms.toFixed(3)} ms`);
    }
  }
  return results;
}

async function main(): Promise<void> {
  // --device cuda: the GPU benches (bench/cuda.ts) with their own flags; --device cpu: this report.
  const argv = process.argv.slice(2);
  const at = argv.indexOf('--device');
  if (at >= 0) {
    const device = argv[at + 1];
    argv.splice(at, 2);
    let place: Device;
    try {
      place = checkDevice('bench', '--device', device);
    } catch (err) {
      console.error(`${(err as Error).message}\n${USAGE}`);
      process.exit(2);
    }
    if (place !== 'cpu') {
      const { runCudaBench } = await import('./cuda');
      process.exitCode = await runCudaBench(argv, cudaOrdinal(place));
      return;
    }
  }
  let opts: MainOptions;
  try {
    opts = parseArgs(argv);
  } catch (err) {
    console.error(`bench: ${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  const machine = machineInfo();
  const threads = opts.threads ?? [...new Set([1, os.cpus().length])];
  section('machine');
  console.log(formatMachine(machine));
  console.log(`runs     threads ${threads.join(',')}${opts.quick ? '; --quick (smoke test: few repetitions, do not quote)' : ''}`);

  const results: BenchResult[] = [];
  let failed = false;

  if (opts.gemm) {
    section('dense GEMM vs OpenBLAS');
    const gemm = await runGemm(threads, opts.quick, machine);
    if (gemm) results.push(...gemm);
    else failed = true;
  }

  if (opts.train || opts.small) {
    section('training steps vs PyTorch and TF.js');
    const { runTrainBench } = await import('./train');
    const suites = [...(opts.train ? ['train' as const] : []), ...(opts.small ? ['small' as const] : [])];
    try {
      const report = await runTrainBench({ threads, quick: opts.quick, suites, peers: opts.peers, log: (s) => console.log(s) });
      results.push(...report.results);
      if (report.errors.length) failed = true;
      machine.peers.push(...report.peers);
      (machine as MachineInfo & { train_data?: string }).train_data = report.data;
    } catch (err) {
      console.log(`training bench failed: ${(err as Error).stack ?? String(err)}`);
      failed = true;
    }
  }

  if (opts.sparse) {
    section('sparse products vs dense and Eigen');
    const kernels = await runSparseKernels(threads, opts.quick);
    if (kernels) results.push(...kernels);
    else failed = true;

    section('sparse training: full epoch of 784-4096-4096-10, dense vs pruned');
    try {
      const { runSparseTrainBench } = await import('./sparse_train');
      results.push(...(await runSparseTrainBench({ quick: opts.quick, log: (s) => console.log(s) })));
    } catch (err) {
      console.log(`sparse training bench failed: ${(err as Error).stack ?? String(err)}`);
      failed = true;
    }
  }

  if (opts.accuracy) {
    section('accuracy vs compression: LeNet-300-100, gradual magnitude pruning');
    try {
      const { runPruneAccuracyBench } = await import('./prune_accuracy');
      results.push(...(await runPruneAccuracyBench({ quick: opts.quick, log: (s) => console.log(s) })));
    } catch (err) {
      console.log(`prune accuracy bench failed: ${(err as Error).stack ?? String(err)}`);
      failed = true;
    }
  }

  if (opts.plasticity) {
    section('loss of plasticity: permuted Fashion-MNIST task stream');
    try {
      const { runPlasticityBench } = await import('./plasticity');
      results.push(...(await runPlasticityBench({ quick: opts.quick, log: (s) => console.log(s) })));
    } catch (err) {
      console.log(`plasticity bench failed: ${(err as Error).stack ?? String(err)}`);
      failed = true;
    }
  }

  if (opts.dst) {
    section('dynamic sparse training and growth: SET, RigL, width');
    try {
      const { runDstBench } = await import('./dst');
      results.push(...(await runDstBench({ quick: opts.quick, log: (s) => console.log(s) })));
    } catch (err) {
      console.log(`dst bench failed: ${(err as Error).stack ?? String(err)}`);
      failed = true;
    }
  }

  if (opts.json) {
    fs.mkdirSync(path.dirname(path.resolve(opts.json)), { recursive: true });
    fs.writeFileSync(opts.json, JSON.stringify({ machine, results }, null, 2) + '\n');
    console.log(`\nwrote ${opts.json} (${results.length} results)`);
  }
  if (opts.svg) {
    const { renderSvg } = await import('./svg');
    fs.mkdirSync(path.dirname(path.resolve(opts.svg)), { recursive: true });
    fs.writeFileSync(opts.svg, renderSvg(machine, results));
    console.log(`wrote ${opts.svg}`);
  }
  if (failed) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
