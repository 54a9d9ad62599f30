// TF.js training-step peer for bench/train.ts. One process per backend, so the
// cpu and wasm backends never share a process with each other or with our addon.
//
//   node --import tsx bench/peers/tfjs_train.ts --backend cpu|wasm --data DIR
//
// It speaks the line protocol of bench/train.ts (see WorkerReply there):
//   stdout: READY {info}            once the backend is up
//   stdin:  run {"net":[784,300,100,10],"batch":128,"steps":N}
//   stdout: RESULT {"ms":..., "loss_first":..., "loss_last":...}   or   ERROR message
// Any other stdout line (TF.js prints a hello in Node) is ignored by the parent.
//
// The model is tf.sequential() of dense layers (relu, linear logits; softmax folded
// into the loss through a softmax output + categoricalCrossentropy, the Layers API
// way), trained with tf.train.momentum(0.01, 0.9) through model.trainOnBatch on one
// fixed batch (the first `batch` samples of the data the parent wrote).
import * as fs from 'fs';
import * as path from 'path';
import * as readline from 'readline';

interface RunRequest {
  net: number[];
  batch: number;
  steps: number;
}

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(name);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (fallback === undefined) throw new Error(`tfjs_train: missing ${name}`);
  return fallback;
}

function reply(kind: 'READY' | 'RESULT' | 'ERROR', body: unknown): void {
  process.stdout.write(`${kind} ${typeof body === 'string' ? body : JSON.stringify(body)}\n`);
}

async function main(): Promise<void> {
  const backend = arg('--backend');
  const dataDir = arg('--data');
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const tf = require('@tensorflow/tfjs') as typeof import('@tensorflow/tfjs');
  let wasmVersion: string | undefined;
  if (backend === 'wasm') {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
    // The .wasm binaries ship in the package's dist folder: read them from there
    // (a file path prefix; Emscripten reads it with fs in Node), never fetch.
    const dist = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
    wasm.setWasmPaths(dist + path.sep);
    wasmVersion = wasm.version_wasm;
  } else if (backend !== 'cpu') {
    throw new Error(`tfjs_train: unknown backend ${backend}`);
  }
  const ok = await tf.setBackend(backend);
  await tf.ready();
  if (!ok || tf.getBackend() !== backend) throw new Error(`tfjs_train: backend ${backend} did not initialise`);
  let threads = 1;
  if (backend === 'wasm') {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
    try {
      threads = wasm.getThreadsCount();
    } catch {
      threads = 1;
    }
  }
  const simd = backend === 'wasm' ? String(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) : 'n/a';
  const xAll = new Float32Array(fs.readFileSync(path.join(dataDir, 'x.f32')).buffer.slice(0));
  const yAll = new Uint8Array(fs.readFileSync(path.join(dataDir, 'y.u8')));
  const features = 784;

  const models = new Map<string, { model: import('@tensorflow/tfjs').Sequential; x: import('@tensorflow/tfjs').Tensor; y: import('@tensorflow/tfjs').Tensor }>();
  function setup(req: RunRequest) {
    const key = `${req.net.join('-')}@${req.batch}`;
    let m = models.get(key);
    if (m) return m;
    if (req.net[0] !== features) throw new Error(`net input must be ${features}`);
    if (yAll.length < req.batch) throw new Error(`only ${yAll.length} samples, need ${req.batch}`);
    const model = tf.sequential();
    for (let l = 1; l < req.net.length; l++) {
      const last = l === req.net.length - 1;
      model.add(tf.layers.dense({
        units: req.net[l],
        activation: last ? 'softmax' : 'relu',
        inputShape: l === 1 ? [req.net[0]] : undefined,
        kernelInitializer: last ? 'glorotUniform' : 'heNormal',
      }));
    }
    model.compile({ optimizer: tf.train.momentum(0.01, 0.9), loss: 'categoricalCrossentropy' });
    const x = tf.tensor2d(xAll.subarray(0, req.batch * features), [req.batch, features]);
    const y = tf.oneHot(tf.tensor1d(Array.from(yAll.subarray(0, req.batch)), 'int32'), req.net[req.net.length - 1]).toFloat();
    m = { model, x, y };
    models.set(key, m);
    return m;
  }

  async function run(req: RunRequest) {
    const { model, x, y } = setup(req);
    let first = NaN;
    let last = NaN;
    const start = process.hrtime.bigint();
    for (let s = 0; s < req.steps; s++) {
      // trainOnBatch resolves once the step is done and the loss read back,
      // so the timing covers the whole step.
      const loss = (await model.trainOnBatch(x, y)) as number;
      if (s === 0) first = loss;
      last = loss;
    }
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    return { ms, loss_first: first, loss_last: last };
  }

  reply('READY', {
    impl: `tfjs-${backend}`,
    version: tf.version.tfjs,
    wasm_version: wasmVersion,
    backend: tf.getBackend(),
    threads,
    wasm_simd: simd,
    data: 'the first batch of the parent\'s training data, fixed tensors (model.trainOnBatch)',
  });

  const rl = readline.createInterface({ input: process.stdin });
  // Commands are handled one at a time: the parent waits for each reply.
  let chain = Promise.resolve();
  rl.on('line', (line) => {
    chain = chain.then(async () => {
      const text = line.trim();
      if (text === 'quit') {
        process.exit(0);
      }
      if (!text.startsWith('run ')) return;
      try {
        reply('RESULT', await run(JSON.parse(text.slice(4)) as RunRequest));
      } catch (err) {
        reply('ERROR', (err as Error).message.replace(/\n/g, ' '));
      }
    });
  });
  rl.on('close', () => process.exit(0));
}

main().catch((err: unknown) => {
  reply('ERROR', (err instanceof Error ? err.message : String(err)).replace(/\n/g, ' '));
  process.exit(1);
});
