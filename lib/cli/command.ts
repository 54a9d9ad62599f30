// What main.ts needs from a command. A new command is one file exporting a
// Command, plus one line in main.ts's table.

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
