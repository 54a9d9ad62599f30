// Loads the compiled addon: a local build (build/Release), else the prebuilt
// binary for this platform (prebuilds/<platform>-<arch>), else an error that
// says how to build one. Nothing else in lib/ touches the addon's file.
import * as path from 'path';
import type { StructuralEvent } from './events';

export interface NativeStats {
  lossSum: number;
  correct: number;
  samples: number;
}

export interface NativeTrainResult extends NativeStats {
  steps: number;
  aborted: boolean;
}

export interface NativeLayerInfo {
  units: number;
  inputs: number;
  activation: string;
  inputDropout: number;
  useBias: boolean;
  nnz: number;
  format: 'dense' | 'csr';
  bytes: number;
  deadUnits: number;
  dropConnect: number;
}

/** A structural event as the core reports it: `layer` is the dense-layer index, `kind` any string. */
export type NativeEvent = Omit<StructuralEvent, 'kind'> & { kind: string };

export interface NativeLayerSpec {
  units: number;
  activation: string;
  inputDropout: number;
  init: string;
  useBias: boolean;
  dropConnect?: number;
  sparseThreshold?: number;
  density?: number;
}

export interface NativeOptimizerConfig {
  kind: 'sgd' | 'adam';
  learningRate: number;
  momentum?: number;
  nesterov?: boolean;
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  decoupledWeightDecay?: boolean;
}

export type NativeTargets = Int32Array | Float32Array;

/** A handle to training data copied into native memory, owned by the model until releaseDataset(). */
export type NativeDataset = number & { readonly __nativeDataset: unique symbol };

/** Called as training batches finish (from the worker, through a thread-safe function). */
export type BatchProgress = (batchesDone: number, lossSum: number, correct: number, samples: number) => void;

/** A layer's parameters with their optimizer slots: what moves between the CPU and the GPU model. */
export interface NativeLayerParams {
  units: number;
  inputs: number;
  format: 'dense' | 'csr';
  /** Dense: units x inputs; CSR: the nnz values. */
  weight: Float32Array;
  indptr?: BigInt64Array;
  indices?: Int32Array;
  weightMoments: Float32Array[];
  bias: Float32Array;
  biasMoments: Float32Array[];
  mask?: Uint8Array;
  alive?: Uint8Array;
}

export interface NativeLayerState extends NativeLayerParams {
  neuronIds: BigInt64Array;
  meanAbsActivation: Float64Array;
  meanActivation: Float64Array;
  taylor: Float64Array;
  birthStep: BigInt64Array;
  statsUpdates: number;
  sparseThreshold: number;
  /** Continual backprop's fractional replacements carried to the next step (absent: 0). */
  cbpCarry?: number;
}

/** One layer's numbers for NativeModel.setValues; each part optional (absent: kept). */
export interface NativeLayerValues {
  weight?: Float32Array;
  weightMoments?: Float32Array[];
  bias?: Float32Array;
  biasMoments?: Float32Array[];
  meanAbsActivation?: Float64Array;
  meanActivation?: Float64Array;
  taylor?: Float64Array;
  statsUpdates?: number;
}

export interface NativeState {
  step: number;
  epoch: number;
  nextNeuronId: number;
  rng: BigUint64Array;
  rngHasSpare: boolean;
  rngSpare: number;
  defaultSparseThreshold: number;
  statsDecay: number;
  layers: NativeLayerState[];
  events: NativeEvent[];
  /** Events older than `events`, discarded by the log's limit (absent in older checkpoints: 0). */
  eventsDropped?: number;
}

/**
 * A magnitude decision's size (native/model/magnitude_drops.h): counts[i] weights of the i-th
 * listed layer alone, or, with global >= 0, that many ranked over all of them together.
 */
export interface MagnitudePlan {
  counts: number[];
  global: number;
}

/** gradmax's reading of the network (Model::gradmax_product): M = sum over the batch of dL/dz_{l+1} a_{l-1}^T, row-major, and the next layer's sum of squared weights. */
export interface GradMaxProduct {
  m: Float32Array;
  weightSquares: number;
}

export interface NativeModel {
  compile(optimizer: NativeOptimizerConfig, loss: string): void;
  epochOrder(n: number, shuffle: boolean): Int32Array;
  /** Copies (x, y) into native memory once: fit() trains from the copy, so JS may do anything with its arrays meanwhile. */
  createDataset(x: Float32Array, y: NativeTargets): NativeDataset;
  releaseDataset(dataset: NativeDataset): void;
  trainBatches(
    dataset: NativeDataset,
    order: Int32Array,
    firstBatch: number,
    batchCount: number,
    batchSize: number,
    progress?: BatchProgress,
  ): Promise<NativeTrainResult>;
  evaluate(x: Float32Array, y: NativeTargets, batchSize: number): Promise<NativeStats>;
  predict(x: Float32Array, batchSize: number): Promise<Float32Array>;
  computeGradients(x: Float32Array, y: NativeTargets): Promise<NativeStats>;
  getWeights(layer: number): { weight: Float32Array; bias: Float32Array };
  setWeights(layer: number, weight: Float32Array | null, bias: Float32Array | null): void;
  getGradients(layer: number): { weight: Float32Array; bias: Float32Array };
  layerInfo(layer: number): NativeLayerInfo;
  requestAbort(): void;
  /** Frees training scratch kept between calls (spare data copy, workspace, CSR transposes); weights and optimizer state stay. */
  releaseMemory(): void;
  /** drops: the decision made where the weights are (a GPU model's magnitudeDrops), one per listed layer. */
  pruneWeights(layers: number[], amount: number, global: boolean, drops?: Uint32Array[]): number;
  pruneWeightsToSparsity(layers: number[], sparsity: number, global: boolean, drops?: Uint32Array[]): number;
  /**
   * How many stored weights a magnitude decision removes, from the structure alone: per listed
   * layer (counts), or ranked over all of them (global >= 0; else -1). kind 'prune': pruneWeights'
   * amount; 'sparsity': pruneWeightsToSparsity's; 'regrow': regrow's dropFraction (global ignored).
   */
  planMagnitudeDrops(kind: 'prune' | 'sparsity' | 'regrow', layers: number[], value: number, global: boolean): MagnitudePlan;
  /** What this model's weights say a plan removes: drop bits per listed layer (bit i of word i / 32: stored position i). */
  magnitudeDrops(layers: number[], plan: MagnitudePlan): Uint32Array[];
  /** scores: the criterion's per-unit scores computed where the numbers are (a GPU model's neuronScores), one per listed layer; not for 'random'. */
  pruneNeurons(layers: number[], amount: number, criterion: string, global: boolean, scores?: Float64Array[]): number;
  neuronScores(layer: number, criterion: string): Float64Array;
  compact(): void;
  convertLayer(layer: number, format: 'csr' | 'dense'): void;
  setSparseThreshold(layer: number, density: number): void;
  sparseThreshold(layer: number): number;
  events(from?: number): NativeEvent[];
  setEpoch(epoch: number): void;
  snapshot(): number;
  rewind(step: number): void;
  snapshotSteps(): number[];
  /** product: gradmax's reading of the network, made where the weights are (a GPU model's gradmaxProduct). */
  grow(layer: number, count: number, init: string, noise: number, x?: Float32Array, y?: NativeTargets, product?: GradMaxProduct): Float64Array;
  /** What grow({ init: 'gradmax' }) reads of the network to grow hidden layer `layer`, on x / y or the kept last batch. */
  gradmaxProduct(layer: number, x?: Float32Array, y?: NativeTargets): GradMaxProduct;
  /**
   * The last grow()'s net2wider split: each source unit of `layer` and the share of its outgoing
   * weights it kept (its next-layer column, value and first moment, was scaled by the share, the
   * second moment by its square); per new unit, in order, its source (copies) and the share of the
   * source's outgoing weights it took (copyShares); layer -1 after any other growth.
   */
  lastSplit(): { layer: number; units: Int32Array; shares: Float32Array; copies: Int32Array; copyShares: Float32Array };
  /**
   * The last continual-backprop round's bias compensation: per layer whose units were replaced,
   * those units (ascending) and each one's mean output, added as w * mean to the next layer's
   * biases in that order, through the weights before the change; read it right after the round.
   * A gradmax growth gives one with newWeights: its new units, means -act(0), through the new weights.
   */
  lastCompensations(): { layer: number; units: Int32Array; means: Float64Array; newWeights: boolean }[];
  /** Every dense layer, or the dense-layer indices in `layers`. */
  sparsify(sparsity: number, distribution: 'erdos-renyi' | 'uniform', layers?: number[]): void;
  /** The layers the last sparsify thinned, each with the factor its kept weights were multiplied by (slots restarted). */
  lastRescales(): { layers: Int32Array; scales: Float32Array };
  /** RigL (byGradient) reads the gradient of x/y when given, else of the last training batch. */
  /** drops / grows (RigL): the decision made where the weights are (a GPU model's magnitudeDrops / gradientGrowth), one per listed layer. */
  regrow(
    layers: number[],
    dropFraction: number,
    byGradient: boolean,
    x?: Float32Array,
    y?: NativeTargets,
    drops?: Uint32Array[],
    grows?: Float64Array[],
  ): number;
  /** RigL's choice without the change: per listed layer the counts[i] open positions with the largest |dL/dw| on the kept batch or x/y, ascending. */
  gradientGrowth(layers: number[], counts: number[], x?: Float32Array, y?: NativeTargets): Float64Array[];
  setContinualBackprop(rate: number, maturity: number): void;
  /** For steps run on the GPU: steps after fromStep until a continual-backprop round replaces a unit (0: none within max). */
  continualBackpropDue(fromStep: number, max: number): number;
  /** The replacement carry of `steps` rounds after fromStep that replace nothing. */
  continualBackpropSkip(fromStep: number, steps: number): void;
  /** The continual-backprop round at the current step: units replaced. utilities: one per hidden layer, computed where the numbers are (a GPU model's unitUtility). */
  continualBackpropStep(utilities?: Float64Array[]): number;
  redo(threshold: number): number;
  unitUtility(layer: number): Float64Array;
  unitStats(layer: number): { ages: Float64Array; meanAbsActivation: Float64Array; taylor: Float64Array };
  setKeepLastBatch(keep: boolean): void;
  /** Sets the decay of the per-unit statistics; returns the one it replaces. */
  setStatsDecay(decay: number): number;
  /** valuesOf: only these layers' numbers (weights, biases, moments); the others come with empty arrays. */
  exportState(valuesOf?: number[]): NativeState;
  importState(state: NativeState): void;
  /**
   * Numbers written in place (what is given of each layer, in its stored order; `layers` may be empty)
   * and the step; the structure, ids, events and RNG stay. Sizes and the zeros the structure implies
   * are checked first. For numbers that come back from the GPU.
   */
  setValues(values: { step: number; layers: NativeLayerValues[] }): void;
  readonly step: number;
  readonly busy: string | null;
  readonly layerCount: number;
  readonly parameterCount: number;
  /** Number of structural events logged so far (cheap; events(from) copies only the new ones). */
  readonly eventCount: number;
  /** Oldest events discarded by the log's limit (events() starts after them; indices count them). */
  readonly eventsDropped: number;
  neuronIds(layer: number): Float64Array;
}

export interface NativeAddon {
  NativeModel: new (config: { inputSize: number; seed: number; layers: NativeLayerSpec[]; sparseThreshold?: number; eventLimit?: number }) => NativeModel;
  runtime(): { simd: string; simdDetected: string; threads: number; cache: { l1d: number; l2: number } };
  setSimdLevel(level: string): boolean;
}

let cached: NativeAddon | undefined;

/** The package root (where package.json, build/ and prebuilds/ live). */
export const packageRoot = path.resolve(__dirname, '..');

export function addon(): NativeAddon {
  if (cached) return cached;
  // NEUROPLASTIC_ADDON_PATH: load this .node file instead (e.g. a sanitizer build, see scripts/test-asan.js).
  const override = process.env.NEUROPLASTIC_ADDON_PATH;
  if (override) {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    cached = require(path.resolve(override)) as NativeAddon;
    return cached;
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    cached = require('node-gyp-build')(packageRoot) as NativeAddon;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(
      `neuroplastic: the native addon could not be loaded (${reason}).\n` +
        `No build in ${path.join(packageRoot, 'build', 'Release')} and no prebuilt binary for ` +
        `${process.platform}-${process.arch} in ${path.join(packageRoot, 'prebuilds')}.\n` +
        'Build it from source with `npm run build:native` (cmake >= 3.19) or `npx node-gyp rebuild` ' +
        '(python3 + make), both need a C++17 compiler; see "Building from source" in the README.',
    );
  }
  return cached;
}
