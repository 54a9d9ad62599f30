// Import of a plain safetensors file of Linear layers (PyTorch nn.Linear
// state_dict style: `<name>.weight` [out, in] F32 and optional `<name>.bias`
// [out]), e.g. written with safetensors.torch.save_file(model.state_dict()).
// Layers are ordered by their names (numbers compared as numbers) and must
// chain: each layer's inputs are the previous layer's outputs.
import type { ActivationName } from '../layers';
import { ACTIVATIONS, dense } from '../layers';
import { Sequential } from '../sequential';
import { CheckpointError, readTensor, type Decoded } from './safetensors';

export interface LinearImportOptions {
  /** Activation per layer (default: 'relu' for hidden layers, 'linear' for the last). */
  activations?: ActivationName[];
  /** Seed of the new model. Default 0. */
  seed?: number;
}

function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

export function importLinearLayers(d: Decoded, source: string, options: LinearImportOptions = {}): Sequential {
  const prefixes = [...d.tensors.keys()].filter((k) => k.endsWith('.weight')).map((k) => k.slice(0, -'.weight'.length));
  if (prefixes.length === 0) {
    throw new CheckpointError(`${source}: not a neuroplastic checkpoint (no __metadata__.format) and no '<name>.weight' tensors to import as Linear layers`);
  }
  prefixes.sort(naturalCompare);
  const known = new Set(prefixes.flatMap((p) => [`${p}.weight`, `${p}.bias`]));
  for (const name of d.tensors.keys()) {
    if (!known.has(name)) throw new CheckpointError(`${source}: tensor ${name} is neither a Linear weight nor its bias`);
  }
  const activations = options.activations;
  if (activations !== undefined) {
    if (!Array.isArray(activations) || activations.length !== prefixes.length || !activations.every((a) => (ACTIVATIONS as readonly string[]).includes(a))) {
      throw new TypeError(`loadModel(): activations must list one of ${ACTIVATIONS.join(', ')} for each of the ${prefixes.length} layers`);
    }
  }
  const weights = prefixes.map((p) => {
    const w = readTensor(d, `${p}.weight`, source);
    if (w.dtype !== 'F32' || w.shape.length !== 2) throw new CheckpointError(`${source}: ${p}.weight must be a 2-D F32 tensor [out, in], got ${w.dtype} [${w.shape}]`);
    const b = d.tensors.has(`${p}.bias`) ? readTensor(d, `${p}.bias`, source) : null;
    if (b && (b.dtype !== 'F32' || b.shape.length !== 1 || b.shape[0] !== w.shape[0])) {
      throw new CheckpointError(`${source}: ${p}.bias must be an F32 tensor [${w.shape[0]}], got ${b.dtype} [${b.shape}]`);
    }
    if (w.shape[0] < 1 || w.shape[1] < 1) throw new CheckpointError(`${source}: ${p}.weight has shape [${w.shape}]; a Linear layer needs at least one output and one input`);
    return { name: p, out: w.shape[0], in: w.shape[1], weight: w.data as Float32Array, bias: b ? (b.data as Float32Array) : null };
  });
  for (let i = 1; i < weights.length; i++) {
    if (weights[i].in !== weights[i - 1].out) {
      throw new CheckpointError(`${source}: ${weights[i].name}.weight takes ${weights[i].in} inputs but ${weights[i - 1].name} gives ${weights[i - 1].out}: the layers do not chain`);
    }
  }
  // Errors from here on (a layer too large, NaN values) are the file's fault:
  // they name the file and the tensor.
  let current = weights[0].name;
  try {
    const model = new Sequential({ inputSize: weights[0].in, seed: options.seed ?? 0 });
    weights.forEach((w, i) => {
      current = w.name;
      const activation = activations?.[i] ?? (i + 1 < weights.length ? 'relu' : 'linear');
      model.add(dense({ units: w.out, activation, useBias: w.bias !== null }));
    });
    model.layers.forEach((layer, i) => {
      const w = weights[i];
      current = w.name;
      (layer as ReturnType<typeof dense>).setWeights(w.bias ? { weight: w.weight, bias: w.bias } : { weight: w.weight });
    });
    return model;
  } catch (err) {
    throw new CheckpointError(`${source}: Linear layer ${current}: ${(err as Error).message}`);
  }
}
