/**
 * Schedules and their arithmetic: when an interval, a crontab in a time zone, or a one-off date
 * runs next. Pure functions of time; the beat service brings the clock.
 */
import { ConfigurationError } from '../errors.js';
import { cronExpression, everyHour, nextMatch, parseCrontab, type CronFieldValue, type CronFields } from './crontab.js';
import { checkTimeZone, HOUR, MINUTE, offsetAt, runInstants, wallTime } from './time-zone.js';

/** Runs every `ms` milliseconds, counted from the entry's first appearance (not from when each run ended). */
export interface IntervalSchedule {
  readonly kind: 'interval';
  readonly ms: number;
}

/** Runs when the wall clock in `timezone` matches a crontab. */
export interface CrontabSchedule {
  readonly kind: 'crontab';
  /** The five fields, e.g. `30 2 * * mon-fri`. */
  readonly expression: string;
  readonly fields: CronFields;
  /** IANA zone the fields are read in; unset: the beat's zone (default UTC). */
  readonly timezone: string | undefined;
}

/** Runs once, at `at` (ms since the epoch). */
export interface OnceSchedule {
  readonly kind: 'once';
  readonly at: number;
}

/** A parsed schedule. Make one with {@link crontab}, or give `every` a number, a string or a date. */
export type Schedule = IntervalSchedule | CrontabSchedule | OnceSchedule;

/** An interval as parts, summed: `{ minutes: 1, seconds: 30 }` is 90 seconds. */
export interface IntervalParts {
  days?: number;
  hours?: number;
  minutes?: number;
  seconds?: number;
}

/** The JSON form of a schedule, as stored and as the CLI takes it. */
export type ScheduleSpec = { every: number } | { cron: string; timezone?: string } | { at: string };

/**
 * When an entry runs:
 * - a number of seconds, or `{ seconds, minutes, hours, days }`: an interval;
 * - a crontab string (`'30 2 * * *'`), `{ cron, timezone }`, or {@link crontab}`(...)`;
 * - a `Date`, or `{ at }`: once.
 */
export type Every = number | IntervalParts | string | { cron: string; timezone?: string } | Date | { at: Date | string | number } | { every: number } | Schedule;

/** Crontab fields by name, as Celery's `crontab(minute=..., hour=...)`, and the zone to read them in. */
export interface CrontabOptions {
  minute?: CronFieldValue;
  hour?: CronFieldValue;
  dayOfMonth?: CronFieldValue;
  monthOfYear?: CronFieldValue;
  dayOfWeek?: CronFieldValue;
  /** IANA time zone, e.g. `Europe/Paris`. Default: the beat's (UTC unless configured). */
  timezone?: string;
}

/**
 * A crontab schedule, from an expression or from fields by name (Celery's `crontab()`);
 * fields left out are `*`.
 *
 * @example
 * ```ts
 * crontab('30 2 * * mon-fri', 'Europe/Paris');                  // 02:30 Paris time on weekdays
 * crontab({ minute: 0, hour: '*\/3', timezone: 'America/New_York' }); // every three hours
 * ```
 * @throws {@link ConfigurationError} naming the bad field, or the unknown time zone.
 */
export function crontab(expression: string | CrontabOptions, timezone?: string): CrontabSchedule {
  const text = typeof expression === 'string' ? expression : cronExpression(expression);
  const zone = timezone ?? (typeof expression === 'string' ? undefined : expression.timezone);
  const fields = parseCrontab(text);
  return { kind: 'crontab', expression: text.trim().split(/\s+/).join(' '), fields, timezone: zone === undefined ? undefined : checkTimeZone(zone, 'timezone') };
}

/**
 * Reads what `every` holds into a {@link Schedule}.
 *
 * @throws {@link ConfigurationError} saying which part is wrong (prefixed with `field`).
 */
export function toSchedule(every: unknown, field = 'every'): Schedule {
  const fail = (why: string): never => {
    throw new ConfigurationError(`${field}: ${why}`);
  };
  const wrap = <T>(make: () => T): T => {
    try {
      return make();
    } catch (error) {
      if (error instanceof ConfigurationError) return fail(error.message);
      throw error;
    }
  };
  if (typeof every === 'number') return interval(every, fail);
  if (typeof every === 'string') return wrap(() => crontab(every));
  if (every instanceof Date) return once(every, fail);
  if (typeof every !== 'object' || every === null || Array.isArray(every)) {
    return fail(`expected seconds (30), an interval ({ minutes: 5 }), a crontab ('30 2 * * *') or a date, got ${describeValue(every)}`);
  }
  const record = every as Record<string, unknown>;
  if ('kind' in record) {
    if (record['kind'] === 'interval') return interval(Number(record['ms']) / 1000, fail);
    if (record['kind'] === 'once') return once(record['at'], fail);
    if (record['kind'] === 'crontab') return wrap(() => crontab(String(record['expression']), record['timezone'] as string | undefined));
  }
  if ('cron' in record) {
    const extra = Object.keys(record).filter((key) => key !== 'cron' && key !== 'timezone');
    if (extra.length > 0) fail(`unexpected ${extra.join(', ')} beside cron (only timezone may go with it)`);
    if (typeof record['cron'] !== 'string') fail(`cron must be a crontab string such as '30 2 * * *', got ${describeValue(record['cron'])}`);
    if (record['timezone'] !== undefined && typeof record['timezone'] !== 'string') fail(`timezone must be a string such as 'Europe/Paris'`);
    return wrap(() => crontab(record['cron'] as string, record['timezone'] as string | undefined));
  }
  if ('at' in record) {
    if (Object.keys(record).length > 1) fail('only at may be given for a one-off run');
    return once(record['at'], fail);
  }
  if ('every' in record) {
    if (Object.keys(record).length > 1) fail('only every may be given for an interval');
    return interval(record['every'], fail);
  }
  const units = { days: 86_400, hours: 3_600, minutes: 60, seconds: 1 } as const;
  const keys = Object.keys(record);
  if (keys.length === 0) fail('an empty object; give { seconds: 30 }, { minutes: 5 }, { cron: ... } or { at: ... }');
  let seconds = 0;
  for (const key of keys) {
    if (!(key in units)) fail(`unknown key ${JSON.stringify(key)}; an interval takes days, hours, minutes and seconds`);
    const value = record[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) fail(`${key} must be a number of 0 or more, got ${describeValue(value)}`);
    seconds += (value as number) * units[key as keyof typeof units];
  }
  return interval(seconds, fail);
}

function interval(seconds: unknown, fail: (why: string) => never): IntervalSchedule {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0) {
    return fail(`an interval must be a positive number of seconds, got ${describeValue(seconds)}`);
  }
  const ms = Math.round(seconds * 1000);
  if (ms < 1) return fail(`an interval must be at least a millisecond, got ${seconds} s`);
  return { kind: 'interval', ms };
}

function once(at: unknown, fail: (why: string) => never): OnceSchedule {
  const date = at instanceof Date ? at : typeof at === 'string' || typeof at === 'number' ? new Date(at) : undefined;
  if (!date || Number.isNaN(date.getTime())) {
    return fail(`a one-off run needs a date (a Date, ms since the epoch, or ISO-8601 such as 2026-01-02T03:04:05Z), got ${describeValue(at)}`);
  }
  return { kind: 'once', at: date.getTime() };
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  try {
    return JSON.stringify(value) ?? typeof value;
  } catch {
    return typeof value;
  }
}

/** Matching wall times are looked at from this far before `after`: longer than any DST shift. */
const WINDOW = 3 * HOUR;

/**
 * The first run strictly after `after` (ms since the epoch), or null when the schedule has no
 * more runs. An interval runs `after + interval` (pass the previous run's scheduled time).
 *
 * A crontab's wall times are read in its zone (else `zone`): a wall time that a spring-forward
 * jump skips runs at the instant it would have been (02:30 becomes 03:30 daylight time); one
 * that a fall-back repeats runs once, at its first occurrence, unless the hour field allows every
 * hour (an hourly job runs in both of the repeated hours, as classic cron does).
 */
export function nextRunAfter(schedule: Schedule, after: number, zone = 'UTC'): number | null {
  switch (schedule.kind) {
    case 'interval':
      return after + schedule.ms;
    case 'once':
      return schedule.at > after ? schedule.at : null;
    case 'crontab':
      return nextCron(schedule.fields, schedule.timezone ?? zone, after);
  }
}

function nextCron(fields: CronFields, zone: string, after: number): number | null {
  const offset = offsetAt(zone, after);
  // Far from a transition, wall time and instant differ by one offset.
  if (offsetAt(zone, after - WINDOW) === offset && offsetAt(zone, after + WINDOW) === offset) {
    const wall = nextMatch(fields, Math.floor((after + offset) / MINUTE) * MINUTE + MINUTE);
    if (wall === null) return null;
    const instant = wall - offset;
    if (offsetAt(zone, instant - WINDOW) === offset && offsetAt(zone, instant) === offset && offsetAt(zone, instant + WINDOW) === offset) return instant;
  }
  // Near one, a later wall time may run earlier (or twice): take the earliest run of every
  // matching wall time from a window before `after` until one past the best found.
  const both = everyHour(fields);
  let best: number | null = null;
  for (let wall = nextMatch(fields, Math.floor((after + offset - WINDOW) / MINUTE) * MINUTE); wall !== null; wall = nextMatch(fields, wall + MINUTE)) {
    if (best !== null && wall > wallTime(zone, best) + WINDOW) break;
    for (const instant of runInstants(zone, wall, both)) if (instant > after && (best === null || instant < best)) best = instant;
  }
  return best;
}

/** The JSON form of a schedule, for the store and the CLI. */
export function specOf(schedule: Schedule): ScheduleSpec {
  switch (schedule.kind) {
    case 'interval':
      return { every: schedule.ms / 1000 };
    case 'once':
      return { at: new Date(schedule.at).toISOString() };
    case 'crontab':
      return schedule.timezone === undefined ? { cron: schedule.expression } : { cron: schedule.expression, timezone: schedule.timezone };
  }
}

/** A short human description: `every 30s`, `cron 30 2 * * * (Europe/Paris)`, `once at ...`. */
export function describeSchedule(schedule: Schedule, zone = 'UTC'): string {
  switch (schedule.kind) {
    case 'interval':
      return `every ${formatSeconds(schedule.ms / 1000)}`;
    case 'once':
      return `once at ${new Date(schedule.at).toISOString()}`;
    case 'crontab':
      return `cron ${schedule.expression} (${schedule.timezone ?? zone})`;
  }
}

function formatSeconds(seconds: number): string {
  for (const [unit, size] of [['d', 86_400], ['h', 3_600], ['m', 60]] as const) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}
