// The structural event log as the API shows it.

export type StructuralEventKind = 'grow' | 'prune' | 'compact' | 'reinit' | 'regrow' | 'densify' | 'sparsify' | 'rewind';

export interface StructuralEvent {
  /** The model's global optimizer step when it happened. */
  step: number;
  /** The fit() epoch when it happened (0 outside fit). */
  epoch: number;
  kind: StructuralEventKind;
  /** Position in model.layers (-1: the whole model). */
  layer: number;
  /** The criterion that chose (e.g. 'magnitude', 'l2-global'), or why a format changed. */
  criterion: string;
  /** Weights or neurons affected. */
  count: number;
  /** Stable ids of the neurons affected (neuron events). */
  neuronIds: number[];
  /** The criterion's score of each neuron in neuronIds. */
  scores: number[];
  /** Weight density (or live-unit fraction for neuron pruning) before and after. */
  densityBefore: number;
  densityAfter: number;
}
