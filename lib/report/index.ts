// The `report` namespace: one self-contained HTML page (inline SVG and CSS,
// no scripts, no external assets) showing how a model's structure and
// accuracy changed over training or over a continual task stream.
//
//   report.write('report.html', { continual: result, events: model.events, model: { name, layers } });
//
// The input is plain JSON (ReportInput, in input.ts, which also checks it);
// fromJson() also accepts what `neuroplastic continual --json` and
// `neuroplastic train --json` print.
import type { ContinualResult } from '../continual/harness';
import { checkReportInput, inputFromJson, type ReportEvent, type ReportInput } from './input';
import { writeFileAtomic } from './file';
import { esc, heatMap, lineChart, PALETTE, type Series } from './svg';

export { writeFileAtomic } from './file';
export { lineChart, heatMap, niceTicks, esc } from './svg';
export type { Series, LineChartOptions, HeatMapOptions } from './svg';
export type { ReportEvent, ReportInput, ReportLayer } from './input';

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 24px auto; max-width: 1040px; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; } th { background: #f4f4f4; }
td.l, th.l { text-align: left; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
svg.chart { background: #fff; border: 1px solid #eee; }
svg .title { font-size: 13px; font-weight: 600; } svg .tick { font-size: 10px; fill: #555; }
svg .label { font-size: 11px; fill: #333; } svg .legend { font-size: 11px; } svg .cell { font-size: 9px; }
svg .muted { fill: #999; font-size: 12px; } svg .grid { stroke: #eee; } svg .axis { stroke: #888; }
.note { color: #666; font-size: 12px; }
`;

const MAX_EVENT_ROWS = 1000;

function num(v: unknown, digits = 4): string {
  if (typeof v !== 'number') return v === undefined || v === null ? '' : esc(v);
  if (!Number.isFinite(v)) return '-';
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(digits);
}

function pct(v: number | undefined): string {
  return typeof v === 'number' && Number.isFinite(v) ? `${(v * 100).toFixed(2)}%` : '-';
}

function toNum(v: unknown): number {
  return typeof v === 'number' ? v : NaN; // null (NaN in JSON) -> NaN
}

function indexed(values: readonly unknown[] | undefined, offset = 0): [number, number][] {
  return (values ?? []).map((v, i) => [i + offset, toNum(v)]);
}

function table(head: string[], rows: string[][], leftCols = 0): string {
  const th = head.map((h, i) => `<th${i < leftCols ? ' class="l"' : ''}>${esc(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c, i) => `<td${i < leftCols ? ' class="l"' : ''}>${c}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

/** Units of each layer over steps, from grow and compact events (their densityBefore/After hold the unit counts). */
export function unitsFromEvents(events: readonly ReportEvent[]): Series[] {
  const byLayer = new Map<number, [number, number][]>();
  for (const e of events) {
    if (e.kind !== 'grow' && e.kind !== 'compact') continue;
    let pts = byLayer.get(e.layer);
    if (!pts) byLayer.set(e.layer, (pts = [[e.step, e.densityBefore]]));
    pts.push([e.step, e.densityAfter]);
  }
  return [...byLayer.entries()].sort((a, b) => a[0] - b[0]).map(([layer, points]) => ({ name: `layer ${layer}`, points, step: true }));
}

/** Weight density of each layer over steps, from weight-level events (prune, regrow, sparsify, densify, rewind). */
export function densityFromEvents(events: readonly ReportEvent[]): Series[] {
  const byLayer = new Map<number, [number, number][]>();
  for (const e of events) {
    if (e.kind === 'grow' || e.kind === 'compact' || e.kind === 'reinit') continue;
    if (e.kind === 'prune' && e.neuronIds && e.neuronIds.length > 0) continue; // live-unit fraction, not weight density
    let pts = byLayer.get(e.layer);
    if (!pts) byLayer.set(e.layer, (pts = [[e.step, e.densityBefore]]));
    pts.push([e.step, e.densityAfter]);
  }
  return [...byLayer.entries()].sort((a, b) => a[0] - b[0]).map(([layer, points]) => ({ name: layer < 0 ? 'model' : `layer ${layer}`, points, step: true }));
}

function perLayerSeries(rows: readonly (readonly number[])[] | undefined, prefix: string): Series[] {
  if (!rows || rows.length === 0) return [];
  let layers = 0; // a loop: spreading one row per task into Math.max overflows the stack on long runs
  for (const r of rows) if (r.length > layers) layers = r.length;
  const out: Series[] = [];
  for (let l = 0; l < layers; l++) out.push({ name: `${prefix} ${l}`, points: rows.map((r, i) => [i, toNum(r[l])]), step: true });
  return out;
}

function eventTable(events: readonly ReportEvent[]): string {
  const withTask = events.some((e) => typeof e.task === 'number');
  const head = ['#', 'step', ...(withTask ? ['task'] : []), 'epoch', 'kind', 'layer', 'criterion', 'count', 'before', 'after', 'neurons'];
  const shown = events.slice(0, MAX_EVENT_ROWS);
  const rows = shown.map((e, i) => [
    String(i),
    num(e.step),
    ...(withTask ? [num(e.task)] : []),
    num(e.epoch),
    esc(e.kind),
    num(e.layer),
    esc(e.criterion ?? ''),
    num(e.count),
    num(e.densityBefore, 3),
    num(e.densityAfter, 3),
    esc(e.neuronIds && e.neuronIds.length ? (e.neuronIds.length > 8 ? `${e.neuronIds.slice(0, 8).join(', ')}, ... (${e.neuronIds.length})` : e.neuronIds.join(', ')) : ''),
  ]);
  const more = events.length > shown.length ? `<p class="note">${events.length - shown.length} more events not shown.</p>` : '';
  const kinds = new Map<string, number>();
  for (const e of events) kinds.set(e.kind, (kinds.get(e.kind) ?? 0) + 1);
  const counts = [...kinds.entries()].map(([k, n]) => `${esc(k)} ${n}`).join(', ');
  return `<p class="note">${events.length} events${counts ? `: ${counts}` : ''}. For grow and compact events, before/after are unit counts; for neuron pruning the live-unit fraction; otherwise weight density.</p>` +
    table(head, rows, 0) + more;
}

function continualSection(c: Partial<ContinualResult>): string {
  const out: string[] = [];
  const acc = c.accuracy ?? [];
  const T = acc.length;
  out.push('<h2>Continual learning</h2>');
  const avg = c.averageAccuracy ?? [];
  const plast = c.plasticity ?? [];
  const forg = c.forgetting ?? [];
  const dead = c.deadUnitFraction ?? [];
  const finite = (xs: readonly unknown[]) => xs.map(toNum).filter(Number.isFinite);
  const meanF = (xs: readonly unknown[]) => {
    const f = finite(xs);
    return f.length ? f.reduce((a, b) => a + b, 0) / f.length : NaN;
  };
  out.push(table(['tasks', 'final average accuracy', 'mean new-task accuracy', 'mean forgetting', 'final dead units', 'final params'], [[
    String(T),
    pct(toNum(avg[avg.length - 1])),
    pct(meanF(plast)),
    pct(meanF(forg.slice(0, -1))),
    pct(toNum(dead[dead.length - 1])),
    num(c.params?.[c.params.length - 1]),
  ]]));
  out.push('<div class="charts">');
  out.push(lineChart({
    title: 'Accuracy over tasks',
    xLabel: 'after training task',
    yLabel: 'test accuracy',
    yFormat: 'percent',
    series: [
      { name: 'new task (plasticity)', points: indexed(plast) },
      { name: 'average of seen tasks', points: indexed(avg) },
      { name: 'task 0', points: acc.map((r, i) => [i, toNum(r?.[0])]) },
    ],
  }));
  out.push(lineChart({ title: 'New-task accuracy (plasticity)', xLabel: 'task', yLabel: 'accuracy right after training on it', yFormat: 'percent', series: [{ name: 'new task', points: indexed(plast) }] }));
  out.push(lineChart({ title: 'Dead hidden units', xLabel: 'after training task', yLabel: 'fraction of hidden units', yFormat: 'percent', yMin: 0, series: [{ name: 'dead units', points: indexed(dead), color: PALETTE[1] }] }));
  if (forg.length) {
    out.push(lineChart({ title: 'Forgetting per task', xLabel: 'task', yLabel: 'best accuracy - final accuracy', yFormat: 'percent', series: [{ name: 'forgetting', points: indexed(forg), color: PALETTE[3] }] }));
  }
  if (c.units?.length) out.push(lineChart({ title: 'Units per layer', xLabel: 'after training task', yLabel: 'units', series: perLayerSeries(c.units, 'dense') }));
  if (c.density?.length) out.push(lineChart({ title: 'Weight density per layer', xLabel: 'after training task', yLabel: 'density', yFormat: 'percent', series: perLayerSeries(c.density, 'dense') }));
  if (c.params?.length) out.push(lineChart({ title: 'Parameters', xLabel: 'after training task', yLabel: 'parameters', series: [{ name: 'params', points: indexed(c.params) }, ...(c.nnz?.length ? [{ name: 'nnz weights', points: indexed(c.nnz) }] : [])] }));
  out.push('</div>');
  if (T > 0) {
    out.push(heatMap({ title: 'Accuracy matrix: row i = after training task i, column j = tested on task j', xLabel: 'tested on task', yLabel: 'after training task', matrix: acc.map((r) => (r ?? []).map(toNum)) }));
  }
  return out.join('\n');
}

function compareSection(runs: NonNullable<ReportInput['compare']>): string {
  const out: string[] = ['<h2>Methods compared</h2>'];
  const k = (r: Partial<ContinualResult>) => Math.max(1, Math.min(5, Math.floor((r.plasticity?.length ?? 0) / 2)));
  const mean = (xs: readonly unknown[]) => {
    const f = xs.map(toNum).filter(Number.isFinite);
    return f.length ? f.reduce((a, b) => a + b, 0) / f.length : NaN;
  };
  const rows = runs.map(({ name, result: r }) => {
    const p = r.plasticity ?? [];
    const n = k(r);
    const first = mean(p.slice(0, n));
    const last = mean(p.slice(p.length - n));
    const dead = r.deadUnitFraction ?? [];
    return [esc(name), String(p.length), pct(first), pct(last), Number.isFinite(first - last) ? ((last - first) * 100).toFixed(2) : '-',
      pct(toNum(dead[dead.length - 1])), num(r.params?.[r.params.length - 1]), String(r.events?.length ?? 0)];
  });
  out.push(table(['method', 'tasks', 'first tasks acc', 'last tasks acc', 'change (points)', 'dead units (end)', 'params (end)', 'events'], rows, 1));
  out.push('<p class="note">first/last tasks: mean new-task accuracy over the first and the last 5 tasks (fewer for short streams).</p>');
  out.push('<div class="charts">');
  const series = (pick: (r: Partial<ContinualResult>) => readonly unknown[] | undefined): Series[] =>
    runs.map(({ name, result }, i) => ({ name, points: indexed(pick(result)), color: PALETTE[i % PALETTE.length] }));
  out.push(lineChart({ title: 'New-task accuracy per task', xLabel: 'task', yLabel: 'accuracy right after training on it', yFormat: 'percent', series: series((r) => r.plasticity), width: 1000, height: 360 }));
  out.push(lineChart({ title: 'Dead hidden units', xLabel: 'after training task', yLabel: 'fraction of hidden units', yFormat: 'percent', yMin: 0, series: series((r) => r.deadUnitFraction) }));
  out.push(lineChart({ title: 'Parameters', xLabel: 'after training task', yLabel: 'parameters', series: series((r) => r.params) }));
  out.push('</div>');
  return out.join('\n');
}

/** The report as one HTML document (a string). */
export function render(report: ReportInput): string {
  const input = checkReportInput('report.render()', report);
  const title = input.title ?? (input.continual ? 'neuroplastic continual run' : 'neuroplastic training report');
  const body: string[] = [];
  body.push(`<h1>${esc(title)}</h1>`);
  if (input.subtitle) body.push(`<p class="sub">${esc(input.subtitle)}</p>`);
  if (input.meta && Object.keys(input.meta).length) {
    body.push(table(['', 'value'], Object.entries(input.meta).map(([k, v]) => [esc(k), esc(v)]), 2));
  }
  const m = input.model;
  if (m) {
    const facts: string[] = [];
    if (m.name) facts.push(`model <b>${esc(m.name)}</b>`);
    if (m.architecture) facts.push(`architecture ${esc(m.architecture.join('-'))}`);
    if (typeof m.params === 'number') facts.push(`${m.params} parameters`);
    if (typeof m.nnz === 'number') facts.push(`${m.nnz} stored weights`);
    body.push('<h2>Model</h2>');
    if (facts.length) body.push(`<p>${facts.join(', ')}</p>`);
    if (m.layers?.length) {
      body.push(table(['layer', 'units', 'inputs', 'nnz', 'density', 'format'],
        m.layers.map((l, i) => [String(i), num(l.units), num(l.inputs), num(l.nnz), num(l.density, 3), esc(l.format ?? '')])));
    }
  }
  const h = input.history;
  if (h && (h.accuracy?.length || h.loss?.length)) {
    body.push('<h2>Training</h2><div class="charts">');
    body.push(lineChart({
      title: 'Accuracy per epoch',
      xLabel: 'epoch',
      yLabel: 'accuracy',
      yFormat: 'percent',
      series: [{ name: 'train', points: indexed(h.accuracy, 1) }, ...(h.valAccuracy?.length ? [{ name: 'validation', points: indexed(h.valAccuracy, 1) }] : [])],
    }));
    body.push(lineChart({
      title: 'Loss per epoch',
      xLabel: 'epoch',
      yLabel: 'mean loss',
      series: [{ name: 'train', points: indexed(h.loss, 1) }, ...(h.valLoss?.length ? [{ name: 'validation', points: indexed(h.valLoss, 1) }] : [])],
    }));
    body.push('</div>');
  }
  if (input.continual) body.push(continualSection(input.continual));
  if (input.compare?.length) body.push(compareSection(input.compare));
  const events = input.events ?? (input.continual?.events as ReportEvent[] | undefined) ?? [];
  body.push('<h2>Structure over training</h2>');
  const units = unitsFromEvents(events);
  const density = densityFromEvents(events);
  if (units.length || density.length) {
    body.push('<div class="charts">');
    if (units.length) body.push(lineChart({ title: 'Units per layer (grow / compact events)', xLabel: 'step', yLabel: 'units', series: units }));
    if (density.length) body.push(lineChart({ title: 'Weight density per layer (prune / regrow events)', xLabel: 'step', yLabel: 'density', yFormat: 'percent', series: density }));
    const reinit = events.filter((e) => e.kind === 'reinit' || e.kind === 'regrow');
    if (reinit.length) {
      const byLayer = new Map<number, [number, number][]>();
      for (const e of reinit) {
        const pts = byLayer.get(e.layer) ?? [];
        pts.push([e.step, (pts.length ? pts[pts.length - 1][1] : 0) + e.count]);
        byLayer.set(e.layer, pts);
      }
      body.push(lineChart({
        title: 'Reinitialised / regrown (cumulative)',
        xLabel: 'step',
        yLabel: 'neurons or weights',
        series: [...byLayer.entries()].map(([l, points]) => ({ name: `layer ${l}`, points, step: true })),
      }));
    }
    body.push('</div>');
  } else {
    body.push('<p class="note">No structural change was logged (no grow, prune, compact or reinit events).</p>');
  }
  body.push('<h2>Event timeline</h2>');
  body.push(events.length ? eventTable(events) : '<p class="note">No events.</p>');
  body.push(`<p class="note">Generated by neuroplastic on ${esc(new Date().toISOString())}.</p>`);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${STYLE}</style>
</head>
<body>
${body.join('\n')}
</body>
</html>
`;
}

/** A comparison page of several continual runs (the loss-of-plasticity bench). */
export function renderComparison(o: { title: string; subtitle?: string; runs: { name: string; result: Partial<ContinualResult> }[] }): string {
  return render({ title: o.title, subtitle: o.subtitle, compare: o.runs, events: [] });
}

/** Renders `input` and writes it to `file` atomically. */
export function write(file: string, input: ReportInput): void {
  writeFileAtomic(file, render(input));
}

/**
 * The ReportInput for a parsed JSON document: the output of `neuroplastic
 * continual --json` (command 'continual'), of `neuroplastic train --json`
 * (command 'train'), or a ReportInput itself. Throws a TypeError naming the
 * field on anything else, or on a field of the wrong shape.
 */
export function fromJson(doc: unknown): ReportInput {
  return inputFromJson('report.fromJson()', doc);
}
