// A tiny seeded PRNG for reproducible shuffles. Math.random() cannot be seeded,
// and DESIGN.md asks that a seed make every shuffle repeatable.

/**
 * mulberry32 (Tommy Ettinger's 32-bit generator): one uint32 of state, period
 * 2^32, passes the usual statistical batteries well enough for shuffling and
 * sampling (not for cryptography). Returns a function giving floats in [0, 1).
 * The seed is taken modulo 2^32, so any integer works; equal seeds give equal
 * streams on every machine.
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher-Yates shuffle of `items` in place, driven by `random` (e.g. mulberry32(seed)). */
export function shuffleInPlace<T extends { length: number; [i: number]: unknown }>(items: T, random: () => number): T {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const tmp = items[i];
    items[i] = items[j];
    items[j] = tmp;
  }
  return items;
}
