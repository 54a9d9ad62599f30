// Checkpoints of a Sequential model as safetensors. Dense weights are plain F32
// tensors `layers.N.weight` [units, inputs] and `layers.N.bias` [units] (N =
// the dense layer's index), so PyTorch users can load them directly; a CSR
// layer is `layers.N.weight.indptr|indices|values` with its shape in
// __metadata__. Optimizer moments, masks, neuron ids and statistics sit beside
// them; the config, counters, RNG state and event log go in __metadata__.
import * as fs from 'fs';
import * as path from 'path';
import { DenseLayer } from '../layers';
import type { NativeLayerState, NativeState } from '../native';
import type { ModelConfig } from '../sequential';
import { Sequential } from '../sequential';
import { CheckpointError, decode, encode, readTensor, type Decoded, type TensorData } from './safetensors';
import { importLinearLayers, type LinearImportOptions } from './linear_import';

export const FILE_FORMAT = 'neuroplastic';
export const FILE_VERSION = '1';

type TensorMap = Map<string, { shape: number[]; data: TensorData }>;

function layerTensors(tensors: TensorMap, l: NativeLayerState, i: number): void {
  const p = `layers.${i}`;
  const nnz = l.weight.length;
  if (l.format === 'csr') {
    tensors.set(`${p}.weight.indptr`, { shape: [l.units + 1], data: l.indptr! });
    tensors.set(`${p}.weight.indices`, { shape: [nnz], data: l.indices! });
    tensors.set(`${p}.weight.values`, { shape: [nnz], data: l.weight });
  } else {
    tensors.set(`${p}.weight`, { shape: [l.units, l.inputs], data: l.weight });
  }
  tensors.set(`${p}.bias`, { shape: [l.units], data: l.bias });
  const weightShape = l.format === 'csr' ? [nnz] : [l.units, l.inputs];
  l.weightMoments.forEach((m, k) => tensors.set(`${p}.weight.moment${k + 1}`, { shape: weightShape, data: m }));
  l.biasMoments.forEach((m, k) => tensors.set(`${p}.bias.moment${k + 1}`, { shape: [l.units], data: m }));
  if (l.mask) tensors.set(`${p}.weight.mask`, { shape: [l.units, l.inputs], data: l.mask });
  if (l.alive) tensors.set(`${p}.alive`, { shape: [l.units], data: l.alive });
  tensors.set(`${p}.neuron_ids`, { shape: [l.units], data: l.neuronIds });
  if (l.meanAbsActivation.length) tensors.set(`${p}.stats.mean_abs_activation`, { shape: [l.units], data: l.meanAbsActivation });
  if (l.taylor.length) tensors.set(`${p}.stats.taylor`, { shape: [l.units], data: l.taylor });
  if (l.meanActivation.length) tensors.set(`${p}.stats.mean_activation`, { shape: [l.units], data: l.meanActivation });
  if (l.birthStep.length) tensors.set(`${p}.birth_step`, { shape: [l.units], data: l.birthStep });
}

/** The whole model (weights, optimizer state, ids, events, config) as a safetensors buffer. */
export function modelToBuffer(model: Sequential): Buffer {
  const state = model.native.exportState();
  const tensors: TensorMap = new Map();
  state.layers.forEach((l, i) => layerTensors(tensors, l, i));
  const metadata: Record<string, string> = {
    format: FILE_FORMAT,
    'format.version': FILE_VERSION,
    config: JSON.stringify(model.toJSON()),
    state: JSON.stringify({
      step: state.step,
      epoch: state.epoch,
      nextNeuronId: state.nextNeuronId,
      rng: Array.from(state.rng, (w) => w.toString(16)),
      rngHasSpare: state.rngHasSpare,
      rngSpare: state.rngSpare,
      defaultSparseThreshold: state.defaultSparseThreshold,
      statsDecay: state.statsDecay,
      eventsDropped: state.eventsDropped ?? 0,
      stepHooksRanAt: model.stepHooksRanAt,
      layers: state.layers.map((l) => ({ format: l.format, statsUpdates: l.statsUpdates, sparseThreshold: l.sparseThreshold, cbpCarry: l.cbpCarry ?? 0 })),
    }),
    events: JSON.stringify(state.events),
  };
  state.layers.forEach((l, i) => {
    if (l.format === 'csr') metadata[`layers.${i}.weight.shape`] = JSON.stringify([l.units, l.inputs]);
  });
  return encode(tensors, metadata);
}

/**
 * A file-system error while saving, told in terms of the file the caller
 * named rather than the hidden temporary file; `code` (ENOENT, EACCES, ...)
 * is kept for callers that test it.
 */
function writeError(file: string, dir: string, err: unknown): Error {
  const e = err as NodeJS.ErrnoException;
  const why = e.code === 'ENOENT' ? `the folder ${dir} does not exist` : e.code === 'EISDIR' ? 'it is a folder' : `${e.code ?? 'error'}: ${e.message}`;
  const out: NodeJS.ErrnoException = new Error(`cannot write ${file}: ${why}`);
  out.code = e.code;
  return out;
}

/** Writes `data` to `file` atomically: a temporary file in the same folder, fsync, rename. */
export async function writeFileAtomic(file: string, data: Buffer): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`);
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(tmp, 'wx', 0o644);
  } catch (err) {
    throw writeError(file, dir, err);
  }
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await fs.promises.rm(tmp, { force: true });
    throw writeError(file, dir, err);
  }
  await handle.close();
  try {
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw writeError(file, dir, err);
  }
  // Make the rename itself durable (best effort: not every filesystem allows it).
  try {
    const d = await fs.promises.open(dir, 'r');
    await d.sync().catch(() => undefined);
    await d.close();
  } catch {
    /* directories cannot be opened on some platforms */
  }
}

function parseJson(d: Decoded, key: string, source: string): unknown {
  const text = d.metadata[key];
  if (text === undefined) throw new CheckpointError(`${source}: __metadata__.${key} is missing`);
  try {
    return JSON.parse(text);
  } catch {
    throw new CheckpointError(`${source}: __metadata__.${key} is not valid JSON`);
  }
}

function expectShape(source: string, name: string, shape: number[], want: number[]): void {
  if (shape.length !== want.length || shape.some((s, i) => s !== want[i])) {
    throw new CheckpointError(`${source}: tensor ${name} has shape [${shape}], expected [${want}]`);
  }
}

function tensorOf<T extends TensorData>(d: Decoded, source: string, name: string, dtype: string, shape: number[]): T {
  const t = readTensor(d, name, source);
  if (t.dtype !== dtype) throw new CheckpointError(`${source}: tensor ${name} has dtype ${t.dtype}, expected ${dtype}`);
  expectShape(source, name, t.shape, shape);
  return t.data as T;
}

function optionalTensor<T extends TensorData>(d: Decoded, source: string, name: string, dtype: string, shape: number[]): T | undefined {
  return d.tensors.has(name) ? tensorOf<T>(d, source, name, dtype, shape) : undefined;
}

// Older files have no eventsDropped: nothing was dropped.
function eventsDroppedOf(value: unknown, source: string): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new CheckpointError(`${source}: __metadata__.state.eventsDropped must be a non-negative integer`);
  }
  return value;
}

interface SavedState {
  step: number;
  epoch: number;
  nextNeuronId: number;
  rng: string[];
  rngHasSpare: boolean;
  rngSpare: number;
  defaultSparseThreshold: number;
  statsDecay?: number;
  eventsDropped?: number;
  stepHooksRanAt?: number;
  layers: { format: 'dense' | 'csr'; statsUpdates: number; sparseThreshold: number; cbpCarry?: number }[];
}

// Older files do not say: hooks due at the saved step run again when training resumes.
function stepHooksRanAtOf(value: unknown, source: string): number {
  if (value === undefined || value === -1) return -1;
  return countOf(value, source, 'state.stepHooksRanAt');
}

// Older files do not keep continual backprop's carry: it restarts at 0.
function cbpCarryOf(value: unknown, source: string, layer: number): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !(value >= 0 && value < 1e9)) {
    throw new CheckpointError(`${source}: __metadata__.state.layers[${layer}].cbpCarry must be a number in [0, 1e9), got ${JSON.stringify(value)}`);
  }
  return value;
}

function countOf(value: unknown, source: string, key: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new CheckpointError(`${source}: __metadata__.${key} must be a non-negative integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

// The generator's four 64-bit words, saved as hex strings.
function rngOf(words: unknown[], source: string): BigUint64Array {
  if (!words.every((h) => typeof h === 'string' && /^[0-9a-fA-F]{1,16}$/.test(h))) {
    throw new CheckpointError(`${source}: __metadata__.state.rng must be four 64-bit words in hex`);
  }
  return BigUint64Array.from(words.map((h) => BigInt('0x' + (h as string))));
}

// Every tensor a state file may hold for dense layer `p`; anything else in the
// file means it was not written by this version (or was tampered with).
function layerTensorNames(p: string, format: 'dense' | 'csr', moments: number): string[] {
  const names = format === 'csr' ? [`${p}.weight.indptr`, `${p}.weight.indices`, `${p}.weight.values`] : [`${p}.weight`];
  for (let k = 1; k <= moments; k++) names.push(`${p}.weight.moment${k}`, `${p}.bias.moment${k}`);
  names.push(`${p}.bias`, `${p}.neuron_ids`, `${p}.weight.mask`, `${p}.alive`, `${p}.birth_step`);
  names.push(`${p}.stats.mean_abs_activation`, `${p}.stats.taylor`, `${p}.stats.mean_activation`);
  return names;
}

/**
 * A saved model holds finite numbers only (training stops before an update
 * that would make them NaN), and Adam's second moment, a running mean of
 * squared gradients, is never negative: anything else loads into a model that
 * predicts NaN.
 */
function checkNumbers(source: string, p: string, l: NativeLayerState): void {
  const finite = (name: string, values: ArrayLike<number>) => {
    for (let k = 0; k < values.length; k++) {
      if (!Number.isFinite(values[k])) throw new CheckpointError(`${source}: ${name}[${k}] is ${values[k]}; a saved model holds finite numbers only`);
    }
  };
  finite(`${p}.${l.format === 'csr' ? 'weight.values' : 'weight'}`, l.weight);
  finite(`${p}.bias`, l.bias);
  l.weightMoments.forEach((m, k) => finite(`${p}.weight.moment${k + 1}`, m));
  l.biasMoments.forEach((m, k) => finite(`${p}.bias.moment${k + 1}`, m));
  finite(`${p}.stats.mean_abs_activation`, l.meanAbsActivation);
  finite(`${p}.stats.mean_activation`, l.meanActivation);
  finite(`${p}.stats.taylor`, l.taylor);
  if (l.weightMoments.length === 2) {
    for (const [name, m] of [[`${p}.weight.moment2`, l.weightMoments[1]], [`${p}.bias.moment2`, l.biasMoments[1]]] as const) {
      const k = m.findIndex((v) => v < 0);
      if (k >= 0) throw new CheckpointError(`${source}: ${name}[${k}] is ${m[k]}; Adam's second moment is never negative`);
    }
  }
}

function rejectUnknownTensors(d: Decoded, source: string, known: Set<string>): void {
  for (const name of d.tensors.keys()) {
    if (!known.has(name)) throw new CheckpointError(`${source}: tensor ${name} is not part of a neuroplastic model state`);
  }
}

/** The native state, and the JS side's own: the step at which fit() last ran its step hooks. */
function readState(d: Decoded, source: string, model: Sequential): { state: NativeState; stepHooksRanAt: number } {
  const saved = parseJson(d, 'state', source) as SavedState;
  if (!saved || typeof saved !== 'object' || !Array.isArray(saved.layers) || !Array.isArray(saved.rng) || saved.rng.length !== 4) {
    throw new CheckpointError(`${source}: __metadata__.state is malformed`);
  }
  const known = new Set<string>();
  const dense = model.layers.filter((l): l is DenseLayer => l instanceof DenseLayer);
  if (saved.layers.length !== dense.length) {
    throw new CheckpointError(`${source}: the state describes ${saved.layers.length} dense layers, the config ${dense.length}`);
  }
  // Optimizer slots per parameter: SGD with momentum keeps a velocity, Adam two moments.
  const optimizer = model.toJSON().compile?.optimizer;
  const moments = optimizer?.kind === 'adam' ? 2 : optimizer?.kind === 'sgd' && (optimizer.momentum ?? 0) > 0 ? 1 : 0;
  let inputs = model.inputSize;
  const layers: NativeLayerState[] = saved.layers.map((meta, i) => {
    const p = `layers.${i}`;
    const units = dense[i].units;
    if (!meta || typeof meta !== 'object') throw new CheckpointError(`${source}: __metadata__.state.layers[${i}] is malformed`);
    if (meta.format === 'dense' || meta.format === 'csr') layerTensorNames(p, meta.format, moments).forEach((n) => known.add(n));
    let weight: Float32Array;
    let indptr: BigInt64Array | undefined;
    let indices: Int32Array | undefined;
    if (meta.format === 'csr') {
      const shapeText = d.metadata[`${p}.weight.shape`];
      let shape: unknown;
      try {
        shape = JSON.parse(shapeText ?? 'null');
      } catch {
        shape = null;
      }
      if (!Array.isArray(shape) || shape[0] !== units || shape[1] !== inputs) {
        throw new CheckpointError(`${source}: __metadata__.${p}.weight.shape is ${shapeText}, expected [${units},${inputs}]`);
      }
      indptr = tensorOf<BigInt64Array>(d, source, `${p}.weight.indptr`, 'I64', [units + 1]);
      const nnz = d.tensors.get(`${p}.weight.values`)?.shape[0] ?? -1;
      indices = tensorOf<Int32Array>(d, source, `${p}.weight.indices`, 'I32', [nnz]);
      weight = tensorOf<Float32Array>(d, source, `${p}.weight.values`, 'F32', [nnz]);
      // CSR invariants, checked before anything is allocated natively.
      if (indptr[0] !== 0n || Number(indptr[units]) !== nnz) throw new CheckpointError(`${source}: ${p}.weight.indptr must start at 0 and end at nnz ${nnz}`);
      for (let r = 0; r < units; r++) {
        const a = Number(indptr[r]);
        const b = Number(indptr[r + 1]);
        if (b < a) throw new CheckpointError(`${source}: ${p}.weight.indptr is not monotone at row ${r}`);
        if (b > nnz) throw new CheckpointError(`${source}: ${p}.weight.indptr[${r + 1}] = ${b} runs past the ${nnz} stored values`);
        for (let k = a; k < b; k++) {
          if (indices[k] < 0 || indices[k] >= inputs) throw new CheckpointError(`${source}: ${p}.weight.indices[${k}] = ${indices[k]} is outside [0, ${inputs})`);
          if (k > a && indices[k] <= indices[k - 1]) throw new CheckpointError(`${source}: ${p}.weight.indices are not sorted in row ${r}`);
        }
      }
    } else if (meta.format === 'dense') {
      weight = tensorOf<Float32Array>(d, source, `${p}.weight`, 'F32', [units, inputs]);
    } else {
      throw new CheckpointError(`${source}: layer ${i} has unknown format ${JSON.stringify(meta.format)}`);
    }
    const weightShape = meta.format === 'csr' ? [weight.length] : [units, inputs];
    const weightMoments: Float32Array[] = [];
    const biasMoments: Float32Array[] = [];
    for (let k = 1; k <= moments; k++) {
      weightMoments.push(tensorOf<Float32Array>(d, source, `${p}.weight.moment${k}`, 'F32', weightShape));
      biasMoments.push(tensorOf<Float32Array>(d, source, `${p}.bias.moment${k}`, 'F32', [units]));
    }
    const layer: NativeLayerState = {
      units,
      inputs,
      format: meta.format,
      weight,
      indptr,
      indices,
      weightMoments,
      bias: tensorOf<Float32Array>(d, source, `${p}.bias`, 'F32', [units]),
      biasMoments,
      mask: optionalTensor<Uint8Array>(d, source, `${p}.weight.mask`, 'U8', [units, inputs]),
      alive: optionalTensor<Uint8Array>(d, source, `${p}.alive`, 'U8', [units]),
      neuronIds: tensorOf<BigInt64Array>(d, source, `${p}.neuron_ids`, 'I64', [units]),
      meanAbsActivation: optionalTensor<Float64Array>(d, source, `${p}.stats.mean_abs_activation`, 'F64', [units]) ?? new Float64Array(0),
      taylor: optionalTensor<Float64Array>(d, source, `${p}.stats.taylor`, 'F64', [units]) ?? new Float64Array(0),
      meanActivation: optionalTensor<Float64Array>(d, source, `${p}.stats.mean_activation`, 'F64', [units]) ?? new Float64Array(0),
      birthStep: optionalTensor<BigInt64Array>(d, source, `${p}.birth_step`, 'I64', [units]) ?? new BigInt64Array(0),
      statsUpdates: meta.statsUpdates === undefined ? 0 : countOf(meta.statsUpdates, source, `state.layers[${i}].statsUpdates`),
      sparseThreshold: typeof meta.sparseThreshold === 'number' ? meta.sparseThreshold : -1,
      cbpCarry: cbpCarryOf(meta.cbpCarry, source, i),
    };
    checkNumbers(source, p, layer);
    for (const [name, flags] of [[`${p}.weight.mask`, layer.mask], [`${p}.alive`, layer.alive]] as const) {
      if (flags && flags.some((v) => v > 1)) throw new CheckpointError(`${source}: ${name} must hold only 0 and 1`);
    }
    inputs = units;
    return layer;
  });
  const events = parseJson(d, 'events', source);
  if (!Array.isArray(events)) throw new CheckpointError(`${source}: __metadata__.events is not a list`);
  rejectUnknownTensors(d, source, known);
  const state: NativeState = {
    step: countOf(saved.step, source, 'state.step'),
    epoch: countOf(saved.epoch, source, 'state.epoch'),
    nextNeuronId: countOf(saved.nextNeuronId, source, 'state.nextNeuronId'),
    rng: rngOf(saved.rng, source),
    rngHasSpare: Boolean(saved.rngHasSpare),
    rngSpare: Number(saved.rngSpare) || 0,
    defaultSparseThreshold: typeof saved.defaultSparseThreshold === 'number' ? saved.defaultSparseThreshold : -1,
    statsDecay: typeof saved.statsDecay === 'number' ? saved.statsDecay : 0.99,
    eventsDropped: eventsDroppedOf(saved.eventsDropped, source),
    layers,
    events: events.map((e: Record<string, unknown>, i: number) => {
      if (!e || typeof e !== 'object' || !Array.isArray(e.neuronIds) || !Array.isArray(e.scores)) {
        throw new CheckpointError(`${source}: __metadata__.events[${i}] is malformed`);
      }
      return e as unknown as NativeState['events'][number];
    }),
  };
  return { state, stepHooksRanAt: stepHooksRanAtOf(saved.stepHooksRanAt, source) };
}

/**
 * The config to build the model from before its state is imported: checked
 * against the tensors' shapes first (header only, nothing read or allocated),
 * so a small file cannot claim a huge model. Layers stored as CSR are built
 * sparse at their stored density and every layer with zero init: the values
 * are replaced by the file's anyway, and a dense build of a wide sparse layer
 * could need far more memory than the model itself.
 */
function checkShapes(d: Decoded, source: string, config: ModelConfig): ({ init: 'zeros'; density?: number } | null)[] {
  if (!config || typeof config !== 'object' || !Array.isArray(config.layers)) {
    throw new CheckpointError(`${source}: __metadata__.config is not a model config`);
  }
  const saved = parseJson(d, 'state', source) as { layers?: { format?: string }[] };
  const formats = Array.isArray(saved?.layers) ? saved.layers.map((l) => l?.format) : [];
  let inputs = config.inputSize;
  let i = 0;
  const shapeOf = (name: string) => d.tensors.get(name)?.shape;
  const same = (a: number[] | undefined, b: number[]) => !!a && a.length === b.length && a.every((v, k) => v === b[k]);
  const layers = config.layers.map((layer) => {
    if (!layer || layer.kind !== 'dense') return null;
    const p = `layers.${i}`;
    const units = layer.units;
    if (!same(shapeOf(`${p}.bias`), [units])) {
      throw new CheckpointError(`${source}: tensor ${p}.bias has shape [${shapeOf(`${p}.bias`) ?? 'missing'}], the config says [${units}]`);
    }
    let density: number | undefined;
    if (formats[i] === 'csr') {
      if (!same(shapeOf(`${p}.weight.indptr`), [units + 1])) throw new CheckpointError(`${source}: tensor ${p}.weight.indptr does not match ${units} units`);
      const nnz = shapeOf(`${p}.weight.values`)?.[0] ?? 0;
      density = Math.min(1, Math.max(nnz, 1) / (units * inputs));
    } else if (!same(shapeOf(`${p}.weight`), [units, inputs])) {
      throw new CheckpointError(`${source}: tensor ${p}.weight has shape [${shapeOf(`${p}.weight`) ?? 'missing'}], the config says [${units}, ${inputs}]`);
    }
    inputs = units;
    i++;
    return { init: 'zeros' as const, ...(density === undefined || density >= 1 ? {} : { density }) };
  });
  return layers;
}

/** Rebuilds a model from a checkpoint buffer; `source` names it in errors. */
export function modelFromBuffer(buffer: Buffer, source: string, options: LinearImportOptions = {}): Sequential {
  const d = decode(buffer, source);
  if (d.metadata.format !== FILE_FORMAT) return importLinearLayers(d, source, options);
  if (d.metadata['format.version'] !== FILE_VERSION) {
    throw new CheckpointError(`${source}: file format version ${JSON.stringify(d.metadata['format.version'])} is not supported (this version reads ${FILE_VERSION})`);
  }
  const config = parseJson(d, 'config', source) as ModelConfig;
  let model: Sequential;
  try {
    const builds = checkShapes(d, source, config);
    model = Sequential.fromJSON(config, (m) =>
      m.layers.forEach((layer, k) => {
        if (layer instanceof DenseLayer && builds[k]) layer.buildAs(builds[k]!);
      }),
    );
  } catch (err) {
    if (err instanceof CheckpointError) throw err;
    throw new CheckpointError(`${source}: __metadata__.config is invalid: ${(err as Error).message}`);
  }
  const { state, stepHooksRanAt } = readState(d, source, model);
  try {
    model.native.importState(state);
  } catch (err) {
    throw new CheckpointError(`${source}: ${(err as Error).message}`);
  }
  model.stepHooksRanAt = stepHooksRanAt;
  return model;
}

export async function readCheckpointFile(file: string): Promise<Buffer> {
  if (typeof file !== 'string' || file.length === 0) throw new TypeError(`loadModel(): source must be a file path or a Buffer, got ${String(file)}`);
  try {
    return await fs.promises.readFile(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new CheckpointError(`${file}: cannot read (${e.code ?? e.message})`);
  }
}

