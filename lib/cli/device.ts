// --device for the commands that train (train, continual): the option, the
// check that the GPU is usable before any data is loaded, and how the header
// and the JSON name the device.
import { cuda, runtime } from '../index';
import { DEVICES, type Device } from '../sequential';
import { CliError } from './args';

export const DEVICE_OPTION = {
  kind: 'choice',
  metavar: 'NAME',
  choices: DEVICES,
  default: 'cpu',
  help: 'cpu, or cuda: train on the first NVIDIA GPU (structural changes followed there)',
} as const;

/** What the header and the JSON say of the device (the JSON's `device` itself is the trained model's). */
export interface DeviceInfo {
  /** The GPU's name, on 'cuda'. */
  deviceName?: string;
  /** For the header: the GPU, or the CPU path's SIMD level and threads. */
  text: string;
}

/** Throws CliError (exit 1) saying what is missing when --device cuda cannot run. */
export function useDevice(device: Device): DeviceInfo {
  if (device === 'cuda') {
    const s = cuda.status();
    if (!s.available) throw new CliError(`--device cuda: ${(s.reason ?? 'CUDA is not available').replace(/^neuroplastic: /, '')}`);
    const name = cuda.devices()[0]?.name;
    return { ...(name !== undefined ? { deviceName: name } : {}), text: `cuda: ${name ?? 'device 0'}` };
  }
  const rt = runtime();
  return { text: `${rt.simd}, ${rt.threads} thread${rt.threads === 1 ? '' : 's'}` };
}
