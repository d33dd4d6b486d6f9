/**
 * JSON the way kombu writes and reads it.
 *
 * Decoding accepts both kombu >= 5.3's typed envelopes (`{"__type__": T, "__value__": V}`) and the
 * bare strings older kombu writes. Encoding writes what every Celery version reads: dates as ISO
 * strings, and typed envelopes only for values older kombu could not carry at all (bytes).
 */
import { EncodeError, ProtocolError } from '../errors.js';

/** Turns a JavaScript value into kombu-compatible JSON text. */
export function encodeJson(value: unknown): string {
  try {
    // A replacer costs a call per key; most values (a task's result meta) need none.
    return needsReplacer(value, 0) ? JSON.stringify(value, replacer) : JSON.stringify(value);
  } catch (error) {
    throw new EncodeError(`cannot be encoded as JSON: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
  }
}

/** Deeper than this, the replacer decides (and JSON.stringify reports a cycle). */
const PLAIN_WALK_DEPTH = 32;

/** True when `value` holds bytes or a bigint, which plain JSON.stringify would get wrong. */
function needsReplacer(value: unknown, depth: number): boolean {
  if (typeof value === 'bigint') return true;
  if (value === null || typeof value !== 'object') return false;
  if (value instanceof Uint8Array || depth > PLAIN_WALK_DEPTH) return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (needsReplacer(value[i], depth + 1)) return true;
    return false;
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) if (needsReplacer(record[key], depth + 1)) return true;
  return false;
}

function replacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key];
  if (raw instanceof Uint8Array) return encodeBytes(raw);
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (value === undefined && Array.isArray(this)) return null;
  return value;
}

function encodeBytes(bytes: Uint8Array): { __type__: string; __value__: string } {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = buffer.toString('utf8');
  // Valid UTF-8 round-trips; anything else goes as base64, as kombu does.
  if (Buffer.byteLength(text) === buffer.length && !text.includes('\uFFFD')) {
    return { __type__: 'bytes', __value__: text };
  }
  return { __type__: 'base64', __value__: buffer.toString('base64') };
}

/**
 * Parses kombu JSON from untrusted text. Typed envelopes become JavaScript values (datetime →
 * `Date`, bytes/base64 → `Buffer`, decimal and uuid → string) and `__proto__` keys are dropped.
 *
 * @throws {@link ProtocolError} with reason `undecodable` on bad JSON or an unknown `__type__`.
 */
export function decodeJson(text: string): unknown {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ProtocolError('undecodable', `body is not valid JSON: ${(error as Error).message}`);
  }
  // Only walk the tree when it can hold something to rewrite: the common case stays one parse.
  if (text.includes('"__')) return revive(parsed);
  return parsed;
}

/**
 * Parses a message body that must be a kombu JSON object (a control command, an rpc reply);
 * null for bad JSON or any other value, so a stray message is ignored rather than thrown on.
 */
export function decodeJsonObject(body: Buffer): Record<string, unknown> | null {
  try {
    const value = decodeJson(body.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function revive(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = revive(value[i]);
    return value;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  if (keys.length === 2 && '__type__' in record && '__value__' in record) {
    return decodeTyped(record['__type__'], record['__value__']);
  }
  for (const key of keys) {
    if (key === '__proto__') {
      delete record[key];
      continue;
    }
    record[key] = revive(record[key]);
  }
  return record;
}

function decodeTyped(type: unknown, value: unknown): unknown {
  switch (type) {
    case 'datetime':
    case 'date':
      return parseDate(value);
    case 'time':
    case 'decimal':
      return String(value);
    case 'uuid':
      return formatUuid(value);
    case 'bytes':
      return Buffer.from(String(value), 'utf8');
    case 'base64':
      return Buffer.from(String(value), 'base64');
    default:
      throw new ProtocolError('undecodable', `unknown kombu JSON type ${JSON.stringify(type)}`);
  }
}

function parseDate(value: unknown): Date {
  const date = typeof value === 'string' ? parseIsoDate(value) : null;
  if (!date) throw new ProtocolError('undecodable', `bad datetime value ${JSON.stringify(value)}`);
  return date;
}

function formatUuid(value: unknown): string {
  const hex = typeof value === 'object' && value !== null ? (value as { hex?: unknown }).hex : value;
  const text = String(hex).replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(text)) {
    throw new ProtocolError('undecodable', `bad uuid value ${JSON.stringify(value)}`);
  }
  return `${text.slice(0, 8)}-${text.slice(8, 12)}-${text.slice(12, 16)}-${text.slice(16, 20)}-${text.slice(20)}`;
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * Parses an ISO-8601 date as Python writes it (`+00:00`, `Z`, microseconds, or naive, which
 * Celery treats as UTC). Returns null when the text is not such a date.
 */
export function parseIsoDate(text: string): Date | null {
  const match = ISO_DATE.exec(text);
  if (!match) return null;
  let normalized = text.replace(' ', 'T');
  if (!match[1]) normalized += 'T00:00:00';
  // JavaScript keeps milliseconds; Python writes microseconds.
  normalized = normalized.replace(/(\.\d{3})\d+/, '$1');
  if (!match[4]) normalized += 'Z';
  const date = new Date(normalized);
  return Number.isNaN(date.getTime()) ? null : date;
}

let lastFormatted = { time: NaN, text: '' };

/** Formats a date the way Python's `isoformat()` does for an aware UTC datetime. */
export function formatIsoDate(date: Date): string {
  // Busy workers stamp many results within one millisecond: format each millisecond once.
  const time = date.getTime();
  if (time !== lastFormatted.time) lastFormatted = { time, text: date.toISOString().replace('Z', '000+00:00') };
  return lastFormatted.text;
}
