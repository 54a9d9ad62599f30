// --device for the commands that train (train, continual): the option, the
// check that the GPU is usable before any data is loaded, and how the header
// and the JSON name the device.
import { cuda, runtime } from '../index';
import { checkDevice, cudaOrdinal, gpusSeen, type Device } from '../device';
import { CliError, UsageError } from './args';

export const DEVICE_OPTION = {
  kind: 'string',
  metavar: 'NAME',
  default: 'cpu',
  help: "cpu, cuda (the first NVIDIA GPU) or cuda:N (GPU ordinal N): where to train; structural changes are followed on the GPU",
} as const;

/** The device the option names, and what the header and the JSON say of it (the JSON's `device` itself is the trained model's). */
export interface DeviceInfo {
  device: Device;
  /** The GPU's name, on a GPU. */
  deviceName?: string;
  /** For the header: the GPU, or the CPU path's SIMD level and threads. */
  text: string;
}

/**
 * Checks --device: a name that is no device is a UsageError (exit 2); a GPU that cannot run (no
 * driver, no addon, no GPU with that ordinal) a CliError (exit 1) saying what is missing.
 */
export function useDevice(value: string, command: string): DeviceInfo {
  let device: Device;
  try {
    device = checkDevice('--device', 'NAME', value);
  } catch {
    throw new UsageError(`--device must be cpu, cuda or cuda:N (N a GPU's ordinal), got ${JSON.stringify(value)}`, command);
  }
  if (device !== 'cpu') {
    const s = cuda.status();
    if (!s.available) throw new CliError(`--device ${device}: ${(s.reason ?? 'CUDA is not available').replace(/^neuroplastic: /, '')}`);
    const found = cuda.devices();
    const gpu = found[cudaOrdinal(device)];
    if (!gpu) throw new CliError(`--device ${device}: ${gpusSeen()}`);
    return { device, deviceName: gpu.name, text: `${device}: ${gpu.name}` };
  }
  const rt = runtime();
  return { device, text: `${rt.simd}, ${rt.threads} thread${rt.threads === 1 ? '' : 's'}` };
}
