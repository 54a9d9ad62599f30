// What every benchmark returns and what the report says about the machine it
// ran on (BENCH.md: "Say what ran").
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/** One measured row of the report; `--json` writes these under "results". */
export interface BenchResult {
  /** 'gemm' | 'train' | 'train-small' | ... */
  bench: string;
  /** 'neuroplastic' or the peer: 'openblas', 'pytorch', 'tfjs-cpu', 'tfjs-wasm', ... */
  impl: string;
  /** GEMM: MxNxK; training: the layer sizes, e.g. '784-300-100-10'. */
  shape: string;
  /** Fraction of zero weights (0 for dense). */
  sparsity: number;
  batch: number;
  /** Threads the implementation used. */
  threads: number;
  /** SIMD level (ours), or what the peer computes with. */
  simd: string;
  /** Median time of the unit the bench measures (one GEMM, one training step). */
  median_ms: number;
  /** Useful FLOPs per median_ms, in GFLOP/s (BENCH.md counting). */
  gflops: number;
  /** Our speed over the named peer's, measured in the same run (> 1: we are faster). */
  ratio_to: { [peer: string]: number };
  /** Extra figures a bench adds (samples_per_s, trans, steps_per_run, ...). */
  [extra: string]: unknown;
}

export interface PeerInfo {
  impl: string;
  version?: string;
  available: boolean;
  /** Why it was skipped, or what it ran with. */
  note?: string;
  [extra: string]: unknown;
}

export interface MachineInfo {
  cpu: string;
  cores: number;
  cpu_flags: string[];
  os: string;
  node: string;
  /** SIMD level our kernels run at, and the best this CPU supports. */
  simd: string;
  simd_detected: string;
  /** Threads in our native pool for this process (NEUROPLASTIC_THREADS or all cores). */
  threads: number;
  /** Per-core L1d and L2 in KB from runtime().cache (our CSR kernels size their L2 blocks from L2). */
  cache_kb: { l1d: number; l2: number };
  /** The addon file that was loaded (a local build or a prebuild) and when it was built. */
  addon: string;
  versions: { [name: string]: string };
  env: { [name: string]: string };
  peers: PeerInfo[];
  /** 1, 5 and 15 minute load averages when the run started: other work on a shared machine skews every figure. */
  load_avg: number[];
  date: string;
}

export const ROOT = path.resolve(__dirname, '..');

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** The CPU's model name and the SIMD-related flags from /proc/cpuinfo (os.cpus() elsewhere). */
export function cpuInfo(): { model: string; flags: string[] } {
  const text = readText('/proc/cpuinfo');
  let model = os.cpus()[0]?.model?.trim() || 'unknown CPU';
  let flags: string[] = [];
  if (text) {
    const m = /^model name\s*:\s*(.+)$/m.exec(text);
    if (m) model = m[1].trim();
    const f = /^flags\s*:\s*(.+)$/m.exec(text);
    if (f) {
      const want = /^(sse4_2|avx|avx2|fma|avx512f|avx512bw|avx512vl|avx512_vnni|avx512_bf16|amx_tile)$/;
      flags = f[1].split(/\s+/).filter((x) => want.test(x));
    }
    const family = /^cpu family\s*:\s*(\d+)$/m.exec(text);
    const modelNo = /^model\s*:\s*(\d+)$/m.exec(text);
    // Virtual machines often report a bare 'AMD EPYC': add family/model so runs can be told apart.
    if (family && modelNo && !/\d{4}/.test(model)) model += ` (family ${family[1]}, model ${modelNo[1]})`;
  }
  return { model, flags };
}

/** A package's version from its package.json, or undefined if it is not installed. */
export function packageVersion(name: string): string | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return (require(require.resolve(`${name}/package.json`, { paths: [ROOT] })) as { version: string }).version;
  } catch {
    return undefined;
  }
}

/** Everything the report header says about the machine. Loads our addon (runtime()). */
export function machineInfo(): MachineInfo {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { runtime } = require('../lib/index') as typeof import('../lib/index');
  const rt = runtime();
  const cpu = cpuInfo();
  const versions: { [name: string]: string } = { neuroplastic: rt.version };
  for (const name of ['@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm', 'tsx', 'typescript']) {
    const v = packageVersion(name);
    if (v) versions[name] = v;
  }
  const env: { [name: string]: string } = {};
  for (const name of ['NEUROPLASTIC_SIMD', 'NEUROPLASTIC_THREADS', 'OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE', 'OMP_NUM_THREADS']) {
    const v = process.env[name];
    if (v !== undefined) env[name] = v;
  }
  let addon = 'unknown';
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const file = (require('node-gyp-build') as { path(dir: string): string }).path(ROOT);
    addon = `${path.relative(ROOT, file)} (built ${fs.statSync(file).mtime.toISOString()})`;
  } catch {
    // the load above already succeeded; the path is only informative
  }
  return {
    cpu: cpu.model,
    cores: os.cpus().length,
    cpu_flags: cpu.flags,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    simd: rt.simd,
    simd_detected: rt.simdDetected,
    threads: rt.threads,
    cache_kb: { l1d: rt.cache.l1d / 1024, l2: rt.cache.l2 / 1024 },
    addon,
    versions,
    env,
    peers: [],
    load_avg: os.loadavg().map((v) => Math.round(v * 100) / 100),
    date: new Date().toISOString(),
  };
}

export function formatMachine(m: MachineInfo): string {
  const lines = [
    `CPU      ${m.cpu}, ${m.cores} cores [${m.cpu_flags.join(' ')}]`,
    `SIMD     ${m.simd} (best on this CPU: ${m.simd_detected}); caches per core ${m.cache_kb.l1d} KB L1d, ${m.cache_kb.l2} KB L2`,
    `threads  ${m.threads} in our pool by default`,
    `addon    ${m.addon}`,
    `node     ${m.node} on ${m.os}`,
    `versions ${Object.entries(m.versions).map(([k, v]) => `${k} ${v}`).join(', ')}`,
  ];
  const busy = m.load_avg[0] > 0.5 ? `  <- the machine is busy: ratios measured in the same run hold up better than absolute times` : '';
  lines.push(`load     ${m.load_avg.join(' ')} (1/5/15 min averages at start)${busy}`);
  if (Object.keys(m.env).length) lines.push(`env      ${Object.entries(m.env).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  return lines.join('\n');
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/** A right-aligned text table. */
export function formatTable(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [head, ...rows].map((r) => r.map((c, i) => (c ?? '').padStart(widths[i])).join('  ')).join('\n');
}
