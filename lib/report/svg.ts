// Small inline-SVG charts for the HTML report: line charts with axes, ticks,
// labels and a legend, and a heat map. No dependencies and no external
// assets: each function returns one <svg> element as a string.

export function esc(s: unknown): string {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** A colour-blind friendly cycle (Okabe-Ito, then Tableau). */
export const PALETTE = ['#0072b2', '#d55e00', '#009e73', '#cc79a7', '#e69f00', '#56b4e9', '#7f7f7f', '#8c564b', '#bcbd22', '#17becf'];

export interface Series {
  name: string;
  /** [x, y] pairs; a non-finite y breaks the line. */
  points: [number, number][];
  color?: string;
  /** Draw as a step function (value holds until the next point). */
  step?: boolean;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Fixed y range (default: from the data, including 0 when close). */
  yMin?: number;
  yMax?: number;
  /** Format of y tick labels: 'number' (default) or 'percent'. */
  yFormat?: 'number' | 'percent';
  width?: number;
  height?: number;
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toPrecision(3).replace(/\.?0+$/, '') + 'M';
  if (a >= 1e4) return (v / 1e3).toPrecision(3).replace(/\.?0+$/, '') + 'k';
  if (a >= 100) return String(Math.round(v));
  return String(+v.toPrecision(3));
}

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
  return ticks;
}

function r1(v: number): string {
  return String(Math.round(v * 10) / 10);
}

/**
 * The range of the finite x and of the finite y over all points (undefined when
 * either is empty). A loop, because spreading a long run into Math.min/max
 * overflows the stack (a report may hold 100,000 tasks or epochs).
 */
function extent(series: readonly Series[]): { x0: number; x1: number; y0: number; y1: number } | undefined {
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  for (const s of series) {
    for (const [x, y] of s.points) {
      if (Number.isFinite(x)) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
      }
      if (Number.isFinite(y)) {
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  return x0 <= x1 && y0 <= y1 ? { x0, x1, y0, y1 } : undefined;
}

/**
 * A polyline's points (pixels, in drawing order) with every run that falls in one pixel column
 * reduced to its first, lowest, highest and last point, in their order: the drawn line looks the
 * same, but a run of 100,000 epochs costs a few points per pixel instead of 100,000.
 */
export function thinToPixels(points: [number, number][]): [number, number][] {
  if (points.length <= 4) return points;
  const out: [number, number][] = [];
  let start = 0;
  while (start < points.length) {
    const column = Math.round(points[start][0]);
    let end = start + 1;
    let low = start;
    let high = start;
    while (end < points.length && Math.round(points[end][0]) === column) {
      if (points[end][1] < points[low][1]) low = end;
      if (points[end][1] > points[high][1]) high = end;
      end++;
    }
    const keep = [...new Set([start, low, high, end - 1])].sort((a, b) => a - b);
    for (const i of keep) out.push(points[i]);
    start = end;
  }
  return out;
}

/** A line chart with labelled axes, grid lines and a legend on the right. */
export function lineChart(o: LineChartOptions): string {
  const W = o.width ?? 720;
  const H = o.height ?? 300;
  const left = 64;
  const right = 150;
  const top = 30;
  const bottom = 46;
  const pw = W - left - right;
  const ph = H - top - bottom;
  const parts: string[] = [];
  parts.push(`<svg class="chart" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(o.title)}">`);
  parts.push(`<text x="${left}" y="18" class="title">${esc(o.title)}</text>`);
  const range = extent(o.series);
  if (!range) {
    parts.push(`<text x="${left + pw / 2}" y="${top + ph / 2}" text-anchor="middle" class="muted">no data</text></svg>`);
    return parts.join('');
  }
  let { x0, x1 } = range;
  if (x1 === x0) {
    x0 -= 1;
    x1 += 1;
  }
  let y0 = o.yMin ?? range.y0;
  let y1 = o.yMax ?? range.y1;
  if (o.yMin === undefined && y0 > 0 && y0 < 0.35 * y1) y0 = 0;
  if (y1 === y0) {
    const pad = Math.abs(y0) * 0.1 || 1;
    y0 -= pad;
    y1 += pad;
  }
  const X = (x: number) => left + ((x - x0) / (x1 - x0)) * pw;
  const Y = (y: number) => top + ph - ((y - y0) / (y1 - y0)) * ph;
  const yTick = (v: number) => (o.yFormat === 'percent' ? `${+(v * 100).toPrecision(3)}%` : fmt(v));

  // grid and axes
  for (const t of niceTicks(y0, y1, 5)) {
    if (t < y0 - 1e-12 || t > y1 + 1e-12) continue;
    parts.push(`<line x1="${left}" x2="${left + pw}" y1="${r1(Y(t))}" y2="${r1(Y(t))}" class="grid"/>`);
    parts.push(`<text x="${left - 6}" y="${r1(Y(t) + 4)}" text-anchor="end" class="tick">${esc(yTick(t))}</text>`);
  }
  for (const t of niceTicks(x0, x1, 8)) {
    if (t < x0 - 1e-12 || t > x1 + 1e-12) continue;
    parts.push(`<line x1="${r1(X(t))}" x2="${r1(X(t))}" y1="${top + ph}" y2="${top + ph + 4}" class="axis"/>`);
    parts.push(`<text x="${r1(X(t))}" y="${top + ph + 16}" text-anchor="middle" class="tick">${esc(fmt(t))}</text>`);
  }
  parts.push(`<line x1="${left}" x2="${left + pw}" y1="${top + ph}" y2="${top + ph}" class="axis"/>`);
  parts.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + ph}" class="axis"/>`);
  parts.push(`<text x="${left + pw / 2}" y="${H - 8}" text-anchor="middle" class="label">${esc(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(14 ${top + ph / 2}) rotate(-90)" text-anchor="middle" class="label">${esc(o.yLabel)}</text>`);

  // series
  o.series.forEach((s, k) => {
    const color = s.color ?? PALETTE[k % PALETTE.length];
    const segments: [number, number][][] = [[]];
    let prev: [number, number] | null = null;
    for (const [x, y] of s.points) {
      if (!Number.isFinite(x) || !Number.isFinite(y)) {
        if (segments[segments.length - 1].length) segments.push([]);
        prev = null;
        continue;
      }
      const seg = segments[segments.length - 1];
      if (s.step && prev) seg.push([X(x), Y(prev[1])]);
      seg.push([X(x), Y(y)]);
      prev = [x, y];
    }
    for (const seg of segments.map(thinToPixels)) {
      if (seg.length === 1) {
        parts.push(`<circle cx="${r1(seg[0][0])}" cy="${r1(seg[0][1])}" r="2.5" fill="${color}"/>`);
      } else if (seg.length > 1) {
        parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.8" points="${seg.map(([px, py]) => `${r1(px)},${r1(py)}`).join(' ')}"/>`);
      }
    }
    const ly = top + 8 + k * 16;
    parts.push(`<line x1="${left + pw + 12}" x2="${left + pw + 30}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="3"/>`);
    parts.push(`<text x="${left + pw + 34}" y="${ly + 4}" class="legend">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}

export interface HeatMapOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Rows of values in [0, 1]; missing or non-finite entries are drawn grey. */
  matrix: (number | null | undefined)[][];
  maxWidth?: number;
}

/** White (0) to dark blue (1). */
function blue(v: number): string {
  const t = Math.max(0, Math.min(1, v));
  const c = (a: number, b: number) => Math.round(a + (b - a) * t);
  return `rgb(${c(247, 8)},${c(251, 48)},${c(255, 107)})`;
}

/**
 * Most cells a heat map draws along each axis. A longer stream is drawn in
 * square blocks of tasks, each coloured by the mean of its finite entries: the
 * full matrix of 100,000 tasks would be 5e9 cells, and even 1,000 tasks give a
 * page of a million elements at sub-pixel size.
 */
export const MAX_HEAT_CELLS = 100;

/** Rows (or columns) per block so that neither axis has more than MAX_HEAT_CELLS blocks. */
function blockSize(rows: number, cols: number): number {
  return Math.max(1, Math.ceil(Math.max(rows, cols) / MAX_HEAT_CELLS));
}

interface Blocks {
  rows: number;
  cols: number;
  /** Mean of the finite entries of each block, row-major; NaN where it has none. */
  mean: Float64Array;
  /** How many finite entries each block averages. */
  count: Uint32Array;
}

/** The block means of a matrix (one pass over its entries; size 1 keeps every entry). */
function blockMeans(matrix: readonly (readonly (number | null | undefined)[])[], cols: number, size: number): Blocks {
  const br = Math.ceil(matrix.length / size);
  const bc = Math.ceil(cols / size);
  const sum = new Float64Array(br * bc);
  const count = new Uint32Array(br * bc);
  for (let i = 0; i < matrix.length; i++) {
    const row = matrix[i] ?? [];
    const base = Math.floor(i / size) * bc;
    for (let j = 0; j < row.length; j++) {
      const v = row[j];
      if (typeof v !== 'number' || !Number.isFinite(v)) continue;
      const k = base + Math.floor(j / size);
      sum[k] += v;
      count[k]++;
    }
  }
  const mean = new Float64Array(br * bc);
  for (let k = 0; k < mean.length; k++) mean[k] = count[k] ? sum[k] / count[k] : NaN;
  return { rows: br, cols: bc, mean, count };
}

/** Tasks [first, last] of block b, as "3" or "100-199". */
function span(b: number, size: number, total: number): string {
  const first = b * size;
  const last = Math.min(total, first + size) - 1;
  return first === last ? String(first) : `${first}-${last}`;
}

/**
 * A matrix of values in [0, 1] as coloured cells (values written in cells that
 * are large enough). Matrices wider or taller than MAX_HEAT_CELLS are drawn in
 * blocks of tasks (the title says how many).
 */
export function heatMap(o: HeatMapOptions): string {
  let width = 0;
  for (const r of o.matrix) if (r && r.length > width) width = r.length;
  const size = blockSize(o.matrix.length, width);
  const b = blockMeans(o.matrix, width, size);
  const rows = b.rows;
  const cols = b.cols;
  const left = 64;
  const top = 30;
  const bottom = 46;
  const maxW = o.maxWidth ?? 640;
  const cell = Math.max(3, Math.min(34, Math.floor((maxW - left - 70) / Math.max(1, cols))));
  const W = left + cols * cell + 70;
  const H = top + rows * cell + bottom;
  const title = size === 1 ? o.title : `${o.title} (each cell: mean over ${size} x ${size} tasks)`;
  const parts: string[] = [];
  parts.push(`<svg class="chart" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">`);
  parts.push(`<text x="${left}" y="18" class="title">${esc(title)}</text>`);
  const every = Math.max(1, Math.ceil(14 / cell));
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const v = b.mean[i * cols + j];
      const ok = Number.isFinite(v);
      const fill = ok ? blue(v) : '#e0e0e0';
      const where = size === 1 ? `after task ${i}, task ${j}` : `after tasks ${span(i, size, o.matrix.length)}, tasks ${span(j, size, width)}`;
      const what = !ok ? 'not evaluated' : size === 1 ? `${(v * 100).toFixed(1)}%` : `mean ${(v * 100).toFixed(1)}% of ${b.count[i * cols + j]} entries`;
      parts.push(`<rect x="${left + j * cell}" y="${top + i * cell}" width="${cell}" height="${cell}" fill="${fill}"><title>${esc(`${where}: ${what}`)}</title></rect>`);
      if (ok && cell >= 26) {
        const dark = v > 0.55;
        parts.push(`<text x="${left + j * cell + cell / 2}" y="${top + i * cell + cell / 2 + 3}" text-anchor="middle" class="cell" fill="${dark ? '#fff' : '#222'}">${Math.round(v * 100)}</text>`);
      }
    }
    // Ticks name the first task of each row or column of blocks.
    if (i % every === 0) parts.push(`<text x="${left - 4}" y="${top + i * cell + cell / 2 + 4}" text-anchor="end" class="tick">${i * size}</text>`);
  }
  for (let j = 0; j < cols; j += every) {
    parts.push(`<text x="${left + j * cell + cell / 2}" y="${top + rows * cell + 14}" text-anchor="middle" class="tick">${j * size}</text>`);
  }
  // colour scale
  const sx = left + cols * cell + 16;
  for (let k = 0; k < 10; k++) {
    parts.push(`<rect x="${sx}" y="${top + (9 - k) * 12}" width="14" height="12" fill="${blue((k + 0.5) / 10)}"/>`);
  }
  parts.push(`<text x="${sx + 18}" y="${top + 10}" class="tick">100%</text>`);
  parts.push(`<text x="${sx + 18}" y="${top + 120}" class="tick">0%</text>`);
  parts.push(`<text x="${left + (cols * cell) / 2}" y="${H - 8}" text-anchor="middle" class="label">${esc(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(14 ${top + (rows * cell) / 2}) rotate(-90)" text-anchor="middle" class="label">${esc(o.yLabel)}</text>`);
  parts.push('</svg>');
  return parts.join('');
}
