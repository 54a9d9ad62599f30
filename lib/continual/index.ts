// The `continual` namespace: task streams and the continual-learning harness.
//   const tasks = continual.permuted(data.loadMnistSplits(), 10, 1, { limit: 2000 });
//   const r = await continual.run(model, tasks, { epochsPerTask: 1, batchSize: 16 });
//   r.accuracy[i][j], r.averageAccuracy, r.forgetting, r.plasticity, r.deadUnitFraction
export { permuted, splitClasses, taskPermutation } from './tasks';
export type { Task, TaskSplit, PermutedOptions, SplitClassesOptions } from './tasks';
export { run, summarize, deadUnitFraction, meanOf } from './harness';
export type { ContinualModel, ContinualResult, ContinualEvent, RunOptions, TaskEndInfo } from './harness';
export { METHODS, METHOD_HELP, methodCallbacks } from './methods';
export type { MethodName } from './methods';
