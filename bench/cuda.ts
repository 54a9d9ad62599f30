// `npm run bench -- --device cuda [--quick | --smoke] [--json FILE]`: the GPU benches.
//
//   gemm    C = A B (fp32) through the dispatching GEMM (cuBLAS when libcublas loads, else our
//           tiled kernel) and through the tiled kernel alone: GFLOP/s, and tiled / backend
//   spmm    Y = W X, W 4096 x 4096 CSR at 50..99% sparsity, X feature-major, batch 128..1024:
//           our CSR product as a model runs it, and each of its three kernels forced (rows, warp, staged:
//           native/cuda/kernels.h SpmmKernel), vs our dense GEMM on the same (dense) shape on
//           the GPU, and cusparseSpMM when libcusparse loads at run time (dlopen; else said so)
//   train   784-4096-4096-10 at batch 256, SGD momentum: samples/s on the GPU (dense, and 90%
//           sparse CSR) vs the CPU model on this machine's cores
//   struct  the same model (Adam) after a training epoch: a magnitude prune followed on the
//           device (the GPU ranks its weights and sends one drop bit per weight, the CPU model
//           changes its structure, the GPU remaps its slots) against the copy path it replaced
//           (every slot to the host, the change, every slot back)
//   grow    the same model: a net2wider dropin of 16 units into the first hidden layer, followed
//           on the device into reserved capacity (the first growth, untimed, made the room),
//           against the copy path
// Prints the card first. Without a usable GPU it says why and exits with status 1.
// --smoke runs every bench at toy sizes (hidden layers of 64, 256 x 256 SpMM), to check that the
// bench itself runs, e.g. over the CUDA emulator (test/65); its figures mean nothing.
import * as fs from 'fs';
import * as os from 'os';
import { cuda, layers, optimizers, Sequential, type Device } from '../lib/index';
import { gpusSeen } from '../lib/device';

interface CudaBenchResult {
  bench: 'gemm' | 'spmm' | 'train' | 'struct' | 'grow';
  impl: string;
  shape: string;
  sparsity: number;
  batch: number;
  ms: number;
  gflops?: number;
  samplesPerSecond?: number;
}

function randomFloats(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296) * 2 - 1;
  }
  return out;
}

function pad(s: string | number, width: number): string {
  return String(s).padStart(width);
}

async function trainRate(device: Device, hidden: number, n: number, sparsity: number, epochs: number): Promise<number> {
  const m = new Sequential({ inputSize: 784, seed: 1, device, sparseThreshold: 0.5 });
  m.add(layers.dense({ units: hidden, activation: 'relu' }));
  m.add(layers.dense({ units: hidden, activation: 'relu' }));
  m.add(layers.dense({ units: 10 }));
  m.compile({ optimizer: optimizers.sgd({ learningRate: 0.01, momentum: 0.9 }), loss: 'softmaxCrossEntropy' });
  if (sparsity > 0) m.sparsify({ sparsity, distribution: 'uniform' });
  const x = randomFloats(n * 784, 3);
  const y = new Int32Array(n).map((_, i) => (i * 7) % 10);
  // The first epoch pays for uploads, allocation and cuBLAS heuristics: not counted.
  const h = await m.fit(x, y, { epochs: epochs + 1, batchSize: 256 });
  const seconds = h.history.seconds.slice(1).reduce((a, b) => a + b, 0);
  if (device !== 'cpu') m.to('cpu'); // frees the device memory now
  return (n * epochs) / seconds;
}

/**
 * 784-hidden-hidden-10 relu on the GPU with Adam, and n random samples (inputs from `seed`, label
 * i x labelStep mod 10, labelStep odd and not 5, so every digit): the structural benches' model.
 */
function gpuMlp(gpu: Device, hidden: number, sparseThreshold: number, n: number, seed: number, labelStep: number) {
  const m = new Sequential({ inputSize: 784, seed: 1, device: gpu, sparseThreshold });
  m.add(layers.dense({ units: hidden, activation: 'relu' }));
  m.add(layers.dense({ units: hidden, activation: 'relu' }));
  m.add(layers.dense({ units: 10 }));
  m.compile({ optimizer: optimizers.adam({ learningRate: 0.001 }), loss: 'softmaxCrossEntropy' });
  return { m, x: randomFloats(n * 784, seed), y: new Int32Array(n).map((_, i) => (i * labelStep) % 10) };
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

/**
 * Milliseconds of one 5% global magnitude prune on a trained GPU model,
 * followed on the device, and the same prune the way it went before: the
 * model's whole state to the host, the prune there, the whole state back.
 */
async function structuralMs(gpu: Device, hidden: number, n: number, reps: number): Promise<{ device: number; copy: number }> {
  const { m, x, y } = gpuMlp(gpu, hidden, 0.5, n, 5, 3);
  const device: number[] = [], copy: number[] = [];
  for (let r = 0; r < reps; r++) {
    await m.fit(x, y, { epochs: 1, batchSize: 256 }); // the device holds the newest numbers again
    let t = performance.now();
    m.prune({ amount: 0.05, structure: 'weight', scope: 'global' });
    await m.predict(x.subarray(0, 784)); // waits for the device
    device.push(performance.now() - t);
    await m.fit(x, y, { epochs: 1, batchSize: 256 });
    t = performance.now();
    m.native.importState(m.native.exportState()); // every slot to the host; the device's copy is now stale
    m.prune({ amount: 0.05, structure: 'weight', scope: 'global' }); // on the host alone
    await m.predict(x.subarray(0, 784)); // every slot back
    copy.push(performance.now() - t);
  }
  m.to('cpu');
  return { device: median(device), copy: median(copy) };
}

/**
 * Milliseconds of one net2wider dropin of 16 units into the first hidden layer of a trained GPU
 * model: followed on the device (the units fill the spare capacity an earlier growth reserved,
 * in place) and the same growth on the copy path (state out, grow on the host, state back).
 */
async function growMs(gpu: Device, hidden: number, n: number, reps: number): Promise<{ device: number; copy: number }> {
  const { m, x, y } = gpuMlp(gpu, hidden, 0, n, 7, 7);
  const grow = () => m.grow({ layer: 0, count: 16, init: 'net2wider', noise: 0.1 });
  await m.fit(x, y, { epochs: 1, batchSize: 256 });
  grow();  // the first growth reallocates with headroom (1.5x): the later ones fit in place
  const device: number[] = [], copy: number[] = [];
  // The device's growths first: the copy path's push (a whole load) leaves the layers without spare capacity.
  for (let r = 0; r < reps; r++) {
    await m.fit(x, y, { epochs: 1, batchSize: 256 });
    const t = performance.now();
    grow();
    await m.predict(x.subarray(0, 784)); // waits for the device
    device.push(performance.now() - t);
  }
  for (let r = 0; r < reps; r++) {
    await m.fit(x, y, { epochs: 1, batchSize: 256 });
    const t = performance.now();
    m.native.importState(m.native.exportState()); // every slot to the host; the device's copy is now stale
    grow();
    await m.predict(x.subarray(0, 784)); // every slot back
    copy.push(performance.now() - t);
  }
  m.to('cpu');
  return { device: median(device), copy: median(copy) };
}

/** What each bench measures: the full run, --quick (fewer shapes and repetitions), --smoke (toy sizes). */
function benchSizes(quick: boolean, smoke: boolean) {
  if (smoke)
    return { reps: 1, gemm: [[128, 64, 96]] as [number, number, number][], spmm: 256, spmmBatches: [64, 128], sparsities: [0.9],
      hidden: 64, trainGpu: 512, trainCpu: 512, epochs: 1, structN: 512, structReps: 1 };
  if (quick)
    return { reps: 3, gemm: [[2048, 2048, 2048], [4096, 256, 4096]] as [number, number, number][], spmm: 4096, spmmBatches: [256],
      sparsities: [0.9, 0.99], hidden: 4096, trainGpu: 8192, trainCpu: 1024, epochs: 1, structN: 2048, structReps: 3 };
  return { reps: 10, gemm: [[1024, 1024, 1024], [2048, 2048, 2048], [4096, 4096, 4096], [4096, 256, 4096], [4096, 256, 784]] as [number, number, number][],
    spmm: 4096, spmmBatches: [128, 256, 1024], sparsities: [0.5, 0.75, 0.9, 0.95, 0.99], hidden: 4096, trainGpu: 32768,
    trainCpu: 4096, epochs: 2, structN: 8192, structReps: 5 };
}

/** gpu: the GPU ordinal to bench ('--device cuda:N'; 0 for 'cuda'). */
export async function runCudaBench(argv: string[], gpu = 0): Promise<number> {
  let quick = false, smoke = false;
  let json: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--quick') quick = true;
    else if (argv[i] === '--smoke') smoke = true;
    else if (argv[i] === '--json' && argv[i + 1] && !argv[i + 1].startsWith('--')) json = argv[++i];
    else {
      console.error(`bench --device cuda: unknown or incomplete flag '${argv[i]}' (flags: --quick, --smoke, --json FILE)`);
      return 2;
    }
  }
  if (quick && smoke) {
    console.error('bench --device cuda: --quick and --smoke are alternatives; give one');
    return 2;
  }
  const size = benchSizes(quick, smoke);
  const status = cuda.status();
  if (!status.available) {
    console.error(`bench --device cuda: no usable GPU, nothing measured.\n${status.reason}`);
    return 1;
  }
  const addon = cuda.require();
  const cards = cuda.devices();
  const card = cards[gpu];
  if (!card) {
    console.error(`bench --device cuda:${gpu}: ${gpusSeen()}`);
    return 1;
  }
  const device: Device = `cuda:${gpu}`;
  addon.bench.selectDevice(gpu);  // the kernel benches below run on the calling thread's current GPU
  const backend = addon.gemmBackend();
  const cusparse = addon.bench.cusparse();
  console.log(`== GPU: ${card.name} (compute ${card.computeCapability}, ${(card.totalMemory / 2 ** 30).toFixed(1)} GiB), ` +
    `driver CUDA ${status.driverVersion}, runtime ${status.runtimeVersion}`);
  console.log(`   dense GEMM backend: ${backend}; cuSPARSE peer: ${cusparse}`);
  const note = quick ? '; --quick (few repetitions, do not quote)' : smoke ? '; --smoke (toy sizes: checks the bench runs, do not quote)' : '';
  console.log(`   CPU: ${os.cpus()[0]?.model ?? '?'} x ${os.cpus().length}${note}`);
  const results: CudaBenchResult[] = [];
  const reps = size.reps;

  console.log('\n== gemm: C[m x n] = A[m x k] B[k x n], fp32, GFLOP/s');
  console.log(`${pad('m x n x k', 18)} ${pad('backend', 10)} ${pad('tiled', 10)} ${pad('tiled/backend', 14)}`);
  for (const [m, n, k] of size.gemm) {
    const flops = 2 * m * n * k;
    const msBackend = addon.bench.gemm(m, n, k, reps, false), msTiled = addon.bench.gemm(m, n, k, reps, true);
    const gB = flops / msBackend / 1e6, gT = flops / msTiled / 1e6;
    console.log(`${pad(`${m}x${n}x${k}`, 18)} ${pad(gB.toFixed(0), 10)} ${pad(gT.toFixed(0), 10)} ${pad((gT / gB).toFixed(2), 14)}`);
    results.push({ bench: 'gemm', impl: backend.split(' ')[0], shape: `${m}x${n}x${k}`, sparsity: 0, batch: n, ms: msBackend, gflops: gB });
    results.push({ bench: 'gemm', impl: 'tiled', shape: `${m}x${n}x${k}`, sparsity: 0, batch: n, ms: msTiled, gflops: gT });
  }

  const rows = size.spmm, cols = size.spmm;
  console.log(`\n== spmm: Y[${rows} x batch] = W[${rows} x ${cols}] X, ms per product (speed-up over our dense GEMM)`);
  // 'ours' is what a model runs (kernels.h SpmmKernel::kAuto); 'rows', 'warp' and 'staged' force each
  // of the three kernels (equal results to the bit), so one GPU run shows which should run where.
  console.log(`${pad('sparsity', 9)} ${pad('batch', 6)} ${pad('dense gemm', 11)} ${pad('ours csr', 18)} ${pad('rows kernel', 18)} ${pad('warp kernel', 18)} ${pad('staged kernel', 18)} ${pad('cusparse', 18)} ours/cusparse`);
  for (const batch of size.spmmBatches) {
    const dense = addon.bench.gemm(rows, batch, cols, reps, false);
    results.push({ bench: 'spmm', impl: 'dense-gemm', shape: `${rows}x${cols}`, sparsity: 0, batch, ms: dense });
    for (const sparsity of size.sparsities) {
      const time = (impl: 'ours' | 'rows' | 'warp' | 'staged' | 'cusparse') => addon.bench.spmm(rows, cols, 1 - sparsity, batch, reps, impl);
      const [ours, rowsKernel, warpKernel, stagedKernel, peer] = [time('ours'), time('rows'), time('warp'), time('staged'), time('cusparse')];
      const cell = (ms: number) => (ms < 0 ? pad('n/a', 18) : pad(`${ms.toFixed(3)} (${(dense / ms).toFixed(2)}x)`, 18));
      const vsPeer = peer > 0 ? `${(peer / ours).toFixed(2)}x` : 'n/a';
      console.log(`${pad(sparsity, 9)} ${pad(batch, 6)} ${pad(dense.toFixed(3), 11)} ${cell(ours)} ${cell(rowsKernel)} ${cell(warpKernel)} ${cell(stagedKernel)} ${cell(peer)} ${vsPeer}`);
      const shape = `${rows}x${cols}`;
      results.push({ bench: 'spmm', impl: 'neuroplastic-csr', shape, sparsity, batch, ms: ours });
      // -1: that kernel cannot run on these operands (n/a above), so no figure under its name.
      for (const [kernel, ms] of [['rows', rowsKernel], ['warp', warpKernel], ['staged', stagedKernel]] as const)
        if (ms >= 0) results.push({ bench: 'spmm', impl: `neuroplastic-csr-${kernel}`, shape, sparsity, batch, ms });
      if (peer >= 0) results.push({ bench: 'spmm', impl: 'cusparse', shape, sparsity, batch, ms: peer });
    }
  }
  if (cusparse.startsWith('unavailable')) console.log(`   cuSPARSE not measured: ${cusparse}`);

  const net = `784-${size.hidden}-${size.hidden}-10`;
  console.log(`\n== train: ${net}, batch 256, SGD momentum, samples/s (first epoch not counted)`);
  const gpuN = size.trainGpu, cpuN = size.trainCpu;
  const runs: [string, Device, number, number][] = [
    ['gpu dense', device, gpuN, 0],
    ['gpu 90% sparse (csr)', device, gpuN, 0.9],
    ['cpu dense', 'cpu', cpuN, 0],
  ];
  const rates: { [k: string]: number } = {};
  for (const [label, where, n, sparsity] of runs) {
    const rate = await trainRate(where, size.hidden, n, sparsity, size.epochs);
    rates[label] = rate;
    console.log(`${label.padEnd(22)} ${pad(rate.toFixed(0), 10)} samples/s`);
    const impl = where === 'cpu' ? 'neuroplastic-cpu' : 'neuroplastic-cuda';
    results.push({ bench: 'train', impl, shape: net, sparsity, batch: 256, ms: (256 / rate) * 1000, samplesPerSecond: rate });
  }
  console.log(`gpu dense / cpu dense: ${(rates['gpu dense'] / rates['cpu dense']).toFixed(1)}x`);

  console.log(`\n== struct: ${net} (Adam) after an epoch: a 5% global magnitude prune, ms (median)`);
  const st = await structuralMs(device, size.hidden, size.structN, size.structReps);
  console.log(`followed on the device ${pad(st.device.toFixed(1), 10)}  copy path (state out and back) ${pad(st.copy.toFixed(1), 10)}  ` +
    `ratio ${(st.copy / st.device).toFixed(1)}x`);
  results.push({ bench: 'struct', impl: 'restructure', shape: net, sparsity: 0, batch: 256, ms: st.device });
  results.push({ bench: 'struct', impl: 'copy-path', shape: net, sparsity: 0, batch: 256, ms: st.copy });

  console.log(`\n== grow: ${net} (Adam) after an epoch: net2wider +16 units in layer 0, ms (median)`);
  const g = await growMs(device, size.hidden, size.structN, size.structReps);
  console.log(`into reserved capacity ${pad(g.device.toFixed(1), 10)}  copy path (state out and back) ${pad(g.copy.toFixed(1), 10)}  ` +
    `ratio ${(g.copy / g.device).toFixed(1)}x`);
  results.push({ bench: 'grow', impl: 'in-place', shape: net, sparsity: 0, batch: 256, ms: g.device });
  results.push({ bench: 'grow', impl: 'copy-path', shape: net, sparsity: 0, batch: 256, ms: g.copy });

  if (json) {
    fs.writeFileSync(json, JSON.stringify({ gpu: { ...card, backend, cusparse, driver: status.driverVersion, runtime: status.runtimeVersion },
      cpu: { model: os.cpus()[0]?.model, cores: os.cpus().length }, quick, smoke, results }, null, 2));
    console.log(`\nwrote ${json}`);
  }
  return 0;
}
