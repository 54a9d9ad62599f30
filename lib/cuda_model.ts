// A model on the GPU, seen through the NativeModel interface, so Sequential
// and fit() drive it exactly like the CPU model.
//
// Two halves: the CPU model (the CPU addon's NativeModel) keeps what is not
// arithmetic: the structure, neuron ids, the event log, the RNG (so the epoch
// order is the CPU path's), statistics and snapshots; the device model (the
// CUDA addon's CudaModel) keeps the parameters with their optimizer slots, the
// activations and the training data, and runs fit/evaluate/predict. At most
// one half holds the newest parameters:
//   - after training, the device: reading weights or saving first pulls
//     them (device -> host, every slot, written in place);
//   - after importState or compile, the host: the next device call pushes
//     the whole state (host -> device, transposes rebuilt).
// Structural changes (compact, format changes, growth, magnitude and neuron
// pruning, sparsify, SET and RigL regrowth, continual-backprop and ReDo
// reinit) keep the numbers on the device: the host applies them to its
// structure and the device moves its own numbers to match (followOnDevice).
// Pruning, RigL, continual-backprop and ReDo decisions are made on the
// device's numbers (magnitude drop bits, neuron scores, RigL's positions from
// the gradient of the last device batch, gradmax's reading of the network,
// unit statistics and utilities; the device compensates its own biases);
// net2wider's copies and sparsify's rescaling are done by the device to its
// own weights. setWeights and
// rewind change numbers only: the device takes them in place (setValues).
// If the device refuses, a change takes the copy path: pull, change on the
// host, push (issue 6, part 3).
import type { CudaAddon, CudaModelHandle, CudaLayerStateIn, CudaLayerStructureIn, CudaStateOut, CudaStatsOut } from './cuda';
import type {
  BatchProgress,
  MagnitudePlan,
  NativeDataset,
  NativeEvent,
  NativeLayerInfo,
  NativeModel,
  NativeOptimizerConfig,
  NativeLayerState,
  NativeLayerValues,
  NativeState,
  NativeStats,
  NativeTargets,
  NativeTrainResult,
  GradMaxProduct,
} from './native';

/** For each unit of `after`, its index in `before` by neuron id, or -1 for a unit that is new. */
export function rowSourcesById(before: BigInt64Array, after: BigInt64Array): Int32Array {
  const index = new Map<bigint, number>();
  before.forEach((id, i) => index.set(id, i));
  return Int32Array.from(after, (id) => index.get(id) ?? -1);
}

/** What a change does to surviving numbers besides moving them, added to the layers the device gets (followOnDevice). */
type Amend = (layers: CudaLayerStructureIn[], before: NativeState, after: NativeState) => void;

/**
 * A decision the device makes on its own numbers (followOnDevice), whose result the host's change
 * takes instead of numbers copied over: magnitude drop bits (the host's plan, carried out by
 * magnitudeDrops), neuron scores (neuronScores), RigL's growth positions (gradientGrowth),
 * continual backprop's statistics and utilities (exportStats, unitUtility).
 */
type DeviceDecision<D> = (device: CudaModelHandle) => D;

/** Stored weights of a layer state: CSR entries, or the dense positions its mask keeps. */
function storedCount(l: NativeLayerState): number {
  if (l.format === 'csr') return Number(l.indptr![l.units]);
  return l.mask ? l.mask.reduce((n, m) => n + m, 0) : l.units * l.inputs;
}

/** Whether row sources say every unit stayed where it was. */
function identity(sources: Int32Array, units: number): boolean {
  return sources.length === units && sources.every((s, r) => s === r);
}

/** Byte-equal typed arrays (both absent counts as equal). */
function sameBytes(a?: ArrayBufferView, b?: ArrayBufferView): boolean {
  if (a === undefined || b === undefined) return a === b;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** The device's per-unit statistics into a host layer state. */
function copyUnitStats(l: NativeLayerState, d: CudaStateOut['layers'][number]): void {
  l.meanAbsActivation = d.meanAbsActivation;
  l.meanActivation = d.meanActivation;
  l.taylor = d.taylor;
  l.statsUpdates = d.statsUpdates;
}

export interface CudaModelOptions {
  inputSize: number;
  /** Seed for the device's dropout masks (a function of seed, step and layer). */
  seed: number;
  /** CUDA device index. */
  device: number;
}

export class CudaNativeModel implements NativeModel {
  private device: CudaModelHandle | null = null;
  /** The device holds newer parameters than the host. */
  private hostStale = false;
  /** The host holds newer parameters than the device (or there is no device model yet). */
  private deviceStale = true;
  private optimizer: NativeOptimizerConfig = { kind: 'sgd', learningRate: 0 };
  /** The arrays behind each live device dataset (the device holds its own copy): RigL's batch is cut from them. */
  private readonly datasetArrays = new Map<NativeDataset, { x: Float32Array; y: NativeTargets }>();
  /** The last batch trained on the device: what RigL's gradient reads, as on the CPU path. */
  private lastBatch: { x: Float32Array; y: NativeTargets } | null = null;
  /** requestAbort() during trainBatches: seen between its device calls too. */
  private abortRequested = false;
  /** setKeepLastBatch(true): the last device batch is kept for RigL / gradmax, as the CPU path keeps its own. */
  private keepLastBatch = false;
  private lossName = 'softmaxCrossEntropy';

  constructor(
    /** The CPU half (structure, ids, events, RNG). */
    readonly host: NativeModel,
    private readonly addon: CudaAddon,
    private readonly options: CudaModelOptions,
    compiled?: { optimizer: NativeOptimizerConfig; loss: string },
  ) {
    if (compiled) {
      this.optimizer = { ...compiled.optimizer };
      this.lossName = compiled.loss;
    }
  }

  /** Device -> host: the newest parameters into the CPU model, and the device model freed. Returns the CPU model. */
  toHost(): NativeModel {
    this.pull();
    this.device?.dispose();
    this.device = null;
    this.deviceStale = true;
    return this.host;
  }

  /** Bytes of device memory held by parameters and slots (0 before the first device call). */
  get deviceBytes(): number {
    return this.device ? this.device.deviceBytes : 0;
  }

  // ---- the two halves --------------------------------------------------------

  private pull(): void {
    if (!this.hostStale || !this.device) return;
    // Written in place: the host's structure is the device's, only the numbers are older.
    this.host.setValues(this.device.exportState());
    this.hostStale = false;
  }

  private push(): CudaModelHandle {
    if (this.device && !this.deviceStale) return this.device;
    const state = this.host.exportState();
    const layers = state.layers.map((l, i) => this.layerIn(l, i));
    if (this.device) {
      this.device.setStatsDecay(state.statsDecay);  // an imported state may carry another decay
      this.device.load({ step: state.step, layers });
    } else {
      this.device = new this.addon.CudaModel(
        {
          inputSize: this.options.inputSize,
          seed: this.options.seed,
          device: this.options.device,
          loss: this.lossName,
          optimizer: this.optimizer,
          statsDecay: state.statsDecay,
        },
        { step: state.step, layers },
      );
    }
    this.deviceStale = false;
    return this.device;
  }

  /** A host layer's structure and settings, with its values, as the device model takes them. */
  private layerIn(l: NativeLayerState, i: number): CudaLayerStateIn {
    const info = this.host.layerInfo(i);
    return {
      units: l.units,
      inputs: l.inputs,
      activation: info.activation,
      inputDropout: info.inputDropout,
      dropConnect: info.dropConnect,
      useBias: info.useBias,
      format: l.format,
      weight: l.weight,
      indptr: l.indptr,
      indices: l.indices,
      weightMoments: l.weightMoments,
      bias: l.bias,
      biasMoments: l.biasMoments,
      mask: l.mask,
      alive: l.alive,
      meanAbsActivation: l.meanAbsActivation,
      meanActivation: l.meanActivation,
      taylor: l.taylor,
      statsUpdates: l.statsUpdates,
    };
  }

  /**
   * A structural change applied on the host and followed on the device, which
   * moves its own numbers into the new layout (CudaModel.restructure,
   * native/cuda/remap.h), whenever the device model has the host's structure
   * (else as mutate()). The host's structure, ids, events and RNG are the
   * model's; when the device trained last, the host first gets what the change
   * reads besides them: the step (events and unit ages record it) and either
   * the device's decision (reads a DeviceDecision: drop bits, scores, growth
   * positions, statistics and utilities, made on the device's numbers and
   * given to fn) or, with reads 'weights', the weights, biases and unit
   * statistics (one copy device -> host). No optimizer slot goes to the host
   * and nothing is copied back. The host's stale moments
   * are never read: the device keeps its own for every surviving entry, and
   * new entries take the host's values (fresh units, zeros). Fits changes that
   * write nothing but the new structure, new units and zeros: compact, format
   * changes, 'zero' / 'random' growth, magnitude and neuron pruning (l1, l2,
   * activation, taylor, random), SET and RigL regrowth; and reinitialisation
   * (continual backprop, ReDo), whose units count as new; with `compensate`
   * (continual backprop, gradmax) the next layer's biases absorb the changed
   * units' output on the device (restructureToHost). `amend` adds what a
   * change does to numbers besides moving them, which the device then does to
   * its own: net2wider's copied rows and shared columns (rowCopy, inputCopy,
   * inputScale), sparsify's rescaled weights with fresh slots (restartScale).
   */
  private followOnDevice<T, D = never>(
    fn: (decision?: D) => T,
    reads: 'structure' | 'weights' | DeviceDecision<D> = 'structure',
    amend?: Amend,
    compensate = false,
  ): T {
    const device = this.device;
    if (!device || this.deviceStale) return this.mutate(() => fn());
    const eventsBefore = this.host.eventCount;
    // The structure only: the numbers are the device's (or, with reads 'weights', set just below).
    const before = this.host.exportState([]);
    const step = device.step;
    if (this.hostStale && (reads === 'weights' || before.step !== step)) {
      // The weights, biases and statistics, written in place (the host's moments stay stale, unread).
      this.host.setValues(reads === 'weights' ? device.exportState(false) : { step, layers: [] });
    }
    // With the host's numbers current, the host decides on them; else the device on its own.
    let decision: D | undefined;
    if (typeof reads === 'function' && this.hostStale) {
      try {
        decision = reads(device);
      } catch {
        // Nothing changed yet (bad arguments, which the host's change reports the same way, or a
        // device out of memory): the host decides on pulled numbers.
        return this.mutate(() => fn());
      }
    }
    let r: T;
    try {
      r = fn(decision);
    } catch (e) {
      // The host refused the device's decision (it checks before changing anything: a NaN score,
      // say, which its own ranking would pass over): it decides on pulled numbers instead, and an
      // error of the arguments shows there as on the CPU path.
      if (decision === undefined) throw e;
      return this.mutate(() => fn());
    }
    try {
      // Everything from here to the device's swap may fail (no memory, a refusal): the fallback covers it all.
      this.restructureToHost(device, before, eventsBefore, amend, compensate);
    } catch (e) {
      // The device model is unchanged (restructure checks and allocates
      // first and swaps last): put the host back (its old structure with the
      // device's numbers, the newest) and make the change the ordinary way.
      // (A fault after the device grew a layer in place leaves it refusing
      // every call, the export below included: the case just after.)
      try {
        const numbers = device.exportState();
        numbers.layers.forEach((d, i) => {
          Object.assign(before.layers[i], { weight: d.weight, weightMoments: d.weightMoments, bias: d.bias, biasMoments: d.biasMoments });
          copyUnitStats(before.layers[i], d);
        });
        this.host.importState({ ...before, step: numbers.step });
        this.hostStale = false;
      } catch (pullError) {
        // The device cannot give its numbers back either: the host keeps the
        // change (it still holds it) with the numbers of the last copy, and
        // the device model goes; the next device call loads it afresh.
        this.device?.dispose();
        this.device = null;
        this.deviceStale = true;
        this.hostStale = false;
        const why = (x: unknown) => (x instanceof Error ? x.message : String(x));
        throw new Error(
          `neuroplastic: the GPU could not follow a structural change (${why(e)}) nor give its numbers back (${why(pullError)}); ` +
            'the change stands on the CPU model with the numbers of its last copy from the GPU, and the GPU model was dropped',
          { cause: e },
        );
      }
      return this.mutate(() => fn());
    }
    return r;
  }

  /**
   * The device follows the host's new structure (followOnDevice, after the change): sources by id,
   * values where new. compensate: the change was a continual-backprop round, whose reinitialised
   * units' mean outputs (the host's lastCompensations) the next layers' biases absorb through the
   * device's own weights (compensateInputs / compensateMeans), in the host's order.
   */
  private restructureToHost(device: CudaModelHandle, before: NativeState, eventsBefore: number, amend?: Amend, compensate = false): void {
    const after = this.host.exportState([]);
    const sources = after.layers.map((l, i) => rowSourcesById(before.layers[i].neuronIds, l.neuronIds));
    // Reinitialised units (continual backprop, ReDo) keep their ids but not their numbers: new
    // units to the device.
    // Found by their reset age (the event log may have dropped the events), and by the events.
    const reinitialised = (l: number, r: number) => void (sources[l][r] = -1);
    after.layers.forEach((l, i) => {
      if (before.layers[i].birthStep.length === 0 || l.birthStep.length === 0) return;
      sources[i].forEach((src, r) => void (src >= 0 && l.birthStep[r] !== before.layers[i].birthStep[src] && reinitialised(i, r)));
    });
    for (const e of this.host.events(eventsBefore)) {
      if (e.kind !== 'reinit') continue;
      const ids = after.layers[e.layer].neuronIds;
      for (const id of e.neuronIds) reinitialised(e.layer, ids.indexOf(BigInt(id)));
    }
    const hasNew = sources.map((s) => s.includes(-1));
    const layers: CudaLayerStructureIn[] = after.layers.map((l, i) => {
      const { weight: _w, weightMoments: _wm, bias: _b, biasMoments: _bm, ...structure } = this.layerIn(l, i);
      return structure;
    });
    if (compensate)
      for (const c of this.host.lastCompensations())
        Object.assign(layers[c.layer + 1], { compensateInputs: c.units, compensateMeans: c.means, compensateNewWeights: c.newWeights });
    amend?.(layers, before, after);
    // Values only of the layers with new units in their rows or inputs (the device reads them
    // there) that the change's copies (net2wider's rowCopy / inputCopy) do not cover.
    const copied = (copies: Int32Array | undefined, s: Int32Array) => copies !== undefined && s.every((src, r) => src >= 0 || copies[r] >= 0);
    const withValues = after.layers.map((_, i) => {
      const rows = hasNew[i], inputs = i > 0 && hasNew[i - 1];
      return (rows || inputs) && ((rows && inputs) || (rows && !copied(layers[i].rowCopy, sources[i])) || (inputs && !copied(layers[i].inputCopy, sources[i - 1])));
    });
    const valuesOf = withValues.flatMap((v, i) => (v ? [i] : []));
    if (valuesOf.length > 0) {
      const values = this.host.exportState(valuesOf).layers;
      for (const i of valuesOf) {
        const { weight, weightMoments, bias, biasMoments } = this.layerIn(values[i], i);
        Object.assign(layers[i], { weight, weightMoments, bias, biasMoments });
      }
    }
    // Layers the change left exactly as they were: the device keeps them (W^T included) and
    // reads their shape and settings only.
    after.layers.forEach((l, i) => {
      const o = before.layers[i];
      const t = layers[i];
      const same =
        !withValues[i] && !t.compensateInputs && !t.inputScale && !t.rowCopy && !t.inputCopy && t.restartScale === undefined &&
        identity(sources[i], o.units) && (i === 0 || identity(sources[i - 1], before.layers[i - 1].units)) &&
        l.format === o.format && l.units === o.units && l.inputs === o.inputs &&
        sameBytes(l.mask, o.mask) && sameBytes(l.alive, o.alive) && sameBytes(l.indptr, o.indptr) && sameBytes(l.indices, o.indices);
      if (same) layers[i] = { ...layers[i], keep: true };
    });
    device.restructure({ layers }, sources);
  }

  /** A change made on the host: pull first, apply, and let the next device call push. */
  private mutate<T>(fn: () => T): T {
    this.pull();
    const r = fn();
    this.deviceStale = true;
    return r;
  }

  private read<T>(fn: () => T): T {
    this.pull();
    return fn();
  }

  private unsupported(operation: string, why: string): never {
    throw new Error(`${operation} is not supported on a GPU (device 'cuda' or 'cuda:N') yet: ${why}; move the model with model.to('cpu') first`);
  }

  // ---- NativeModel ------------------------------------------------------------

  compile(optimizer: NativeOptimizerConfig, loss: string): void {
    // Compiling resets the optimizer slots on the host: the device model is rebuilt from it.
    this.pull();
    this.host.compile(optimizer, loss);
    this.optimizer = { ...optimizer };
    this.lossName = loss;
    this.device?.dispose();
    this.device = null;
    this.deviceStale = true;
  }

  epochOrder(n: number, shuffle: boolean): Int32Array {
    // The CPU model's RNG: the CPU path's order, as long as no dropout mask (drawn from it on the CPU, not here) intervenes.
    return this.host.epochOrder(n, shuffle);
  }

  createDataset(x: Float32Array, y: NativeTargets): NativeDataset {
    const dataset = this.push().createDataset(x, y) as NativeDataset;
    this.datasetArrays.set(dataset, { x, y });
    return dataset;
  }

  releaseDataset(dataset: NativeDataset): void {
    this.device?.releaseDataset(dataset);
    this.datasetArrays.delete(dataset);
  }

  async trainBatches(
    dataset: NativeDataset,
    order: Int32Array,
    firstBatch: number,
    batchCount: number,
    batchSize: number,
    progress?: BatchProgress,
  ): Promise<NativeTrainResult> {
    // Continual backprop (when the host model has it on) runs a replacement round after every
    // step; most replace nothing. Train on the device up to each step whose round replaces a unit
    // (the host knows which from the ages and the carry), run that round on the host with the
    // device's weights and statistics, and let the device follow (followOnDevice), as the CPU
    // path does inside its step. Without it, due is 0 and this is one device call.
    this.abortRequested = false;
    const total: NativeTrainResult = { lossSum: 0, correct: 0, samples: 0, steps: 0, aborted: false };
    while (total.steps < batchCount && !total.aborted) {
      if (this.abortRequested && total.steps > 0) {
        total.aborted = true; // arrived between two device calls
        break;
      }
      const from = this.step, left = batchCount - total.steps;
      const due = this.host.continualBackpropDue(from, left);
      const base = { ...total };
      const offset: BatchProgress | undefined =
        progress && ((done, lossSum, correct, samples) => progress(base.steps + done, base.lossSum + lossSum, base.correct + correct, base.samples + samples));
      let r: NativeTrainResult;
      try {
        r = await this.trainOnDevice(dataset, order, firstBatch + total.steps, due === 0 ? left : due, batchSize, offset);
      } catch (e) {
        this.host.continualBackpropSkip(from, Math.max(0, this.step - from)); // the rounds of the steps that were applied
        throw e;
      }
      total.steps += r.steps;
      total.lossSum += r.lossSum;
      total.correct += r.correct;
      total.samples += r.samples;
      total.aborted = r.aborted;
      const replaceNow = due !== 0 && r.steps === due;
      this.host.continualBackpropSkip(from, replaceNow ? r.steps - 1 : r.steps);
      if (replaceNow) this.continualBackpropOnDevice();
    }
    return total;
  }

  /** One device call of trainBatches (the same arguments, for the batches it is given). */
  private async trainOnDevice(...[dataset, order, firstBatch, batchCount, batchSize, progress]: Parameters<NativeModel['trainBatches']>): Promise<NativeTrainResult> {
    // push() also brings over a structural change made between two calls of one fit().
    const device = this.push();
    this.hostStale = true;
    const result = await device.trainBatches(dataset, order, firstBatch, batchCount, batchSize, progress);
    if (this.keepLastBatch && result.steps > 0) {
      this.lastBatch = this.batchOf(dataset, order, firstBatch + result.steps - 1, batchSize) ?? this.lastBatch;
    }
    return result;
  }

  /** Batch `b` of an epoch order, copied from the dataset's arrays (null for a dataset this wrapper did not make). */
  private batchOf(dataset: NativeDataset, order: Int32Array, b: number, batchSize: number): { x: Float32Array; y: NativeTargets } | null {
    const arrays = this.datasetArrays.get(dataset);
    if (!arrays || arrays.x.length === 0) return null; // not ours, or its buffer was transferred
    const first = b * batchSize;
    const picked = order.subarray(first, Math.min(order.length, first + batchSize));
    const samples = arrays.x.length / this.options.inputSize;
    // Rows `picked` of a row-major array whose rows are `length / samples` long.
    const rows = <T extends Float32Array | Int32Array>(a: T): T => {
      const width = a.length / samples;
      const out = new (a.constructor as { new (n: number): T })(picked.length * width);
      picked.forEach((row, j) => out.set(a.subarray(row * width, (row + 1) * width), j * width));
      return out;
    };
    return { x: rows(arrays.x), y: rows(arrays.y) };
  }

  evaluate(x: Float32Array, y: NativeTargets, batchSize: number): Promise<NativeStats> {
    return this.push().evaluate(x, y, batchSize);
  }

  predict(x: Float32Array, batchSize: number): Promise<Float32Array> {
    return this.push().predict(x, batchSize);
  }

  computeGradients(x: Float32Array, y: NativeTargets): Promise<NativeStats> {
    // On the CPU (the gradients are read there): the device's are per batch.
    return this.read(() => this.host.computeGradients(x, y));
  }

  getWeights(layer: number): { weight: Float32Array; bias: Float32Array } {
    return this.read(() => this.host.getWeights(layer));
  }

  setWeights(layer: number, weight: Float32Array | null, bias: Float32Array | null): void {
    const device = this.device;
    if (!device || this.deviceStale) return this.mutate(() => this.host.setWeights(layer, weight, bias));
    // The host checks them against its structure (the device's) and stores them; the device takes
    // that layer's new numbers in place. The host's other numbers may stay stale: the device has them.
    this.host.setWeights(layer, weight, bias);
    try {
      const l = this.host.exportState([layer]).layers[layer];
      const layers = Array.from({ length: this.host.layerCount }, (_, i) => (i === layer ? { weight: weight ? l.weight : undefined, bias: bias ? l.bias : undefined } : {}));
      device.setValues({ layers });
    } catch {
      // The ordinary way: the device's numbers over, the change again, and all of it back later.
      this.mutate(() => this.host.setWeights(layer, weight, bias));
    }
  }

  getGradients(layer: number): { weight: Float32Array; bias: Float32Array } {
    return this.host.getGradients(layer);
  }

  layerInfo(layer: number): NativeLayerInfo {
    return this.host.layerInfo(layer);
  }

  // The host's scratch only; the device's memory goes with to('cpu') (dispose()).
  releaseMemory(): void {
    this.host.releaseMemory();
  }

  requestAbort(): void {
    // Only the device trains; a flag left on the host would stop its next CPU fit after to('cpu').
    // trainBatches also checks it between the device calls it makes (continual backprop).
    this.abortRequested = true;
    this.device?.requestAbort();
  }

  // Magnitude pruning and the gradual schedule: the device ranks its weights, the host gets the drop bits.
  pruneWeights(layers: number[], amount: number, global: boolean, drops?: Uint32Array[]): number {
    if (drops) return this.mutate(() => this.host.pruneWeights(layers, amount, global, drops));
    const decide = this.dropsOnDevice(layers, () => this.host.planMagnitudeDrops('prune', layers, amount, global));
    return this.followOnDevice((d) => this.host.pruneWeights(layers, amount, global, d), decide);
  }

  pruneWeightsToSparsity(layers: number[], sparsity: number, global: boolean, drops?: Uint32Array[]): number {
    if (drops) return this.mutate(() => this.host.pruneWeightsToSparsity(layers, sparsity, global, drops));
    const decide = this.dropsOnDevice(layers, () => this.host.planMagnitudeDrops('sparsity', layers, sparsity, global));
    return this.followOnDevice((d) => this.host.pruneWeightsToSparsity(layers, sparsity, global, d), decide);
  }

  /** The host plans (from its structure, checking the arguments), the device ranks its weights. */
  private dropsOnDevice(layers: number[], plan: () => MagnitudePlan): DeviceDecision<Uint32Array[]> {
    return (device) => device.magnitudeDrops(layers, plan());
  }

  planMagnitudeDrops(kind: 'prune' | 'sparsity' | 'regrow', layers: number[], value: number, global: boolean): MagnitudePlan {
    return this.host.planMagnitudeDrops(kind, layers, value, global);  // the structure is always the host's
  }

  magnitudeDrops(layers: number[], plan: MagnitudePlan): Uint32Array[] {
    // Whichever half holds the newest weights ranks them.
    if (this.device && !this.deviceStale && this.hostStale) return this.device.magnitudeDrops(layers, plan);
    return this.host.magnitudeDrops(layers, plan);
  }

  pruneNeurons(layers: number[], amount: number, criterion: string, global: boolean, scores?: Float64Array[]): number {
    if (scores) return this.mutate(() => this.host.pruneNeurons(layers, amount, criterion, global, scores));
    const prune = (given?: Float64Array[]) => this.host.pruneNeurons(layers, amount, criterion, global, given);
    if (criterion === 'random') return this.followOnDevice(prune, 'structure');  // the host's generator only
    // l1 / l2 norms and the activation / taylor statistics come from the device: one score per unit.
    return this.followOnDevice(prune, (device) => layers.map((l) => device.neuronScores(l, criterion)));
  }

  neuronScores(layer: number, criterion: string): Float64Array {
    // The device's numbers, scored there ('random' draws from the host's generator).
    if (criterion !== 'random') {
      const scores = this.fromDevice((device) => device.neuronScores(layer, criterion));
      if (scores) return scores;
    }
    return this.read(() => this.host.neuronScores(layer, criterion));
  }

  /**
   * A read the device answers from its own numbers while it holds the newest ones; undefined
   * otherwise, or when it refuses (bad arguments, which the host's own read then reports).
   */
  private fromDevice<R>(ask: (device: CudaModelHandle) => R): R | undefined {
    const device = this.device;
    if (!device || this.deviceStale || !this.hostStale) return undefined;
    try {
      return ask(device);
    } catch {
      return undefined;
    }
  }

  compact(): void {
    this.followOnDevice(() => this.host.compact());
  }

  convertLayer(layer: number, format: 'csr' | 'dense'): void {
    this.followOnDevice(() => this.host.convertLayer(layer, format));
  }

  setSparseThreshold(layer: number, density: number): void {
    this.followOnDevice(() => this.host.setSparseThreshold(layer, density));
  }

  sparseThreshold(layer: number): number {
    return this.host.sparseThreshold(layer);
  }

  events(from?: number): NativeEvent[] {
    // The native method takes no undefined argument: events() means all.
    return from === undefined ? this.host.events() : this.host.events(from);
  }

  setEpoch(epoch: number): void {
    this.host.setEpoch(epoch);
  }

  snapshot(): number {
    return this.read(() => this.host.snapshot());
  }

  rewind(step: number): void {
    const device = this.device;
    if (!device || this.deviceStale) return this.mutate(() => this.host.rewind(step));
    // Units grown after the snapshot keep their weights: the host first gets the device's (and its
    // statistics). The rewind resets every moment, so afterwards the host holds the whole newest
    // state, and the device takes the numbers in place (no layer rebuilt).
    if (this.hostStale) this.host.setValues(device.exportState(false));
    this.host.rewind(step);
    this.hostStale = false;
    try {
      const numbers = this.host.exportState().layers.map((l) => ({ weight: l.weight, bias: l.bias, weightMoments: l.weightMoments, biasMoments: l.biasMoments }));
      device.setValues({ layers: numbers });
    } catch {
      this.deviceStale = true;  // the next device call loads the host's state whole
    }
  }

  snapshotSteps(): number[] {
    return this.host.snapshotSteps();
  }

  grow(layer: number, count: number, init: string, noise: number, x?: Float32Array, y?: NativeTargets, product?: GradMaxProduct): Float64Array {
    if (product) return this.mutate(() => this.host.grow(layer, count, init, noise, x, y, product));
    // gradmax without data reads the last batch trained here, as the CPU path reads its kept batch.
    const data = x !== undefined ? { x, y } : init === 'gradmax' ? this.lastBatch : null;
    if (init === 'gradmax' && !data) {
      throw new Error('grow({ init: "gradmax" }) needs a batch to take the gradient of: train the model first, or pass data to grow()');
    }
    if (init === 'gradmax') {
      // The device reads the network (M and the next layer's norm, gradmaxProduct); the host makes
      // the new units from it; the device takes their act(0) out of the next biases through the new
      // weights (compensate).
      return this.followOnDevice(
        (p?: GradMaxProduct) => this.host.grow(layer, count, init, noise, data!.x, data!.y, p),
        (device) => device.gradmaxProduct(data!.x, data!.y as NativeTargets, layer),
        undefined,
        true,
      );
    }
    const grow = () => this.host.grow(layer, count, init, noise, data?.x, data?.y);
    if (init !== 'net2wider') return this.followOnDevice(grow);
    // net2wider: each new unit copies its source's row and bias, and its new outgoing column takes
    // a share of the source's, which keeps the rest (inputScale): the device does all of it with
    // its own numbers (rowCopy, inputCopy), so no weights cross either way.
    return this.followOnDevice(grow, 'structure', (layers) => {
      const split = this.host.lastSplit();
      if (split.layer !== layer) throw new Error(`net2wider on layer ${layer}: the host reports a split of layer ${split.layer}`);  // the fallback copies instead
      const grown = layers[layer], next = layers[layer + 1];
      const first = grown.units - split.copies.length;
      const rowCopy = new Int32Array(grown.units).fill(-1);
      const inputCopy = new Int32Array(next.inputs).fill(-1);
      const inputCopyScale = new Float32Array(next.inputs).fill(1);
      split.copies.forEach((source, k) => {
        rowCopy[first + k] = source;
        inputCopy[first + k] = source;
        inputCopyScale[first + k] = split.copyShares[k];
      });
      const inputScale = new Float32Array(next.inputs).fill(1);
      split.units.forEach((unit, i) => (inputScale[unit] = split.shares[i]));
      layers[layer] = { ...grown, rowCopy };
      layers[layer + 1] = { ...next, inputScale, inputCopy, inputCopyScale };
    });
  }

  gradmaxProduct(layer: number, x?: Float32Array, y?: NativeTargets): GradMaxProduct {
    const batch = x !== undefined ? { x, y } : this.lastBatch;
    if (!batch) throw new Error('gradmax needs a batch to take the gradient of: train the model first, or pass x and y');
    // The device's own reading when it holds the newest numbers; else (or if it refuses) the host's on pulled ones.
    return this.fromDevice((device) => device.gradmaxProduct(batch.x, batch.y as NativeTargets, layer)) ??
      this.read(() => this.host.gradmaxProduct(layer, batch.x, batch.y));
  }

  lastCompensations(): { layer: number; units: Int32Array; means: Float64Array; newWeights: boolean }[] {
    return this.host.lastCompensations();
  }

  lastSplit(): { layer: number; units: Int32Array; shares: Float32Array; copies: Int32Array; copyShares: Float32Array } {
    return this.host.lastSplit();
  }

  lastRescales(): { layers: Int32Array; scales: Float32Array } {
    return this.host.lastRescales();
  }

  sparsify(sparsity: number, distribution: 'erdos-renyi' | 'uniform', layers?: number[]): void {
    // Each layer it thins keeps a random subset of its weights (chosen from the structure alone),
    // times one factor, with fresh slots: the device does the same to its own (restartScale).
    this.followOnDevice(() => this.host.sparsify(sparsity, distribution, layers), 'structure', (structure) => {
      const r = this.host.lastRescales();
      r.layers.forEach((l, i) => (structure[l] = { ...structure[l], restartScale: r.scales[i] }));
    });
  }

  regrow(
    layers: number[],
    dropFraction: number,
    byGradient: boolean,
    x?: Float32Array,
    y?: NativeTargets,
    drops?: Uint32Array[],
    grows?: Float64Array[],
  ): number {
    if (drops || grows) return this.mutate(() => this.host.regrow(layers, dropFraction, byGradient, x, y, drops, grows));
    // Both halves of the decision are the device's: it ranks its weights for the drops (SET and
    // RigL), and for RigL takes the gradient of a batch (the last one trained here, cut from the
    // training arrays as the CPU path keeps it, or x/y) and ranks the open positions by it. A layer
    // listed twice changes twice, each time on the structure the first left: the host decides those,
    // on the device's weights.
    const distinct = new Set(layers).size === layers.length;
    const plan = () => this.host.planMagnitudeDrops('regrow', layers, dropFraction, false);
    if (!byGradient) {
      const reads = distinct ? this.dropsOnDevice(layers, plan) : 'weights';
      return this.followOnDevice((d) => this.host.regrow(layers, dropFraction, false, undefined, undefined, d), reads);
    }
    const batch = x !== undefined ? { x, y } : this.lastBatch; // x without y: the host says so
    if (!batch) throw new Error('RigL gradient regrowth needs a batch to take the gradient of: train the model first, or pass x and y');
    const decide: DeviceDecision<{ drops: Uint32Array[]; grows: Float64Array[] }> = (device) => {
      const p = plan();
      return { drops: device.magnitudeDrops(layers, p), grows: device.gradientGrowth(batch.x, batch.y as NativeTargets, layers, p.counts) };
    };
    const apply = (d?: { drops: Uint32Array[]; grows: Float64Array[] }) =>
      this.host.regrow(layers, dropFraction, true, batch.x, batch.y, d?.drops, d?.grows);
    return this.followOnDevice(apply, distinct ? decide : 'weights');
  }

  gradientGrowth(layers: number[], counts: number[], x?: Float32Array, y?: NativeTargets): Float64Array[] {
    const batch = x !== undefined ? { x, y } : this.lastBatch;
    if (!batch) throw new Error('RigL gradient regrowth needs a batch to take the gradient of: train the model first, or pass x and y');
    return this.read(() => this.host.gradientGrowth(layers, counts, batch.x, batch.y));
  }


  setContinualBackprop(rate: number, maturity: number): void {
    this.host.setContinualBackprop(rate, maturity); // the host runs the rounds between device calls (trainBatches)
  }

  continualBackpropDue(fromStep: number, max: number): number {
    return this.host.continualBackpropDue(fromStep, max);
  }

  continualBackpropSkip(fromStep: number, steps: number): void {
    this.host.continualBackpropSkip(fromStep, steps);
  }

  continualBackpropStep(utilities?: Float64Array[]): number {
    if (utilities) return this.mutate(() => this.host.continualBackpropStep(utilities));
    return this.continualBackpropOnDevice();
  }

  /**
   * A continual-backprop round on the device's numbers: its statistics (a few doubles per unit)
   * and utilities come over, the host picks and reinitialises the units, and the device follows,
   * its biases absorbing the replaced units' mean output from its own weights (compensateInputs).
   */
  private continualBackpropOnDevice(): number {
    const hidden = this.host.layerCount - 1;
    const decide: DeviceDecision<{ stats: CudaStatsOut; utilities: Float64Array[] }> = (device) => ({
      stats: device.exportStats(),
      utilities: Array.from({ length: hidden }, (_, l) => device.unitUtility(l)),
    });
    const round = (d?: { stats: CudaStatsOut; utilities: Float64Array[] }) => {
      if (d) this.host.setValues(d.stats);
      return this.host.continualBackpropStep(d?.utilities);
    };
    return this.followOnDevice(round, decide, undefined, true);
  }

  redo(threshold: number): number {
    // ReDo reads the unit statistics only (they come over) and reinitialises units without
    // compensating the next layer: followed on the device like a CBP round.
    return this.followOnDevice((stats?: CudaStatsOut) => {
      if (stats) this.host.setValues(stats);
      return this.host.redo(threshold);
    }, (device) => device.exportStats());
  }

  unitUtility(layer: number): Float64Array {
    return this.fromDevice((device) => device.unitUtility(layer)) ?? this.read(() => this.host.unitUtility(layer));
  }

  unitStats(layer: number): { ages: Float64Array; meanAbsActivation: Float64Array; taylor: Float64Array } {
    // The statistics and the step come from the device (a few doubles per unit, no weights); the
    // ages are the host's structure.
    const stats = this.fromDevice((device) => device.exportStats());
    if (stats) {
      this.host.setValues(stats);
      return this.host.unitStats(layer);
    }
    return this.read(() => this.host.unitStats(layer));
  }

  setKeepLastBatch(keep: boolean): void {
    this.host.setKeepLastBatch(keep);
    this.keepLastBatch = keep;
  }

  setStatsDecay(decay: number): number {
    this.device?.setStatsDecay(decay); // first: a busy device refuses before the host changes
    return this.host.setStatsDecay(decay);
  }

  exportState(valuesOf?: number[]): NativeState {
    return this.read(() => this.host.exportState(valuesOf));  // undefined: every layer's numbers
  }

  setValues(values: { step: number; layers: NativeLayerValues[] }): void {
    this.pull();  // what it does not give stays the newest
    this.host.setValues(values);
    this.deviceStale = true;
  }

  importState(state: NativeState): void {
    // Flags only after the import succeeded: a rejected state leaves the device's newer numbers in view.
    this.host.importState(state);
    this.hostStale = false;
    this.deviceStale = true;
  }

  get step(): number {
    return this.hostStale && this.device ? this.device.step : this.host.step;
  }

  get busy(): string | null {
    return this.device?.busy ?? this.host.busy;
  }

  get layerCount(): number {
    return this.host.layerCount;
  }

  get parameterCount(): number {
    return this.host.parameterCount;
  }

  get eventsDropped(): number {
    return this.host.eventsDropped;
  }

  get eventCount(): number {
    return this.host.eventCount;
  }

  neuronIds(layer: number): Float64Array {
    return this.host.neuronIds(layer);
  }
}
