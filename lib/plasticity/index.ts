// Plasticity schedules: fit() callbacks that change a model's structure while
// it trains. Every step number is the model's global optimizer step.
export { gradualMagnitude, snapshotAt } from './pruning';
export type { GradualMagnitudeOptions, SnapshotAtOptions } from './pruning';
export { set, rigl } from './sparse_training';
export type { SetOptions, RiglOptions } from './sparse_training';
export { continualBackprop, redo } from './reinit';
export type { ContinualBackpropOptions, RedoOptions } from './reinit';
export { dropin } from './dropin';
export type { DropinOptions } from './dropin';
export { cycle } from './cycle';
export type { CycleOptions, CycleDecision } from './cycle';
