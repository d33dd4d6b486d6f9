/**
 * Crontab expressions with Celery's field syntax (`celery.schedules.crontab_parser`), and the
 * search for the next wall time that matches one.
 *
 * Five fields, `minute hour day-of-month month day-of-week`, as in `crontab.from_string`. Each
 * field is a comma list of `*`, `N`, `A-B` (wrapping past the end: `fri-mon`), `*\/S`, `A-B/S`
 * and `A/S` (from A to the end). Days of the week are 0-6 from Sunday (7 is Sunday too) or
 * names (`mon`, `monday`); months are 1-12 or names (`jan`). As in Celery, a day runs only when
 * it matches the day of month, the month *and* the day of week (classic cron uses either day
 * field when both are restricted).
 */
import { ConfigurationError } from '../errors.js';
import { HOUR, MINUTE } from './time-zone.js';

/** The five fields of a crontab, expanded to the values they allow, each sorted. */
export interface CronFields {
  readonly minute: readonly number[];
  readonly hour: readonly number[];
  readonly dayOfMonth: readonly number[];
  readonly month: readonly number[];
  /** 0 = Sunday. */
  readonly dayOfWeek: readonly number[];
}

interface FieldSpec {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  readonly names?: Readonly<Record<string, number>>;
  readonly example: string;
}

const WEEKDAYS: Readonly<Record<string, number>> = { sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6 };
const MONTHS: Readonly<Record<string, number>> = { jan: 1, feb: 2, mar: 3, apr: 4, may: 5, jun: 6, jul: 7, aug: 8, sep: 9, oct: 10, nov: 11, dec: 12 };

const FIELDS: readonly FieldSpec[] = [
  { name: 'minute', min: 0, max: 59, example: '*/15 or 0,30' },
  { name: 'hour', min: 0, max: 23, example: '9-17 or */2' },
  { name: 'day of month', min: 1, max: 31, example: '1,15 or 1-7' },
  { name: 'month', min: 1, max: 12, names: MONTHS, example: '*/3 or jan-jun' },
  { name: 'day of week', min: 0, max: 6, names: WEEKDAYS, example: 'mon-fri or 0,6' },
];

/** The field names in order, as the object form of {@link parseCronFields} spells them. */
export const CRON_FIELD_KEYS = ['minute', 'hour', 'dayOfMonth', 'monthOfYear', 'dayOfWeek'] as const;

/** One field's source: a pattern (`'*\/15'`), a number, or a list of numbers. */
export type CronFieldValue = string | number | readonly number[];

/**
 * Parses a five-field expression such as `'30 2 * * mon-fri'`.
 *
 * @throws {@link ConfigurationError} naming the bad field and why.
 */
export function parseCrontab(expression: string): CronFields {
  if (typeof expression !== 'string') throw new ConfigurationError(`crontab: expected a string of five fields, got ${JSON.stringify(expression)}`);
  const parts = expression.trim().split(/\s+/).filter(Boolean);
  if (parts.length !== 5) {
    throw new ConfigurationError(
      `crontab ${JSON.stringify(expression)}: expected 5 fields (minute hour day-of-month month day-of-week), got ${parts.length}; e.g. "30 2 * * *" is 02:30 every day`,
    );
  }
  return build(parts.map((part, i) => parseField(part, FIELDS[i]!, expression)));
}

/** The expression text of fields given one by one (numbers and lists joined), in field order. */
export function cronExpression(fields: Partial<Record<(typeof CRON_FIELD_KEYS)[number], CronFieldValue>>): string {
  return CRON_FIELD_KEYS.map((key) => {
    const value = fields[key] ?? '*';
    if (typeof value === 'number') return String(value);
    if (Array.isArray(value)) {
      if (value.length === 0) throw new ConfigurationError(`crontab ${key}: an empty list would never run; use '*' for every value`);
      return value.map(String).join(',');
    }
    return String(value).trim();
  }).join(' ');
}

function build([minute, hour, dayOfMonth, month, dayOfWeek]: number[][]): CronFields {
  const fields: CronFields = { minute: minute!, hour: hour!, dayOfMonth: dayOfMonth!, month: month!, dayOfWeek: dayOfWeek! };
  const shortest = Math.min(...dayOfMonth!);
  const possible = month!.some((m) => shortest <= daysIn(2000, m)); // 2000 is a leap year
  if (!possible) {
    throw new ConfigurationError(
      `crontab: day of month ${dayOfMonth!.join(',')} never occurs in month ${month!.join(',')}, so it would never run`,
    );
  }
  return fields;
}

function parseField(text: string, spec: FieldSpec, expression: string): number[] {
  const fail = (why: string): never => {
    throw new ConfigurationError(`crontab ${JSON.stringify(expression)}: ${spec.name} field ${JSON.stringify(text)}: ${why} (e.g. ${spec.example})`);
  };
  const values = new Set<number>();
  for (const part of text.split(',')) {
    if (part === '') fail('empty list item');
    const [range, step, ...extra] = part.split('/');
    if (extra.length > 0) fail(`more than one "/" in ${JSON.stringify(part)}`);
    let every = 1;
    if (step !== undefined) {
      if (!/^\d+$/.test(step) || Number(step) < 1) fail(`the step after "/" must be a whole number of at least 1, got ${JSON.stringify(step)}`);
      every = Number(step);
    }
    let expanded: number[];
    if (range === '*') {
      expanded = span(spec.min, spec.max);
    } else {
      const bounds = range!.split('-');
      if (bounds.length > 2 || bounds.some((bound) => bound === '')) fail(`${JSON.stringify(range)} is not a number, a name or a range A-B`);
      const from = valueOf(bounds[0]!, spec, fail);
      if (bounds.length === 2) {
        const to = valueOf(bounds[1]!, spec, fail);
        // A range that ends before it starts wraps past the end, as in Celery: fri-mon.
        expanded = to >= from ? span(from, to) : [...span(from, spec.max), ...span(spec.min, to)];
      } else {
        expanded = step !== undefined ? span(from, spec.max) : [from];
      }
    }
    expanded.forEach((value, i) => {
      if (i % every === 0) values.add(value);
    });
  }
  return [...values].sort((a, b) => a - b);
}

function valueOf(token: string, spec: FieldSpec, fail: (why: string) => never): number {
  if (/^\d+$/.test(token)) {
    let value = Number(token);
    if (spec.names === WEEKDAYS && value === 7) value = 0; // Sunday, as classic cron reads 7
    if (value < spec.min || value > spec.max) fail(`${token} is out of range ${spec.min}-${spec.max}`);
    return value;
  }
  const names = spec.names;
  const key = token.toLowerCase().slice(0, 3);
  if (names && /^[a-z]+$/i.test(token) && names[key] !== undefined) {
    const full = token.toLowerCase();
    // `mon`, `monday` and `Mon` read as Monday (Celery reads the first three letters).
    if (full.length === 3 || fullName(full, names === WEEKDAYS)) return names[key];
  }
  const what = names ? (names === WEEKDAYS ? 'a day (0-6, sun-sat)' : 'a month (1-12, jan-dec)') : `a number ${spec.min}-${spec.max}`;
  return fail(`${JSON.stringify(token)} is not ${what}`);
}

const DAY_NAMES = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];
const MONTH_NAMES = ['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october', 'november', 'december'];

function fullName(token: string, weekday: boolean): boolean {
  return (weekday ? DAY_NAMES : MONTH_NAMES).some((name) => name.startsWith(token));
}

function span(from: number, to: number): number[] {
  const values: number[] = [];
  for (let value = from; value <= to; value++) values.push(value);
  return values;
}

/** Days in a month (1-12) of a year. */
export function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** For each value 0..max, the smallest allowed value at or above it (or -1). */
function nextTable(allowed: readonly number[], max: number): Int8Array {
  const table = new Int8Array(max + 2).fill(-1);
  let next = -1;
  for (let value = max + 1; value >= 0; value--) {
    if (allowed.includes(value)) next = value;
    table[value] = next;
  }
  return table;
}

const tables = new WeakMap<CronFields, { minute: Int8Array; hour: Int8Array; month: Int8Array; dom: Set<number>; dow: Set<number> }>();

function tablesOf(fields: CronFields) {
  let found = tables.get(fields);
  if (!found) {
    found = {
      minute: nextTable(fields.minute, 59),
      hour: nextTable(fields.hour, 23),
      month: nextTable(fields.month, 12),
      dom: new Set(fields.dayOfMonth),
      dow: new Set(fields.dayOfWeek),
    };
    tables.set(fields, found);
  }
  return found;
}

/** How far ahead {@link nextMatch} looks: every date falls on every weekday within 28 years. */
const HORIZON_YEARS = 30;

/**
 * The first wall time at or after `start` (a minute-aligned wall time) whose fields match, or
 * null if none within the next thirty years (a day such as "Friday the 31st of February").
 */
export function nextMatch(fields: CronFields, start: number): number | null {
  const t = tablesOf(fields);
  let date = new Date(Math.ceil(start / MINUTE) * MINUTE);
  const limit = date.getUTCFullYear() + HORIZON_YEARS;
  while (date.getUTCFullYear() <= limit) {
    const year = date.getUTCFullYear();
    const month = date.getUTCMonth() + 1;
    const month2 = t.month[month]!;
    if (month2 !== month) {
      date = month2 === -1 ? new Date(Date.UTC(year + 1, t.month[1]! - 1, 1)) : new Date(Date.UTC(year, month2 - 1, 1));
      continue;
    }
    const day = date.getUTCDate();
    if (!t.dom.has(day) || !t.dow.has(date.getUTCDay())) {
      date = new Date(Date.UTC(year, month - 1, day + 1));
      continue;
    }
    const hour = date.getUTCHours();
    const hour2 = t.hour[hour]!;
    if (hour2 !== hour) {
      date = hour2 === -1 ? new Date(Date.UTC(year, month - 1, day + 1)) : new Date(Date.UTC(year, month - 1, day, hour2));
      continue;
    }
    const minute = date.getUTCMinutes();
    const minute2 = t.minute[minute]!;
    if (minute2 !== minute) {
      date = minute2 === -1 ? new Date(date.getTime() - minute * MINUTE + HOUR) : new Date(date.getTime() + (minute2 - minute) * MINUTE);
      continue;
    }
    return date.getTime();
  }
  return null;
}

/** True when the fields allow every hour (a job in the repeated hour of a fall-back day then runs in both). */
export function everyHour(fields: CronFields): boolean {
  return fields.hour.length === 24;
}
