// `neuroplastic continual`: trains one MLP on a stream of permuted-input tasks
// (permuted MNIST by default) with a chosen plasticity method, printing one
// line per task and a summary. With --json the last stdout line is one JSON
// object (the ContinualResult plus the run's settings), which
// `neuroplastic report --from FILE` turns into an HTML page.
import { Sequential, data, layers, optimizers, runtime } from '../index';
import * as continual from '../continual';
import { DenseLayer } from '../layers';
import * as report from '../report';
import { unwritablePathReason } from '../report/file';
import { CliError, UsageError, formatOptions, parseArgs, type OptionTable } from './args';
import { untilInterrupted, type Command, type Io } from './command';
import { loadCliData } from './data';
import { DEVICE_OPTION, useDevice } from './device';
import { MAX_BATCH_SIZE, MAX_EPOCHS, MAX_HIDDEN_UNITS } from './limits';

const OPTIONS = {
  tasks: { kind: 'integer', metavar: 'N', min: 1, max: 100000, default: 10, help: 'Tasks in the stream (task 0: unpermuted inputs)' },
  method: { kind: 'choice', metavar: 'NAME', choices: continual.METHODS, default: 'sgd', help: `Plasticity method: ${continual.METHODS.join(', ')}` },
  data: { kind: 'string', metavar: 'DIR', help: 'Folder of IDX files (e.g. /usr/share/datasets/fashion-mnist) instead of the bundled MNIST' },
  epochsPerTask: { kind: 'integer', metavar: 'N', min: 1, limit: MAX_EPOCHS, default: 1, help: 'Epochs on each task' },
  trainSamples: { kind: 'integer', metavar: 'N', min: 1, help: 'Training samples per task (default: the whole train split)' },
  testSamples: { kind: 'integer', metavar: 'N', min: 1, default: 1000, help: 'Test samples per task' },
  hidden: { kind: 'integerList', metavar: 'N,N', min: 1, limit: MAX_HIDDEN_UNITS, default: [100, 100], help: 'Units of the hidden relu layers' },
  batchSize: { kind: 'integer', metavar: 'N', min: 1, limit: MAX_BATCH_SIZE, default: 16, help: 'Samples per optimizer step' },
  lr: { kind: 'number', metavar: 'X', min: 0, minExclusive: true, float32: true, default: 0.01, help: 'SGD learning rate (no momentum)' },
  seed: { kind: 'integer', metavar: 'N', min: 0, default: 1, help: 'Seed of init, shuffling and the permutations' },
  device: DEVICE_OPTION,
  evaluateOn: { kind: 'choice', metavar: 'WHICH', choices: ['seen', 'all', 'new'], default: 'seen', help: 'Tasks tested after each task: seen (0..i), all, or new (task i only: fastest)' },
  json: { kind: 'flag', help: 'Print the result as one JSON object on stdout (its last line)' },
  report: { kind: 'string', metavar: 'FILE', help: 'Also write an HTML report of the run to FILE' },
  quiet: { kind: 'flag', help: 'No header or per-task lines on stderr (with --json)' },
} as const satisfies OptionTable;

function help(): string {
  return [
    'Usage: neuroplastic continual [options]',
    '',
    'Trains one MLP (relu hidden layers, plain SGD) on a stream of permuted-input tasks: every task',
    'has the same images and labels with the pixels reordered by a seeded permutation of its own.',
    'After each task it tests the seen tasks and prints the new-task accuracy (plasticity), the',
    'average accuracy over the seen tasks, the fraction of dead hidden units and the parameters.',
    '',
    'Methods:',
    ...continual.METHODS.map((m) => `  ${m.padEnd(7)} ${continual.METHOD_HELP[m]}`),
    '',
    'Options:',
    formatOptions(OPTIONS),
    '',
    'With --json the last stdout line is one JSON object: { command: "continual", version, method, data,',
    'architecture, epochsPerTask, batchSize, lr, seed, layers, ...ContinualResult } where the result',
    'fields are tasks (names), accuracy[i][j], averageAccuracy, forgetting, plasticity, deadUnitFraction,',
    'params, nnz, units, density, trainLoss, trainAccuracy, seconds, steps and events. Save it and run',
    "'neuroplastic report --from run.json --out report.html' for the HTML page.",
    '',
    'Examples:',
    '  neuroplastic continual --tasks 10',
    '  neuroplastic continual --method cbp --data /usr/share/datasets/fashion-mnist --train-samples 2000',
    '  neuroplastic continual --tasks 2 --json > run.json && neuroplastic report --from run.json --out run.html',
    '  neuroplastic continual --method cbp --device cuda',
  ].join('\n');
}


function pct(v: number): string {
  return Number.isFinite(v) ? `${(100 * v).toFixed(2)}%` : '-';
}

async function run(argv: readonly string[], io: Io): Promise<number> {
  const { values: v, help: wantsHelp } = parseArgs('continual', argv, OPTIONS);
  if (wantsHelp) {
    io.stdout.write(help() + '\n');
    return 0;
  }
  // The report is written after the whole run: a path that cannot work must fail now, not hours later.
  if (v.report !== undefined) {
    const unwritable = unwritablePathReason(v.report);
    if (unwritable) throw new UsageError(`--report ${v.report}: ${unwritable}`, 'continual');
  }
  const device = useDevice(v.device, 'continual');  // before the data: a missing GPU is said at once
  const loaded = loadCliData(v.data);
  const tasks = continual.permuted(loaded, v.tasks, v.seed, { limit: v.trainSamples ?? loaded.train.n, testLimit: v.testSamples });
  const classes = tasks[0].classes;
  const architecture = [loaded.train.features, ...v.hidden, classes];
  const trainN = Math.min(v.trainSamples ?? loaded.train.n, loaded.train.n);
  const testN = Math.min(v.testSamples, loaded.test.n);
  const stepsPerTask = v.epochsPerTask * Math.ceil(trainN / v.batchSize);
  const rt = runtime();

  const header =
    `neuroplastic continual: ${v.tasks} permuted ${loaded.source} tasks (${trainN} train / ${testN} test each) | ` +
    `mlp ${architecture.join('-')} relu | method ${v.method} | sgd lr ${v.lr}, batch ${v.batchSize}, ` +
    `${v.epochsPerTask} epoch(s) per task, seed ${v.seed} | ${device.text}`;
  const say = (line: string) => {
    if (!v.json) io.stdout.write(line + '\n');
    else if (!v.quiet) io.stderr.write(line + '\n');
  };
  say(header);

  const model = new Sequential({ inputSize: loaded.train.features, seed: v.seed, name: `mlp-${architecture.join('-')}`, device: device.device });
  for (const units of v.hidden) model.add(layers.dense({ units, activation: 'relu' }));
  model.add(layers.dense({ units: classes }));
  model.compile({ optimizer: optimizers.sgd({ learningRate: v.lr }), loss: 'softmaxCrossEntropy' });
  const callbacks = continual.methodCallbacks(v.method, model, stepsPerTask);

  const width = String(v.tasks).length;
  const ran = await untilInterrupted(io, () => model.step, (signal) =>
    continual.run(model, tasks, {
      epochsPerTask: v.epochsPerTask,
      batchSize: v.batchSize,
      callbacks,
      evaluateOn: v.evaluateOn,
      signal,
      onTaskEnd: (t) => {
        say(`task ${String(t.task + 1).padStart(width)}/${v.tasks}  new-task acc ${pct(t.newTaskAccuracy)}  ` +
          `average acc ${pct(t.averageAccuracy)}  dead units ${pct(t.deadUnitFraction)}  params ${t.params}  ` +
          `${t.seconds.toFixed(2)} s`);
      },
    }),
  );
  if ('exitCode' in ran) return ran.exitCode;
  const result: continual.ContinualResult = ran.value;

  const layerList = model.layers
    .filter((l): l is DenseLayer => l instanceof DenseLayer)
    .map((l) => ({ units: l.units, inputs: l.inputs, nnz: l.nnz, density: l.density, format: l.format }));
  const out = {
    command: 'continual' as const,
    version: rt.version,
    method: v.method,
    data: { name: loaded.name, source: loaded.source, train: trainN, test: testN, features: loaded.train.features, classes },
    architecture,
    name: model.name,
    epochsPerTask: v.epochsPerTask,
    batchSize: v.batchSize,
    lr: v.lr,
    seed: v.seed,
    evaluateOn: v.evaluateOn,
    layers: layerList,
    simd: rt.simd,
    threads: rt.threads,
    device: model.device,  // where the model is, as trained: not the option echoed
    ...(device.deviceName !== undefined ? { deviceName: device.deviceName } : {}),
    ...result,
  };

  const k = Math.max(1, Math.min(5, Math.floor(v.tasks / 2)));
  const p = result.plasticity;
  const finalAvg = result.averageAccuracy[result.averageAccuracy.length - 1];
  const forgetting = continual.meanOf(result.forgetting, 0, result.forgetting.length - 1);
  const seconds = result.seconds.reduce((a, b) => a + b, 0);
  const summary = [
    `final average accuracy ${pct(finalAvg)} over ${v.tasks} tasks`,
    `new-task accuracy: first ${k} ${pct(continual.meanOf(p, 0, k))}, last ${k} ${pct(continual.meanOf(p, p.length - k))}`,
    `mean forgetting ${pct(forgetting)}`,
    `dead units ${pct(result.deadUnitFraction[result.deadUnitFraction.length - 1])}`,
    `params ${model.countParams()}, ${result.events.length} structural events, ${seconds.toFixed(1)} s training`,
  ].join(' | ');
  say(summary);

  // The results go out first, so a report that still fails to write (the
  // folder removed during the run, a full disk) cannot lose them.
  if (v.json) io.stdout.write(JSON.stringify(out) + '\n');
  if (v.report !== undefined) {
    const html = report.render(report.fromJson(out));
    try {
      report.writeFileAtomic(v.report, html);
    } catch (err) {
      throw new CliError(`--report ${v.report}: ${(err as Error).message}`);
    }
    say(`wrote ${v.report}`);
  }
  return 0;
}

export const continualCommand: Command = {
  name: 'continual',
  summary: 'Train on a stream of permuted-MNIST tasks with a plasticity method; per-task accuracy, forgetting, dead units',
  help,
  run,
};
