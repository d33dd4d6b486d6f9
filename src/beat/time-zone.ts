/**
 * Wall-clock time in IANA time zones, through `Intl` (Node's ICU data; no dependency).
 *
 * Times are handled as two kinds of milliseconds: an *instant* (ms since the epoch, UTC) and a
 * *wall time* (the local date and time in a zone, written as if it were UTC, so `Date`'s UTC
 * getters read its fields). A zone's offset maps one to the other; around a DST transition a
 * wall time may have no instant (spring forward) or two (fall back).
 */
import { ConfigurationError } from '../errors.js';

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

/** Offsets are cached per quarter of an hour: every transition of this era falls on one. */
const BUCKET = 15 * MINUTE;
const CACHE_LIMIT = 100_000;

interface Zone {
  readonly format: Intl.DateTimeFormat | undefined;
  readonly offsets: Map<number, number>;
}

const zones = new Map<string, Zone>();

/**
 * Checks that `name` is a time zone this Node knows (IANA names such as `Europe/Paris`, or
 * `UTC`) and returns its canonical spelling.
 *
 * @throws {@link ConfigurationError} naming `field` and the zone.
 */
export function checkTimeZone(name: unknown, field = 'timezone'): string {
  if (typeof name !== 'string' || name.trim() === '') {
    throw new ConfigurationError(`${field}: expected an IANA time zone name such as "Europe/Paris" or "UTC", got ${JSON.stringify(name)}`);
  }
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: name }).resolvedOptions().timeZone;
  } catch {
    throw new ConfigurationError(
      `${field}: ${JSON.stringify(name)} is not a time zone this Node knows; use an IANA name such as "Europe/Paris", "America/New_York" or "UTC"`,
    );
  }
}

function zoneOf(name: string): Zone {
  let zone = zones.get(name);
  if (!zone) {
    const utc = name === 'UTC' || name === 'Etc/UTC' || name === 'GMT';
    const format = utc
      ? undefined
      : new Intl.DateTimeFormat('en-US', {
          timeZone: checkTimeZone(name),
          hourCycle: 'h23',
          year: 'numeric',
          month: 'numeric',
          day: 'numeric',
          hour: 'numeric',
          minute: 'numeric',
          second: 'numeric',
        });
    zone = { format, offsets: new Map() };
    zones.set(name, zone);
  }
  return zone;
}

/** The zone's offset from UTC at `instant`, in ms (east positive: Paris in winter is +3,600,000). */
export function offsetAt(zoneName: string, instant: number): number {
  const zone = zoneOf(zoneName);
  if (!zone.format) return 0;
  const bucket = Math.floor(instant / BUCKET);
  const cached = zone.offsets.get(bucket);
  if (cached !== undefined) return cached;
  const at = bucket * BUCKET;
  const parts: Record<string, number> = {};
  for (const part of zone.format.formatToParts(at)) if (part.type !== 'literal') parts[part.type] = Number(part.value);
  const wall = Date.UTC(parts['year']!, parts['month']! - 1, parts['day']!, parts['hour']!, parts['minute']!, parts['second']!);
  const offset = wall - Math.floor(at / 1000) * 1000;
  if (zone.offsets.size >= CACHE_LIMIT) zone.offsets.clear();
  zone.offsets.set(bucket, offset);
  return offset;
}

/** The wall time in the zone at `instant`. */
export function wallTime(zoneName: string, instant: number): number {
  return instant + offsetAt(zoneName, instant);
}

/**
 * The instants whose wall time in the zone is `wall`, earliest first: one as a rule, two in
 * the repeated hour of a fall-back day, none in the skipped hour of a spring-forward day.
 */
export function instantsOf(zoneName: string, wall: number): number[] {
  const before = offsetAt(zoneName, wall - DAY);
  const after = offsetAt(zoneName, wall + DAY);
  const instants: number[] = [];
  for (const offset of before === after ? [before] : [before, after]) {
    const instant = wall - offset;
    if (offsetAt(zoneName, instant) === offset) instants.push(instant);
  }
  return instants.sort((a, b) => a - b);
}

/**
 * The instant a job set for `wall` runs at: the wall time's instant; in a repeated hour the
 * first one (both with `bothInFold`); in a skipped hour the instant the clock would have shown
 * it had it not jumped (02:30 on a spring-forward day in New York runs at 03:30 EDT, as
 * Python's zoneinfo and `java.time` read it).
 */
export function runInstants(zoneName: string, wall: number, bothInFold: boolean): number[] {
  const instants = instantsOf(zoneName, wall);
  if (instants.length === 0) return [wall - offsetAt(zoneName, wall - DAY)];
  return bothInFold ? instants : instants.slice(0, 1);
}

/** `2026-03-29 02:30` style text of a wall time, for messages. */
export function formatWall(wall: number): string {
  return new Date(wall).toISOString().slice(0, 16).replace('T', ' ');
}
