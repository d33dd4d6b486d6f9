/** Parsers of command-line values, shared by every command: each refuses bad input with what it expected. */
import { InvalidArgumentError } from 'commander';

/** `a, b,c` → `['a', 'b', 'c']`. */
export function splitList(value: string): string[] {
  return value
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean);
}

/** A whole number of at least 1. */
export function positiveInt(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return number;
}

/** Seconds, 0 or more. */
export function nonNegative(value: string): number {
  const number = Number(value);
  if (!Number.isFinite(number) || number < 0) throw new InvalidArgumentError('expected a number of seconds (0 or more)');
  return number;
}

/** Seconds, above 0. */
export function positiveSeconds(value: string): number {
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0) throw new InvalidArgumentError('expected a positive number of seconds');
  return number;
}

/** A message priority, 0 to 9. */
export function priority(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 0 || number > 9) throw new InvalidArgumentError('expected a priority from 0 to 9');
  return number;
}

/** An ISO-8601 date. */
export function parseDate(value: string): Date {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new InvalidArgumentError('expected an ISO-8601 date, e.g. 2026-01-02T03:04:05Z');
  return date;
}

function parseJson(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch (error) {
    throw new InvalidArgumentError(`not valid JSON: ${(error as Error).message}`);
  }
}

/** A JSON array, e.g. task arguments. */
export function parseJsonArray(value: string): unknown[] {
  const parsed = parseJson(value);
  if (!Array.isArray(parsed)) throw new InvalidArgumentError('expected a JSON array, e.g. \'[2, 3]\'');
  return parsed;
}

/** A JSON object, e.g. keyword arguments. */
export function parseJsonObject(value: string): Record<string, unknown> {
  const parsed = parseJson(value);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InvalidArgumentError('expected a JSON object, e.g. \'{"x": 1}\'');
  }
  return parsed as Record<string, unknown>;
}
