// The in-memory shape every loader returns: one contiguous row-major block, so
// a Dataset can go straight into model.fit() without reshaping or copying.

/** A labelled classification data set held in memory. */
export interface Dataset {
  /** n x features, row-major, values scaled to [0, 1]. */
  x: Float32Array;
  /** Class labels, 0 .. classes - 1, one per row of x. */
  y: Uint8Array;
  /** Number of samples (rows of x). */
  n: number;
  /** Values per sample (columns of x), e.g. 784 for 28 x 28 images. */
  features: number;
  /** Number of classes the labels range over (max label + 1). */
  classes: number;
  /** Where it came from and which half, e.g. 'mnist-train', 'fashion-mnist-test'. */
  name: string;
}

/** Both halves of a data set, split the way its loader documents. */
export interface TrainTest {
  train: Dataset;
  test: Dataset;
}

/**
 * Copies the given rows of (x, y) into a new Dataset. The copy keeps callers from
 * mutating a cached source (see mnist.ts) through the returned arrays.
 */
export function gatherRows(
  x: Float32Array, y: Uint8Array, features: number, rows: ArrayLike<number>,
  classes: number, name: string,
): Dataset {
  const n = rows.length;
  const outX = new Float32Array(n * features);
  const outY = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const r = rows[i];
    outX.set(x.subarray(r * features, (r + 1) * features), i * features);
    outY[i] = y[r];
  }
  return { x: outX, y: outY, n, features, classes, name };
}
