// The text table printed by Sequential.summary() and the CLI.
import { DenseLayer, type Layer } from './layers';

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

/** Renders rows as a plain table with right-aligned numeric columns. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c <= 1 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ');
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(header), rule, ...rows.map(line)].join('\n');
}

export function formatSummary(name: string, inputSize: number, layers: readonly Layer[], totalParams: number | null): string {
  const header = ['#', 'layer', 'units', 'inputs', 'params', 'nnz', 'density', 'format', 'bytes'];
  const rows: string[][] = [];
  let inputs = inputSize;
  layers.forEach((layer, i) => {
    if (layer instanceof DenseLayer) {
      const built = layer.built;
      const units = layer.units;
      const params = built ? layer.paramCount : units * inputs + (layer.useBias ? units : 0);
      rows.push([
        String(i),
        `dense(${layer.activation})`,
        String(units),
        String(built ? layer.inputs : inputs),
        String(params),
        built ? String(layer.nnz) : '-',
        built ? layer.density.toFixed(3) : '-',
        built ? layer.format : '-',
        built ? formatBytes(layer.bytes) : '-',
      ]);
      inputs = units;
    } else {
      rows.push([String(i), `dropout(${layer.rate})`, '', '', '0', '', '', '', '']);
    }
  });
  const total = totalParams ?? rows.reduce((s, r) => s + Number(r[4] || 0), 0);
  return `Model: ${name} (inputSize ${inputSize})\n${formatTable(header, rows)}\nTotal parameters: ${total}`;
}
