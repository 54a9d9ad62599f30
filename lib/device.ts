// Where a model trains, by name: 'cpu', or an NVIDIA GPU: 'cuda' (the first, ordinal 0) or
// 'cuda:N' (ordinal N, as cuda.devices() numbers them; CUDA_VISIBLE_DEVICES renumbers as usual).
// One model runs on one GPU; several models can each take their own.
import { devices, require as requireCuda, type CudaAddon } from './cuda';
import { describe } from './validate';

export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

// 'cuda', or 'cuda:' and an ordinal without leading zeros (so each GPU has one name besides 'cuda').
const CUDA_NAME = /^cuda(:(0|[1-9][0-9]{0,3}))?$/;

/** `value` as a device name: a TypeError when it is not a string, a RangeError naming `name` when it names no device kind. */
export function checkDevice(where: string, name: string, value: unknown): Device {
  const expected = "'cpu', 'cuda' or 'cuda:N' (N a GPU's ordinal, as cuda.devices() lists them)";
  if (typeof value !== 'string') throw new TypeError(`${where}: ${name} must be ${expected}, got ${describe(value)}`);
  if (value !== 'cpu' && !CUDA_NAME.test(value)) throw new RangeError(`${where}: ${name} must be ${expected}, got ${describe(value)}`);
  return value as Device;
}

/** The GPU ordinal a device name means ('cuda' is 0), or -1 for 'cpu'. */
export function cudaOrdinal(device: Device): number {
  if (device === 'cpu') return -1;
  const colon = device.indexOf(':');
  return colon < 0 ? 0 : Number(device.slice(colon + 1));
}

/** Whether two names mean the same place ('cuda' and 'cuda:0' do). */
export function samePlace(a: Device, b: Device): boolean {
  return cudaOrdinal(a) === cudaOrdinal(b);
}

/** What CUDA sees, for messages: 'CUDA sees 2 GPUs (cuda:0 NAME, cuda:1 NAME)'. */
export function gpusSeen(): string {
  const found = devices();
  return `CUDA sees ${found.length} GPU${found.length === 1 ? '' : 's'} (${found.map((d) => `cuda:${d.index} ${d.name}`).join(', ')})`;
}

/**
 * The CUDA addon, once the GPU `device` names is there: throws cuda.require()'s Error (saying
 * why) when CUDA is not usable, and a RangeError naming `name` when no GPU has that ordinal.
 */
export function requireGpu(where: string, name: string, device: Device): CudaAddon {
  const addon = requireCuda();
  if (cudaOrdinal(device) >= devices().length) throw new RangeError(`${where}: ${name} '${device}' names no GPU here: ${gpusSeen()}`);
  return addon;
}
