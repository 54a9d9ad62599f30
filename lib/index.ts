// The public surface of neuroplastic: everything users import comes from here.
import * as data from './data';
import * as layers from './layers';
import * as optimizers from './optimizers';
import * as plasticity from './plasticity';
import { addon } from './native';

export { Sequential, AbortError } from './sequential';
export { loadModel } from './checkpoint/load';
export { CheckpointError } from './checkpoint/safetensors';
export type { ModelConfig } from './sequential';
export type { LinearImportOptions } from './checkpoint/linear_import';
export type { SequentialOptions, CompileOptions, FitOptions, EvaluateOptions, Evaluation, LossName, Device } from './sequential';
export type { Callback, History, BatchLogs, EpochLogs, ProgressInfo } from './callbacks';
export type { Layer, DenseLayer, DropoutLayer, LayerWeights, DenseOptions, DropoutOptions, ActivationName } from './layers';
export type { Optimizer, SgdOptions, AdamOptions } from './optimizers';
export type { Dataset, TrainTest } from './data';
export type { StructuralEvent, StructuralEventKind } from './events';
export type { PruneOptions, PruneResult, PruneCriterion } from './structure';
export type { GrowOptions, GrowResult, GrowInit, SparsifyOptions } from './growth';
export type * from './plasticity';
export { layers, optimizers, plasticity, data };
export * as continual from './continual';
export * as report from './report';
export * as cuda from './cuda';
export type { ContinualResult, Task, TaskSplit, RunOptions, TaskEndInfo } from './continual';
export type { ReportInput, ReportEvent } from './report';

export interface RuntimeInfo {
  /** SIMD level the kernels use: 'scalar' | 'avx2' | 'avx512'. */
  simd: string;
  /** Best level this CPU supports. */
  simdDetected: string;
  /** Threads in the native pool (NEUROPLASTIC_THREADS overrides). */
  threads: number;
  /** Per-core data cache sizes in bytes, from the OS (32 KB / 512 KB if it does not say). The CSR kernels size their column blocks from them. */
  cache: { l1d: number; l2: number };
  version: string;
}

/** What the native core runs with on this machine. */
export function runtime(): RuntimeInfo {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { version } = require('../package.json') as { version: string };
  return { ...addon().runtime(), version };
}
