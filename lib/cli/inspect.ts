// `neuroplastic inspect FILE`: what a checkpoint holds. For a neuroplastic
// file: the dense layers (units, inputs, storage format, nnz, density, bytes in
// memory and in the file), total parameters, step and epoch, optimizer and
// loss, and the structural event timeline. For any other safetensors file: its
// tensors (name, dtype, shape, bytes) and metadata keys. --json prints one JSON
// object instead. A missing, truncated or corrupt file is an error (exit 1).
import * as fs from 'fs';
import { loadModel, type Sequential, type StructuralEvent } from '../index';
import { CheckpointError, decode, type Decoded } from '../checkpoint/safetensors';
import { DenseLayer } from '../layers';
import { formatTable } from '../summary';
import { CliError, UsageError, formatOptions, parseArgs, type OptionTable } from './args';
import type { Command, Io } from './command';

const OPTIONS = {
  json: { kind: 'flag', help: 'Print one JSON object instead of the report' },
  events: { kind: 'integer', metavar: 'N', min: 0, default: 50, help: 'Events of the timeline to list (the most recent N; 0: none)' },
  ids: { kind: 'integer', metavar: 'N', min: 0, default: 5, help: 'Neuron ids to show per event' },
} satisfies OptionTable;

export interface InspectLayer {
  /** Position in model.layers. */
  position: number;
  activation: string;
  units: number;
  inputs: number;
  format: 'dense' | 'csr';
  nnz: number;
  density: number;
  params: number;
  /** Bytes of the weight storage in memory, gradient and optimizer slots included. */
  bytes: number;
  /** Bytes of this layer's tensors in the file. */
  fileBytes: number;
}

export interface InspectEvent {
  step: number;
  epoch: number;
  kind: string;
  layer: number;
  count: number;
  criterion: string;
  /** The first ids of the neurons affected. */
  neuronIds: number[];
  /** How many ids the event lists in all. */
  neuronIdCount: number;
}

export interface InspectTensor {
  name: string;
  dtype: string;
  shape: number[];
  bytes: number;
}

export interface InspectResult {
  command: 'inspect';
  file: string;
  bytes: number;
  kind: 'neuroplastic' | 'safetensors';
  formatVersion?: string;
  name?: string;
  inputSize?: number;
  outputSize?: number;
  layers?: InspectLayer[];
  dropout?: { position: number; rate: number }[];
  params?: number;
  nnz?: number;
  step?: number;
  epoch?: number;
  optimizer?: Record<string, unknown> | null;
  loss?: string | null;
  eventCount?: number;
  /** Older events the model's log limit discarded before it was saved (not in eventCount). */
  eventsDropped?: number;
  eventsByKind?: Record<string, number>;
  events?: InspectEvent[];
  tensors?: InspectTensor[];
  metadataKeys?: string[];
}

function help(): string {
  return [
    'Usage: neuroplastic inspect FILE [options]',
    '',
    'Shows what a checkpoint (model.save() / .safetensors) holds: layers with their storage format,',
    'nnz, density and bytes, total parameters, step, epoch, optimizer, and the timeline of structural',
    'events (grow, prune, compact, regrow, ...). Other safetensors files: their tensors.',
    '',
    'Options:',
    formatOptions(OPTIONS),
    '',
    'Examples:',
    '  neuroplastic inspect model.safetensors',
    '  neuroplastic inspect model.safetensors --events 0 --json | jq .layers',
  ].join('\n');
}

/** Splits FILE from the options (options may come before or after it). */
function splitPositionals(argv: readonly string[]): { positionals: string[]; options: string[] } {
  const positionals: string[] = [];
  const options: string[] = [];
  const takesValue = new Set(['--events', '--ids']);
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (word === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (word.startsWith('-') && word !== '-') {
      options.push(word);
      if (takesValue.has(word) && i + 1 < argv.length) options.push(argv[++i]);
    } else positionals.push(word);
  }
  return { positionals, options };
}

function tensorBytes(d: Decoded, name: string): number {
  const t = d.tensors.get(name);
  return t ? t.end - t.begin : 0;
}

function describeModel(file: string, size: number, d: Decoded, model: Sequential, v: { events: number; ids: number }): InspectResult {
  let state: { epoch?: unknown } = {};
  try {
    state = JSON.parse(d.metadata.state ?? '{}');
  } catch {
    /* loadModel accepted the file, so this does not happen */
  }
  const cfg = model.toJSON();
  const dense = model.layers.filter((l): l is DenseLayer => l instanceof DenseLayer);
  const layers: InspectLayer[] = [];
  const dropout: { position: number; rate: number }[] = [];
  model.layers.forEach((l, position) => {
    if (!(l instanceof DenseLayer)) {
      dropout.push({ position, rate: l.rate });
      return;
    }
    const i = dense.indexOf(l);
    const prefix = `layers.${i}.`;
    let fileBytes = 0;
    for (const name of d.tensors.keys()) if (name.startsWith(prefix)) fileBytes += tensorBytes(d, name);
    layers.push({
      position,
      activation: l.activation,
      units: l.units,
      inputs: l.inputs,
      format: l.format,
      nnz: l.nnz,
      density: l.density,
      params: l.paramCount,
      bytes: l.bytes,
      fileBytes,
    });
  });
  const all = model.events;
  const byKind: Record<string, number> = {};
  for (const e of all) byKind[e.kind] = (byKind[e.kind] ?? 0) + 1;
  const shown = v.events === 0 ? [] : all.slice(-v.events);
  return {
    command: 'inspect',
    file,
    bytes: size,
    kind: 'neuroplastic',
    formatVersion: d.metadata['format.version'],
    name: cfg.name,
    inputSize: model.inputSize,
    outputSize: model.outputSize,
    layers,
    dropout,
    params: model.countParams(),
    nnz: layers.reduce((s, l) => s + l.nnz, 0),
    step: model.step,
    epoch: typeof state.epoch === 'number' ? state.epoch : 0,
    optimizer: cfg.compile ? { ...cfg.compile.optimizer } : null,
    loss: cfg.compile ? cfg.compile.loss : null,
    eventCount: all.length,
    eventsDropped: model.eventsDropped,
    eventsByKind: byKind,
    events: shown.map((e: StructuralEvent) => ({
      step: e.step,
      epoch: e.epoch,
      kind: e.kind,
      layer: e.layer,
      count: e.count,
      criterion: e.criterion,
      neuronIds: e.neuronIds.slice(0, v.ids),
      neuronIdCount: e.neuronIds.length,
    })),
  };
}

function bytesText(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

function report(r: InspectResult): string {
  const out: string[] = [`${r.file}: ${bytesText(r.bytes)}, ${r.kind === 'neuroplastic' ? `neuroplastic checkpoint (format ${r.formatVersion})` : 'safetensors (not a neuroplastic checkpoint)'}`];
  if (r.kind === 'safetensors') {
    const rows = r.tensors!.map((t) => [t.name, t.dtype, `[${t.shape.join(', ')}]`, bytesText(t.bytes)]);
    out.push('', formatTable(['tensor', 'dtype', 'shape', 'bytes'], rows));
    out.push(`${r.tensors!.length} tensors; metadata keys: ${r.metadataKeys!.length ? r.metadataKeys!.join(', ') : '(none)'}`);
    return out.join('\n');
  }
  out.push(`Model: ${r.name} (inputSize ${r.inputSize}, outputs ${r.outputSize})`);
  out.push(`Step ${r.step}, epoch ${r.epoch}; optimizer ${r.optimizer ? optimizerText(r.optimizer) : '(not compiled)'}; loss ${r.loss ?? '-'}`);
  const rows: string[][] = r.layers!.map((l) => [
    String(l.position),
    `dense(${l.activation})`,
    String(l.units),
    String(l.inputs),
    String(l.params),
    String(l.nnz),
    l.density.toFixed(3),
    l.format,
    bytesText(l.bytes),
    bytesText(l.fileBytes),
  ]);
  for (const d of r.dropout!) rows.push([String(d.position), `dropout(${d.rate})`, '', '', '0', '', '', '', '', '']);
  rows.sort((a, b) => Number(a[0]) - Number(b[0]));
  out.push('', formatTable(['#', 'layer', 'units', 'inputs', 'params', 'nnz', 'density', 'format', 'memory', 'file'], rows));
  out.push(`Total parameters: ${r.params} (nnz ${r.nnz})`);
  const kinds = Object.entries(r.eventsByKind!).map(([k, n]) => `${k} ${n}`).join(', ');
  const dropped = r.eventsDropped ? `; ${r.eventsDropped} older ones dropped by the log limit` : '';
  out.push('', `Events: ${r.eventCount}${kinds ? ` (${kinds})` : ''}${dropped}`);
  if (r.events!.length) {
    if (r.events!.length < r.eventCount!) out.push(`(the last ${r.events!.length}; --events N shows more)`);
    const ev = r.events!.map((e) => [
      String(e.step),
      String(e.epoch),
      e.kind,
      e.layer < 0 ? 'all' : String(e.layer),
      String(e.count),
      e.criterion || '-',
      e.neuronIdCount === 0 ? '' : e.neuronIds.join(',') + (e.neuronIdCount > e.neuronIds.length ? `,... (${e.neuronIdCount})` : ''),
    ]);
    out.push(formatTable(['step', 'epoch', 'kind', 'layer', 'count', 'criterion', 'neuron ids'], ev));
  }
  return out.join('\n');
}

function optimizerText(o: Record<string, unknown>): string {
  const { kind, ...rest } = o;
  const parts = Object.entries(rest)
    .filter(([, v]) => v !== undefined && v !== false && v !== 0)
    .map(([k, v]) => `${k} ${v}`);
  return `${kind}${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

export async function inspectFile(file: string, v: { events: number; ids: number }): Promise<InspectResult> {
  let buffer: Buffer;
  try {
    buffer = await fs.promises.readFile(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new CliError(`${file}: cannot read (${e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'is a directory' : (e.code ?? e.message)})`);
  }
  let d: Decoded;
  try {
    d = decode(buffer, file);
  } catch (err) {
    throw new CliError(err instanceof CheckpointError ? err.message : `${file}: ${(err as Error).message}`);
  }
  if (d.metadata.format !== 'neuroplastic') {
    const tensors = [...d.tensors.entries()]
      .sort((a, b) => a[0].localeCompare(b[0], 'en', { numeric: true }))
      .map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, bytes: t.end - t.begin }));
    return { command: 'inspect', file, bytes: buffer.length, kind: 'safetensors', tensors, metadataKeys: Object.keys(d.metadata) };
  }
  let model: Sequential;
  try {
    model = await loadModel(buffer);
  } catch (err) {
    // loadModel names the source '<buffer>'; name the file instead.
    throw new CliError(`${file}: ${(err as Error).message.replace(/^<buffer>: /, '')}`);
  }
  return describeModel(file, buffer.length, d, model, v);
}

async function run(argv: readonly string[], io: Io): Promise<number> {
  const { positionals, options } = splitPositionals(argv);
  const { values: v, help: wantsHelp } = parseArgs('inspect', options, OPTIONS);
  if (wantsHelp) {
    io.stdout.write(help() + '\n');
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('FILE is missing (neuroplastic inspect FILE)', 'inspect');
  if (positionals.length > 1) throw new UsageError(`one FILE at a time, got ${positionals.length}: ${positionals.map((p) => JSON.stringify(p)).join(' ')}`, 'inspect');
  const result = await inspectFile(positionals[0], { events: v.events, ids: v.ids });
  io.stdout.write((v.json ? JSON.stringify(result) : report(result)) + '\n');
  return 0;
}

export const inspect: Command = {
  name: 'inspect',
  summary: 'Show the layers, sparsity and event timeline of a checkpoint',
  help,
  run,
};
