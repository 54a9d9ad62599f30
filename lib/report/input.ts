// What a report reads: the ReportInput shape, the conversion of saved runs
// (`continual --json`, `train --json`) into it, and the checks of both.
//
// The input usually comes from a JSON file, so nothing about it can be taken
// on trust: every field the renderer uses is checked here, and a bad one is a
// TypeError naming the field's path in the document the user wrote
// (`continual.accuracy[3][1] must be a number or null, got "x"`), not an
// internal failure halfway through rendering. JSON has no NaN, so null stands
// for a missing or non-finite number, and null or undefined for an absent
// optional field. Fields the renderer does not read are left alone.
import type { ContinualResult } from '../continual/harness';
import type { StructuralEvent } from '../events';
import { describe } from '../validate';

/** A structural event as the report reads it (the task is set for continual runs). */
export type ReportEvent = StructuralEvent & { task?: number };

export interface ReportLayer {
  units: number;
  inputs?: number;
  nnz?: number;
  density?: number;
  format?: string;
}

/**
 * What a report shows; every field is optional. This is also the JSON shape
 * `neuroplastic report --from FILE` reads (besides the outputs of
 * `continual --json` and `train --json`).
 */
export interface ReportInput {
  title?: string;
  /** A line under the title (data, architecture, method...). */
  subtitle?: string;
  /** Key-value facts shown in a table at the top. */
  meta?: Record<string, string | number | boolean>;
  /** The model after training. */
  model?: { name?: string; architecture?: number[]; layers?: ReportLayer[]; params?: number; nnz?: number };
  /** Per-epoch curves (a fit() History's `history`, or train --json's `history`). */
  history?: { loss?: number[]; accuracy?: number[]; valLoss?: number[]; valAccuracy?: number[] };
  /** A continual run (continual.run()'s result). */
  continual?: Partial<ContinualResult>;
  /** Several continual runs to compare (e.g. one per plasticity method): new-task accuracy, dead units, params. */
  compare?: { name: string; result: Partial<ContinualResult> }[];
  /** The structural event log (model.events, or a continual result's events). */
  events?: ReportEvent[];
}

type Doc = Record<string, any>;

function isObject(v: unknown): v is Doc {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function absent(v: unknown): boolean {
  return v === undefined || v === null;
}

function fail(where: string, path: string, expected: string, value: unknown): never {
  throw new TypeError(`${where}: ${path} must be ${expected}, got ${describe(value)}`);
}

/** `prefix` + `key`: the path of a field in the document, for messages. */
type At = (key: string) => string;

function at(prefix: string): At {
  return (key) => prefix + key;
}

function checkString(where: string, path: string, v: unknown): void {
  if (!absent(v) && typeof v !== 'string') fail(where, path, 'a string', v);
}

function checkNumber(where: string, path: string, v: unknown): void {
  if (!absent(v) && typeof v !== 'number') fail(where, path, 'a number or null', v);
}

/** An optional object field: the object, or undefined when absent. */
function optionalObject(where: string, path: string, v: unknown): Doc | undefined {
  if (absent(v)) return undefined;
  if (!isObject(v)) fail(where, path, 'an object', v);
  return v;
}

/** An array of numbers (null for NaN), e.g. one value per task or epoch. */
function checkNumbers(where: string, path: string, v: unknown): void {
  if (absent(v)) return;
  if (!Array.isArray(v)) fail(where, path, 'an array of numbers', v);
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (x !== null && typeof x !== 'number') fail(where, `${path}[${i}]`, 'a number or null', x);
  }
}

/** Rows of numbers (rows may differ in length: the accuracy matrix of 'seen' is a triangle). */
function checkMatrix(where: string, path: string, v: unknown): void {
  if (absent(v)) return;
  if (!Array.isArray(v)) fail(where, path, 'a matrix of numbers (an array of rows of numbers)', v);
  for (let i = 0; i < v.length; i++) {
    if (!Array.isArray(v[i])) fail(where, `${path}[${i}]`, 'a row of numbers (an array)', v[i]);
    checkNumbers(where, `${path}[${i}]`, v[i]);
  }
}

/** The fields of a ContinualResult the renderer reads; `f` names them as the document spells them. */
function checkContinualFields(where: string, f: At, c: Doc): void {
  for (const key of ['accuracy', 'units', 'density']) checkMatrix(where, f(key), c[key]);
  for (const key of ['averageAccuracy', 'forgetting', 'plasticity', 'deadUnitFraction', 'params', 'nnz']) {
    checkNumbers(where, f(key), c[key]);
  }
  checkEvents(where, f('events'), c.events);
}

function checkEvent(where: string, path: string, e: unknown): void {
  if (!isObject(e)) fail(where, path, 'an event object ({ step, kind, layer, ... })', e);
  if (typeof e.kind !== 'string') fail(where, `${path}.kind`, "a string (e.g. 'prune')", e.kind);
  // step and layer key the charts and the table: a missing one is a broken event, not a gap.
  if (typeof e.step !== 'number') fail(where, `${path}.step`, 'a number', e.step);
  if (typeof e.layer !== 'number') fail(where, `${path}.layer`, 'a number', e.layer);
  for (const key of ['epoch', 'task', 'count', 'densityBefore', 'densityAfter']) checkNumber(where, `${path}.${key}`, e[key]);
  checkString(where, `${path}.criterion`, e.criterion);
  checkNumbers(where, `${path}.neuronIds`, e.neuronIds);
}

function checkEvents(where: string, path: string, v: unknown): void {
  if (absent(v)) return;
  if (!Array.isArray(v)) fail(where, path, 'an array of events', v);
  for (let i = 0; i < v.length; i++) checkEvent(where, `${path}[${i}]`, v[i]);
}

function checkLayers(where: string, path: string, v: unknown): void {
  if (absent(v)) return;
  if (!Array.isArray(v)) fail(where, path, 'an array of layers ({ units, inputs, nnz, density, format })', v);
  for (let i = 0; i < v.length; i++) {
    const l = v[i];
    if (!isObject(l)) fail(where, `${path}[${i}]`, 'a layer object ({ units, inputs, nnz, density, format })', l);
    for (const key of ['units', 'inputs', 'nnz', 'density']) checkNumber(where, `${path}[${i}].${key}`, l[key]);
    checkString(where, `${path}[${i}].format`, l.format);
  }
}

/** The model fields; `f` names them as the document spells them (top level in train/continual --json). */
function checkModelFields(where: string, f: At, m: Doc, keys: readonly string[]): void {
  const checks: Record<string, (path: string, v: unknown) => void> = {
    name: (p, v) => checkString(where, p, v),
    architecture: (p, v) => checkNumbers(where, p, v),
    layers: (p, v) => checkLayers(where, p, v),
    params: (p, v) => checkNumber(where, p, v),
    nnz: (p, v) => checkNumber(where, p, v),
  };
  for (const key of keys) checks[key](f(key), m[key]);
}

function checkHistory(where: string, path: string, v: unknown): void {
  const h = optionalObject(where, path, v);
  if (h) for (const key of ['loss', 'accuracy', 'valLoss', 'valAccuracy']) checkNumbers(where, `${path}.${key}`, h[key]);
}

function checkMeta(where: string, v: unknown): void {
  const meta = optionalObject(where, 'meta', v);
  if (!meta) return;
  for (const [key, value] of Object.entries(meta)) {
    const t = typeof value;
    if (value !== null && t !== 'string' && t !== 'number' && t !== 'boolean') {
      fail(where, `meta.${key}`, 'a string, number or boolean', value);
    }
  }
}

function checkCompare(where: string, v: unknown): void {
  if (absent(v)) return;
  if (!Array.isArray(v)) fail(where, 'compare', 'an array of { name, result } runs', v);
  v.forEach((run, i) => {
    if (!isObject(run)) fail(where, `compare[${i}]`, 'a { name, result } object', run);
    if (typeof run.name !== 'string') fail(where, `compare[${i}].name`, 'a string', run.name);
    if (!isObject(run.result)) fail(where, `compare[${i}].result`, 'an object with continual result fields', run.result);
    checkContinualFields(where, at(`compare[${i}].result.`), run.result);
  });
}

/**
 * Checks every field of `input` the renderer reads and returns it; throws a
 * TypeError naming the first bad field (`where: continual.accuracy must be ...`).
 */
export function checkReportInput(where: string, input: unknown): ReportInput {
  if (!isObject(input)) fail(where, 'input', 'an object (see ReportInput)', input);
  checkString(where, 'title', input.title);
  checkString(where, 'subtitle', input.subtitle);
  checkMeta(where, input.meta);
  const model = optionalObject(where, 'model', input.model);
  if (model) checkModelFields(where, at('model.'), model, ['name', 'architecture', 'layers', 'params', 'nnz']);
  checkHistory(where, 'history', input.history);
  const c = optionalObject(where, 'continual', input.continual);
  if (c) checkContinualFields(where, at('continual.'), c);
  checkCompare(where, input.compare);
  checkEvents(where, 'events', input.events);
  return input as ReportInput;
}

const KNOWN = ['title', 'subtitle', 'meta', 'model', 'history', 'continual', 'compare', 'events'];

function fromContinualJson(where: string, doc: Doc): ReportInput {
  const nested = isObject(doc.result);
  const result: Doc = nested ? doc.result : doc;
  // Checked where the user's document has them, so that messages name its fields.
  checkContinualFields(where, at(nested ? 'result.' : ''), result);
  const meta: Record<string, string | number> = {};
  for (const k of ['method', 'tasks', 'epochsPerTask', 'batchSize', 'lr', 'seed', 'version', 'device', 'deviceName', 'simd', 'threads']) {
    const v = doc[k];
    if (typeof v === 'string' || typeof v === 'number') meta[k] = v;
    else if (Array.isArray(v) && k === 'tasks') meta[k] = v.length;
  }
  if (isObject(doc.data) && typeof doc.data.source === 'string') meta.data = doc.data.source;
  let model: ReportInput['model'];
  if (Array.isArray(doc.layers)) {
    checkModelFields(where, at(''), doc, ['name', 'architecture', 'layers']);
    const params = Array.isArray(result.params) ? result.params[result.params.length - 1] : undefined;
    model = { name: doc.name ?? undefined, architecture: doc.architecture ?? undefined, layers: doc.layers, params: params ?? undefined };
  }
  return {
    title: `neuroplastic continual: ${typeof doc.method === 'string' ? doc.method : 'run'}`,
    subtitle: typeof doc.subtitle === 'string' ? doc.subtitle : undefined,
    meta,
    model,
    continual: result as Partial<ContinualResult>,
    events: Array.isArray(result.events) ? result.events : [],
  };
}

function fromTrainJson(where: string, doc: Doc): ReportInput {
  checkModelFields(where, at(''), doc, ['architecture', 'layers', 'params', 'nnz']);
  checkHistory(where, 'history', doc.history);
  checkEvents(where, 'events', doc.events);
  const meta: Record<string, string | number> = {};
  if (isObject(doc.data)) meta.data = `${doc.data.source ?? doc.data.name} (${doc.data.train} train / ${doc.data.test} test)`;
  for (const k of ['epochs', 'batchSize', 'seed', 'accuracy', 'loss', 'seconds', 'version', 'device', 'deviceName']) {
    if (typeof doc[k] === 'number' || typeof doc[k] === 'string') meta[k] = doc[k];
  }
  if (isObject(doc.optimizer)) meta.optimizer = JSON.stringify(doc.optimizer);
  return {
    title: 'neuroplastic train',
    meta,
    model: { architecture: doc.architecture ?? undefined, layers: doc.layers ?? undefined, params: doc.params ?? undefined, nnz: doc.nnz ?? undefined },
    history: isObject(doc.history) ? doc.history : undefined,
    events: Array.isArray(doc.events) ? doc.events : [],
  };
}

/**
 * The checked ReportInput of a parsed JSON document (see fromJson); errors
 * start with `where` (an API name, or the CLI flag and file that gave it).
 */
export function inputFromJson(where: string, doc: unknown): ReportInput {
  if (!isObject(doc)) fail(where, 'the JSON', 'an object', doc);
  if (doc.command === 'continual' || (Array.isArray(doc.accuracy) && Array.isArray(doc.accuracy[0]))) {
    return checkReportInput(where, fromContinualJson(where, doc));
  }
  if (doc.command === 'train') return checkReportInput(where, fromTrainJson(where, doc));
  if (KNOWN.some((k) => k in doc)) return checkReportInput(where, doc);
  throw new TypeError(`${where}: unrecognised JSON: expected the output of 'continual --json' or 'train --json', ` +
    `or an object with some of ${KNOWN.join(', ')}`);
}
