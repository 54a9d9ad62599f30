// Argument checks shared by every public function. Each throws a TypeError
// (wrong kind of value) or RangeError (right kind, wrong value) whose message
// names the function, the argument, what was expected and what was given:
//   RangeError: dense(): units must be a positive integer, got 0
// Checking here, before anything crosses into native code, is what lets the
// native side treat a failed check as a bug rather than as user input.

/** Renders a value for an error message without dumping huge arrays. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (ArrayBuffer.isView(value)) {
    const name = value.constructor.name;
    return `${name}(${(value as unknown as { length?: number }).length ?? value.byteLength})`;
  }
  if (Array.isArray(value)) return `Array(${value.length})`;
  if (typeof value === 'function') return 'a function';
  return `a ${(value as object).constructor?.name ?? 'object'}`;
}

function fail(Kind: typeof TypeError | typeof RangeError, where: string, name: string, expected: string, value: unknown): never {
  throw new Kind(`${where}: ${name} must be ${expected}, got ${describe(value)}`);
}

export interface IntegerRange {
  min?: number;
  max?: number;
}

/** A finite integer in [min, max]. */
export function checkInteger(where: string, name: string, value: unknown, range: IntegerRange = {}): number {
  const { min = -Infinity, max = Infinity } = range;
  let expected = 'an integer';
  const atMost = max === Infinity ? '' : ` (at most ${max})`;
  if (min === 1) expected = `a positive integer${atMost}`;
  else if (min === 0) expected = `a non-negative integer${atMost}`;
  else if (min !== -Infinity && max !== Infinity) expected = `an integer in [${min}, ${max}]`;
  else if (min !== -Infinity) expected = `an integer >= ${min}`;
  else if (max !== Infinity) expected = `an integer <= ${max}`;
  if (typeof value !== 'number') fail(TypeError, where, name, expected, value);
  if (!Number.isInteger(value) || value < min || value > max) fail(RangeError, where, name, expected, value);
  return value;
}

export interface NumberRange {
  min?: number;
  max?: number;
  /** Exclude min itself (e.g. a learning rate must be > 0). */
  minExclusive?: boolean;
  /** Exclude max itself (e.g. a dropout rate must be < 1). */
  maxExclusive?: boolean;
  /**
   * The native core stores the value as a float32: check the range again on the rounded value,
   * which may overflow to infinity, underflow to 0 or round up to max (1 - 1e-12 becomes 1).
   */
  float32?: boolean;
}

/** The largest finite float32. */
export const FLOAT32_MAX = 3.4028234663852886e38;

/** A finite number in the given (half-)open or closed interval. */
export function checkNumber(where: string, name: string, value: unknown, range: NumberRange = {}): number {
  const { min = -Infinity, max = Infinity, minExclusive = false, maxExclusive = false, float32 = false } = range;
  const lo = min === -Infinity ? '' : `${minExclusive ? '>' : '>='} ${min}`;
  const hi = max === Infinity ? '' : `${maxExclusive ? '<' : '<='} ${max}`;
  let expected = 'a finite number';
  if (lo && hi) expected = `a number in ${minExclusive ? '(' : '['}${min}, ${max}${maxExclusive ? ')' : ']'}`;
  else if (lo) expected = `a number ${lo}`;
  else if (hi) expected = `a number ${hi}`;
  if (typeof value !== 'number') fail(TypeError, where, name, expected, value);
  if (!Number.isFinite(value)) fail(RangeError, where, name, expected, value);
  const v = value as number;
  const outside = (x: number) => x < min || (minExclusive && x === min) || x > max || (maxExclusive && x === max);
  if (outside(v)) fail(RangeError, where, name, expected, value);
  if (float32) {
    const f = Math.fround(v);
    if (!Number.isFinite(f)) {
      throw new RangeError(`${where}: ${name} must be ${expected}, got ${v}, which is outside float32 range (magnitude at most ${FLOAT32_MAX})`);
    }
    if (outside(f)) {
      throw new RangeError(`${where}: ${name} must be ${expected} in float32 (the precision the core computes in), got ${v}, which rounds to ${f} in float32`);
    }
  }
  return v;
}

export function checkBoolean(where: string, name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') fail(TypeError, where, name, 'a boolean', value);
  return value;
}

export function checkString(where: string, name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) fail(TypeError, where, name, 'a non-empty string', value);
  return value;
}

/** One of a fixed set of strings. */
export function checkOneOf<T extends string>(where: string, name: string, value: unknown, allowed: readonly T[]): T {
  const expected = `one of ${allowed.map((a) => `'${a}'`).join(', ')}`;
  if (typeof value !== 'string') fail(TypeError, where, name, expected, value);
  if (!(allowed as readonly string[]).includes(value)) fail(RangeError, where, name, expected, value);
  return value as T;
}

/** A plain options object (or undefined, which becomes {}). */
export function checkOptions<T extends object>(where: string, name: string, value: unknown): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value) || ArrayBuffer.isView(value)) {
    fail(TypeError, where, name, 'an options object', value);
  }
  return value as Partial<T>;
}

/** Rejects option keys the function does not know: a typo must not be silently ignored. */
export function checkKnownKeys(where: string, options: object, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new TypeError(`${where}: unknown option '${key}' (known options: ${known.join(', ')})`);
    }
  }
}

export function checkFloat32Array(where: string, name: string, value: unknown): Float32Array {
  if (!(value instanceof Float32Array)) fail(TypeError, where, name, 'a Float32Array', value);
  return value;
}

export function checkFunction(where: string, name: string, value: unknown): (...args: unknown[]) => unknown {
  if (typeof value !== 'function') fail(TypeError, where, name, 'a function', value);
  return value as (...args: unknown[]) => unknown;
}

/**
 * An error from the core re-thrown under the API name the user called (the core's messages name the
 * argument, not the call): same class, same `code`, the original as `cause`. `reword` may adjust the
 * core's message (e.g. say a layer's position in model.layers instead of its dense index).
 */
export function underApiName(where: string, err: unknown, reword: (message: string) => string = (m) => m): unknown {
  if (!(err instanceof Error)) return err;
  const Kind = err instanceof RangeError ? RangeError : err instanceof TypeError ? TypeError : Error;
  const out: Error & { code?: unknown } = new Kind(`${where}: ${reword(err.message)}`, { cause: err });
  const code = (err as { code?: unknown }).code;
  if (code !== undefined) out.code = code;
  return out;
}
