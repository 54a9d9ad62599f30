// Callbacks that fit() calls, and the history it returns. Hooks may be async:
// fit() awaits them, so a callback can change the model between batches or
// epochs. onProgress is the exception: it is throttled, called while the
// native loop keeps running, and not awaited (it is for progress bars); an
// error it throws stops the loop, and fit() rejects with that error.
import type { StructuralEvent } from './events';

export interface BatchLogs {
  /** Mean loss of this batch. */
  loss: number;
  /** Accuracy of this batch (argmax vs label). */
  accuracy: number;
  /** Samples in this batch. */
  size: number;
  /** The model's global optimizer step after this batch. */
  step: number;
}

export interface EpochLogs {
  loss: number;
  accuracy: number;
  valLoss?: number;
  valAccuracy?: number;
  /** Wall-clock seconds of the epoch's training (without validation). */
  seconds: number;
  /** Training samples per second in this epoch. */
  samplesPerSecond: number;
  step: number;
}

export interface ProgressInfo {
  epoch: number;
  epochs: number;
  /** Batches done in this epoch. */
  batch: number;
  batches: number;
  /** Running mean loss and accuracy over this epoch so far. */
  loss: number;
  accuracy: number;
}

export interface Callback {
  /** Called first, with the model being trained (plasticity schedules keep it). */
  setModel?(model: unknown): void;
  /** Called last, however fit() ends (success, error or abort): undo settings made for training. */
  cleanup?(): void;
  /**
   * Step-boundary hooks. nextStep(step) returns the smallest global step > step
   * at which onStep should run (undefined: none). fit() splits its native
   * loop there, so onStep sees the model between two optimizer steps and may
   * change its structure.
   */
  nextStep?(step: number): number | undefined;
  onStep?(step: number, model: unknown): void | Promise<void>;
  /** Structural hooks: called with each event logged during fit (e.g. by a plasticity schedule). */
  onPrune?(event: StructuralEvent): void | Promise<void>;
  onCompact?(event: StructuralEvent): void | Promise<void>;
  onGrow?(event: StructuralEvent): void | Promise<void>;
  onReinit?(event: StructuralEvent): void | Promise<void>;
  /** Any structural event, whatever its kind. */
  onStructure?(event: StructuralEvent): void | Promise<void>;
  onTrainBegin?(): void | Promise<void>;
  onTrainEnd?(history: History): void | Promise<void>;
  onEpochBegin?(epoch: number): void | Promise<void>;
  onEpochEnd?(epoch: number, logs: EpochLogs): void | Promise<void>;
  /** Called after every batch; defining it makes fit() hand control back to JS each batch. */
  onBatchEnd?(batch: number, logs: BatchLogs): void | Promise<void>;
  /** Throttled (about every 50 ms) and not awaited: for progress bars. A throw stops fit(), which rejects with the error. */
  onProgress?(info: ProgressInfo): void;
}

export interface History {
  /** Epoch indices that ran. */
  epoch: number[];
  history: {
    loss: number[];
    accuracy: number[];
    valLoss: number[];
    valAccuracy: number[];
    seconds: number[];
  };
}

export function emptyHistory(): History {
  return { epoch: [], history: { loss: [], accuracy: [], valLoss: [], valAccuracy: [], seconds: [] } };
}
