// `neuroplastic report`: renders a saved run (JSON) as one self-contained
// HTML page with inline SVG charts.
import * as fs from 'fs';
import * as report from '../report';
import { unwritablePathReason } from '../report/file';
import { inputFromJson } from '../report/input';
import { CliError, UsageError, formatOptions, parseArgs, type OptionTable } from './args';
import type { Command, Io } from './command';

const OPTIONS = {
  from: { kind: 'string', metavar: 'FILE', help: "JSON of a run: the output of 'continual --json' or 'train --json', or a report input (below); '-' reads stdin" },
  out: { kind: 'string', metavar: 'FILE', help: 'Where to write the HTML page (written atomically)' },
  title: { kind: 'string', metavar: 'TEXT', help: 'Title of the page (default: from the run)' },
} as const satisfies OptionTable;

function help(): string {
  return [
    'Usage: neuroplastic report --from run.json --out report.html',
    '',
    'Renders a saved run as one HTML page with inline SVG charts and no external assets: accuracy',
    'over epochs or tasks, the per-task accuracy matrix (heat map), new-task accuracy (plasticity),',
    'dead-unit fraction, units and weight density per layer over time, and the structural event',
    'timeline.',
    '',
    'Options:',
    formatOptions(OPTIONS),
    '',
    'Input JSON (the last line of the file counts if it holds several lines, as `--json` output does):',
    "  - the output of 'neuroplastic continual --json' (command: \"continual\"),",
    "  - the output of 'neuroplastic train --json' (command: \"train\": history and layers), or",
    '  - a report input object, every field optional:',
    '      { "title": str, "subtitle": str, "meta": { key: value },',
    '        "model": { "name", "architecture": [784, 100, 10], "layers": [{ "units", "inputs", "nnz", "density", "format" }],',
    '                   "params", "nnz" },',
    '        "history": { "loss": [], "accuracy": [], "valLoss": [], "valAccuracy": [] },   (per epoch)',
    '        "continual": { "accuracy": [[...]], "averageAccuracy": [], "forgetting": [], "plasticity": [],',
    '                       "deadUnitFraction": [], "params": [], "nnz": [], "units": [[...]], "density": [[...]] },',
    '        "compare": [{ "name": "sgd", "result": { ...continual fields } }],',
    '        "events": [{ "step", "epoch", "task"?, "kind", "layer", "criterion", "count", "neuronIds",',
    '                     "densityBefore", "densityAfter" }] }   (model.events)',
    '',
    'Examples:',
    '  neuroplastic continual --tasks 5 --json > run.json && neuroplastic report --from run.json --out run.html',
    '  neuroplastic train --epochs 3 --json > train.json && neuroplastic report --from train.json --out train.html',
  ].join('\n');
}

function readStdin(): string {
  return fs.readFileSync(0, 'utf8');
}

/** The JSON document in `text`: the whole text, or else its last non-empty line. */
export function parseRunJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (whole) {
    const lines = text.trimEnd().split('\n');
    const last = lines[lines.length - 1];
    if (lines.length > 1) {
      try {
        return JSON.parse(last);
      } catch {
        // fall through to the first error
      }
    }
    throw whole;
  }
}

async function run(argv: readonly string[], io: Io): Promise<number> {
  const { values: v, help: wantsHelp } = parseArgs('report', argv, OPTIONS);
  if (wantsHelp) {
    io.stdout.write(help() + '\n');
    return 0;
  }
  if (v.from === undefined) throw new UsageError('--from is required (the JSON of a run)', 'report');
  if (v.out === undefined) throw new UsageError('--out is required (the HTML file to write)', 'report');
  const unwritable = unwritablePathReason(v.out);
  if (unwritable) throw new UsageError(`--out ${v.out}: ${unwritable}`, 'report');
  let text: string;
  try {
    text = v.from === '-' ? readStdin() : fs.readFileSync(v.from, 'utf8');
  } catch (err) {
    throw new CliError(`--from ${v.from}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message}`);
  }
  // Everything wrong with the document is reported against --from; only
  // failing to write the page is a problem with --out.
  let input: report.ReportInput;
  try {
    input = inputFromJson(`--from ${v.from}`, parseRunJson(text));
  } catch (err) {
    const message = (err as Error).message;
    throw new CliError(err instanceof SyntaxError ? `--from ${v.from}: ${message}` : message);
  }
  if (v.title !== undefined) input = { ...input, title: v.title };
  const html = report.render(input);
  try {
    report.writeFileAtomic(v.out, html);
  } catch (err) {
    throw new CliError(`--out ${v.out}: ${(err as Error).message}`);
  }
  io.stdout.write(`wrote ${v.out}\n`);
  return 0;
}

export const reportCommand: Command = {
  name: 'report',
  summary: 'Render a saved run (continual --json, train --json) as an HTML page with SVG charts',
  help,
  run,
};
