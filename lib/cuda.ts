// The optional CUDA backend: finds and loads neuroplastic_cuda.node on first
// use and says what is there. The CPU path never calls into this module, so a
// machine without CUDA never loads the addon or the CUDA runtime.
//
// The addon is built by `npm run build:native` when nvcc is found, into
// build/Release/cuda/ (a folder of its own: node-gyp-build loads the first
// .node file in build/Release, which must stay the CPU addon).
import * as fs from 'fs';
import * as path from 'path';
import { packageRoot, type BatchProgress, type GradMaxProduct, type MagnitudePlan, type NativeLayerParams } from './native';

/** One CUDA device as the runtime reports it. */
export interface CudaDevice {
  /** Device ordinal (cudaSetDevice index). */
  index: number;
  /** Marketing name, e.g. 'NVIDIA H100 80GB HBM3'. */
  name: string;
  /** Device memory in bytes. */
  totalMemory: number;
  /** 'major.minor', e.g. '9.0'. */
  computeCapability: string;
}

/** Why the CUDA backend is or is not usable on this machine. */
export interface CudaStatus {
  /** True when the addon loaded and the runtime sees at least one device. */
  available: boolean;
  /** What is missing, when not available: the message `cuda.require()` throws. */
  reason: string | null;
  /** The file the addon was (or would have been) loaded from; null when none was found. */
  addonPath: string | null;
  /** Devices the runtime sees (0 when the addon or the driver is missing). */
  deviceCount: number;
  /** CUDA version the driver supports, e.g. '12.8'; null when no driver is installed or the addon did not load. */
  driverVersion: string | null;
  /** CUDA runtime version the addon was built with (statically linked), e.g. '13.0'. */
  runtimeVersion: string | null;
}

/** The probe result straight from the addon (native/cuda/binding/cuda_addon.cpp). */
export interface CudaProbe {
  deviceCount: number;
  errorCode: number;
  error: string | null;
  errorName: string | null;
  driverVersion: number;
  runtimeVersion: number;
}

/** One dense layer's architecture and parameters as the device model takes them (the CPU model's parameters plus the layer's settings). */
export interface CudaLayerStateIn extends NativeLayerParams {
  activation: string;
  inputDropout: number;
  /** DropConnect rate on the stored weights while training (0: none). */
  dropConnect: number;
  /** Per-unit running statistics (units entries each; absent: zeros) and the steps they have seen. */
  meanAbsActivation?: Float64Array;
  meanActivation?: Float64Array;
  taylor?: Float64Array;
  statsUpdates?: number;
  useBias: boolean;
}

/**
 * A layer's new structure for CudaModelHandle.restructure(): the settings and
 * structure of CudaLayerStateIn; the values only where the layer has new units
 * in its rows or inputs (the device reads them at those positions only).
 */
export type CudaLayerStructureIn = Omit<CudaLayerStateIn, 'weight' | 'weightMoments' | 'bias' | 'biasMoments'> &
  Partial<Pick<CudaLayerStateIn, 'weight' | 'weightMoments' | 'bias' | 'biasMoments'>> & {
    /** Per input: the factor of the weights moved into its column (net2wider's split: value and first moment times it, second moment times its square). */
    inputScale?: Float32Array;
    /** Per unit: the current unit whose weights and bias a new unit copies, value only, slots from zero (net2wider's copies); -1: none. */
    rowCopy?: Int32Array;
    /** Per input: the current input whose column a new input copies times inputCopyScale, value only (net2wider's copies' shares); -1: none. */
    inputCopy?: Int32Array;
    inputCopyScale?: Float32Array;
    /** Every moved weight times this, its slots restarted at zero (sparsify's kept weights); the biases move. */
    restartScale?: number;
    /** The change left this layer exactly as it was: the device keeps it and reads its shape and settings only. */
    keep?: boolean;
    /**
     * Continual backprop reinitialised these units of the layer below (ascending): this layer's biases
     * absorb their mean outputs (compensateMeans, the host's, one per unit) through the device's
     * weights before the change, b[r] += w[r][j] * mean in float, in this order. With
     * compensateNewWeights (gradmax): the new units' inputs, through the weights after the change.
     */
    compensateInputs?: Int32Array;
    compensateMeans?: Float64Array;
    compensateNewWeights?: boolean;
  };

/** The device model's per-unit running statistics and the steps they have seen, per layer. */
export interface CudaStatsOut {
  step: number;
  layers: { meanAbsActivation: Float64Array; meanActivation: Float64Array; taylor: Float64Array; statsUpdates: number }[];
}

/** What the device model gives back: its step and every parameter with its optimizer slots. */
export interface CudaStateOut {
  step: number;
  layers: {
    weight: Float32Array;
    weightMoments: Float32Array[];
    bias: Float32Array;
    biasMoments: Float32Array[];
    meanAbsActivation: Float64Array;
    meanActivation: Float64Array;
    taylor: Float64Array;
    statsUpdates: number;
  }[];
}

/** The addon's device-resident model (native/cuda/binding/cuda_model_wrap.cpp); lib/cuda_model.ts drives it. */
export interface CudaModelHandle {
  load(state: { step: number; layers: CudaLayerStateIn[] }): void;
  /**
   * Follows a structural change made on the host by moving the device's own
   * parameters and slots (native/cuda/remap.h): rowSources[l][r] is the current
   * index of new unit r of layer l, or -1 for a unit the host added.
   */
  restructure(state: { layers: CudaLayerStructureIn[] }, rowSources: Int32Array[]): void;
  /**
   * Numbers over the unchanged structure, written in place (no layer or W^T rebuilt): each layer's
   * weight (stored order), bias and their moments, each optional (absent: kept).
   */
  setValues(values: { layers: { weight?: Float32Array; bias?: Float32Array; weightMoments?: Float32Array[]; biasMoments?: Float32Array[] }[] }): void;
  /**
   * A magnitude decision made on the device's weights (native/cuda/cuda_decisions.cpp): for the
   * host's plan, the drop bits of each listed layer (bit i of word i / 32: stored position i, dense
   * r * inputs + c or the CSR entry), exactly what the host's ranking of the same weights gives.
   */
  magnitudeDrops(layers: number[], plan: MagnitudePlan): Uint32Array[];
  /**
   * Neuron pruning's per-unit scores of a hidden layer from the device's numbers: l1 / l2 norms of
   * incoming and outgoing weights (bit for bit the host's on the same weights), or the running
   * statistics ('activation', 'taylor'); dead units -Infinity, as the host scores them.
   */
  neuronScores(layer: number, criterion: string): Float64Array;
  /**
   * RigL's choice on the device: per listed layer, the counts[i] open positions (live unit, open
   * input, nothing stored) with the largest |dL/dw| on the batch x/y at the current weights
   * (no dropout), ties by position, ascending. Changes nothing but the batch workspace.
   */
  gradientGrowth(x: Float32Array, y: Int32Array | Float32Array, layers: number[], counts: number[]): Float64Array[];
  /**
   * What gradmax reads of the network to grow hidden layer `layer`, on the batch x/y at the
   * current weights: M = dL/dz_{layer+1} a_{layer-1}^T and the next layer's squared norm (the host's
   * to float rounding). Changes nothing but the batch workspace.
   */
  gradmaxProduct(x: Float32Array, y: Int32Array | Float32Array, layer: number): GradMaxProduct;
  /** Continual backprop's utility per unit of a hidden layer from the device's numbers (-inf for dead units), bit for bit the host's. */
  unitUtility(layer: number): Float64Array;
  /** The per-unit statistics only: what continual backprop and ReDo read besides utilities. */
  exportStats(): CudaStatsOut;
  /** The device's parameters; withMoments false: weights and biases only (the moment lists are empty). */
  exportState(withMoments?: boolean): CudaStateOut;
  setOptimizer(optimizer: object): void;
  /** Decay of the per-unit statistics' moving averages, in (0, 1). */
  setStatsDecay(decay: number): void;
  createDataset(x: Float32Array, y: Int32Array | Float32Array): number;
  releaseDataset(handle: number): void;
  trainBatches(
    dataset: number,
    order: Int32Array,
    firstBatch: number,
    batchCount: number,
    batchSize: number,
    progress?: BatchProgress,
  ): Promise<{ lossSum: number; correct: number; samples: number; steps: number; aborted: boolean }>;
  evaluate(x: Float32Array, y: Int32Array | Float32Array, batchSize: number): Promise<{ lossSum: number; correct: number; samples: number }>;
  predict(x: Float32Array, batchSize: number): Promise<Float32Array>;
  requestAbort(): void;
  /** Frees the device memory now (the object is unusable afterwards). */
  dispose(): void;
  readonly step: number;
  readonly busy: string | null;
  readonly deviceBytes: number;
}

/** The addon's exports. `kernels` are one-shot synchronous calls for tests and checks, not a training path. */
export interface CudaAddon {
  probe(): CudaProbe;
  devices(): CudaDevice[];
  /** 'cublas (libcublas.so.N)' when cuBLAS was found at run time, else 'tiled (<why not>)'. */
  gemmBackend(): string;
  CudaModel: new (
    config: { inputSize: number; seed: number; device: number; loss: string; optimizer: object; statsDecay?: number },
    state: { step: number; layers: CudaLayerStateIn[] },
  ) => CudaModelHandle;
  /** Timings for bench/cuda.ts: mean ms per call; -1 when the peer is unavailable. */
  bench: {
    gemm(m: number, n: number, k: number, reps: number, tiled: boolean): number;
    /** impl: 'ours' (as the model runs it), 'rows', 'warp' or 'staged' (that kernel forced), or 'cusparse'. */
    spmm(rows: number, cols: number, density: number, batch: number, reps: number, impl: 'ours' | 'rows' | 'warp' | 'staged' | 'cusparse'): number;
    /** 'cusparse (libcusparse.so.N)' or 'unavailable (<why>)'. */
    cusparse(): string;
    /** Makes GPU `device` the one the calls above run on (the calling thread's current device). */
    selectDevice(device: number): void;
  };
  kernels: {
    /** C[m x n] = op(A) op(B), row-major, A m x k (k x m when transA), B k x n (n x k when transB). */
    gemm(transA: boolean, transB: boolean, m: number, n: number, k: number, a: Float32Array, b: Float32Array): Float32Array;
    /** Y[rows x batch] = W X for CSR W (rows x cols) and feature-major X (cols x batch). */
    spmm(indptr: BigInt64Array, indices: Int32Array, values: Float32Array, cols: number, x: Float32Array, batch: number): Float32Array;
    /** dX[cols x batch] = W^T dY, dY rows x batch. */
    spmmT(indptr: BigInt64Array, indices: Int32Array, values: Float32Array, cols: number, dy: Float32Array, batch: number): Float32Array;
    /** dW at W's stored positions: dW[k] = dY[row(k), :] . X[col(k), :]. */
    sddmm(indptr: BigInt64Array, indices: Int32Array, cols: number, dy: Float32Array, x: Float32Array, batch: number): Float32Array;
  };
  /**
   * Only in the addon built over the CUDA emulator (native/cuda/emulator, for tests): the
   * (skip + 1)-th later launch of a kernel whose name contains `kernel` fails (out of resources).
   */
  emulator?: {
    failLaunch(kernel: string, skip: number): void;
    launchFailurePending(): boolean;
    clearLaunchFailure(): void;
    /** Launches so far of kernels whose name contains `kernel`. */
    launchesOf(kernel: string): number;
    /** Bytes of device memory in use on that emulated GPU (NP_CUDA_EMULATOR_DEVICES). */
    memoryOn(device: number): number;
  };
}

const ADDON_FILE = 'neuroplastic_cuda.node';

interface LoadResult {
  addon: CudaAddon | null;
  path: string | null;
  error: string | null;
  searched: string[];
}

let loaded: LoadResult | undefined;

/**
 * Whether the CPU addon in use is the package's prebuilt one (node-gyp-build finds no local build):
 * then the prebuilt CUDA addon beside it comes from the same pack. In a checkout with its own build
 * a prebuild left by an earlier `npm pack` could be stale, so it is not used there.
 */
function cpuAddonIsPrebuilt(): boolean {
  if (process.env.NEUROPLASTIC_ADDON_PATH) return false;
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const file: string = require('node-gyp-build').resolve(packageRoot);
    return !path.relative(path.join(packageRoot, 'prebuilds'), file).startsWith('..');
  } catch {
    return false;
  }
}

/**
 * Where the addon may be, in order: NEUROPLASTIC_CUDA_ADDON_PATH (exactly that file); a cuda/ folder
 * beside NEUROPLASTIC_ADDON_PATH (the CPU addon override); build/Release/cuda and build/Debug/cuda
 * (a build from source); prebuilds/<platform>-<arch>/cuda (the package's prebuilt addon,
 * scripts/prebuild-cuda.js), only beside the prebuilt CPU addon.
 */
export function addonCandidates(): string[] {
  const exact = process.env.NEUROPLASTIC_CUDA_ADDON_PATH;
  if (exact) return [path.resolve(exact)];
  const out: string[] = [];
  const cpuOverride = process.env.NEUROPLASTIC_ADDON_PATH;
  if (cpuOverride) out.push(path.join(path.dirname(path.resolve(cpuOverride)), 'cuda', ADDON_FILE));
  for (const config of ['Release', 'Debug']) out.push(path.join(packageRoot, 'build', config, 'cuda', ADDON_FILE));
  if (cpuAddonIsPrebuilt()) out.push(path.join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`, 'cuda', ADDON_FILE));
  return out;
}

function load(): LoadResult {
  if (loaded) return loaded;
  const searched = addonCandidates();
  const file = searched.find((p) => fs.existsSync(p)) ?? null;
  if (!file) {
    loaded = { addon: null, path: null, error: null, searched };
    return loaded;
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    loaded = { addon: require(file) as CudaAddon, path: file, error: null, searched };
  } catch (err) {
    loaded = { addon: null, path: file, error: err instanceof Error ? err.message : String(err), searched };
  }
  return loaded;
}

/** 12080 -> '12.8' (CUDA encodes 1000 * major + 10 * minor). */
function cudaVersion(v: number): string | null {
  return v > 0 ? `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}` : null;
}

/** Loads the addon if it is there and reports what the CUDA runtime sees, with the reason when it is not usable. Never throws. */
export function status(): CudaStatus {
  const l = load();
  const none = { available: false, addonPath: l.path, deviceCount: 0, driverVersion: null, runtimeVersion: null };
  if (!l.addon && !l.path) {
    return {
      ...none,
      reason:
        `neuroplastic: the CUDA addon is not built (no ${ADDON_FILE} in ${l.searched.join(', ')}). ` +
        '`npm run build:native` builds it when nvcc (the CUDA toolkit) is on the PATH; see "CUDA" in the README.',
    };
  }
  if (!l.addon) {
    return { ...none, reason: `neuroplastic: the CUDA addon ${l.path} could not be loaded: ${l.error}` };
  }
  const p = l.addon.probe();
  const base = {
    addonPath: l.path,
    deviceCount: p.deviceCount,
    driverVersion: cudaVersion(p.driverVersion),
    runtimeVersion: cudaVersion(p.runtimeVersion),
  };
  const runtime = base.runtimeVersion ?? 'unknown';
  if (p.errorCode !== 0 && p.driverVersion === 0) {
    return {
      ...base,
      available: false,
      reason:
        `neuroplastic: no NVIDIA driver: the CUDA runtime found no libcuda.so (${p.error}, ${p.errorName}). ` +
        `Install the NVIDIA driver (one supporting CUDA ${runtime} or later) to use device: 'cuda'.`,
    };
  }
  if (p.errorCode !== 0 && p.errorName === 'cudaErrorInsufficientDriver') {
    return {
      ...base,
      available: false,
      reason:
        `neuroplastic: the NVIDIA driver is too old: it supports CUDA ${base.driverVersion}, the CUDA addon was ` +
        `built with CUDA ${runtime} (${p.error}). Update the driver, or rebuild the addon with an older CUDA toolkit.`,
    };
  }
  if (p.errorCode !== 0 || p.deviceCount === 0) {
    const why = p.errorCode !== 0 ? `${p.error}, ${p.errorName}` : 'the runtime reports 0 devices';
    return { ...base, available: false, reason: `neuroplastic: no CUDA device (${why}).` };
  }
  return { ...base, available: true, reason: null };
}

/** True when the CUDA addon is built, a driver is installed and at least one device is visible. */
export function available(): boolean {
  return status().available;
}

/** The visible CUDA devices; empty when the addon, the driver or a device is missing. */
export function devices(): CudaDevice[] {
  const s = status();
  return s.available ? load().addon!.devices() : [];
}

/**
 * The loaded addon, for code that is about to use the GPU. Throws an Error that says exactly what is
 * missing (addon not built, not loadable, no driver, driver too old, no device) otherwise.
 */
function requireCuda(): CudaAddon {
  const s = status();
  if (!s.available) throw new Error(s.reason ?? 'neuroplastic: CUDA is not available');
  return load().addon!;
}
// Exported under the name the API documents; a top-level function named
// `require` would shadow CommonJS require inside this module.
export { requireCuda as require };

/** Which dense GEMM the addon runs ('cublas (...)' or 'tiled (...)'); throws like `require()`. */
export function gemmBackend(): string {
  return requireCuda().gemmBackend();
}
