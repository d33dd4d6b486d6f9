/**
 * Schedule entries: what `app.schedule(...)` and `app.beat.add(...)` take, checked once when
 * defined, and the JSON form entries have in the store.
 */
import { createHash } from 'node:crypto';
import { ConfigurationError } from '../errors.js';
import type { Task } from '../task.js';
import { specOf, toSchedule, type Every, type Schedule, type ScheduleSpec } from './schedule.js';

/**
 * What happens to runs that fell due while no beat was sending (every beat stopped, or the
 * leader stalled past the catch-up window): `'run-once'` sends one run for all of them, as
 * Celery's beat does on start; `'skip'` drops them and waits for the next.
 */
export type MissedPolicy = 'run-once' | 'skip';

/** Options each run is sent with (a subset of `applyAsync`'s, JSON-able so stored entries hold them). */
export interface ScheduleSendOptions {
  queue?: string;
  exchange?: string;
  routingKey?: string;
  /** 0-9. */
  priority?: number;
  /** Seconds after it is sent before a run that has not started is discarded (REVOKED). */
  expires?: number;
  timeLimit?: number;
  softTimeLimit?: number;
  ignoreResult?: boolean;
  /** Extra message headers. */
  headers?: Record<string, unknown>;
}

/**
 * A periodic call: which task, its arguments, and when.
 *
 * @example
 * ```ts
 * app.schedule('cleanup', { task: cleanup, every: { minutes: 5 } });
 * app.schedule('report', { task: 'reports.daily', args: ['eu'], every: '30 2 * * *', timezone: 'Europe/Paris' });
 * app.schedule('launch', { task: 'promo.start', every: new Date('2026-06-01T09:00:00Z') });
 * ```
 */
export interface ScheduleDefinition<A extends unknown[] = unknown[]> {
  /** The task, or its name (a task defined elsewhere, in Python say). */
  task: string | Task<A, unknown>;
  args?: A;
  kwargs?: Record<string, unknown>;
  options?: ScheduleSendOptions;
  /** An interval (seconds or `{ minutes: 5 }`), a crontab (`'30 2 * * *'`, `crontab(...)`), or a date (once). */
  every: Every;
  /** The zone a crontab string is read in. Default: the beat's (UTC unless configured). */
  timezone?: string;
  /** Runs missed while no beat was sending: one run (`'run-once'`, the default), or none (`'skip'`). */
  missed?: MissedPolicy;
}

/** A checked entry. */
export interface ScheduleEntry {
  readonly name: string;
  readonly task: string;
  readonly args: readonly unknown[];
  readonly kwargs: Readonly<Record<string, unknown>>;
  readonly options: Readonly<ScheduleSendOptions>;
  readonly schedule: Schedule;
  readonly missed: MissedPolicy;
  /** `code`: defined with `app.schedule`; `store`: added at run time, kept in the store. */
  readonly source: 'code' | 'store';
  /** Stored entries: when it was added or last changed (ms), from which it first runs. */
  readonly since?: number;
}

/** An entry as the store keeps it (JSON). */
export interface StoredEntry {
  name: string;
  task: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  options: ScheduleSendOptions;
  schedule: ScheduleSpec;
  missed: MissedPolicy;
  since: number;
}

const OPTION_KEYS = ['queue', 'exchange', 'routingKey', 'priority', 'expires', 'timeLimit', 'softTimeLimit', 'ignoreResult', 'headers'] as const;

/**
 * Checks a definition and returns the entry.
 *
 * @throws {@link ConfigurationError} starting `schedule "name":` and naming the bad field.
 */
export function defineEntry(name: string, definition: ScheduleDefinition<any>, source: 'code' | 'store', since?: number): ScheduleEntry {
  checkEntryName(name);
  const fail = (why: string): never => {
    throw new ConfigurationError(`schedule ${JSON.stringify(name)}: ${why}`);
  };
  if (typeof definition !== 'object' || definition === null) return fail('expected { task, every, ... }');
  const known = new Set(['task', 'args', 'kwargs', 'options', 'every', 'timezone', 'missed']);
  const unknown = Object.keys(definition).filter((key) => !known.has(key));
  if (unknown.length > 0) fail(`unknown field ${unknown.map((key) => JSON.stringify(key)).join(', ')}; an entry takes ${[...known].join(', ')}`);
  const task = typeof definition.task === 'string' ? definition.task : (definition.task as { name?: unknown } | undefined)?.name;
  if (typeof task !== 'string' || task.trim() === '') return fail(`task: expected a task or its name, got ${JSON.stringify(definition.task)}`);
  const args = definition.args ?? [];
  if (!Array.isArray(args)) fail(`args: expected an array, got ${JSON.stringify(args)}`);
  const kwargs = definition.kwargs ?? {};
  if (!isPlainObject(kwargs)) fail(`kwargs: expected an object, got ${JSON.stringify(kwargs)}`);
  if (definition.every === undefined) fail('every: missing; give seconds (30), { minutes: 5 }, a crontab (\'30 2 * * *\') or a date');
  let schedule: Schedule;
  try {
    schedule = toSchedule(definition.every);
    if (definition.timezone !== undefined) {
      if (schedule.kind !== 'crontab') fail('timezone: only a crontab is read in a time zone');
      schedule = toSchedule({ cron: (schedule as { expression: string }).expression, timezone: definition.timezone }, 'every');
    }
  } catch (error) {
    if (error instanceof ConfigurationError && !error.message.startsWith('schedule ')) fail(error.message);
    throw error;
  }
  const missed = definition.missed ?? 'run-once';
  if (missed !== 'run-once' && missed !== 'skip') fail(`missed: expected 'run-once' or 'skip', got ${JSON.stringify(missed)}`);
  const options = checkOptions(definition.options ?? {}, fail);
  if (source === 'store') {
    try {
      JSON.stringify({ args, kwargs, options });
    } catch (error) {
      fail(`args, kwargs and options of a stored entry must be JSON: ${(error as Error).message}`);
    }
  }
  return { name, task, args: [...args], kwargs: { ...kwargs }, options, schedule: schedule!, missed, source, ...(since === undefined ? {} : { since }) };
}

function checkOptions(options: unknown, fail: (why: string) => never): ScheduleSendOptions {
  if (!isPlainObject(options)) return fail(`options: expected an object, got ${JSON.stringify(options)}`);
  const record = options as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!(OPTION_KEYS as readonly string[]).includes(key)) fail(`options: unknown option ${JSON.stringify(key)}; scheduled calls take ${OPTION_KEYS.join(', ')}`);
  }
  for (const key of ['queue', 'exchange', 'routingKey'] as const) {
    if (record[key] !== undefined && (typeof record[key] !== 'string' || record[key] === '')) fail(`options.${key}: expected a name, got ${JSON.stringify(record[key])}`);
  }
  const priority = record['priority'];
  if (priority !== undefined && (typeof priority !== 'number' || !Number.isInteger(priority) || priority < 0 || priority > 9)) {
    fail(`options.priority: expected a whole number from 0 to 9, got ${JSON.stringify(priority)}`);
  }
  for (const key of ['expires', 'timeLimit', 'softTimeLimit'] as const) {
    const value = record[key];
    if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)) fail(`options.${key}: expected a positive number of seconds, got ${JSON.stringify(value)}`);
  }
  if (record['ignoreResult'] !== undefined && typeof record['ignoreResult'] !== 'boolean') fail('options.ignoreResult: expected true or false');
  if (record['headers'] !== undefined && !isPlainObject(record['headers'])) fail('options.headers: expected an object');
  return { ...(record as ScheduleSendOptions) };
}

/**
 * Checks an entry name: any non-empty text without control characters, up to 200 characters.
 *
 * @throws {@link ConfigurationError} saying why.
 */
export function checkEntryName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.trim() === '' || name.length > 200 || /\p{Cc}/u.test(name)) {
    throw new ConfigurationError(`schedule name: expected non-empty text of up to 200 characters without control characters, got ${JSON.stringify(name)}`);
  }
}

/** The store's JSON form of a stored entry. */
export function toStored(entry: ScheduleEntry, since: number): StoredEntry {
  return {
    name: entry.name,
    task: entry.task,
    args: [...entry.args],
    kwargs: { ...entry.kwargs },
    options: { ...entry.options },
    schedule: specOf(entry.schedule),
    missed: entry.missed,
    since,
  };
}

/**
 * Parses a stored entry's JSON: undefined when it is not JSON or not an object with a name (the
 * fields are checked by {@link fromStored}).
 */
export function readEntry(json: string): StoredEntry | undefined {
  try {
    const value: unknown = JSON.parse(json);
    return isPlainObject(value) && typeof value['name'] === 'string' ? (value as unknown as StoredEntry) : undefined;
  } catch {
    return undefined;
  }
}

/** The entry a stored JSON form holds; null (with the reason) when it no longer checks. */
export function fromStored(stored: StoredEntry): { entry: ScheduleEntry } | { error: string } {
  try {
    const definition: ScheduleDefinition = { task: stored.task, args: stored.args, kwargs: stored.kwargs, options: stored.options, every: stored.schedule as Every, missed: stored.missed };
    return { entry: defineEntry(stored.name, definition, 'store', stored.since) };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

/**
 * The task id of one run: the same for the same entry and scheduled time, in every beat
 * process, so a run that two leaders both send (one killed just after sending, before it could
 * record it) carries one id. Shaped as a UUID (version 5 bits, from SHA-1).
 */
export function runId(entryName: string, scheduledAt: number): string {
  const hash = createHash('sha1').update(`celeriac-beat\n${entryName}\n${scheduledAt}`).digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null);
}
