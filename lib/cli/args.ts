// The CLI's argument parser: no dependencies, one table of options per command.
// Each option's kind and range are declared once; the same table yields the
// parsed, typed values and the option list of --help, so they cannot disagree.
// A bad value is a UsageError naming the option and the value as typed.

/** A mistake in the command line: main prints it with a usage hint and exits 2. */
export class UsageError extends Error {
  /** The command whose --help the hint points at (undefined: the top level). */
  readonly command?: string;
  constructor(message: string, command?: string) {
    super(message);
    this.name = 'UsageError';
    this.command = command;
  }
}

/** A failure while running a valid command (missing files, bad data): main prints it and exits 1. */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}

/**
 * `limit` on integer options: an upper bound that is a limit of the library or of memory rather
 * than part of what the option means. It is checked after the option's range and reported on its
 * own, e.g. `--epochs must be at most 1000000000, got "2000000000"`.
 */
interface Limited {
  limit?: number;
}

interface Common {
  /** Placeholder for the value in --help, e.g. 'N' or 'DIR'. */
  metavar?: string;
  /** One line for --help. */
  help: string;
  /** Spelled on the command line as --<flag>; default: the key in kebab-case. */
  flag?: string;
}

export type OptionSpec =
  | (Common & { kind: 'flag' })
  | (Common & { kind: 'string'; default?: string })
  | (Common & { kind: 'choice'; choices: readonly string[]; default?: string })
  | (Common & Limited & { kind: 'integer'; min?: number; max?: number; default?: number })
  /** float32: the library uses the value as a float32, so the range must also hold after rounding to one. */
  | (Common & { kind: 'number'; min?: number; max?: number; minExclusive?: boolean; maxExclusive?: boolean; float32?: boolean; default?: number })
  /** Comma-separated integers, each in [min, max], e.g. --hidden 300,100. */
  | (Common & Limited & { kind: 'integerList'; min?: number; max?: number; default?: readonly number[] });

export type OptionTable = Record<string, OptionSpec>;

type KindValue<S extends OptionSpec> = S extends { kind: 'flag' }
  ? boolean
  : S extends { kind: 'integer' | 'number' }
    ? number
    : S extends { kind: 'integerList' }
      ? number[]
      : S extends { kind: 'choice'; choices: readonly (infer C)[] }
        ? C
        : string;

/** The parsed values: options with a default (and flags) are always set, the others may be undefined. */
export type Values<T extends OptionTable> = {
  [K in keyof T]: T[K] extends { kind: 'flag' } | { default: unknown } ? KindValue<T[K]> : KindValue<T[K]> | undefined;
};

export interface Parsed<T extends OptionTable> {
  values: Values<T>;
  /** Which options were given on the command line (the others hold their default). */
  given: Set<keyof T & string>;
  help: boolean;
}

export function flagOf(key: string, spec: OptionSpec): string {
  return '--' + (spec.flag ?? key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase()));
}

const INTEGER = /^[+-]?\d+$/;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function rangeText(min: number | undefined, max: number | undefined, minEx = false, maxEx = false): string {
  if (min !== undefined && max !== undefined) return ` in ${minEx ? '(' : '['}${min}, ${max}${maxEx ? ')' : ']'}`;
  if (min !== undefined) return ` ${minEx ? '>' : '>='} ${min}`;
  if (max !== undefined) return ` ${maxEx ? '<' : '<='} ${max}`;
  return '';
}

function integerExpected(min?: number, max?: number): string {
  if (min === 1 && max === undefined) return 'a positive integer';
  if (min === 0 && max === undefined) return 'a non-negative integer';
  return 'an integer' + rangeText(min, max);
}

function convert(command: string, flag: string, spec: OptionSpec, raw: string): unknown {
  const bad = (expected: string) =>
    new UsageError(`${flag} must be ${expected}, got ${JSON.stringify(raw)}`, command);
  switch (spec.kind) {
    case 'flag':
      throw new Error('unreachable: flags take no value');
    case 'string':
      if (raw === '') throw bad('a non-empty string');
      return raw;
    case 'choice':
      if (!spec.choices.includes(raw)) throw bad(`one of ${spec.choices.join(', ')}`);
      return raw;
    case 'integer': {
      const v = Number(raw);
      const ok = INTEGER.test(raw) && Number.isSafeInteger(v) &&
        (spec.min === undefined || v >= spec.min) && (spec.max === undefined || v <= spec.max);
      if (!ok) throw bad(integerExpected(spec.min, spec.max));
      if (spec.limit !== undefined && v > spec.limit) throw bad(`at most ${spec.limit}`);
      return v;
    }
    case 'number': {
      const { min, max, minExclusive = false, maxExclusive = false } = spec;
      const inRange = (v: number) => Number.isFinite(v) &&
        (min === undefined || v > min || (!minExclusive && v === min)) &&
        (max === undefined || v < max || (!maxExclusive && v === max));
      const v = Number(raw);
      const expected = 'a number' + rangeText(min, max, minExclusive, maxExclusive);
      if (!DECIMAL.test(raw) || !inRange(v)) throw bad(expected);
      if (spec.float32 && !inRange(Math.fround(v))) {
        throw new UsageError(`${flag} must be ${expected} in float32, got ${JSON.stringify(raw)}, which rounds to ${Math.fround(v)} in float32`, command);
      }
      return v;
    }
    case 'integerList': {
      const parts = raw.split(',');
      const values = parts.map(Number);
      const ok = parts.every((p, i) => INTEGER.test(p.trim()) && Number.isSafeInteger(values[i]) &&
        (spec.min === undefined || values[i] >= spec.min) && (spec.max === undefined || values[i] <= spec.max));
      const example = spec.default ? ` (e.g. ${spec.default.join(',')})` : '';
      const each = spec.min === 1 && spec.max === undefined ? 'positive integers' : `integers${rangeText(spec.min, spec.max)}`;
      if (!ok) throw bad(`a comma-separated list of ${each}${example}`);
      const limit = spec.limit;
      if (limit !== undefined && values.some((v) => v > limit)) throw bad(`a comma-separated list of integers each at most ${limit}`);
      return values;
    }
  }
}

/**
 * Parses `argv` (the words after the command name) against `table`. Accepts
 * `--name value`, `--name=value`, flags, `-h`/`--help`, and `--` (after which
 * every word is positional). A value that itself starts with `--` is taken as
 * a missing value; `-1` is a value (so `--lr -1` reports the range, not a
 * missing value). The command takes no positionals.
 */
export function parseArgs<T extends OptionTable>(command: string, argv: readonly string[], table: T): Parsed<T> {
  const byFlag = new Map<string, [string, OptionSpec]>();
  for (const [key, spec] of Object.entries(table)) byFlag.set(flagOf(key, spec), [key, spec]);

  const values: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(table)) {
    if (spec.kind === 'flag') values[key] = false;
    else if (spec.default !== undefined) values[key] = Array.isArray(spec.default) ? [...spec.default] : spec.default;
  }
  const given = new Set<keyof T & string>();
  let help = false;

  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (word === '--') {
      if (i + 1 < argv.length) throw new UsageError(`unexpected argument ${JSON.stringify(argv[i + 1])}`, command);
      break;
    }
    if (word === '-h' || word === '--help') {
      help = true;
      continue;
    }
    if (!word.startsWith('-') || word === '-') {
      throw new UsageError(`unexpected argument ${JSON.stringify(word)} (${command} takes options only)`, command);
    }
    const eq = word.indexOf('=');
    const flag = eq > 0 ? word.slice(0, eq) : word;
    const entry = byFlag.get(flag);
    if (!entry) throw new UsageError(`unknown option ${flag}`, command);
    const [key, spec] = entry;
    given.add(key as keyof T & string);
    if (spec.kind === 'flag') {
      if (eq > 0) throw new UsageError(`${flag} takes no value, got ${JSON.stringify(word.slice(eq + 1))}`, command);
      values[key] = true;
      continue;
    }
    let raw: string;
    if (eq > 0) raw = word.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) raw = argv[++i];
    else throw new UsageError(`${flag} needs a value${spec.metavar ? ` (${spec.metavar})` : ''}`, command);
    values[key] = convert(command, flag, spec, raw);
  }
  return { values: values as Values<T>, given, help };
}

/** The option list of --help: one aligned line per option, with its default. */
export function formatOptions(table: OptionTable): string {
  const rows = Object.entries(table).map(([key, spec]) => {
    const left = flagOf(key, spec) + (spec.kind === 'flag' ? '' : ` ${spec.metavar ?? 'VALUE'}`);
    let right = spec.help;
    if (spec.kind !== 'flag' && spec.default !== undefined) {
      right += ` (default ${Array.isArray(spec.default) ? spec.default.join(',') : spec.default})`;
    }
    return [left, right];
  });
  rows.push(['-h, --help', 'Show this help']);
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`).join('\n');
}
