// Training progress on stderr, as a fit() callback. On a terminal a bar is
// redrawn in place from onProgress (throttled by fit, never awaited, so drawing
// cannot slow the native loop); every epoch also leaves one permanent line,
// which is all that is written when stderr is a file or a pipe.
import type { Callback, EpochLogs, ProgressInfo } from '../index';

export interface ProgressOptions {
  stream: NodeJS.WritableStream;
  /** Draw the live bar (stderr is a terminal). */
  bar: boolean;
  /** Terminal width; the bar line is clipped to it so that \r redraws never wrap. */
  columns?: number;
  /** Training samples per epoch, for samples/s while the epoch runs. */
  samples: number;
  batchSize: number;
}

/** 12345.6 -> '12.3k'; keeps the bar's width steady. */
export function compactCount(value: number): string {
  if (!Number.isFinite(value)) return '-';
  if (value >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (value >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  return value.toFixed(0);
}

export function epochLine(epoch: number, epochs: number, logs: EpochLogs): string {
  const width = String(epochs).length;
  const parts = [
    `epoch ${String(epoch + 1).padStart(width)}/${epochs}`,
    `loss ${logs.loss.toFixed(4)}`,
    `acc ${logs.accuracy.toFixed(4)}`,
  ];
  if (logs.valLoss !== undefined) parts.push(`test loss ${logs.valLoss.toFixed(4)}`);
  if (logs.valAccuracy !== undefined) parts.push(`test acc ${logs.valAccuracy.toFixed(4)}`);
  parts.push(`${logs.seconds.toFixed(2)} s`, `${compactCount(logs.samplesPerSecond)} samples/s`);
  return parts.join('  ');
}

export class ProgressReporter implements Callback {
  private epochs = 0;
  private epochStart = 0n;
  private drawn = false;

  constructor(private readonly options: ProgressOptions, epochs: number) {
    this.epochs = epochs;
  }

  onEpochBegin(): void {
    this.epochStart = process.hrtime.bigint();
  }

  onProgress(info: ProgressInfo): void {
    if (!this.options.bar) return;
    const { samples, batchSize } = this.options;
    const columns = this.options.columns || 80; // 0 when the terminal does not say
    const seconds = Number(process.hrtime.bigint() - this.epochStart) / 1e9;
    const done = Math.min(info.batch * batchSize, samples);
    const width = String(info.epochs).length;
    const batchWidth = String(info.batches).length;
    const parts = [
      `epoch ${String(info.epoch + 1).padStart(width)}/${info.epochs}`,
      '', // the bar, sized to what the terminal has left
      `${String(info.batch).padStart(batchWidth)}/${info.batches}`,
      `loss ${info.loss.toFixed(4)}`,
      `acc ${info.accuracy.toFixed(4)}`,
      `${seconds > 0 ? compactCount(done / seconds) : '-'} samples/s`,
    ];
    const barWidth = Math.max(5, Math.min(30, columns - 1 - parts.join('  ').length - 2));
    const filled = Math.round((barWidth * info.batch) / Math.max(1, info.batches));
    parts[1] = `[${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}]`;
    const line = parts.join('  ');
    this.options.stream.write(`\r${line.slice(0, Math.max(10, columns - 1))}\x1b[K`);
    this.drawn = true;
  }

  onEpochEnd(epoch: number, logs: EpochLogs): void {
    this.clearBar();
    this.options.stream.write(epochLine(epoch, this.epochs, logs) + '\n');
  }

  /** Erases a half-drawn bar, e.g. before an error message or after an interrupt. */
  clearBar(): void {
    if (!this.drawn) return;
    this.options.stream.write('\r\x1b[K');
    this.drawn = false;
  }
}
