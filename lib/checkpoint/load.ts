// loadModel(): a checkpoint file or buffer back into a model, ready to train on.
import type { Sequential } from '../sequential';
import type { LinearImportOptions } from './linear_import';
import { modelFromBuffer, readCheckpointFile } from './model_file';
import { describe } from '../validate';

/**
 * Loads a model saved with model.save() / model.toBuffer() (exact resume:
 * weights, optimizer state, step, RNG, ids, events), or imports a plain
 * safetensors file of Linear layers (weight [out, in], bias [out]).
 * A truncated, corrupted or foreign file is rejected with a CheckpointError
 * naming the file and the problem; nothing is half-loaded.
 */
export async function loadModel(source: string | Buffer | Uint8Array, options: LinearImportOptions = {}): Promise<Sequential> {
  if (typeof source === 'string') return modelFromBuffer(await readCheckpointFile(source), source, options);
  if (source instanceof Uint8Array) {
    const buffer = Buffer.isBuffer(source) ? source : Buffer.from(source.buffer, source.byteOffset, source.byteLength);
    return modelFromBuffer(buffer, '<buffer>', options);
  }
  throw new TypeError(`loadModel(): source must be a file path or a Buffer, got ${describe(source)}`);
}
