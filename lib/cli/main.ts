#!/usr/bin/env node
// The `neuroplastic` executable (package.json bin). It only dispatches: each
// command lives in its own file and is listed once in COMMANDS. Exit codes:
// 0 success, 1 a failure while running, 2 a bad command line, 130 interrupted.
import { UsageError } from './args';
import type { Command, Io } from './command';
import { train } from './train';
import { continualCommand } from './continual';
import { reportCommand } from './report';
import { inspect } from './inspect';

const COMMANDS: readonly Command[] = [train, continualCommand, reportCommand, inspect];

function version(): string {
  // The same path from lib/cli (tsx) and dist/cli (built): both sit two levels below the package root.
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  return (require('../../package.json') as { version: string }).version;
}

function topHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `neuroplastic ${version()}: neural networks whose structure changes while they learn`,
    '',
    'Usage: neuroplastic <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Options:',
    '  -h, --help     Show this help',
    '  -V, --version  Print the version',
    '',
    "Run 'neuroplastic <command> --help' for the options of a command.",
  ].join('\n');
}

function commandNames(): string {
  return COMMANDS.map((c) => c.name).join(', ');
}

async function dispatch(argv: readonly string[], io: Io): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    io.stderr.write(topHelp() + '\n');
    return 2;
  }
  if (first === '-h' || first === '--help' || first === 'help') {
    const command = first === 'help' && rest[0] !== undefined ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    if (first === 'help' && rest[0] !== undefined && !command) {
      throw new UsageError(`unknown command ${JSON.stringify(rest[0])} (commands: ${commandNames()})`);
    }
    io.stdout.write((command ? command.help() : topHelp()) + '\n');
    return 0;
  }
  if (first === '-V' || first === '-v' || first === '--version') {
    io.stdout.write(version() + '\n');
    return 0;
  }
  if (first.startsWith('-')) throw new UsageError(`unknown option ${first.split('=')[0]} (options come after the command)`);
  const command = COMMANDS.find((c) => c.name === first);
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(first)} (commands: ${commandNames()})`);
  return command.run(rest, io);
}

async function main(): Promise<void> {
  // `neuroplastic train | head` closes stdout early: that is not an error worth a stack.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  const io: Io = {
    stdout: process.stdout,
    stderr: process.stderr,
    stderrIsTTY: Boolean(process.stderr.isTTY),
    columns: process.stderr.columns,
  };
  try {
    process.exitCode = await dispatch(process.argv.slice(2), io);
  } catch (err) {
    if (err instanceof UsageError) {
      const hint = err.command ? `neuroplastic ${err.command} --help` : 'neuroplastic --help';
      io.stderr.write(`neuroplastic: ${err.message}\nTry '${hint}' for usage.\n`);
      process.exitCode = 2;
      return;
    }
    const debug = Boolean(process.env.NEUROPLASTIC_DEBUG);
    const message = err instanceof Error ? (debug && err.stack ? err.stack : err.message) : String(err);
    io.stderr.write(`neuroplastic: ${message}\n`);
    process.exitCode = 1;
  }
}

void main();
