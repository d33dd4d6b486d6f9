/**
 * A Python-style `repr` of JSON-like values, for the `argsrepr`/`kwargsrepr` headers that
 * Celery's monitors (Flower, `celery events`) display.
 */

/** Celery truncates the repr headers to this many characters. */
export const REPR_MAX_LENGTH = 1024;

/** Formats `value` as Python would print it, truncated to {@link REPR_MAX_LENGTH}. */
export function pythonRepr(value: unknown): string {
  const text = repr(value, 0);
  return text.length > REPR_MAX_LENGTH ? `${text.slice(0, REPR_MAX_LENGTH - 3)}...` : text;
}

function repr(value: unknown, depth: number): string {
  if (depth > 16) return '...';
  if (value === null || value === undefined) return 'None';
  if (value === true) return 'True';
  if (value === false) return 'False';
  if (typeof value === 'string') return quote(value);
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : formatFloat(value);
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return quote(value.toISOString());
  if (value instanceof Uint8Array) return `b${quote(Buffer.from(value).toString('latin1'))}`;
  if (Array.isArray(value)) return `[${value.map((item) => repr(item, depth + 1)).join(', ')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value).map(([key, item]) => `${quote(key)}: ${repr(item, depth + 1)}`);
    return `{${entries.join(', ')}}`;
  }
  return quote(String(value as string | number | bigint | symbol));
}

function formatFloat(value: number): string {
  if (Number.isNaN(value)) return 'nan';
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf';
  return String(value);
}

function quote(text: string): string {
  const useDouble = text.includes("'") && !text.includes('"');
  const delimiter = useDouble ? '"' : "'";
  const escaped = text
    .replace(/\\/g, '\\\\')
    .replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r')
    .replace(/\t/g, '\\t');
  return delimiter + (useDouble ? escaped : escaped.replace(/'/g, "\\'")) + delimiter;
}
