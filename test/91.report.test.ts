// The HTML/SVG report: a self-contained page with charts, the accuracy
// matrix and the event timeline, written atomically.
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as report from '../lib/report';
import type { ReportEvent } from '../lib/report';
import { thinToPixels } from '../lib/report/svg';

function event(over: Partial<ReportEvent>): ReportEvent {
  return {
    step: 0, epoch: 0, kind: 'prune', layer: 0, criterion: 'magnitude', count: 1, neuronIds: [], scores: [],
    densityBefore: 1, densityAfter: 1, ...over,
  };
}

const EVENTS: ReportEvent[] = [
  event({ step: 10, kind: 'prune', layer: 0, criterion: 'taylor', count: 3, neuronIds: [4, 7, 9], densityBefore: 1, densityAfter: 0.9, task: 0 }),
  event({ step: 10, kind: 'compact', layer: 0, criterion: 'dead units', count: 3, neuronIds: [4, 7, 9], densityBefore: 30, densityAfter: 27, task: 0 }),
  event({ step: 20, kind: 'grow', layer: 2, criterion: 'zero', count: 5, neuronIds: [40, 41, 42, 43, 44], densityBefore: 10, densityAfter: 15, task: 1 }),
  event({ step: 30, kind: 'prune', layer: 2, criterion: 'magnitude <script>', count: 50, densityBefore: 1, densityAfter: 0.5, task: 1 }),
  event({ step: 35, kind: 'reinit', layer: 0, criterion: 'cbp', count: 1, neuronIds: [12], task: 1 }),
];

const CONTINUAL = {
  tasks: ['t0', 't1', 't2'],
  accuracy: [[0.9], [0.6, 0.8], [0.5, 0.7, 0.95]],
  averageAccuracy: [0.9, 0.7, 0.7167],
  forgetting: [0.4, 0.1, 0],
  plasticity: [0.9, 0.8, 0.95],
  deadUnitFraction: [0, 0.05, 0.1],
  params: [100, 110, 105],
  nnz: [90, 95, 92],
  units: [[30, 10, 4], [27, 15, 4], [27, 15, 4]],
  density: [[1, 1, 1], [1, 0.5, 1], [1, 0.5, 1]],
  events: EVENTS as (ReportEvent & { task: number })[],
};

/** Tags that open and close must balance (a cheap well-formedness check; void tags excluded). */
function balanced(html: string): boolean {
  const VOID = new Set(['meta', 'br', 'hr', 'img', 'input', 'link', 'line', 'circle', 'rect', 'polyline', 'path']);
  const stack: string[] = [];
  const re = /<(\/?)([a-zA-Z][a-zA-Z0-9]*)([^>]*?)(\/?)>/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(html))) {
    const [, close, rawName, , selfClose] = m;
    const name = rawName.toLowerCase();
    if (selfClose || (VOID.has(name) && !close)) continue;
    if (close) {
      if (VOID.has(name)) continue;
      if (stack.pop() !== name) return false;
    } else stack.push(name);
  }
  return stack.length === 0;
}

describe('report', () => {
  it('renders a continual run: charts, heat map, event rows, no external URLs', () => {
    const html = report.render({ title: 'A & B', continual: CONTINUAL, events: EVENTS, model: { name: 'mlp', layers: [{ units: 27, inputs: 16, nnz: 400, density: 0.9, format: 'dense' }] } });
    expect(html.startsWith('<!DOCTYPE html>')).to.equal(true);
    expect(html).to.include('<title>A &amp; B</title>');
    expect(html.match(/<svg/g)!.length).to.be.greaterThan(5);
    expect(html.match(/<svg/g)!.length).to.equal(html.match(/<\/svg>/g)!.length);
    expect(balanced(html)).to.equal(true);
    // no scripts and nothing loaded from elsewhere
    expect(html).to.not.match(/https?:\/\//);
    expect(html).to.not.match(/<script|<link|src=/i);
    expect(html).to.include('magnitude &lt;script&gt;');
    // one row per event, with its kind and task
    const rows = html.split('Event timeline')[1];
    for (const kind of ['prune', 'compact', 'grow', 'reinit']) expect(rows).to.include(`<td>${kind}</td>`);
    expect(rows.match(/<tr>/g)!.length).to.equal(EVENTS.length + 1);
    // the heat map has one cell per evaluated entry, with the value in its tooltip
    expect(html).to.include('after task 2, task 1: 70.0%');
    expect(html).to.include('Accuracy matrix');
    expect(html).to.include('New-task accuracy');
    expect(html).to.include('Dead hidden units');
    expect(html).to.include('Units per layer');
    expect(html).to.include('Weight density per layer');
    // axis labels
    expect(html).to.include('after training task');
  });

  it('reconstructs units and density over steps from events', () => {
    const units = report.unitsFromEvents(EVENTS);
    expect(units.map((s) => s.name)).to.deep.equal(['layer 0', 'layer 2']);
    expect(units[0].points).to.deep.equal([[10, 30], [10, 27]]);
    expect(units[1].points).to.deep.equal([[20, 10], [20, 15]]);
    const density = report.densityFromEvents(EVENTS);
    // the neuron prune (live-unit fraction) is left out
    expect(density.map((s) => s.name)).to.deep.equal(['layer 2']);
    expect(density[0].points).to.deep.equal([[30, 1], [30, 0.5]]);
  });

  it('renders a training history, a comparison and an empty run', () => {
    const train = report.render({ history: { loss: [1, 0.5], accuracy: [0.6, 0.8], valLoss: [1.1, 0.7], valAccuracy: [0.55, 0.75] } });
    expect(train).to.include('Accuracy per epoch');
    expect(train).to.include('No events.');
    expect(balanced(train)).to.equal(true);
    const cmp = report.renderComparison({ title: 'cmp', runs: [{ name: 'sgd', result: CONTINUAL }, { name: 'cbp', result: { ...CONTINUAL, plasticity: [0.9, 0.9, 0.9] } }] });
    expect(cmp).to.include('<td class="l">cbp</td>');
    expect(balanced(cmp)).to.equal(true);
    expect(balanced(report.render({}))).to.equal(true);
  });

  it('reads the JSON of continual --json, train --json and report inputs', () => {
    const c = report.fromJson({ command: 'continual', method: 'cbp', ...CONTINUAL, layers: [{ units: 27 }] });
    expect(c.continual!.accuracy).to.deep.equal(CONTINUAL.accuracy);
    expect(c.events).to.have.length(EVENTS.length);
    expect(c.meta!.method).to.equal('cbp');
    const t = report.fromJson({ command: 'train', history: { loss: [1], accuracy: [0.5] }, layers: [{ units: 10 }], architecture: [4, 10] });
    expect(t.history!.accuracy).to.deep.equal([0.5]);
    expect(report.fromJson({ events: [] })).to.deep.equal({ events: [] });
    expect(() => report.fromJson({ nothing: 1 })).to.throw(/unrecognised/);
    expect(() => report.fromJson([1])).to.throw(/object/);
    // NaN entries come back from JSON as null and are drawn as gaps
    const html = report.render(report.fromJson(JSON.parse(JSON.stringify({ command: 'continual', ...CONTINUAL, accuracy: [[0.9], [NaN, 0.8]] }))));
    expect(html).to.include('not evaluated');
  });

  it('write() writes atomically (no temporary file left)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-report-'));
    try {
      const file = path.join(dir, 'r.html');
      fs.writeFileSync(file, 'old');
      report.write(file, { continual: CONTINUAL });
      expect(fs.readFileSync(file, 'utf8')).to.include('<svg');
      expect(fs.readdirSync(dir)).to.deep.equal(['r.html']);
      expect(() => report.write(path.join(dir, 'missing', 'r.html'), {})).to.throw();
      expect(fs.readdirSync(dir)).to.deep.equal(['r.html']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('report: long series', () => {
  it('thinToPixels keeps, per pixel column, the first, lowest, highest and last point in order', () => {
    const points: [number, number][] = [[0.1, 5], [0.2, 1], [0.3, 9], [0.4, 4], [0.45, 6], [1.2, 3], [1.3, 3], [2.0, 7]];
    expect(thinToPixels(points)).to.deep.equal([[0.1, 5], [0.2, 1], [0.3, 9], [0.45, 6], [1.2, 3], [1.3, 3], [2.0, 7]]);
    expect(thinToPixels(points.slice(0, 3))).to.deep.equal(points.slice(0, 3));
  });

  it('a 150,000-epoch history draws a few points per pixel, not 150,000', () => {
    const values = Array.from({ length: 150_000 }, (_, i) => 0.5 + 0.4 * Math.sin(i / 50));
    const html = report.render({ history: { loss: values, accuracy: values } } as never);
    expect(html.length).to.be.below(200_000);
    const polyline = /<polyline[^>]*points="([^"]+)"/.exec(html);
    expect(polyline).to.not.equal(null);
    expect(polyline![1].split(' ').length).to.be.below(4 * 720);
  });
});
