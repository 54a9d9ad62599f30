// The safetensors container (https://github.com/huggingface/safetensors):
// an 8-byte little-endian header length N, N bytes of JSON header mapping each
// tensor name to { dtype, shape, data_offsets: [begin, end] } (offsets into the
// data that follows) plus an optional "__metadata__" string map, then the raw
// little-endian data. decode() checks everything before it reads any tensor.

export type Dtype = 'F64' | 'F32' | 'I64' | 'I32' | 'U8';

export const DTYPE_BYTES: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
};

export type TensorData = Float64Array | Float32Array | BigInt64Array | Int32Array | Uint8Array;

export interface Tensor {
  dtype: Dtype;
  shape: number[];
  data: TensorData;
}

export interface DecodedTensorInfo {
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/** A safetensors file that failed validation; the message names the source and the problem. */
export class CheckpointError extends Error {
  readonly code = 'ERR_NEUROPLASTIC_CHECKPOINT';
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

const MAX_HEADER_BYTES = 100 * 1024 * 1024; // the spec's limit

function dtypeOf(data: TensorData): Dtype {
  if (data instanceof Float64Array) return 'F64';
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof BigInt64Array) return 'I64';
  if (data instanceof Int32Array) return 'I32';
  return 'U8';
}

/**
 * Serialises tensors and string metadata. The header lists them in the given order; the data
 * holds 8-byte elements first, then 4-byte, then bytes, so from the 8-byte aligned start every
 * tensor is aligned for its type (a reader can view it in place; the spec leaves the order free).
 */
export function encode(tensors: Map<string, { shape: number[]; data: TensorData }>, metadata: Record<string, string>): Buffer {
  const header: Record<string, unknown> = { __metadata__: metadata };
  for (const [name, t] of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`safetensors: tensor ${name} has ${t.data.length} elements for shape [${t.shape}]`);
    header[name] = { dtype: dtypeOf(t.data), shape: t.shape, data_offsets: [0, 0] };
  }
  const layout = [...tensors.entries()].sort((a, b) => b[1].data.BYTES_PER_ELEMENT - a[1].data.BYTES_PER_ELEMENT);  // stable
  let offset = 0;
  for (const [name, t] of layout) {
    (header[name] as { data_offsets: number[] }).data_offsets = [offset, offset + t.data.byteLength];
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data starts 8-byte aligned (the spec allows it).
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.allocUnsafe(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let at = 8 + headerBytes.length;
  for (const [, t] of layout) {
    // Typed arrays are little-endian on every platform Node supports here.
    Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).copy(out, at);
    at += t.data.byteLength;
  }
  return out;
}

export interface Decoded {
  metadata: Record<string, string>;
  tensors: Map<string, DecodedTensorInfo>;
  dataStart: number;
  buffer: Buffer;
}

/** Parses and validates the container; `source` names the file in errors. */
export function decode(buffer: Buffer, source: string): Decoded {
  const fail = (what: string): never => {
    throw new CheckpointError(`${source}: ${what}`);
  };
  if (buffer.length < 8) fail(`too short for a safetensors file (${buffer.length} bytes)`);
  const n = buffer.readBigUInt64LE(0);
  if (n > BigInt(buffer.length - 8)) fail(`header length ${n} runs past the end of the file (${buffer.length} bytes): the file is truncated or not safetensors`);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const headerLength = Number(n);
  if (headerLength < 2) fail('header is empty');
  const text = buffer.toString('utf8', 8, 8 + headerLength);
  if (text[0] !== '{') fail('header is not a JSON object');
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    fail(`header is not valid JSON (${(err as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('header is not a JSON object');
  const dataStart = 8 + headerLength;
  const dataLength = buffer.length - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, DecodedTensorInfo>();
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) fail('__metadata__ is not an object');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__.${k} is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    const t = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (t === null || typeof t !== 'object') fail(`tensor ${name}: entry is not an object`);
    if (typeof t.dtype !== 'string' || !(t.dtype in DTYPE_BYTES)) fail(`tensor ${name}: unknown dtype ${JSON.stringify(t.dtype)}`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`tensor ${name}: shape must be a list of non-negative integers`);
    const offsets = t.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(`tensor ${name}: data_offsets must be [begin, end]`);
    }
    const [begin, end] = offsets as number[];
    if (begin > end || end > dataLength) fail(`tensor ${name}: data_offsets [${begin}, ${end}] lie outside the ${dataLength} data bytes`);
    const shape = t.shape as number[];
    const bytes = shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype as string];
    if (bytes !== end - begin) fail(`tensor ${name}: shape [${shape}] of ${t.dtype} needs ${bytes} bytes, data_offsets give ${end - begin}`);
    tensors.set(name, { dtype: t.dtype as string, shape, begin, end });
  }
  // The data must be covered exactly once: no overlaps, no holes.
  const spans = [...tensors.entries()].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  let at = 0;
  for (const [name, s] of spans) {
    if (s.begin < at) fail(`tensor ${name}: its data overlaps the previous tensor's`);
    if (s.begin > at) fail(`tensor ${name}: ${s.begin - at} bytes before it belong to no tensor`);
    at = s.end;
  }
  if (at !== dataLength) fail(`${dataLength - at} bytes after the last tensor belong to no tensor`);
  return { metadata, tensors, dataStart, buffer };
}

/** The dtypes readTensor reads (a model file holds no others). */
const READABLE = new Set(['F64', 'F32', 'I64', 'I32', 'U8']);

/**
 * One tensor's data as the typed array of its dtype: a view into the buffer when the data is
 * aligned for it (encode() aligns every tensor), else a copy. A view shares the buffer's memory, so
 * read it before the buffer changes (loading copies every tensor into the model at once).
 */
export function readTensor(d: Decoded, name: string, source: string): Tensor {
  const info = d.tensors.get(name);
  if (!info) throw new CheckpointError(`${source}: tensor ${name} is missing`);
  if (!READABLE.has(info.dtype)) throw new CheckpointError(`${source}: tensor ${name} has dtype ${info.dtype}, which neuroplastic does not read`);
  const size = DTYPE_BYTES[info.dtype];
  const bytes = d.buffer.subarray(d.dataStart + info.begin, d.dataStart + info.end);
  let b: ArrayBuffer, offset: number;
  if (bytes.byteOffset % size === 0) {
    [b, offset] = [bytes.buffer as ArrayBuffer, bytes.byteOffset];
  } else {
    const copy = new Uint8Array(bytes.length);
    copy.set(bytes);
    [b, offset] = [copy.buffer, 0];
  }
  const n = bytes.length / size;
  let data: TensorData;
  switch (info.dtype) {
    case 'F64': data = new Float64Array(b, offset, n); break;
    case 'F32': data = new Float32Array(b, offset, n); break;
    case 'I64': data = new BigInt64Array(b, offset, n); break;
    case 'I32': data = new Int32Array(b, offset, n); break;
    default: data = new Uint8Array(b, offset, n); break;
  }
  return { dtype: info.dtype as Dtype, shape: info.shape, data };
}
