// Layer factories and the layer objects a Sequential model holds. A dense
// layer is a description until its model is built; after that its properties
// read the live native state (units and nnz change as the model grows and is
// pruned).
import type { NativeLayerInfo, NativeModel } from './native';
import { checkBoolean, checkFloat32Array, checkInteger, checkKnownKeys, checkNumber, checkOneOf, checkOptions, underApiName } from './validate';

export const ACTIVATIONS = ['relu', 'tanh', 'sigmoid', 'linear'] as const;
export type ActivationName = (typeof ACTIVATIONS)[number];

export const INITIALIZERS = ['auto', 'heNormal', 'glorotUniform', 'zeros'] as const;
export type InitializerName = (typeof INITIALIZERS)[number];

export interface DenseOptions {
  /** Number of neurons; a positive integer. */
  units: number;
  /** Activation after the affine map. Default 'linear' (e.g. logits for softmaxCrossEntropy). */
  activation?: ActivationName;
  /** Add a bias per neuron. Default true. */
  useBias?: boolean;
  /** Weight init: 'auto' = He-normal for relu, Glorot-uniform otherwise. Default 'auto'. */
  kernelInitializer?: InitializerName;
  /** DropConnect rate on this layer's weights while training, in [0, 1) (kept weights scaled by 1/(1-rate)). Default 0. */
  dropConnect?: number;
  /** Weight density below which this layer is stored and computed as CSR, in [0, 1]. Default: the model's. */
  sparseThreshold?: number;
  /**
   * Initial weight density in (0, 1]: below 1 each unit connects to a random
   * `density` fraction of the inputs and the layer is built directly as CSR
   * (memory grows with connections, not width squared). Default 1 (dense).
   * See erdosRenyiDensity() for SET's epsilon parameterisation.
   */
  density?: number;
}

export interface DropoutOptions {
  /** Fraction of inputs zeroed during training, in [0, 1). Kept ones are scaled by 1/(1-rate). */
  rate: number;
}

export interface LayerWeights {
  /** units x inputs, row-major (zeros where pruned). */
  weight: Float32Array;
  /** units */
  bias: Float32Array;
}

/** What a layer needs from the model that owns it. */
export interface LayerHost {
  /** The native model, built on first access (which fixes the layer list). */
  readonly native: NativeModel;
  readonly isBuilt: boolean;
  assertIdle(operation: string): void;
}

export class DenseLayer {
  readonly kind = 'dense' as const;
  readonly activation: ActivationName;
  readonly useBias: boolean;
  readonly kernelInitializer: InitializerName;
  readonly dropConnect: number;
  readonly sparseThreshold: number | undefined;
  readonly initialDensity: number;
  private readonly configuredUnits: number;
  private host: LayerHost | null = null;
  private nativeIndex = -1;

  constructor(options: DenseOptions) {
    const where = 'layers.dense()';
    const o = checkOptions<DenseOptions>(where, 'options', options);
    checkKnownKeys(where, o, ['units', 'activation', 'useBias', 'kernelInitializer', 'dropConnect', 'sparseThreshold', 'density']);
    this.configuredUnits = checkInteger(where, 'units', o.units, { min: 1, max: 1 << 24 });
    this.activation = checkOneOf(where, 'activation', o.activation ?? 'linear', ACTIVATIONS);
    this.useBias = checkBoolean(where, 'useBias', o.useBias ?? true);
    this.kernelInitializer = checkOneOf(where, 'kernelInitializer', o.kernelInitializer ?? 'auto', INITIALIZERS);
    this.dropConnect = checkNumber(where, 'dropConnect', o.dropConnect ?? 0, { min: 0, max: 1, maxExclusive: true });
    this.sparseThreshold =
      o.sparseThreshold === undefined ? undefined : checkNumber(where, 'sparseThreshold', o.sparseThreshold, { min: 0, max: 1 });
    this.initialDensity = checkNumber(where, 'density', o.density ?? 1, { min: 0, max: 1, minExclusive: true });
  }

  /** @internal Binds the layer to its model (at add()); `index` is its position among the dense layers. */
  attach(host: LayerHost, index: number): void {
    if (this.host && this.host !== host) {
      throw new Error('layers.dense(): this layer object already belongs to another model; create a new one');
    }
    this.host = host;
    this.nativeIndex = index;
  }

  /** @internal Position among the model's dense layers (-1 before the model is built). */
  get denseIndex(): number {
    return this.nativeIndex;
  }

  /** True once the owning model has built its native state. */
  get built(): boolean {
    return this.host !== null && this.host.isBuilt;
  }

  /** @internal True once the layer was added to a model. */
  get attached(): boolean {
    return this.host !== null;
  }

  // Live native figures once built; before that the configured description.
  private info(): NativeLayerInfo | null {
    return this.host && this.host.isBuilt ? this.host.native.layerInfo(this.nativeIndex) : null;
  }

  /** Number of neurons (changes with growth and neuron pruning). */
  get units(): number {
    return this.info()?.units ?? this.configuredUnits;
  }

  /** Number of inputs (the previous layer's units); -1 before the model is built. */
  get inputs(): number {
    return this.info()?.inputs ?? -1;
  }

  /** Stored weights (dense: units x inputs). */
  get nnz(): number {
    return this.info()?.nnz ?? 0;
  }

  /** nnz / (units x inputs). */
  get density(): number {
    const i = this.info();
    return i ? i.nnz / Math.max(1, i.units * i.inputs) : 1;
  }

  /** Storage format of the weight matrix. */
  get format(): 'dense' | 'csr' {
    return this.info()?.format ?? (this.initialDensity < 1 ? 'csr' : 'dense');
  }

  /** Units removed by neuron pruning that compact() has not dropped yet. */
  get deadUnits(): number {
    return this.info()?.deadUnits ?? 0;
  }

  /** Bytes of weight storage including gradient and optimizer slots. */
  get bytes(): number {
    return this.info()?.bytes ?? 0;
  }

  /** Stable neuron ids, one per unit (they survive pruning and growth of other neurons). */
  get neuronIds(): number[] {
    return this.host && this.host.isBuilt ? Array.from(this.host.native.neuronIds(this.nativeIndex)) : [];
  }

  /** Number of trainable parameters: stored weights + biases of live units. */
  get paramCount(): number {
    const i = this.info();
    if (!i) return 0;
    return i.nnz + (this.useBias ? i.units - i.deadUnits : 0);
  }

  /** A copy of the weights: weight is units x inputs, row-major. */
  getWeights(): LayerWeights {
    const host = this.requireHost('getWeights');
    host.assertIdle('getWeights');
    return host.native.getWeights(this.nativeIndex);
  }

  /** Replaces the weights (and/or bias); arrays must have exactly the layer's shape. */
  setWeights(weights: Partial<LayerWeights>): void {
    const where = 'DenseLayer.setWeights()';
    const host = this.requireHost('setWeights');
    const o = checkOptions<LayerWeights>(where, 'weights', weights);
    checkKnownKeys(where, o, ['weight', 'bias']);
    if (o.weight === undefined && o.bias === undefined) throw new TypeError(`${where}: pass { weight } and/or { bias }`);
    const { units, inputs } = host.native.layerInfo(this.nativeIndex);
    if (o.weight !== undefined) {
      checkFloat32Array(where, 'weight', o.weight);
      if (o.weight.length !== units * inputs) {
        throw new RangeError(`${where}: weight must have units x inputs = ${units} x ${inputs} = ${units * inputs} elements, got ${o.weight.length}`);
      }
      for (let i = 0; i < o.weight.length; i++) {
        if (!Number.isFinite(o.weight[i])) throw new RangeError(`${where}: weight[${i}] is ${o.weight[i]}; weights must be finite`);
      }
    }
    if (o.bias !== undefined) {
      checkFloat32Array(where, 'bias', o.bias);
      if (o.bias.length !== units) throw new RangeError(`${where}: bias must have ${units} elements, got ${o.bias.length}`);
      for (let i = 0; i < o.bias.length; i++) {
        if (!Number.isFinite(o.bias[i])) throw new RangeError(`${where}: bias[${i}] is ${o.bias[i]}; biases must be finite`);
      }
    }
    host.assertIdle('setWeights');
    try {
      host.native.setWeights(this.nativeIndex, o.weight ?? null, o.bias ?? null);
    } catch (err) {
      // The native side checks what only it knows (pruned positions, pruned units).
      throw underApiName(where, err);
    }
  }

  /**
   * @internal How the native layer is first built when its values will be
   * replaced right away (loading a checkpoint): zero init, and sparse at the
   * stored density. The layer's own options (what toJSON reports) stay as they are.
   */
  buildAs(override: { init: InitializerName; density?: number }): void {
    this.buildOverride = override;
  }
  private buildOverride: { init: InitializerName; density?: number } | null = null;

  /** @internal The spec the native model is built from. */
  nativeSpec(inputDropout: number) {
    return {
      units: this.configuredUnits,
      activation: this.activation,
      inputDropout,
      init: this.buildOverride?.init ?? this.kernelInitializer,
      useBias: this.useBias,
      dropConnect: this.dropConnect,
      sparseThreshold: this.sparseThreshold ?? -1,
      density: this.buildOverride?.density ?? this.initialDensity,
    };
  }

  private requireHost(method: string): LayerHost {
    if (!this.host) {
      throw new Error(`DenseLayer.${method}(): the layer is not part of a model yet; add it with model.add() first`);
    }
    return this.host;
  }
}

export class DropoutLayer {
  readonly kind = 'dropout' as const;
  readonly rate: number;

  constructor(options: DropoutOptions) {
    const where = 'layers.dropout()';
    const o = checkOptions<DropoutOptions>(where, 'options', options);
    checkKnownKeys(where, o, ['rate']);
    this.rate = checkNumber(where, 'rate', o.rate, { min: 0, max: 1, maxExclusive: true });
  }
}

export type Layer = DenseLayer | DropoutLayer;

/**
 * SET's Erdos-Renyi density for a layer: epsilon (fanIn + fanOut) / (fanIn x fanOut),
 * capped at 1 (Mocanu et al. 2018 use epsilon = 20).
 */
export function erdosRenyiDensity(epsilon: number, fanIn: number, fanOut: number): number {
  const where = 'layers.erdosRenyiDensity()';
  checkNumber(where, 'epsilon', epsilon, { min: 0, minExclusive: true });
  checkInteger(where, 'fanIn', fanIn, { min: 1 });
  checkInteger(where, 'fanOut', fanOut, { min: 1 });
  return Math.min(1, (epsilon * (fanIn + fanOut)) / (fanIn * fanOut));
}

/** A fully connected layer: y = activation(W x + b). */
export function dense(options: DenseOptions): DenseLayer {
  return new DenseLayer(options);
}

/** Inverted dropout on the previous layer's output (identity at evaluation). */
export function dropout(options: DropoutOptions): DropoutLayer {
  return new DropoutLayer(options);
}
