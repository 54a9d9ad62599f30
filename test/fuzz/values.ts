// Value generators for the fuzz driver: a seeded PRNG, specs of what each
// public argument accepts (the documented domain), and generators of values
// that are certainly OUTSIDE a spec (so accepting one is a bug) or inside it.
import { mulberry32 } from '../../lib/data/random';

export class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  float(): number {
    return this.next();
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  bool(p = 0.5): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
}

/** The documented domain of one option or argument. */
export type Spec =
  | { kind: 'int'; min: number; max: number }
  | { kind: 'num'; min: number; max: number; minEx?: boolean; maxEx?: boolean }
  | { kind: 'oneOf'; values: readonly string[] }
  | { kind: 'bool' };

export function isValid(spec: Spec, v: unknown): boolean {
  switch (spec.kind) {
    case 'int':
      return typeof v === 'number' && Number.isInteger(v) && v >= spec.min && v <= spec.max;
    case 'num':
      return (
        typeof v === 'number' &&
        Number.isFinite(v) &&
        (v > spec.min || (!spec.minEx && v === spec.min)) &&
        (v < spec.max || (!spec.maxEx && v === spec.max))
      );
    case 'oneOf':
      return typeof v === 'string' && spec.values.includes(v);
    case 'bool':
      return typeof v === 'boolean';
  }
}

// Values of the wrong kind, for any argument.
const WRONG_KIND: (() => unknown)[] = [
  () => null,
  () => '1',
  () => '',
  () => 'relu ',
  () => true,
  () => false,
  () => ({}),
  () => [],
  () => [1],
  () => 1n,
  () => Symbol('fuzz'),
  () => () => 1,
  () => new Float32Array(1),
  () => new Date(0),
  () => ({ valueOf: () => 1 }),
  () => Object.create(null),
];

const BAD_NUMBERS = [NaN, Infinity, -Infinity, -1, -0.5, 0, 0.5, 1, 1.5, 2, 1e308, -1e308, 2 ** 31, 2 ** 53, 2 ** 53 + 2, 1e-320, -1e-9, 1 + 1e-15, 0.999999999, 1 << 24, (1 << 24) + 1, (1 << 26) + 1, 1e9 + 1];

/** A value the spec rejects (retries until one is found; every spec has many). */
export function badValue(rng: Rng, spec: Spec): unknown {
  for (let i = 0; i < 100; i++) {
    let v: unknown;
    const r = rng.float();
    if (r < 0.3) v = rng.pick(WRONG_KIND)();
    else if (spec.kind === 'oneOf' && r < 0.7) {
      const base = rng.pick(spec.values);
      v = rng.pick([base.toUpperCase(), base + 'x', ' ' + base, base.slice(1), 'cuda', 'gpu', 'l3', 'none', 'weights', 'Relu']);
    } else if (spec.kind === 'int' && r < 0.6) {
      v = rng.pick([spec.min - 1, spec.max + 1, spec.min + 0.5, spec.max - 0.25, -spec.max, spec.min - 1e6]);
    } else if (spec.kind === 'num' && r < 0.6) {
      v = rng.pick([spec.min - 1e-3, spec.max + 1e-3, spec.minEx ? spec.min : NaN, spec.maxEx ? spec.max : Infinity, -Infinity, NaN]);
    } else v = rng.pick(BAD_NUMBERS);
    if (v !== undefined && !isValid(spec, v)) return v;
  }
  return Symbol('never-valid');
}

/** A value the spec accepts (edges included). */
export function goodValue(rng: Rng, spec: Spec): unknown {
  switch (spec.kind) {
    case 'int': {
      const hi = Math.min(spec.max, spec.min + 7);
      return rng.int(spec.min, hi);
    }
    case 'num': {
      const lo = spec.min === -Infinity ? -1 : spec.min;
      const hi = spec.max === Infinity ? lo + 1 : spec.max;
      let v = lo + rng.float() * (hi - lo);
      if (!isValid(spec, v)) v = (lo + hi) / 2;
      return v;
    }
    case 'oneOf':
      return rng.pick(spec.values);
    case 'bool':
      return rng.bool();
  }
}

/**
 * Options built from specs: `bad` names the key that gets a bad value (or a
 * key not in the table when it is '__unknown__'); others get good values or
 * are left out. Returns the object.
 *
 * Rule: an OPTIONAL option set to null means "not given" (the library reads
 * options as `o.key ?? default`), so null is a bad value only for required keys.
 */
export function optionsWith(rng: Rng, table: Record<string, Spec>, bad: string | null, required: readonly string[] = []): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(table)) {
    if (key === bad) {
      let v = badValue(rng, spec);
      while (v === null && !required.includes(key)) v = badValue(rng, spec);
      o[key] = v;
    }
    else if (required.includes(key) || rng.bool(0.4)) o[key] = goodValue(rng, spec);
  }
  if (bad === '__unknown__') {
    o[rng.pick(['unit', 'lr', 'learning_rate', 'epoch', 'batch', 'activations', 'constructor', 'toString', 'seeds', 'verbose'])] = rng.pick([1, 'x', true]);
  }
  return o;
}

/** A non-object where an options object belongs (undefined excluded: it means "defaults"). */
export function notAnObject(rng: Rng): unknown {
  return rng.pick([null, 0, 1, 'options', true, [], [{}], new Float32Array(2), () => ({}), 1n]);
}
