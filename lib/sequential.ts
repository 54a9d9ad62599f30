// Sequential: a stack of dense and dropout layers over one native model.
// Layers are collected with add(); the native model is built on first use
// (compile, predict, getWeights), after which the layer list is fixed and the
// structure changes only through the structural operations.
import type { Callback, History } from './callbacks';
import { AbortError, runFit } from './fit';
import { checkSamples, checkTargets, type Labels } from './inputs';
import { dense, dropout, DenseLayer, DropoutLayer, type ActivationName, type InitializerName, type Layer, type LayerHost, type LayerWeights } from './layers';
import { addon, type NativeModel } from './native';
import { require as requireCuda } from './cuda';
import { checkDevice, cudaOrdinal, requireGpu, samePlace, type Device } from './device';
import { CudaNativeModel } from './cuda_model';
import { adam, isOptimizer, sgd, type Optimizer } from './optimizers';
import type { StructuralEvent } from './events';
import * as growth from './growth';
import * as structure from './structure';
import { toApiEvents, type PruneOptions, type PruneResult } from './structure';
import { formatSummary } from './summary';
import {
  checkBoolean,
  checkFunction,
  checkInteger,
  checkKnownKeys,
  checkNumber,
  checkOneOf,
  checkOptions,
  describe,
  underApiName,
} from './validate';

export type { Device } from './device';

export const LOSSES = ['softmaxCrossEntropy', 'meanSquaredError'] as const;
/** Structural events a model keeps unless told otherwise (SequentialOptions.eventLimit). */
export const DEFAULT_EVENT_LIMIT = 100_000;
export type LossName = (typeof LOSSES)[number];
/** The most epochs fit() runs (FitOptions.epochs). */
export const MAX_EPOCHS = 1e9;
/** The largest batch fit(), evaluate() and predict() take (batchSize). */
export const MAX_BATCH_SIZE = 1 << 24;

export interface SequentialOptions {
  /** Features per sample; a positive integer. */
  inputSize: number;
  /** Weight density below which layers are stored and computed as CSR, in [0, 1]. Default: the crossover measured on this machine. */
  sparseThreshold?: number;
  /** Seed for init, dropout masks and shuffling (reproducible on the same machine and thread count). Default 0. */
  seed?: number;
  /**
   * Where the model trains. Default 'cpu'. 'cuda' keeps parameters, optimizer state, activations and
   * the training data on the first CUDA GPU, 'cuda:N' on GPU ordinal N (as cuda.devices() lists
   * them; see "CUDA (optional)" in the README); it throws at construction, saying what is missing,
   * when no usable GPU and CUDA addon are there, and a RangeError when no GPU has that ordinal.
   * Change it later with model.to().
   */
  device?: Device;
  /** A name shown by summary(). */
  name?: string;
  /**
   * How many structural events `events` keeps: the newest ones; older ones are dropped and counted
   * in `eventsDropped` (event indices keep counting them). 0 keeps every event. Default 100000
   * (a few tens of MB at most; continual backprop logs about one event per 5 steps).
   */
  eventLimit?: number;
}

export interface CompileOptions {
  optimizer: Optimizer;
  /** 'softmaxCrossEntropy' (class labels or target distributions) or 'meanSquaredError' (float targets). */
  loss: LossName;
}

export interface FitOptions {
  /** Epochs to run (the last epoch index + 1 when initialEpoch is set). Default 1. */
  epochs?: number;
  /** Samples per optimizer step. Default 32. */
  batchSize?: number;
  /** Reshuffle the samples every epoch (seeded). Default true. */
  shuffle?: boolean;
  /** Evaluated after every epoch: [x, y]. */
  validationData?: [Float32Array, Labels];
  callbacks?: Callback[];
  /** Aborting stops training at the next batch boundary; fit() then rejects with an AbortError. */
  signal?: AbortSignal;
  /** First epoch index (for resuming). Default 0. */
  initialEpoch?: number;
}

export interface EvaluateOptions {
  /** Samples per forward pass (memory only; the result does not depend on it). Default 256. */
  batchSize?: number;
}

export interface Evaluation {
  loss: number;
  accuracy: number;
}

/** The model's architecture and compile settings as plain JSON (what checkpoints store). */
export interface ModelConfig {
  format: 'neuroplastic-model';
  inputSize: number;
  seed: number;
  name: string;
  sparseThreshold?: number;
  eventLimit?: number;
  layers: (
    | {
        kind: 'dense';
        units: number;
        activation: ActivationName;
        useBias: boolean;
        kernelInitializer: InitializerName;
        dropConnect: number;
        sparseThreshold?: number;
        density?: number;
      }
    | { kind: 'dropout'; rate: number }
  )[];
  compile?: { optimizer: Optimizer; loss: LossName };
}

const FIT_KEYS = ['epochs', 'batchSize', 'shuffle', 'validationData', 'callbacks', 'signal', 'initialEpoch'] as const;

export class Sequential implements LayerHost {
  readonly inputSize: number;
  readonly seed: number;
  private currentDevice: Device;
  readonly name: string;
  readonly sparseThreshold: number | undefined;
  readonly eventLimit: number;
  private readonly layerList: Layer[] = [];
  private nativeModel: NativeModel | null = null;
  private compiled: CompileOptions | null = null;
  private fitting = false;
  // True while fit() runs a callback between two steps: the model may then be
  // read and changed (that is how plasticity schedules work).
  private atStepBoundary = false;
  // The last async native operation started (predict, evaluate, ...), settled either way; null once
  // it is done. A fit callback may start one without awaiting it: fit() waits for it before its next
  // native call, which the core would otherwise reject as busy, killing the fit.
  private inFlight: Promise<void> | null = null;
  /**
   * @internal The global step at which fit() last ran its step hooks (-1: never). A fit that
   * ends at a hook's step runs the hook there; the next fit starts at that step and must not run
   * it again. Saved in checkpoints, so a resumed run behaves like an uninterrupted one.
   */
  stepHooksRanAt = -1;

  constructor(options: SequentialOptions) {
    const where = 'new Sequential()';
    const o = checkOptions<SequentialOptions>(where, 'options', options);
    checkKnownKeys(where, o, ['inputSize', 'seed', 'device', 'name', 'sparseThreshold', 'eventLimit']);
    this.inputSize = checkInteger(where, 'inputSize', o.inputSize, { min: 1, max: 1 << 26 });
    this.seed = checkInteger(where, 'seed', o.seed ?? 0, { min: 0, max: Number.MAX_SAFE_INTEGER });
    this.currentDevice = checkDevice(where, 'device', o.device ?? 'cpu');
    this.name = o.name === undefined ? 'sequential' : String(o.name);
    this.sparseThreshold =
      o.sparseThreshold === undefined ? undefined : checkNumber(where, 'sparseThreshold', o.sparseThreshold, { min: 0, max: 1 });
    this.eventLimit = checkInteger(where, 'eventLimit', o.eventLimit ?? DEFAULT_EVENT_LIMIT, { min: 0, max: Number.MAX_SAFE_INTEGER });
    // Fails here, with what is missing, rather than at the first fit().
    if (this.currentDevice !== 'cpu') requireGpu(where, 'device', this.currentDevice);
  }

  /** Where the model trains: 'cpu', 'cuda' or 'cuda:N', as it was last given. */
  get device(): Device {
    return this.currentDevice;
  }

  /**
   * Moves the model (parameters, optimizer state, step) to `device` and returns it. Training
   * continues exactly where it was; to('cpu') copies the newest state back from the GPU and frees
   * the device memory, and a move from one GPU to another goes through the CPU model the same way.
   * Rejected while fit() runs. Throws (saying why) when the GPU is not usable or not there.
   */
  to(device: Device): this {
    const where = 'Sequential.to()';
    const target = checkDevice(where, 'device', device);
    if (samePlace(target, this.currentDevice)) {
      this.currentDevice = target;  // 'cuda' and 'cuda:0' name one place: nothing moves
      return this;
    }
    this.assertIdle('to');
    if (target !== 'cpu') requireGpu(where, 'device', target);
    if (this.nativeModel) {
      // Whole on the CPU first. The GPU half built below fills the device lazily (at the next fit,
      // predict or read), so an out-of-memory GPU shows there, with the host's numbers intact.
      this.nativeModel = this.currentDevice === 'cpu' ? this.nativeModel : (this.nativeModel as CudaNativeModel).toHost();
      this.currentDevice = 'cpu';
      if (target !== 'cpu') this.nativeModel = this.onDevice(this.nativeModel, target);
    }
    this.currentDevice = target;
    return this;
  }

  /** The layers in order (dense and dropout). A structural op's `layer` is an index into this list. */
  get layers(): readonly Layer[] {
    return this.layerList;
  }

  /** The model's global optimizer step: counts across fit() calls. */
  get step(): number {
    return this.nativeModel ? this.nativeModel.step : 0;
  }

  /** Units of the output layer. */
  get outputSize(): number {
    const dense = this.denseLayers();
    if (dense.length === 0) throw new Error('Sequential: the model has no dense layer yet');
    return dense[dense.length - 1].units;
  }

  /** True while fit() runs. */
  get isTraining(): boolean {
    return this.fitting;
  }

  /** @internal The native model, built on first access. */
  get native(): NativeModel {
    return this.build();
  }

  /** True once the native model exists (after compile, predict or a weight access); the layer list is then fixed. */
  get isBuilt(): boolean {
    return this.nativeModel !== null;
  }

  add(layer: Layer): this {
    const where = 'Sequential.add()';
    if (!(layer instanceof DenseLayer) && !(layer instanceof DropoutLayer)) {
      throw new TypeError(`${where}: layer must be created by layers.dense() or layers.dropout(), got ${describe(layer)}`);
    }
    if (this.nativeModel) {
      throw new Error(`${where}: the model is already built (compile/predict was called); change its structure with grow() or prune() instead`);
    }
    if (this.layerList.includes(layer)) throw new Error(`${where}: this layer object is already in the model`);
    if (layer instanceof DenseLayer) {
      if (layer.attached) throw new Error(`${where}: this layer belongs to another model`);
      layer.attach(this, this.denseLayers().length);
    }
    this.layerList.push(layer);
    return this;
  }

  compile(options: CompileOptions): this {
    const where = 'Sequential.compile()';
    const o = checkOptions<CompileOptions>(where, 'options', options);
    checkKnownKeys(where, o, ['optimizer', 'loss']);
    if (!isOptimizer(o.optimizer)) {
      throw new TypeError(`${where}: optimizer must come from optimizers.sgd() or optimizers.adam(), got ${describe(o.optimizer)}`);
    }
    const loss = checkOneOf(where, 'loss', o.loss, LOSSES);
    this.assertIdle('compile');
    const native = this.build();
    const opt = o.optimizer;
    try {
      native.compile({ ...opt }, loss);
    } catch (err) {
      // The factories check what the core checks, but a hand-made optimizer object reaches it unchecked.
      throw underApiName(where, err, (m) => `${m.replace(/^compile: /, '')}, got optimizer ${JSON.stringify(opt)}`);
    }
    this.compiled = { optimizer: opt, loss };
    return this;
  }

  /** Trains the model; resolves with the per-epoch history. */
  async fit(x: Float32Array, y: Labels, options: FitOptions = {}): Promise<History> {
    const where = 'Sequential.fit()';
    if (this.fitting) {
      throw new Error(`${where}: this model is already training; await the running fit() before starting another`);
    }
    const compiled = this.requireCompiled(where);
    const o = checkOptions<FitOptions>(where, 'options', options);
    checkKnownKeys(where, o, FIT_KEYS);
    const epochs = checkInteger(where, 'epochs', o.epochs ?? 1, { min: 1, max: MAX_EPOCHS });
    const initialEpoch = checkInteger(where, 'initialEpoch', o.initialEpoch ?? 0, { min: 0, max: epochs - 1 });
    const batchSize = checkInteger(where, 'batchSize', o.batchSize ?? 32, { min: 1, max: MAX_BATCH_SIZE });
    const shuffle = checkBoolean(where, 'shuffle', o.shuffle ?? true);
    const callbacks = this.checkCallbacks(where, o.callbacks);
    if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
      throw new TypeError(`${where}: signal must be an AbortSignal, got ${describe(o.signal)}`);
    }
    const native = this.build();
    const n = checkSamples(where, 'x', x, this.inputSize, false);
    const targets = checkTargets(where, 'y', y, n, this.outputSize, compiled.loss);
    let validate: (() => Promise<Evaluation>) | undefined;
    if (o.validationData !== undefined) {
      if (!Array.isArray(o.validationData) || o.validationData.length !== 2) {
        throw new TypeError(`${where}: validationData must be [x, y], got ${describe(o.validationData)}`);
      }
      const [xv, yv] = o.validationData;
      const nv = checkSamples(where, 'validationData[0]', xv, this.inputSize);
      const tv = checkTargets(where, 'validationData[1]', yv, nv, this.outputSize, compiled.loss);
      validate = () => this.evaluateChecked(xv, tv, 256);
    }
    this.assertIdle('fit');
    this.fitting = true;
    try {
      return await runFit({
        native,
        model: this,
        x,
        y: targets,
        n,
        epochs,
        initialEpoch,
        batchSize,
        shuffle,
        callbacks,
        signal: o.signal,
        validate,
        eventsSince: (from) => toApiEvents(native.events(from), this.layerList),
        setBoundary: (b) => {
          this.atStepBoundary = b;
        },
        settle: () => this.settle(),
        stepHooksRanAt: () => this.stepHooksRanAt,
        markStepHooksRan: (step) => {
          this.stepHooksRanAt = step;
        },
      });
    } finally {
      this.fitting = false;
      this.atStepBoundary = false;
    }
  }

  /** Mean loss and accuracy over (x, y), no dropout. */
  async evaluate(x: Float32Array, y: Labels, options: EvaluateOptions = {}): Promise<Evaluation> {
    const where = 'Sequential.evaluate()';
    const compiled = this.requireCompiled(where);
    const o = checkOptions<EvaluateOptions>(where, 'options', options);
    checkKnownKeys(where, o, ['batchSize']);
    const batchSize = checkInteger(where, 'batchSize', o.batchSize ?? 256, { min: 1, max: MAX_BATCH_SIZE });
    const n = checkSamples(where, 'x', x, this.inputSize);
    const targets = checkTargets(where, 'y', y, n, this.outputSize, compiled.loss);
    this.assertIdle('evaluate');
    return this.evaluateChecked(x, targets, batchSize);
  }

  /** The output layer's values for each sample: n x outputs, row-major (logits for a linear output layer). */
  async predict(x: Float32Array, options: EvaluateOptions = {}): Promise<Float32Array> {
    const where = 'Sequential.predict()';
    const o = checkOptions<EvaluateOptions>(where, 'options', options);
    checkKnownKeys(where, o, ['batchSize']);
    const batchSize = checkInteger(where, 'batchSize', o.batchSize ?? 256, { min: 1, max: MAX_BATCH_SIZE });
    checkSamples(where, 'x', x, this.inputSize);
    this.assertIdle('predict');
    return this.track(this.build().predict(x, batchSize));
  }

  /** Mean gradients of the loss over (x, y) for every dense layer, without updating anything. */
  async computeGradients(x: Float32Array, y: Labels): Promise<LayerWeights[]> {
    const where = 'Sequential.computeGradients()';
    const compiled = this.requireCompiled(where);
    const n = checkSamples(where, 'x', x, this.inputSize);
    const targets = checkTargets(where, 'y', y, n, this.outputSize, compiled.loss);
    this.assertIdle('computeGradients');
    const native = this.build();
    await this.track(native.computeGradients(x, targets));
    return this.denseLayers().map((_, i) => native.getGradients(i));
  }

  // ---- structure ------------------------------------------------------------

  /**
   * Removes weights (structure 'weight', by magnitude) or whole neurons of
   * hidden layers (structure 'neuron', by criterion). Pruned weights are held
   * at zero; a layer whose density falls below its threshold is stored as CSR.
   * Pruned neurons stay (as zeros) until compact(). Rejected while a training
   * step is running; call it from a fit callback to prune at a step boundary.
   */
  prune(options: PruneOptions): PruneResult {
    return structure.prune(this.structureHost(), options);
  }

  /** Physically removes pruned neurons (all slots together) and stores sparse layers as CSR; outputs do not change. */
  compact(): StructuralEvent[] {
    return structure.compact(this.structureHost());
  }

  /**
   * Dropin: adds `count` neurons to a hidden layer in place (rows of its
   * weights and bias, columns of the next layer's weights, fresh optimizer
   * state, new neuron ids). 'zero' and 'net2wider' leave the function unchanged.
   */
  grow(options: growth.GrowOptions): growth.GrowResult {
    return growth.grow(this.growthHost(), options);
  }

  /** Random sparse connectivity (Erdos-Renyi or uniform densities) over all dense layers; sparse layers become CSR. */
  sparsify(options: growth.SparsifyOptions): StructuralEvent[] {
    return growth.sparsify(this.structureHost(), options);
  }

  /** The compiled loss, or null before compile(). */
  get loss(): LossName | null {
    return this.compiled?.loss ?? null;
  }

  /** Remembers the current weights (by neuron id) for a later rewind(); returns the step they belong to. */
  snapshot(): number {
    return structure.snapshot(this.structureHost());
  }

  /** Lottery-ticket rewind: surviving weights go back to their values at `step` (see snapshot()), with fresh optimizer state. */
  rewind(step: number): void {
    structure.rewind(this.structureHost(), step);
  }

  /**
   * Frees the memory training keeps between calls to go faster: the native copy of the last fit's
   * data (kept for reuse by the next fit), the activation and gradient workspace, and the transposed
   * patterns of CSR layers. Weights, optimizer state, snapshots and events stay, and the next fit
   * rebuilds the rest (its results are the same). Rejected while fit() runs.
   */
  releaseMemory(): void {
    this.assertIdle('releaseMemory');
    this.nativeModel?.releaseMemory();
  }

  /** Steps with saved weights for rewind(). */
  get snapshotSteps(): number[] {
    return this.nativeModel ? this.nativeModel.snapshotSteps() : [];
  }

  /** The structural event log (grow, prune, compact, ..., densify, sparsify), oldest first: the newest `eventLimit` events. */
  get events(): StructuralEvent[] {
    return this.nativeModel ? toApiEvents(this.nativeModel.events(), this.layerList) : [];
  }

  /** How many structural events were ever logged, the dropped ones included (cheap: nothing is copied). */
  get eventCount(): number {
    return this.nativeModel ? this.nativeModel.eventCount : 0;
  }

  /** How many of the oldest events the log dropped to stay within `eventLimit` (`events` starts after them). */
  get eventsDropped(): number {
    return this.nativeModel ? this.nativeModel.eventsDropped : 0;
  }

  /**
   * The events from index `from` of the whole history on, copying only those: a long run that
   * polls the log stays linear in its length. Indices count dropped events too, so with nothing
   * dropped this is `events.slice(from)`; events older than the kept ones are not returned.
   */
  eventsSince(from: number): StructuralEvent[] {
    const start = checkInteger('Sequential.eventsSince()', 'from', from, { min: 0 });
    if (!this.nativeModel || start >= this.nativeModel.eventCount) return [];
    return toApiEvents(this.nativeModel.events(start), this.layerList);
  }

  private growthHost(): growth.GrowthHost {
    return { ...this.structureHost(), inputSize: this.inputSize, outputSize: this.outputSize, loss: this.loss };
  }

  private structureHost(): structure.StructureHost {
    return { native: this.build(), layers: this.layerList, assertIdle: (op) => this.assertIdle(op) };
  }

  // ---- configuration and checkpoints ------------------------------------------

  /** Architecture (current units) and compile settings as plain JSON. */
  toJSON(): ModelConfig {
    return {
      format: 'neuroplastic-model',
      inputSize: this.inputSize,
      seed: this.seed,
      name: this.name,
      ...(this.sparseThreshold === undefined ? {} : { sparseThreshold: this.sparseThreshold }),
      ...(this.eventLimit === DEFAULT_EVENT_LIMIT ? {} : { eventLimit: this.eventLimit }),
      layers: this.layerList.map((l) =>
        l instanceof DenseLayer
          ? {
              kind: 'dense' as const,
              units: l.units,
              activation: l.activation,
              useBias: l.useBias,
              kernelInitializer: l.kernelInitializer,
              dropConnect: l.dropConnect,
              ...(l.sparseThreshold === undefined ? {} : { sparseThreshold: l.sparseThreshold }),
              ...(l.initialDensity === 1 ? {} : { density: l.initialDensity }),
            }
          : { kind: 'dropout' as const, rate: l.rate },
      ),
      ...(this.compiled ? { compile: { optimizer: { ...this.compiled.optimizer }, loss: this.compiled.loss } } : {}),
    };
  }

  /**
   * A new (freshly initialised) model from toJSON() output; compiled if the
   * config says how. `prepare` (internal) runs after the layers are added and
   * before anything is built.
   */
  static fromJSON(config: ModelConfig, prepare?: (model: Sequential) => void): Sequential {
    const where = 'Sequential.fromJSON()';
    const c = checkOptions<ModelConfig>(where, 'config', config);
    if (!Array.isArray(c.layers)) throw new TypeError(`${where}: config.layers must be an array`);
    const model = new Sequential({
      inputSize: c.inputSize!,
      seed: c.seed,
      name: c.name,
      sparseThreshold: c.sparseThreshold,
      ...(c.eventLimit === undefined ? {} : { eventLimit: c.eventLimit }),
    });
    c.layers.forEach((l, i) => {
      if (l === null || typeof l !== 'object') throw new TypeError(`${where}: config.layers[${i}] must be an object`);
      if (l.kind === 'dense') {
        model.add(
          dense({
            units: l.units,
            activation: l.activation,
            useBias: l.useBias,
            kernelInitializer: l.kernelInitializer,
            dropConnect: l.dropConnect,
            ...(l.sparseThreshold === undefined ? {} : { sparseThreshold: l.sparseThreshold }),
            ...(l.density === undefined ? {} : { density: l.density }),
          }),
        );
      } else if (l.kind === 'dropout') {
        model.add(dropout({ rate: l.rate }));
      } else {
        throw new TypeError(`${where}: config.layers[${i}].kind must be 'dense' or 'dropout', got ${describe((l as { kind?: unknown }).kind)}`);
      }
    });
    prepare?.(model);
    if (c.compile) {
      const { kind, ...rest } = c.compile.optimizer ?? ({} as Optimizer);
      const optimizer = kind === 'sgd' ? sgd(rest) : kind === 'adam' ? adam(rest) : null;
      if (!optimizer) throw new TypeError(`${where}: config.compile.optimizer.kind must be 'sgd' or 'adam'`);
      model.compile({ optimizer, loss: c.compile.loss });
    }
    return model;
  }

  /** Writes the whole model (weights in dense or CSR form, optimizer state, ids, events, config) as safetensors, atomically. */
  async save(file: string): Promise<void> {
    if (typeof file !== 'string' || file.length === 0) throw new TypeError(`Sequential.save(): path must be a non-empty string, got ${describe(file)}`);
    this.assertIdle('save');
    // The state is read before anything else runs on the model, also when a fit callback does not
    // await save(): fit waits for the read (tracked like predict()), not for the disk.
    const { buffer, writeFileAtomic } = await this.track(
      import('./checkpoint/model_file').then((m) => ({ buffer: m.modelToBuffer(this), writeFileAtomic: m.writeFileAtomic })),
    );
    await writeFileAtomic(file, buffer);
  }

  /** The same bytes save() writes, as a Buffer. */
  toBuffer(): Buffer {
    this.assertIdle('toBuffer');
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { modelToBuffer } = require('./checkpoint/model_file') as typeof import('./checkpoint/model_file');
    return modelToBuffer(this);
  }

  /** Total parameters (weights + biases) of the dense layers. */
  countParams(): number {
    return this.nativeModel ? this.nativeModel.parameterCount : 0;
  }

  /** A per-layer table (units, inputs, params, nnz, density, format, bytes); printed unless print is false. */
  summary(options: { print?: boolean } = {}): string {
    const o = checkOptions<{ print?: boolean }>('Sequential.summary()', 'options', options);
    const text = formatSummary(this.name, this.inputSize, this.layerList, this.nativeModel ? this.countParams() : null);
    if (o.print ?? true) console.log(text);
    return text;
  }

  /** @internal Throws if an async operation is running on the model. */
  assertIdle(operation: string): void {
    if (this.fitting && !this.atStepBoundary) {
      throw new Error(
        `Sequential.${operation}(): the model is training, so ${operation}() is rejected (not deferred); ` +
          'call it from a fit callback (which runs at a step boundary) or after fit() resolves',
      );
    }
    const busy = this.nativeModel?.busy;
    if (busy) throw new Error(`Sequential.${operation}(): ${busy}() is running on this model; await it first`);
  }

  private denseLayers(): DenseLayer[] {
    return this.layerList.filter((l): l is DenseLayer => l instanceof DenseLayer);
  }

  private build(): NativeModel {
    if (this.nativeModel) return this.nativeModel;
    const dense = this.denseLayers();
    if (dense.length === 0) throw new Error('Sequential: add at least one layers.dense() before compiling or predicting');
    const last = this.layerList[this.layerList.length - 1];
    if (last instanceof DropoutLayer) {
      throw new Error('Sequential: a dropout layer cannot be the last layer (it would drop outputs); remove it or add a dense layer after it');
    }
    // Dropout layers become the input dropout of the dense layer that follows;
    // consecutive ones combine (keep probabilities multiply).
    const specs = [];
    let keep = 1;
    for (const layer of this.layerList) {
      if (layer instanceof DropoutLayer) keep *= 1 - layer.rate;
      else {
        specs.push(layer.nativeSpec(1 - keep));
        keep = 1;
      }
    }
    const native = new (addon().NativeModel)({
      inputSize: this.inputSize,
      seed: this.seed,
      layers: specs,
      sparseThreshold: this.sparseThreshold ?? -1,
      eventLimit: this.eventLimit,
    });
    this.nativeModel = this.currentDevice === 'cpu' ? native : this.onDevice(native, this.currentDevice);
    return this.nativeModel;
  }

  // The GPU half over the CPU model (lib/cuda_model.ts), on the GPU `device` names. Only here does
  // the CPU path reach the CUDA addon.
  private onDevice(host: NativeModel, device: Device): NativeModel {
    const compiled = this.compiled ? { optimizer: { ...this.compiled.optimizer }, loss: this.compiled.loss } : undefined;
    const options = { inputSize: this.inputSize, seed: this.seed, device: cudaOrdinal(device) };
    return new CudaNativeModel(host, requireCuda(), options, compiled);
  }

  private requireCompiled(where: string): CompileOptions {
    if (!this.compiled) throw new Error(`${where}: call model.compile({ optimizer, loss }) first`);
    return this.compiled;
  }

  private async evaluateChecked(x: Float32Array, y: Int32Array | Float32Array, batchSize: number): Promise<Evaluation> {
    const r = await this.track(this.build().evaluate(x, y, batchSize));
    return { loss: r.lossSum / r.samples, accuracy: r.correct / r.samples };
  }

  /** Remembers `operation` as the model's in-flight native operation (see `inFlight`) and returns it. */
  private track<T>(operation: Promise<T>): Promise<T> {
    const settled = operation.then(
      () => undefined,
      () => undefined, // the caller's promise carries the error; fit() only waits
    );
    this.inFlight = settled;
    void settled.then(() => {
      if (this.inFlight === settled) this.inFlight = null;
    });
    return operation;
  }

  /** Resolves once no native operation started from JS is running (one may start another when it ends). */
  private async settle(): Promise<void> {
    while (this.inFlight) await this.inFlight;
  }

  private checkCallbacks(where: string, callbacks: unknown): Callback[] {
    if (callbacks === undefined) return [];
    if (!Array.isArray(callbacks)) throw new TypeError(`${where}: callbacks must be an array, got ${describe(callbacks)}`);
    const hooks = ['onTrainBegin', 'onTrainEnd', 'onEpochBegin', 'onEpochEnd', 'onBatchEnd', 'onProgress', 'setModel', 'cleanup',
      'nextStep', 'onStep', 'onPrune', 'onCompact', 'onGrow', 'onReinit', 'onStructure'];
    callbacks.forEach((cb, i) => {
      if (cb === null || typeof cb !== 'object') throw new TypeError(`${where}: callbacks[${i}] must be an object, got ${describe(cb)}`);
      for (const hook of hooks) {
        const fn = (cb as Record<string, unknown>)[hook];
        if (fn !== undefined) checkFunction(where, `callbacks[${i}].${hook}`, fn);
      }
    });
    return callbacks as Callback[];
  }
}


export { AbortError };
