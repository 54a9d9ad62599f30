// `neuroplastic train`: fits a multilayer perceptron (LeNet-300-100 by default)
// on the bundled MNIST digits or on a folder of IDX files, and reports the
// held-out accuracy. The human report goes to stdout; with --json stdout holds
// only one JSON object (so `| jq` works) and the header moves to stderr.
import { Sequential, data, layers, optimizers, plasticity, runtime, type Callback, type Device, type History, type Optimizer } from '../index';
import { DenseLayer } from '../layers';
import { NEURON_CRITERIA, type NeuronCriterion } from '../structure';
import { formatTable } from '../summary';
import { CliError, UsageError, formatOptions, parseArgs, type OptionTable, type Values } from './args';
import { untilInterrupted, type Command, type Io } from './command';
import { loadCliData } from './data';
import { DEVICE_OPTION, useDevice } from './device';
import { MAX_BATCH_SIZE, MAX_EPOCHS, MAX_HIDDEN_UNITS } from './limits';
import { ProgressReporter, compactCount } from './progress';

const DEFAULT_LR = { sgd: 0.05, adam: 0.001 } as const;
const DEFAULT_MOMENTUM = 0.9;

const OPTIONS = {
  data: { kind: 'string', metavar: 'DIR', help: 'Folder of IDX files ({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]) instead of the bundled MNIST' },
  epochs: { kind: 'integer', metavar: 'N', min: 1, limit: MAX_EPOCHS, default: 10, help: 'Passes over the training set' },
  batchSize: { kind: 'integer', metavar: 'N', min: 1, limit: MAX_BATCH_SIZE, default: 64, help: 'Samples per optimizer step' },
  optimizer: { kind: 'choice', metavar: 'NAME', choices: ['sgd', 'adam'], default: 'sgd', help: 'sgd or adam' },
  lr: { kind: 'number', metavar: 'X', min: 0, minExclusive: true, float32: true, help: 'Learning rate (default 0.05 for sgd, 0.001 for adam)' },
  momentum: { kind: 'number', metavar: 'X', min: 0, max: 1, maxExclusive: true, float32: true, help: 'SGD momentum in [0, 1) (default 0.9)' },
  hidden: { kind: 'integerList', metavar: 'N,N', min: 1, limit: MAX_HIDDEN_UNITS, default: [300, 100], help: 'Units of the hidden relu layers' },
  dropout: { kind: 'number', metavar: 'X', min: 0, max: 1, maxExclusive: true, default: 0, help: 'Dropout rate after each hidden layer, in [0, 1)' },
  seed: { kind: 'integer', metavar: 'N', min: 0, default: 1, help: 'Seed of init, dropout and shuffling' },
  device: DEVICE_OPTION,
  prune: { kind: 'number', metavar: 'X', min: 0, max: 1, maxExclusive: true, help: 'Gradual magnitude pruning (global) to this weight sparsity in [0, 1), from 10% to 70% of the steps' },
  pruneNeurons: { kind: 'number', metavar: 'X', min: 0, max: 1, maxExclusive: true, help: 'Remove this fraction in [0, 1) of the neurons of each hidden layer, then compact and fine-tune' },
  pruneCriterion: { kind: 'choice', metavar: 'NAME', choices: NEURON_CRITERIA, default: 'l2', help: `Neuron score for --prune-neurons: ${NEURON_CRITERIA.join(', ')}` },
  pruneNeuronsEpoch: { kind: 'integer', metavar: 'N', min: 1, help: 'Epoch after which --prune-neurons prunes (default: the middle of training)' },
  json: { kind: 'flag', help: 'Print the results as one JSON object on stdout (its last line)' },
  quiet: { kind: 'flag', help: 'No progress or header on stderr' },
} as const satisfies OptionTable;

type TrainValues = Values<typeof OPTIONS>;

/** Everything --json prints; the text report shows the same figures. */
export interface TrainResult {
  command: 'train';
  version: string;
  data: { name: string; source: string; train: number; test: number; features: number; classes: number };
  architecture: number[];
  activation: 'relu';
  dropout: number;
  optimizer: Optimizer;
  batchSize: number;
  epochs: number;
  seed: number;
  /** Where it trained, and the GPU's name on 'cuda'. */
  device: Device;
  deviceName?: string;
  /** Held-out (test split) accuracy and mean loss after training. */
  accuracy: number;
  loss: number;
  /** Last epoch's running training accuracy and loss. */
  trainAccuracy: number;
  trainLoss: number;
  params: number;
  /** Weights not pruned, summed over the dense layers (biases not counted). */
  nnz: number;
  /** nnz over the weights of the final layer shapes (units x inputs, summed). */
  density: number;
  /** Weights of the unpruned architecture over the stored weights (nnz); biases not counted. */
  compression: number;
  /** The dense layers after training, input to output. */
  layers: LayerResult[];
  /** The pruning asked for (absent without --prune / --prune-neurons). */
  pruning?: {
    sparsity?: number;
    schedule?: { startStep: number; endStep: number; every: number; scope: 'global' };
    neurons?: number;
    criterion?: NeuronCriterion;
    neuronsEpoch?: number;
  };
  /** Training time: the sum of the epochs' training time (validation and loading excluded). */
  seconds: number;
  samplesPerSecond: number;
  history: History['history'];
  simd: string;
  threads: number;
}

export interface LayerResult {
  units: number;
  inputs: number;
  nnz: number;
  density: number;
  format: 'dense' | 'csr';
  /** Bytes of weight storage, gradient and optimizer slots included. */
  bytes: number;
}

function help(): string {
  return [
    'Usage: neuroplastic train [options]',
    '',
    'Trains a multilayer perceptron (relu hidden layers, softmax cross-entropy) and reports its',
    'accuracy on the held-out test split. Default: LeNet-300-100 on the 10,000 MNIST digits bundled',
    'with the package (8,000 train / 2,000 test), 10 epochs of SGD with momentum.',
    '',
    'Options:',
    formatOptions(OPTIONS),
    '',
    'Examples:',
    '  neuroplastic train',
    '  neuroplastic train --data /usr/share/datasets/fashion-mnist --optimizer adam --epochs 5',
    '  neuroplastic train --hidden 64 --epochs 2 --json | jq .accuracy',
    '  neuroplastic train --prune 0.9 --epochs 10      # 90% of the weights pruned, sparse layers stored as CSR',
    '  neuroplastic train --prune-neurons 0.3 --prune-criterion taylor',
    '  neuroplastic train --device cuda --data /usr/share/datasets/fashion-mnist',
  ].join('\n');
}

/** Checks that need more than one option, before any data is loaded. */
function checkCombination(v: TrainValues, given: Set<string>): void {
  if (v.optimizer !== 'sgd' && given.has('momentum')) {
    throw new UsageError(`--momentum applies to --optimizer sgd only, got --optimizer ${v.optimizer}`, 'train');
  }
  if (v.pruneNeurons === undefined) {
    for (const key of ['pruneCriterion', 'pruneNeuronsEpoch'] as const) {
      if (given.has(key)) {
        const flag = key === 'pruneCriterion' ? '--prune-criterion' : '--prune-neurons-epoch';
        throw new UsageError(`${flag} applies to --prune-neurons only`, 'train');
      }
    }
  }
  if (v.pruneNeuronsEpoch !== undefined && v.pruneNeuronsEpoch > v.epochs) {
    throw new UsageError(`--prune-neurons-epoch must be at most --epochs (${v.epochs}), got ${v.pruneNeuronsEpoch}`, 'train');
  }
}

/** The epoch (1-based) after which --prune-neurons acts: the middle of training unless given. */
function neuronsEpochOf(v: TrainValues): number {
  return v.pruneNeuronsEpoch ?? Math.max(1, Math.floor(v.epochs / 2));
}

/**
 * The gradual magnitude schedule of --prune: from ~10% to ~70% of the steps,
 * pruning every ~1% of them, so the last ~30% fine-tune the sparse network.
 */
export function pruneSchedule(totalSteps: number): { startStep: number; endStep: number; every: number } {
  const startStep = Math.round(0.1 * totalSteps);
  const endStep = Math.max(startStep + 1, Math.round(0.7 * totalSteps));
  const every = Math.max(1, Math.round(0.01 * totalSteps));
  return { startStep, endStep, every };
}

/**
 * --prune-neurons: at the end of the chosen epoch (a step boundary), remove the
 * fraction of each hidden layer's neurons with the lowest score, then compact
 * so the remaining epochs train (and run) the smaller network.
 */
function neuronPruning(model: Sequential, amount: number, criterion: NeuronCriterion, afterEpoch: number): Callback {
  return {
    onEpochEnd(epoch: number) {
      if (epoch + 1 !== afterEpoch || amount === 0) return;
      model.prune({ structure: 'neuron', amount, criterion, scope: 'layer' });
      model.compact();
    },
  };
}

function pruningText(v: TrainValues, samples: number): string {
  const parts: string[] = [];
  if (v.prune !== undefined) {
    const s = pruneSchedule(v.epochs * Math.ceil(samples / v.batchSize));
    parts.push(`prune weights to ${v.prune} sparsity (global magnitude, steps ${s.startStep}-${s.endStep} every ${s.every})`);
  }
  if (v.pruneNeurons !== undefined) {
    parts.push(`prune ${v.pruneNeurons} of hidden neurons (${v.pruneCriterion}) after epoch ${neuronsEpochOf(v)}`);
  }
  return parts.length ? parts.join(', ') + ' | ' : '';
}

function layerResults(model: Sequential): LayerResult[] {
  return model.layers
    .filter((l): l is DenseLayer => l instanceof DenseLayer)
    .map((l) => ({ units: l.units, inputs: l.inputs, nnz: l.nnz, density: l.density, format: l.format, bytes: l.bytes }));
}

function makeOptimizer(v: TrainValues): Optimizer {
  if (v.optimizer === 'adam') return optimizers.adam({ learningRate: v.lr ?? DEFAULT_LR.adam });
  return optimizers.sgd({ learningRate: v.lr ?? DEFAULT_LR.sgd, momentum: v.momentum ?? DEFAULT_MOMENTUM });
}



function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function optimizerText(o: Optimizer): string {
  return o.kind === 'sgd' ? `sgd lr ${o.learningRate} momentum ${o.momentum}` : `adam lr ${o.learningRate}`;
}

function report(r: TrainResult, testName: string, summary: string): string {
  const rows = [
    ['held-out accuracy', `${r.accuracy.toFixed(4)}  (${testName}, ${r.data.test} samples)`],
    ['held-out loss', r.loss.toFixed(4)],
    ['train accuracy', `${r.trainAccuracy.toFixed(4)}  (last epoch)`],
    ['parameters', String(r.params)],
    ['nonzero weights', `${r.nnz}  (density ${r.density.toFixed(3)})`],
    ['compression', `${r.compression.toFixed(1)}x  (dense weights / stored weights)`],
    ['seconds', `${r.seconds.toFixed(2)}  (training, ${plural(r.epochs, 'epoch')})`],
    ['samples/s', compactCount(r.samplesPerSecond)],
  ];
  // The value column is left-aligned, so formatTable pads it: trim the line ends.
  const table = formatTable(['result', 'value'], rows).split('\n').map((line) => line.trimEnd()).join('\n');
  return `${table}\n\n${summary}`;
}

async function run(argv: readonly string[], io: Io): Promise<number> {
  const { values: v, given, help: wantsHelp } = parseArgs('train', argv, OPTIONS);
  if (wantsHelp) {
    io.stdout.write(help() + '\n');
    return 0;
  }
  checkCombination(v, given);
  // Before any data is loaded: a missing GPU, driver or CUDA addon is said at once (exit 1).
  const device = useDevice(v.device, 'train');
  const optimizer = makeOptimizer(v);
  const { train, test, name, source } = loadCliData(v.data);
  const classes = Math.max(train.classes, test.classes);
  const architecture = [train.features, ...v.hidden, classes];
  const rt = runtime();

  const header =
    `neuroplastic train: ${source}, ${train.n} train / ${test.n} test, ${train.features} features, ${classes} classes | ` +
    `mlp ${architecture.join('-')} relu${v.dropout > 0 ? ` dropout ${v.dropout}` : ''} | ` +
    `${optimizerText(optimizer)}, batch ${v.batchSize}, ${plural(v.epochs, 'epoch')}, seed ${v.seed} | ` +
    pruningText(v, train.n) +
    device.text;
  if (!v.json) io.stdout.write(header + '\n');
  else if (!v.quiet) io.stderr.write(header + '\n');

  const model = new Sequential({ inputSize: train.features, seed: v.seed, name: `mlp-${architecture.join('-')}`, device: device.device });
  for (const units of v.hidden) {
    model.add(layers.dense({ units, activation: 'relu' }));
    if (v.dropout > 0) model.add(layers.dropout({ rate: v.dropout }));
  }
  model.add(layers.dense({ units: classes }));
  model.compile({ optimizer, loss: 'softmaxCrossEntropy' });

  const callbacks: Callback[] = [];
  let pruning: TrainResult['pruning'];
  if (v.prune !== undefined) {
    const schedule = pruneSchedule(v.epochs * Math.ceil(train.n / v.batchSize));
    if (v.prune > 0) callbacks.push(plasticity.gradualMagnitude({ finalSparsity: v.prune, ...schedule, scope: 'global' }));
    pruning = { sparsity: v.prune, schedule: { ...schedule, scope: 'global' } };
  }
  if (v.pruneNeurons !== undefined) {
    const neuronsEpoch = neuronsEpochOf(v);
    callbacks.push(neuronPruning(model, v.pruneNeurons, v.pruneCriterion, neuronsEpoch));
    pruning = { ...pruning, neurons: v.pruneNeurons, criterion: v.pruneCriterion, neuronsEpoch };
  }

  const progress = v.quiet
    ? undefined
    : new ProgressReporter(
        { stream: io.stderr, bar: io.stderrIsTTY, columns: io.columns, samples: train.n, batchSize: v.batchSize },
        v.epochs,
      );
  const fitted = await untilInterrupted(
    io,
    () => model.step,
    (signal) =>
      model.fit(train.x, train.y, {
        epochs: v.epochs,
        batchSize: v.batchSize,
        shuffle: true,
        validationData: [test.x, test.y],
        callbacks: progress ? [...callbacks, progress] : callbacks,
        signal,
      }),
    () => progress?.clearBar(),
  );
  if ('exitCode' in fitted) return fitted.exitCode;
  const history: History = fitted.value;

  const evaluation = await model.evaluate(test.x, test.y);
  const h = history.history;
  const seconds = h.seconds.reduce((s, x) => s + x, 0);
  const layerList = layerResults(model);
  const nnz = layerList.reduce((sum, l) => sum + l.nnz, 0);
  const shapeWeights = layerList.reduce((sum, l) => sum + l.units * l.inputs, 0);
  let denseWeights = 0;
  for (let i = 1; i < architecture.length; i++) denseWeights += architecture[i - 1] * architecture[i];
  const result: TrainResult = {
    command: 'train',
    version: rt.version,
    data: { name, source, train: train.n, test: test.n, features: train.features, classes },
    architecture,
    activation: 'relu',
    dropout: v.dropout,
    optimizer: { ...optimizer },
    batchSize: v.batchSize,
    epochs: v.epochs,
    seed: v.seed,
    device: model.device,  // where the model is, as trained: not the option echoed
    ...(device.deviceName !== undefined ? { deviceName: device.deviceName } : {}),
    accuracy: evaluation.accuracy,
    loss: evaluation.loss,
    trainAccuracy: h.accuracy[h.accuracy.length - 1],
    trainLoss: h.loss[h.loss.length - 1],
    params: model.countParams(),
    nnz,
    density: nnz / Math.max(1, shapeWeights),
    compression: denseWeights / Math.max(1, nnz),
    layers: layerList,
    ...(pruning ? { pruning } : {}),
    seconds,
    samplesPerSecond: (train.n * v.epochs) / seconds,
    history: h,
    simd: rt.simd,
    threads: rt.threads,
  };
  if (v.json) io.stdout.write(JSON.stringify(result) + '\n');
  else io.stdout.write(report(result, test.name, model.summary({ print: false })) + '\n');
  return 0;
}

export const train: Command = {
  name: 'train',
  summary: 'Train an MLP (LeNet-300-100 by default) on MNIST or IDX files and report held-out accuracy',
  help,
  run,
};
