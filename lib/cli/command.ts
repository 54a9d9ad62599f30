// What main.ts needs from a command. A new command is one file exporting a
// Command, plus one line in main.ts's table.
import { AbortError } from '../fit';

/** Where a command writes: results to stdout, progress and diagnostics to stderr. */
export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Redraw a progress bar on stderr (only when it is a terminal). */
  stderrIsTTY: boolean;
  /** Terminal width of stderr, when known. */
  columns?: number;
}

export interface Command {
  name: string;
  /** One line for `neuroplastic --help`. */
  summary: string;
  /** The full text of `neuroplastic <name> --help`. */
  help(): string;
  /**
   * Runs with the words after the command name; resolves with the exit code.
   * Throws UsageError for a bad command line (exit 2) and CliError or any
   * Error for a failure (exit 1); main prints either without a stack.
   */
  run(argv: readonly string[], io: Io): Promise<number>;
}

/**
 * Runs a long job that Ctrl-C stops at the next batch boundary (so the terminal
 * is left tidy): `job` gets the signal to pass to fit() or continual.run().
 * Resolves with its result, or with exit code 130 after saying at which step
 * it stopped (`onInterrupt` runs first, e.g. to clear a progress bar).
 */
export async function untilInterrupted<T>(
  io: Io,
  step: () => number,
  job: (signal: AbortSignal) => Promise<T>,
  onInterrupt?: () => void,
): Promise<{ value: T } | { exitCode: 130 }> {
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once('SIGINT', onSigint);
  try {
    return { value: await job(abort.signal) };
  } catch (err) {
    if (!(err instanceof AbortError)) throw err;
    onInterrupt?.();
    io.stderr.write(`neuroplastic: interrupted at step ${step()}\n`);
    return { exitCode: 130 };
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
