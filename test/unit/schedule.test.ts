/**
 * Schedule arithmetic, with no clock at all: intervals, one-off dates, and crontabs in UTC and
 * in time zones across DST transitions (New York and Berlin, and Lord Howe's half hour), leap
 * days and month ends; then which runs a tick sends (catch-up, missed runs, pauses).
 */
import { describe, expect, test } from 'vitest';
import { ConfigurationError } from '../../src/errors.js';
import { crontab, nextRunAfter, toSchedule, type Schedule } from '../../src/beat/schedule.js';
import { planRuns } from '../../src/beat/scheduler.js';
import { defineEntry, runId } from '../../src/beat/entry.js';

const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString().replace('.000Z', 'Z'));

/** The first `count` runs strictly after `from`. */
function runs(schedule: Schedule, from: string, count: number, zone?: string): Array<string | null> {
  const out: Array<string | null> = [];
  let t = at(from);
  for (let i = 0; i < count; i++) {
    const next = nextRunAfter(schedule, t, zone);
    out.push(iso(next));
    if (next === null) break;
    t = next;
  }
  return out;
}

/** Every run in [from, to). */
function runsBetween(schedule: Schedule, from: string, to: string): string[] {
  const out: string[] = [];
  for (let t = nextRunAfter(schedule, at(from) - 1); t !== null && t < at(to); t = nextRunAfter(schedule, t)) out.push(iso(t)!);
  return out;
}

describe('intervals', () => {
  test('the next run is one interval after the previous run', () => {
    expect(runs(toSchedule(30), '2026-01-01T00:00:00Z', 3)).toEqual(['2026-01-01T00:00:30Z', '2026-01-01T00:01:00Z', '2026-01-01T00:01:30Z']);
    expect(runs(toSchedule({ minutes: 1, seconds: 30 }), '2026-01-01T00:00:00Z', 1)).toEqual(['2026-01-01T00:01:30Z']);
    expect(runs(toSchedule({ days: 1 }), '2026-03-07T12:00:00Z', 2)).toEqual(['2026-03-08T12:00:00Z', '2026-03-09T12:00:00Z']);
    expect(toSchedule(0.25)).toEqual({ kind: 'interval', ms: 250 });
  });

  test('bad intervals are refused, saying what is wrong', () => {
    expect(() => toSchedule(0)).toThrow(/every: an interval must be a positive number of seconds, got 0/);
    expect(() => toSchedule(-5)).toThrow(/got -5/);
    expect(() => toSchedule(Number.NaN)).toThrow(/got NaN/);
    expect(() => toSchedule(Infinity)).toThrow(/got Infinity/);
    expect(() => toSchedule({ weeks: 1 })).toThrow(/every: unknown key "weeks"; an interval takes days, hours, minutes and seconds/);
    expect(() => toSchedule({ minutes: -1 })).toThrow(/minutes must be a number of 0 or more, got -1/);
    expect(() => toSchedule({ seconds: '5' })).toThrow(/seconds must be a number/);
    expect(() => toSchedule({})).toThrow(/an empty object/);
    expect(() => toSchedule(null)).toThrow(/expected seconds \(30\), an interval/);
    expect(() => toSchedule([1])).toThrow(ConfigurationError);
    expect(() => toSchedule('30')).toThrow(/every: crontab "30": expected 5 fields/);
  });
});

describe('one-off runs', () => {
  test('run once at the date, then never', () => {
    const once = toSchedule(new Date('2026-06-01T09:00:00Z'));
    expect(runs(once, '2026-01-01T00:00:00Z', 2)).toEqual(['2026-06-01T09:00:00Z', null]);
    expect(nextRunAfter(once, at('2026-06-01T09:00:00Z'))).toBeNull();
    expect(toSchedule({ at: '2026-06-01T09:00:00Z' })).toEqual(once);
  });

  test('a bad date is refused', () => {
    expect(() => toSchedule({ at: 'next tuesday' })).toThrow(/a one-off run needs a date .* got "next tuesday"/);
    expect(() => toSchedule(new Date('nope'))).toThrow(/one-off run needs a date/);
  });
});

describe('crontabs in UTC', () => {
  test('every field form steps to the right next time', () => {
    expect(runs(crontab('*/15 * * * *'), '2026-01-01T00:07:00Z', 3)).toEqual(['2026-01-01T00:15:00Z', '2026-01-01T00:30:00Z', '2026-01-01T00:45:00Z']);
    expect(runs(crontab('0 */6 * * *'), '2026-01-01T05:59:59Z', 2)).toEqual(['2026-01-01T06:00:00Z', '2026-01-01T12:00:00Z']);
    expect(runs(crontab('30 2 * * *'), '2026-01-01T02:30:00Z', 1)).toEqual(['2026-01-02T02:30:00Z']); // strictly after
    expect(runs(crontab('0 9 * * mon-fri'), '2026-01-02T10:00:00Z', 2)).toEqual(['2026-01-05T09:00:00Z', '2026-01-06T09:00:00Z']); // Fri -> Mon
    expect(runs(crontab('0 0 1 */3 *'), '2026-01-15T00:00:00Z', 2)).toEqual(['2026-04-01T00:00:00Z', '2026-07-01T00:00:00Z']);
    expect(runs(crontab('0 0 1 1 *'), '2026-12-31T23:59:00Z', 1)).toEqual(['2027-01-01T00:00:00Z']); // year rollover
    expect(runs(crontab('0 22-2 * * *'), '2026-01-01T21:00:00Z', 5)).toEqual(['2026-01-01T22:00:00Z', '2026-01-01T23:00:00Z', '2026-01-02T00:00:00Z', '2026-01-02T01:00:00Z', '2026-01-02T02:00:00Z']);
  });

  test('day of month and day of week must both match, as in Celery: the first Monday of each month', () => {
    expect(runs(crontab('0 8 1-7 * mon'), '2026-01-01T00:00:00Z', 3)).toEqual(['2026-01-05T08:00:00Z', '2026-02-02T08:00:00Z', '2026-03-02T08:00:00Z']);
    expect(runs(crontab('0 0 13 * fri'), '2026-01-01T00:00:00Z', 2)).toEqual(['2026-02-13T00:00:00Z', '2026-03-13T00:00:00Z']);
  });

  test('month ends: the 31st skips shorter months, the 30th skips February', () => {
    expect(runs(crontab('0 12 31 * *'), '2026-01-31T13:00:00Z', 3)).toEqual(['2026-03-31T12:00:00Z', '2026-05-31T12:00:00Z', '2026-07-31T12:00:00Z']);
    expect(runs(crontab('0 0 30 * *'), '2026-01-30T01:00:00Z', 2)).toEqual(['2026-03-30T00:00:00Z', '2026-04-30T00:00:00Z']);
    expect(runs(crontab('59 23 28-31 * *'), '2026-02-27T00:00:00Z', 3)).toEqual(['2026-02-28T23:59:00Z', '2026-03-28T23:59:00Z', '2026-03-29T23:59:00Z']);
  });

  test('leap days: 29 February runs in leap years only, and on the weekday it asks for', () => {
    expect(runs(crontab('0 0 29 2 *'), '2025-01-01T00:00:00Z', 3)).toEqual(['2028-02-29T00:00:00Z', '2032-02-29T00:00:00Z', '2036-02-29T00:00:00Z']);
    expect(runs(crontab('0 0 29 2 *'), '2100-01-01T00:00:00Z', 1)).toEqual(['2104-02-29T00:00:00Z']); // 2100 is no leap year
    expect(runs(crontab('0 0 29 2 mon'), '2025-01-01T00:00:00Z', 1)).toEqual(['2044-02-29T00:00:00Z']);
    expect(runsBetween(crontab('0 0 * 2 *'), '2028-02-01T00:00:00Z', '2028-03-01T00:00:00Z')).toHaveLength(29);
    expect(runsBetween(crontab('0 0 * 2 *'), '2027-02-01T00:00:00Z', '2027-03-01T00:00:00Z')).toHaveLength(28);
  });

  test('the beat zone applies to crontabs that name none', () => {
    expect(runs(crontab('0 9 * * *'), '2025-12-31T23:00:00Z', 1, 'Asia/Tokyo')).toEqual(['2026-01-01T00:00:00Z']);
    expect(runs(crontab('0 9 * * *', 'UTC'), '2026-01-01T00:00:00Z', 1, 'Asia/Tokyo')).toEqual(['2026-01-01T09:00:00Z']);
  });
});

describe('crontabs in time zones', () => {
  test('a zone with a fractional offset and no DST (Kolkata, +05:30)', () => {
    expect(runs(crontab('30 9 * * *', 'Asia/Kolkata'), '2026-01-01T00:00:00Z', 2)).toEqual(['2026-01-01T04:00:00Z', '2026-01-02T04:00:00Z']);
  });

  describe('America/New_York (2026: forward 8 March 02:00 EST -> 03:00 EDT; back 1 November 02:00 EDT -> 01:00 EST)', () => {
    const zone = 'America/New_York';

    test('a 02:30 job on the spring-forward day runs once, at 03:30 EDT; on the days around, at 02:30', () => {
      expect(runs(crontab('30 2 * * *', zone), '2026-03-07T00:00:00Z', 3)).toEqual([
        '2026-03-07T07:30:00Z', // 02:30 EST
        '2026-03-08T07:30:00Z', // 02:30 does not exist: 03:30 EDT
        '2026-03-09T06:30:00Z', // 02:30 EDT
      ]);
    });

    test('a 01:30 job on the fall-back day runs once, at the first 01:30 (EDT)', () => {
      expect(runs(crontab('30 1 * * *', zone), '2026-10-31T00:00:00Z', 3)).toEqual([
        '2026-10-31T05:30:00Z', // 01:30 EDT
        '2026-11-01T05:30:00Z', // the first 01:30 (EDT); not 06:30Z (EST) as well
        '2026-11-02T06:30:00Z', // 01:30 EST
      ]);
    });

    test('an hourly job runs in both of the repeated hours, and once an hour across the gap', () => {
      expect(runsBetween(crontab('30 * * * *', zone), '2026-11-01T04:00:00Z', '2026-11-01T08:00:00Z')).toEqual([
        '2026-11-01T04:30:00Z', // 00:30 EDT
        '2026-11-01T05:30:00Z', // 01:30 EDT
        '2026-11-01T06:30:00Z', // 01:30 EST
        '2026-11-01T07:30:00Z', // 02:30 EST
      ]);
      expect(runsBetween(crontab('30 * * * *', zone), '2026-03-08T05:00:00Z', '2026-03-08T09:00:00Z')).toEqual([
        '2026-03-08T05:30:00Z', // 00:30 EST
        '2026-03-08T06:30:00Z', // 01:30 EST
        '2026-03-08T07:30:00Z', // 02:30 skipped: 03:30 EDT, once
        '2026-03-08T08:30:00Z', // 04:30 EDT
      ]);
    });

    test('every 15 minutes across both transitions: no run twice at one instant, none lost', () => {
      const spring = runsBetween(crontab('*/15 * * * *', zone), '2026-03-08T06:00:00Z', '2026-03-08T08:00:00Z');
      expect(spring).toEqual(['06:00', '06:15', '06:30', '06:45', '07:00', '07:15', '07:30', '07:45'].map((hm) => `2026-03-08T${hm}:00Z`));
      const fall = runsBetween(crontab('*/15 * * * *', zone), '2026-11-01T05:00:00Z', '2026-11-01T07:00:00Z');
      expect(fall).toHaveLength(8); // two real hours, one of them repeated on the wall clock
      expect(new Set(fall).size).toBe(8);
    });

    test('a daily job runs exactly once on each day of March and November', () => {
      expect(runsBetween(crontab('30 2 * * *', zone), '2026-03-01T05:00:00Z', '2026-04-01T04:00:00Z')).toHaveLength(31);
      expect(runsBetween(crontab('30 1 * * *', zone), '2026-11-01T04:00:00Z', '2026-12-01T05:00:00Z')).toHaveLength(30);
    });
  });

  describe('Europe/Berlin (2026: forward 29 March 02:00 CET -> 03:00 CEST; back 25 October 03:00 CEST -> 02:00 CET)', () => {
    const zone = 'Europe/Berlin';

    test('a 02:30 job on the spring-forward day runs once, at 03:30 CEST', () => {
      expect(runs(crontab('30 2 * * *', zone), '2026-03-28T00:00:00Z', 3)).toEqual(['2026-03-28T01:30:00Z', '2026-03-29T01:30:00Z', '2026-03-30T00:30:00Z']);
    });

    test('a 02:30 job on the fall-back day runs once, at the first 02:30 (CEST)', () => {
      expect(runs(crontab('30 2 * * *', zone), '2026-10-24T00:00:00Z', 3)).toEqual(['2026-10-24T00:30:00Z', '2026-10-25T00:30:00Z', '2026-10-26T01:30:00Z']);
    });

    test('a Sunday job keeps its wall time across the transition', () => {
      expect(runs(crontab('0 10 * * sun', zone), '2026-03-21T00:00:00Z', 2)).toEqual(['2026-03-22T09:00:00Z', '2026-03-29T08:00:00Z']);
    });

    test('every minute from 01:58 CET on the spring-forward day steps over the missing hour', () => {
      expect(runs(crontab('* * * * *', zone), '2026-03-29T00:58:00Z', 3)).toEqual(['2026-03-29T00:59:00Z', '2026-03-29T01:00:00Z', '2026-03-29T01:01:00Z']);
    });
  });

  test('Australia/Lord_Howe shifts by half an hour: a job in the repeated half hour runs once', () => {
    // 2026-04-05 02:00 LHDT (+11) -> 01:30 LHST (+10:30): 01:45 happens twice.
    expect(runs(crontab('45 1 * * *', 'Australia/Lord_Howe'), '2026-04-04T00:00:00Z', 2)).toEqual(['2026-04-04T14:45:00Z', '2026-04-05T15:15:00Z']);
    const first = nextRunAfter(crontab('45 1 * * *', 'Australia/Lord_Howe'), at('2026-04-04T12:00:00Z'));
    expect(iso(first)).toBe('2026-04-04T14:45:00Z');
  });
});

describe('entries', () => {
  test('a definition is checked when made, naming the entry and the field', () => {
    expect(() => defineEntry('nightly', { task: 'reports.build', every: '0 25 * * *' }, 'code')).toThrow(
      /schedule "nightly": every: crontab "0 25 \* \* \*": hour field "25": 25 is out of range 0-23/,
    );
    expect(() => defineEntry('nightly', { task: 'reports.build', every: '0 2 * * *', timezone: 'Europe/Pariss' }, 'code')).toThrow(/schedule "nightly": every: timezone: "Europe\/Pariss" is not a time zone/);
    expect(() => defineEntry('poll', { task: 'feeds.poll', every: -1 }, 'code')).toThrow(/schedule "poll": every: an interval must be a positive number of seconds, got -1/);
    expect(() => defineEntry('poll', { task: 'feeds.poll', every: 5, timezone: 'UTC' }, 'code')).toThrow(/schedule "poll": timezone: only a crontab/);
    expect(() => defineEntry('poll', { task: '', every: 5 }, 'code')).toThrow(/schedule "poll": task: expected a task or its name/);
    expect(() => defineEntry('poll', { task: 'x', every: 5, missed: 'maybe' as never }, 'code')).toThrow(/missed: expected 'run-once' or 'skip'/);
    expect(() => defineEntry('poll', { task: 'x', every: 5, options: { queue: 'q', prio: 1 } as never }, 'code')).toThrow(/options: unknown option "prio"/);
    expect(() => defineEntry('poll', { task: 'x', every: 5, options: { priority: 12 } }, 'code')).toThrow(/options.priority: expected a whole number from 0 to 9, got 12/);
    expect(() => defineEntry('poll', { task: 'x', every: 5, args: 'a' as never }, 'code')).toThrow(/args: expected an array/);
    expect(() => defineEntry('poll', { task: 'x', every: 5, evry: 5 } as never, 'code')).toThrow(/unknown field "evry"/);
    expect(() => defineEntry('', { task: 'x', every: 5 }, 'code')).toThrow(/schedule name: expected non-empty text/);
  });

  test('a crontab string is read in the entry zone', () => {
    const entry = defineEntry('report', { task: 'r', every: '30 2 * * *', timezone: 'Europe/Berlin' }, 'code');
    expect(entry.schedule).toMatchObject({ kind: 'crontab', expression: '30 2 * * *', timezone: 'Europe/Berlin' });
  });

  test('a run id is the same for the same entry and time, and differs otherwise', () => {
    expect(runId('a', 1000)).toBe(runId('a', 1000));
    expect(runId('a', 1000)).not.toBe(runId('a', 2000));
    expect(runId('a', 1000)).not.toBe(runId('b', 1000));
    expect(runId('a', 1000)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

describe('which runs a tick sends', () => {
  const every10 = toSchedule(10);
  const base = at('2026-01-01T00:00:00Z');
  const policy = { missed: 'run-once' as const, catchUpMs: 20_000, zone: 'UTC', paused: false };

  test('nothing before the next run; the run once it is due', () => {
    expect(planRuns(every10, base, base + 9_999, policy)).toBeNull();
    expect(planRuns(every10, base, base + 10_000, policy)).toEqual({ send: [base + 10_000], through: base + 10_000 });
  });

  test('runs late by no more than the catch-up window are all sent, each once (a takeover owes them)', () => {
    expect(planRuns(every10, base, base + 29_000, policy)).toEqual({ send: [base + 10_000, base + 20_000], through: base + 20_000 });
    expect(planRuns(every10, base, base + 30_000, policy)).toEqual({ send: [base + 10_000, base + 20_000, base + 30_000], through: base + 30_000 });
  });

  test('missed runs with run-once: one run, the latest, for all of them', () => {
    const plan = planRuns(every10, base, base + 3_600_000, policy)!;
    expect(plan.send).toEqual([base + 3_600_000]);
    expect(plan.through).toBe(base + 3_600_000);
    expect(plan.dropped).toEqual({ from: base + 10_000, through: base + 3_590_000, reason: 'missed' });
  });

  test('missed runs with skip: only those still within the window go', () => {
    const plan = planRuns(every10, base, base + 3_600_005, { ...policy, missed: 'skip' })!;
    expect(plan.send).toEqual([base + 3_590_000, base + 3_600_000]);
    expect(plan.dropped).toEqual({ from: base + 10_000, through: base + 3_580_000, reason: 'missed' });
  });

  test('a crontab missed for a month with run-once sends its latest run only', () => {
    const daily = crontab('0 3 * * *');
    const plan = planRuns(daily, at('2026-01-01T03:00:00Z'), at('2026-02-01T12:00:00Z'), policy)!;
    expect(plan.send.map(iso)).toEqual(['2026-02-01T03:00:00Z']);
    expect(iso(plan.dropped!.from)).toBe('2026-01-02T03:00:00Z');
    expect(iso(plan.dropped!.through)).toBe('2026-01-31T03:00:00Z');
  });

  test('a paused entry sends nothing and moves past what fell due', () => {
    expect(planRuns(every10, base, base + 25_000, { ...policy, paused: true })).toEqual({ send: [], through: base + 20_000, dropped: { from: base + 10_000, through: base + 20_000, reason: 'paused' } });
  });

  test('at most `limit` runs per tick; the rest follow', () => {
    const plan = planRuns(toSchedule(0.001), base, base + 15, { ...policy, limit: 10 })!;
    expect(plan.send).toHaveLength(10);
    expect(plan.through).toBe(base + 10);
  });

  test('a one-off date in the past is missed: run-once sends it, skip drops it', () => {
    const once = toSchedule({ at: base });
    expect(planRuns(once, base - 1, base + 3_600_000, policy)!.send).toEqual([base]);
    expect(planRuns(once, base - 1, base + 3_600_000, { ...policy, missed: 'skip' })!.send).toEqual([]);
    expect(planRuns(once, base, base + 3_600_000, policy)).toBeNull();
  });
});
