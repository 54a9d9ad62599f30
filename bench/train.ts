// Training throughput: ms per optimizer step and samples/s of whole training
// steps through the public API (model.fit), against PyTorch CPU and TF.js
// (cpu and wasm backends), measured in the same run and interleaved.
//
// Every implementation runs in its own child process ("worker") that speaks one
// line protocol, so each keeps its own thread pool and none disturbs another:
//   stdout: READY {info}                         after start-up
//   stdin:  run {"net":[784,300,100,10],"batch":128,"steps":N}
//   stdout: RESULT {"ms": total ms of the N steps, ...}   or   ERROR message
// Our worker is this file run with --worker (NEUROPLASTIC_THREADS sets its pool),
// the peers are bench/peers/tfjs_train.ts and bench/peers/torch_train.py.
// While one worker runs the others wait on stdin, idle. The parent does, per
// network and thread count: warm-up, then rounds of (ours, peer, peer, ...),
// and reports each implementation's median.
//
//   node --import tsx bench/main.ts --train [--small] [--quick] [--threads 1,2]
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as readline from 'readline';
import { formatTable, median, packageVersion, ROOT, type BenchResult, type PeerInfo } from './types';

export type TrainSuite = 'train' | 'small';

export interface TrainBenchOptions {
  threads: number[];
  quick?: boolean;
  /** 'train': the two nets at batch 128; 'small': 784-32-10 at batch 8. Default both. */
  suites?: TrainSuite[];
  /** Peers to run: 'all' (default), 'none', or a list of 'pytorch', 'tfjs-cpu', 'tfjs-wasm'. */
  peers?: 'all' | 'none' | string[];
  log?: (line: string) => void;
}

export interface TrainBenchReport {
  results: BenchResult[];
  peers: PeerInfo[];
  /** Which training data the steps ran on. */
  data: string;
  /** Our own measurements that failed (their rows are missing); peers' failures are only logged. */
  errors: string[];
}

export const PEERS = ['pytorch', 'pytorch-default', 'tfjs-cpu', 'tfjs-wasm'] as const;

interface NetConfig {
  suite: TrainSuite;
  bench: string;
  net: number[];
  batch: number;
}

const CONFIGS: NetConfig[] = [
  { suite: 'train', bench: 'train', net: [784, 300, 100, 10], batch: 128 },
  { suite: 'train', bench: 'train', net: [784, 1024, 1024, 10], batch: 128 },
  { suite: 'small', bench: 'train-small', net: [784, 32, 10], batch: 8 },
];

/** Samples written for the workers: enough for 200 steps at batch 128. */
const SAMPLES = 200 * 128;
const FEATURES = 784;

/**
 * Useful FLOPs of one training step of an MLP at batch B: forward 2·B·Σ in·out,
 * weight gradients the same, input gradients 2·B·Σ in·out over every layer but
 * the first (nothing needs the gradient of the data). Activations, loss and the
 * optimizer update are not counted.
 */
export function mlpStepFlops(net: number[], batch: number): number {
  let all = 0;
  let notFirst = 0;
  for (let l = 1; l < net.length; l++) {
    all += net[l - 1] * net[l];
    if (l > 1) notFirst += net[l - 1] * net[l];
  }
  return 2 * batch * (2 * all + notFirst);
}

// ---------------------------------------------------------------------------
// The parent's side of the protocol.

interface RunRequest {
  net: number[];
  batch: number;
  steps: number;
}

interface RunReply {
  ms: number;
  loss?: number;
  loss_first?: number;
  loss_last?: number;
}

class Worker {
  private readonly child: ChildProcess;
  private readonly waiting: Array<{ resolve: (v: { kind: string; body: string }) => void; reject: (e: Error) => void }> = [];
  private readonly queued: Array<{ kind: string; body: string }> = [];
  private stderr = '';
  private exited: string | null = null;
  info: Record<string, unknown> = {};

  constructor(readonly name: string, command: string, args: string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(command, args, { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    const rl = readline.createInterface({ input: this.child.stdout! });
    rl.on('line', (line) => {
      const m = /^(READY|RESULT|ERROR) ?(.*)$/.exec(line);
      if (!m) return; // chatter (TF.js greets Node users on stdout)
      const msg = { kind: m[1], body: m[2] };
      const w = this.waiting.shift();
      if (w) w.resolve(msg);
      else this.queued.push(msg);
    });
    this.child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-4000);
    });
    this.child.on('error', (err) => this.fail(`could not start ${command}: ${err.message}`));
    this.child.on('exit', (code, signal) => this.fail(`exited (${signal ?? `code ${code}`})`));
  }

  private fail(why: string): void {
    if (this.exited) return;
    const tail = this.stderr.trim().split('\n').slice(-3).join(' | ');
    this.exited = tail ? `${why}: ${tail}` : why;
    for (const w of this.waiting.splice(0)) w.reject(new Error(`${this.name} ${this.exited}`));
  }

  private next(timeoutMs: number): Promise<{ kind: string; body: string }> {
    const q = this.queued.shift();
    if (q) return Promise.resolve(q);
    if (this.exited) return Promise.reject(new Error(`${this.name} ${this.exited}`));
    return new Promise((resolve, reject) => {
      const entry = {
        resolve: (v: { kind: string; body: string }) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
        this.close();
        reject(new Error(`${this.name} gave no answer within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      this.waiting.push(entry);
    });
  }

  async ready(timeoutMs = 120_000): Promise<Record<string, unknown>> {
    const msg = await this.next(timeoutMs);
    if (msg.kind !== 'READY') throw new Error(`${this.name}: ${msg.body}`);
    this.info = JSON.parse(msg.body) as Record<string, unknown>;
    return this.info;
  }

  async run(req: RunRequest, timeoutMs: number): Promise<RunReply> {
    if (this.exited) throw new Error(`${this.name} ${this.exited}`);
    this.child.stdin!.write(`run ${JSON.stringify(req)}\n`);
    const msg = await this.next(timeoutMs);
    if (msg.kind !== 'RESULT') throw new Error(`${this.name}: ${msg.body}`);
    const r = JSON.parse(msg.body) as RunReply;
    if (!(r.ms > 0)) throw new Error(`${this.name}: bad timing ${msg.body}`);
    return r;
  }

  close(): void {
    if (this.exited) return;
    try {
      this.child.stdin!.end('quit\n');
    } catch {
      // already gone
    }
    const child = this.child;
    setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }, 2000).unref();
  }
}

function tsxArgs(file: string): string[] {
  return ['--import', 'tsx', path.join(ROOT, file)];
}

/** Our worker for a thread count. */
function startOurs(threads: number, dataDir: string): Worker {
  const env = { ...process.env, NEUROPLASTIC_THREADS: String(threads) };
  return new Worker(`neuroplastic (${threads} threads)`, process.execPath, [...tsxArgs('bench/train.ts'), '--worker', '--data', dataDir], env);
}

function startPeer(impl: string, threads: number, dataDir: string): Worker {
  if (impl === 'pytorch-default') {
    // PyTorch as a user runs it: torch.set_num_threads(T) and OpenBLAS left at
    // its default thread count (both pools on the same cores). Only the two
    // OpenBLAS safety variables are removed, as for the tuned peer.
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.OPENBLAS_CORETYPE;
    delete env.OPENBLAS_L2_SIZE;
    delete env.OMP_NUM_THREADS;
    delete env.OPENBLAS_NUM_THREADS;
    return new Worker(`pytorch-default (${threads} threads)`, '/usr/bin/python3',
      [path.join(ROOT, 'bench/peers/torch_train.py'), '--threads', String(threads), '--default-threads', '--data', dataDir], env);
  }
  if (impl === 'pytorch') {
    // OpenBLAS (torch's BLAS on Debian) picks its AVX-512 kernels only with
    // these two unset (BENCH.md); the rest of this process keeps them. The
    // GEMMs get the threads, ATen's OpenMP pool one (torch_train.py says why).
    const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: String(threads) };
    delete env.OPENBLAS_CORETYPE;
    delete env.OPENBLAS_L2_SIZE;
    return new Worker(`pytorch (${threads} threads)`, '/usr/bin/python3', [path.join(ROOT, 'bench/peers/torch_train.py'), '--threads', String(threads), '--data', dataDir], env);
  }
  const backend = impl.replace('tfjs-', '');
  return new Worker(impl, process.execPath, [...tsxArgs('bench/peers/tfjs_train.ts'), '--backend', backend, '--data', dataDir], { ...process.env });
}

/** Why a peer cannot run here, or null. */
function peerMissing(impl: string): string | null {
  if (impl === 'pytorch' || impl === 'pytorch-default') {
    if (!fs.existsSync('/usr/bin/python3')) return '/usr/bin/python3 not found (apt-get install -y python3-torch)';
    return null; // the worker itself reports a failed `import torch`
  }
  if (!packageVersion('@tensorflow/tfjs')) return '@tensorflow/tfjs is not installed (npm install --save-dev @tensorflow/tfjs)';
  if (impl === 'tfjs-wasm' && !packageVersion('@tensorflow/tfjs-backend-wasm')) {
    return '@tensorflow/tfjs-backend-wasm is not installed (npm install --save-dev @tensorflow/tfjs-backend-wasm)';
  }
  return null;
}

// ---------------------------------------------------------------------------
// Data: the parent loads it once and writes the first SAMPLES training samples
// as raw files, so every worker (Node or Python) trains on the same bytes.

function writeTrainingData(log: (s: string) => void): { dir: string; name: string; samples: number } {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { data } = require('../lib/index') as typeof import('../lib/index');
  let set: import('../lib/index').Dataset;
  let name: string;
  // NEUROPLASTIC_BENCH_FASHION_DIR points at another copy of the IDX files (or at
  // nothing, to try the fallback).
  const dir = process.env.NEUROPLASTIC_BENCH_FASHION_DIR;
  try {
    set = data.loadFashionMnist({ split: 'train', limit: SAMPLES, ...(dir ? { dir } : {}) });
    name = 'Fashion-MNIST train';
  } catch (err) {
    log(`note: ${(err as Error).message}`);
    log('note: training on the bundled MNIST digits instead (same shapes, so the timings compare)');
    set = data.loadMnistSplits().train;
    name = 'bundled MNIST train';
  }
  const samples = Math.min(set.n, SAMPLES);
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'neuroplastic-bench-'));
  const x = set.x.subarray(0, samples * FEATURES);
  fs.writeFileSync(path.join(out, 'x.f32'), Buffer.from(x.buffer, x.byteOffset, x.byteLength));
  fs.writeFileSync(path.join(out, 'y.u8'), Buffer.from(set.y.buffer, set.y.byteOffset, samples));
  return { dir: out, name: `${name} (first ${samples} samples)`, samples };
}

// ---------------------------------------------------------------------------

interface Measured {
  impl: string;
  worker: Worker;
  steps: number;
  msPerStep: number[];
  estimate: number;
  lossStart?: number;
  lossEnd?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function fmt(v: number, digits = 3): string {
  if (!Number.isFinite(v)) return '-';
  if (v >= 1000) return Math.round(v).toLocaleString('en-US');
  return v.toPrecision(digits);
}

function lossOf(r: RunReply): number | undefined {
  return r.loss ?? r.loss_last ?? r.loss_first;
}

export async function runTrainBench(opts: TrainBenchOptions): Promise<TrainBenchReport> {
  const log = opts.log ?? ((s: string) => console.log(s));
  const quick = opts.quick ?? false;
  const suites = opts.suites ?? ['train', 'small'];
  const wanted = opts.peers === 'none' ? [] : opts.peers === undefined || opts.peers === 'all' ? [...PEERS] : opts.peers;
  const configs = CONFIGS.filter((c) => suites.includes(c.suite));
  // Timing plan: each timed run is one fit() of N steps, N chosen so a run lasts
  // about targetMs; `reps` runs per implementation (fewer for a slow peer, so one
  // TF.js cpu net stays within budgetMs).
  const reps = quick ? 2 : 7;
  const minReps = quick ? 1 : 3;
  const targetMs = quick ? 25 : 150;
  const budgetMs = quick ? 2500 : 10_000;
  const warmSteps = quick ? 2 : 5;

  const peers: PeerInfo[] = [];
  const results: BenchResult[] = [];
  const errors: string[] = [];
  const { dir, name: dataName, samples } = writeTrainingData(log);
  log(`data: ${dataName}; sgd lr 0.01 momentum 0.9, softmax cross-entropy; ${quick ? 'quick: few runs, not for quoting' : `median of up to ${reps} runs`}`);

  const shared = new Map<string, Worker>(); // TF.js workers do not depend on the thread count
  const warmed = new Set<string>(); // worker name + net key
  const dead = new Set<string>();
  const peerNote = new Map<string, PeerInfo>();
  for (const impl of PEERS) {
    if (!wanted.includes(impl)) continue;
    const missing = peerMissing(impl);
    if (missing) {
      log(`skip ${impl}: ${missing}`);
      dead.add(impl);
      peerNote.set(impl, { impl, available: false, note: missing });
    }
  }

  async function open(impl: string, threads: number): Promise<Worker | null> {
    if (dead.has(impl)) return null;
    const key = impl.startsWith('tfjs') ? impl : `${impl}@${threads}`;
    const have = shared.get(key);
    if (have) return have;
    const w = startPeer(impl, threads, dir);
    try {
      const info = await w.ready();
      shared.set(key, w);
      if (!peerNote.has(impl)) {
        peerNote.set(impl, { impl, available: true, version: String(info.version ?? ''), ...info });
      }
      return w;
    } catch (err) {
      w.close();
      const why = (err as Error).message;
      log(`skip ${impl}: ${why}`);
      dead.add(impl);
      peerNote.set(impl, { impl, available: false, note: why });
      return null;
    }
  }

  function simdOf(impl: string, info: Record<string, unknown>): string {
    if (impl === 'neuroplastic') return String(info.simd);
    if (impl.startsWith('pytorch')) return String(info.blas ?? 'unknown');
    if (impl === 'tfjs-wasm') return info.wasm_simd === 'true' ? 'wasm-simd128' : 'wasm';
    return 'js';
  }

  try {
    for (const threads of opts.threads) {
      const ours = startOurs(threads, dir);
      let ourInfo: Record<string, unknown>;
      try {
        ourInfo = await ours.ready();
      } catch (err) {
        ours.close();
        const why = `our worker (${threads} threads) did not start: ${(err as Error).message}`;
        log(`error: ${why}`);
        errors.push(why);
        continue;
      }
      if (ourInfo.threads !== threads) log(`note: our pool has ${String(ourInfo.threads)} threads (asked for ${threads})`);
      const peerWorkers: Array<[string, Worker]> = [];
      for (const impl of wanted) {
        const w = await open(impl, threads);
        if (w) peerWorkers.push([impl, w]);
      }
      try {
        for (const cfg of configs) {
          const shape = cfg.net.join('-');
          try {
            const maxSteps = Math.floor(samples / cfg.batch);
            if (maxSteps < 1) throw new Error(`train bench: only ${samples} samples, need ${cfg.batch}`);
            const flops = mlpStepFlops(cfg.net, cfg.batch);
            const impls: Array<[string, Worker]> = [['neuroplastic', ours], ...peerWorkers.filter(([impl]) => !dead.has(impl))];
            // Warm-up: build the model and run a few steps (twice; the second run
            // gives the per-step estimate that sizes the timed runs).
            const measured: Measured[] = [];
            for (const [impl, worker] of impls) {
              try {
                const slow = impl === 'tfjs-cpu' && cfg.batch >= 128;
                const w = Math.min(maxSteps, slow ? 1 : warmSteps);
                const req = { net: cfg.net, batch: cfg.batch, steps: w };
                const wkey = `${worker.name}|${shape}@${cfg.batch}`;
                let first: RunReply | undefined;
                if (!warmed.has(wkey)) first = await worker.run(req, 300_000);
                const second = await worker.run(req, 300_000);
                warmed.add(wkey);
                const estimate = second.ms / w;
                const steps = Math.max(1, Math.min(maxSteps, Math.round(targetMs / estimate)));
                measured.push({
                  impl,
                  worker,
                  steps,
                  msPerStep: [],
                  estimate,
                  lossStart: first ? (first.loss_first ?? lossOf(first)) : undefined,
                  lossEnd: lossOf(second),
                });
              } catch (err) {
                if (impl === 'neuroplastic') throw err;
                log(`skip ${impl}: ${(err as Error).message}`);
                dead.add(impl);
                peerNote.set(impl, { ...(peerNote.get(impl) ?? { impl }), available: false, note: (err as Error).message });
              }
            }
            // The answer check: a training step must produce a finite loss that
            // starts near ln(classes) (same problem everywhere) and does not blow up.
            for (const m of measured) {
              const classes = cfg.net[cfg.net.length - 1];
              const bad = m.lossEnd === undefined || !Number.isFinite(m.lossEnd) || m.lossEnd > 3 * Math.log(classes);
              if (bad) log(`warning: ${m.impl} ${shape}: loss ${String(m.lossEnd)} after warm-up (expected near or below ${Math.log(classes).toFixed(2)})`);
            }
            const runsOf = (m: Measured) => m.impl === 'neuroplastic' ? reps : Math.max(minReps, Math.min(reps, Math.floor(budgetMs / (m.steps * m.estimate))));
            for (let r = 0; r < reps; r++) {
              for (const m of measured) {
                if (dead.has(m.impl) || r >= runsOf(m)) continue;
                try {
                  const reply = await m.worker.run({ net: cfg.net, batch: cfg.batch, steps: m.steps }, Math.max(60_000, 50 * m.steps * m.estimate));
                  m.msPerStep.push(reply.ms / m.steps);
                } catch (err) {
                  if (m.impl === 'neuroplastic') throw err;
                  log(`skip ${m.impl}: ${(err as Error).message}`);
                  dead.add(m.impl);
                }
                await sleep(5); // let the previous worker's threads go idle
              }
            }
            // Report.
            const ourMs = median(measured[0].msPerStep);
            const rows: string[][] = [];
            const unitUs = cfg.suite === 'small';
            for (const m of measured) {
              if (m.msPerStep.length === 0) continue;
              const ms = median(m.msPerStep);
              const info = m.impl === 'neuroplastic' ? ourInfo : m.worker.info;
              const implThreads = typeof info.threads === 'number' ? info.threads : threads;
              const ratio: { [peer: string]: number } = {};
              if (m.impl === 'neuroplastic') {
                for (const p of measured.slice(1)) if (p.msPerStep.length) ratio[p.impl] = median(p.msPerStep) / ourMs;
              }
              const row: BenchResult = {
                bench: cfg.bench,
                impl: m.impl,
                shape,
                sparsity: 0,
                batch: cfg.batch,
                threads: implThreads,
                simd: simdOf(m.impl, info),
                median_ms: ms,
                gflops: flops / (ms * 1e6),
                ratio_to: ratio,
                samples_per_s: (cfg.batch * 1000) / ms,
                us_per_step: ms * 1000,
                steps_per_run: m.steps,
                runs: m.msPerStep.length,
                spread_ms: [Math.min(...m.msPerStep), Math.max(...m.msPerStep)],
                round_threads: threads,
                data: dataName,
                method: m.impl === 'neuroplastic'
                  ? 'model.fit on exactly steps*batch samples, shuffle, 1 epoch'
                  : m.impl.startsWith('pytorch')
                    ? 'randperm + index_select batches, forward, F.cross_entropy, backward, SGD step, loss.item()'
                    : 'model.trainOnBatch on one fixed batch (softmax + categoricalCrossentropy)',
              };
              results.push(row);
              const vs = m.impl === 'neuroplastic' ? '' : `${fmt(ms / ourMs)}x`;
              rows.push([
                m.impl,
                String(implThreads),
                row.simd,
                unitUs ? fmt(ms * 1000) : fmt(ms),
                fmt(row.samples_per_s as number),
                fmt(row.gflops),
                `${m.steps} x ${m.msPerStep.length}`,
                vs,
              ]);
            }
            log('');
            log(`${cfg.bench} ${shape} relu, batch ${cfg.batch}, ${threads} thread${threads === 1 ? '' : 's'} (${fmt(flops / 1e6)} MFLOP/step)`);
            log(formatTable(['impl', 'threads', 'simd', unitUs ? 'us/step' : 'ms/step', 'samples/s', 'GFLOP/s', 'steps x runs', 'ours faster'], rows));
            if (cfg.suite === 'train') {
              const ours = results[results.length - rows.length];
              const checks: string[] = [];
              const torch = ours.ratio_to.pytorch;
              const torchDefault = ours.ratio_to['pytorch-default'];
              const tcpu = ours.ratio_to['tfjs-cpu'];
              if (torchDefault !== undefined) checks.push(`>= 1.5x PyTorch (default threading): ${fmt(torchDefault)}x ${torchDefault >= 1.5 ? 'met' : 'NOT met'}`);
              if (torch !== undefined) checks.push(`>= 1.5x PyTorch (tuned threading): ${fmt(torch)}x ${torch >= 1.5 ? 'met' : 'NOT met'}`);
              if (tcpu !== undefined) checks.push(`>= 50x TF.js cpu: ${fmt(tcpu)}x ${tcpu >= 50 ? 'met' : 'NOT met'}`);
              if (checks.length) log(`targets: ${checks.join('; ')}`);
            }
          } catch (err) {
            // Our own step failed: keep what was measured so far, go on.
            const why = `neuroplastic ${cfg.bench} ${shape} at ${threads} thread${threads === 1 ? '' : 's'}: ${(err as Error).message}`;
            log(`error: ${why}`);
            errors.push(why);
          }
        }
      } finally {
        ours.close();
        for (const [key, w] of shared) {
          if (key.startsWith('pytorch')) {
            w.close();
            shared.delete(key);
          }
        }
      }
    }
  } finally {
    for (const w of shared.values()) w.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  for (const impl of PEERS) {
    const p = peerNote.get(impl);
    if (p) peers.push(p);
  }
  return { results, peers, data: dataName, errors };
}

// ---------------------------------------------------------------------------
// Our worker: `node --import tsx bench/train.ts --worker --data DIR`.

async function workerMain(): Promise<void> {
  const reply = (kind: string, body: unknown) => process.stdout.write(`${kind} ${typeof body === 'string' ? body : JSON.stringify(body)}\n`);
  try {
    const i = process.argv.indexOf('--data');
    if (i < 0) throw new Error('train worker: --data DIR is required');
    const dir = process.argv[i + 1];
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const np = require('../lib/index') as typeof import('../lib/index');
    const buf = fs.readFileSync(path.join(dir, 'x.f32'));
    const x = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    const y = new Uint8Array(fs.readFileSync(path.join(dir, 'y.u8')));
    const models = new Map<string, import('../lib/index').Sequential>();
    const modelFor = (req: RunRequest) => {
      const key = `${req.net.join('-')}@${req.batch}`;
      let m = models.get(key);
      if (!m) {
        m = new np.Sequential({ inputSize: req.net[0], seed: 1 });
        for (let l = 1; l < req.net.length; l++) {
          m.add(np.layers.dense({ units: req.net[l], activation: l === req.net.length - 1 ? 'linear' : 'relu' }));
        }
        m.compile({ optimizer: np.optimizers.sgd({ learningRate: 0.01, momentum: 0.9 }), loss: 'softmaxCrossEntropy' });
        models.set(key, m);
      }
      return m;
    };
    const rt = np.runtime();
    reply('READY', { impl: 'neuroplastic', version: rt.version, simd: rt.simd, simd_detected: rt.simdDetected, threads: rt.threads });
    const rl = readline.createInterface({ input: process.stdin });
    let chain = Promise.resolve();
    rl.on('line', (line) => {
      chain = chain.then(async () => {
        const text = line.trim();
        if (text === 'quit') process.exit(0);
        if (!text.startsWith('run ')) return;
        try {
          const req = JSON.parse(text.slice(4)) as RunRequest;
          const n = req.steps * req.batch;
          if (n > y.length) throw new Error(`only ${y.length} samples, need ${n}`);
          const model = modelFor(req);
          const xs = x.subarray(0, n * req.net[0]);
          const ys = y.subarray(0, n);
          const start = process.hrtime.bigint();
          const history = await model.fit(xs, ys, { batchSize: req.batch, epochs: 1, shuffle: true });
          const ms = Number(process.hrtime.bigint() - start) / 1e6;
          reply('RESULT', { ms, loss: history.history.loss[0] });
        } catch (err) {
          reply('ERROR', (err as Error).message.replace(/\n/g, ' '));
        }
      });
    });
    rl.on('close', () => process.exit(0));
  } catch (err) {
    reply('ERROR', (err as Error).message.replace(/\n/g, ' '));
    process.exit(1);
  }
}

if (require.main === module && process.argv.includes('--worker')) {
  void workerMain();
}
