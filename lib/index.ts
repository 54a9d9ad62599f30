// The public surface of neuroplastic: everything users import comes from here.
import * as data from './data';
import * as layers from './layers';
import * as optimizers from './optimizers';
import { addon } from './native';

export { Sequential, AbortError } from './sequential';
export type { SequentialOptions, CompileOptions, FitOptions, EvaluateOptions, Evaluation, LossName } from './sequential';
export type { Callback, History, BatchLogs, EpochLogs, ProgressInfo } from './callbacks';
export type { Layer, DenseLayer, DropoutLayer, LayerWeights, DenseOptions, DropoutOptions, ActivationName } from './layers';
export type { Optimizer, SgdOptions, AdamOptions } from './optimizers';
export type { Dataset, TrainTest } from './data';
export { layers, optimizers, data };

export interface RuntimeInfo {
  /** SIMD level the kernels use: 'scalar' | 'avx2' | 'avx512'. */
  simd: string;
  /** Best level this CPU supports. */
  simdDetected: string;
  /** Threads in the native pool (NEUROPLASTIC_THREADS overrides). */
  threads: number;
  version: string;
}

/** What the native core runs with on this machine. */
export function runtime(): RuntimeInfo {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { version } = require('../package.json') as { version: string };
  return { ...addon().runtime(), version };
}
