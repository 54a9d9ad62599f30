// The --svg chart: training samples/s per implementation for each network
// (log scale, so TF.js cpu stays visible next to us), and, when GEMM ran, our
// GEMM speed over OpenBLAS per shape. Everything a reader needs is written on
// the chart (machine, threads, batch, the values and ratios), no JSON needed.
import type { BenchResult, MachineInfo } from './types';

const COLORS: { [impl: string]: string } = {
  neuroplastic: '#1f77b4',
  pytorch: '#ee4c2c',
  'tfjs-cpu': '#f5a623',
  'tfjs-wasm': '#8e6bbf',
  openblas: '#7f7f7f',
};
const color = (impl: string) => COLORS[impl] ?? '#2ca02c';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function num(v: number): string {
  if (!Number.isFinite(v)) return '-';
  if (v >= 1000) return Math.round(v).toLocaleString('en-US');
  return v.toPrecision(3);
}

const WIDTH = 960;
const LABEL_W = 230;
const BAR_W = 470;
const ROW_H = 18;

export function renderSvg(machine: MachineInfo, results: BenchResult[]): string {
  const parts: string[] = [];
  let y = 0;
  const text = (x: number, yy: number, s: string, attrs = '') => parts.push(`<text x="${+x.toFixed(1)}" y="${yy}" ${attrs}>${esc(s)}</text>`);

  y += 24;
  text(12, y, 'neuroplastic benchmarks', 'font-size="18" font-weight="bold"');
  y += 18;
  text(12, y, `${machine.cpu}, ${machine.cores} cores; our SIMD level ${machine.simd}; node ${machine.node}; ${machine.date.slice(0, 10)}`, 'font-size="12" fill="#444"');
  y += 16;
  text(12, y, Object.entries(machine.versions).map(([k, v]) => `${k} ${v}`).join(', '), 'font-size="12" fill="#444"');
  y += 10;

  // Training: one group per (bench, network, batch, thread count).
  const train = results.filter((r) => r.bench.startsWith('train') && typeof r.samples_per_s === 'number');
  if (train.length) {
    y += 28;
    text(12, y, 'Training throughput: samples/s (log scale; longer is faster). "ours Nx" = our samples/s over that implementation\'s, same run.', 'font-size="14" font-weight="bold"');
    const sps = train.map((r) => r.samples_per_s as number);
    const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...sps))));
    const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...sps)) + 1e-9));
    const span = Math.log10(hi) - Math.log10(lo) || 1;
    const xOf = (v: number) => LABEL_W + (BAR_W * (Math.log10(v) - Math.log10(lo))) / span;
    const groups = [...new Set(train.map((r) => `${r.bench}|${r.shape}|${r.batch}|${String(r.round_threads ?? r.threads)}`))];
    y += 8;
    const top = y;
    for (const g of groups) {
      const [bench, shape, batch, threads] = g.split('|');
      const rows = train.filter((r) => `${r.bench}|${r.shape}|${r.batch}|${String(r.round_threads ?? r.threads)}` === g);
      const ours = rows.find((r) => r.impl === 'neuroplastic');
      y += 22;
      text(12, y, `${shape} (${bench === 'train-small' ? 'small' : 'MLP'}), batch ${batch}, ${threads} thread${threads === '1' ? '' : 's'}`, 'font-size="13" font-weight="bold"');
      for (const r of rows) {
        y += ROW_H + 2;
        const v = r.samples_per_s as number;
        const w = Math.max(1, xOf(v) - LABEL_W);
        text(LABEL_W - 8, y - 4, `${r.impl} (${r.threads} thr, ${r.simd})`, 'font-size="12" text-anchor="end"');
        parts.push(`<rect x="${LABEL_W}" y="${y - ROW_H + 2}" width="${w.toFixed(1)}" height="${ROW_H - 4}" fill="${color(r.impl)}"/>`);
        const per = r.bench === 'train-small' ? `${num(r.median_ms * 1000)} us/step` : `${num(r.median_ms)} ms/step`;
        const vs = ours && r.impl !== 'neuroplastic' ? `, ours ${num(r.median_ms / ours.median_ms)}x` : '';
        text(LABEL_W + w + 6, y - 4, `${num(v)} samples/s (${per}${vs})`, 'font-size="12"');
      }
      y += 4;
    }
    // Decade grid lines over the whole training panel.
    for (let d = lo; d <= hi * 1.0001; d *= 10) {
      const x = xOf(d);
      parts.push(`<line x1="${x.toFixed(1)}" y1="${top}" x2="${x.toFixed(1)}" y2="${y}" stroke="#ddd" stroke-dasharray="3,3"/>`);
      text(x, y + 14, num(d), 'font-size="10" text-anchor="middle" fill="#666"');
    }
    y += 20;
  }

  // GEMM: our best level's speed over OpenBLAS per shape (linear, 1.0 marked).
  const gemm = results.filter((r) => r.bench === 'gemm' && r.impl === 'neuroplastic' && typeof r.ratio_to.openblas === 'number');
  if (gemm.length) {
    const best = new Map<string, BenchResult>();
    for (const r of gemm) {
      const key = `${r.threads}|${r.shape}|${String(r.trans ?? '')}`;
      const have = best.get(key);
      if (!have || r.ratio_to.openblas > have.ratio_to.openblas) best.set(key, r);
    }
    const rows = [...best.values()];
    const maxRatio = Math.max(1.25, ...rows.map((r) => r.ratio_to.openblas));
    const xOf = (v: number) => LABEL_W + (BAR_W * v) / maxRatio;
    y += 28;
    text(12, y, 'Dense GEMM: our GFLOP/s over OpenBLAS sgemm (best SIMD level; right of the line = faster than OpenBLAS)', 'font-size="14" font-weight="bold"');
    y += 8;
    const top = y;
    for (const r of rows) {
      y += ROW_H;
      const ratio = r.ratio_to.openblas;
      text(LABEL_W - 8, y - 4, `${r.shape} ${String(r.trans ?? '')}, ${r.threads} thr`, 'font-size="11" text-anchor="end"');
      parts.push(`<rect x="${LABEL_W}" y="${y - ROW_H + 3}" width="${(xOf(ratio) - LABEL_W).toFixed(1)}" height="${ROW_H - 5}" fill="${ratio >= 1 ? color('neuroplastic') : '#d62728'}"/>`);
      text(xOf(ratio) + 6, y - 4, `${ratio.toFixed(2)}x (${num(r.gflops)} GFLOP/s, ${r.simd})`, 'font-size="11"');
    }
    parts.push(`<line x1="${xOf(1).toFixed(1)}" y1="${top}" x2="${xOf(1).toFixed(1)}" y2="${y + 4}" stroke="#000" stroke-width="1"/>`);
    text(xOf(1), y + 16, '1.0x = OpenBLAS', 'font-size="10" text-anchor="middle"');
    y += 24;
  }

  if (!train.length && !gemm.length) {
    y += 30;
    text(12, y, 'No results to draw.', 'font-size="14"');
  }
  y += 16;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
