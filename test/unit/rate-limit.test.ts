/** Rate strings, the token bucket and the worker's rate gates, on a manual clock. */
import { describe, expect, it } from 'vitest';
import { Celeriac, ConfigurationError, ManualClock, parseRate } from '../../src/index.js';
import { createLogger } from '../../src/logger.js';
import { TokenBucket } from '../../src/rate-limit.js';
import { RateGates, type SharedRateStore } from '../../src/worker/rate-gates.js';
import type { Task } from '../../src/task.js';

describe('parseRate', () => {
  it("reads Celery's forms as tasks per second", () => {
    expect(parseRate('10/s')).toBe(10);
    expect(parseRate('120/m')).toBe(2);
    expect(parseRate('3600/h')).toBe(1);
    expect(parseRate('5')).toBe(5);
    expect(parseRate(0.5)).toBe(0.5);
    expect(parseRate(' 2 / m ')).toBeCloseTo(1 / 30);
  });

  it('reads 0 and null as no limit', () => {
    expect(parseRate('0')).toBeNull();
    expect(parseRate(0)).toBeNull();
    expect(parseRate(null)).toBeNull();
  });

  it('refuses anything else, naming the field', () => {
    expect(() => parseRate('10/x', 'the rateLimit of task t')).toThrow(/the rateLimit of task t "10\/x" is not a rate; write it as '10\/s'/);
    expect(() => parseRate('fast')).toThrow(ConfigurationError);
    expect(() => parseRate(-1)).toThrow(ConfigurationError);
  });

  it('is checked when a task is defined', () => {
    const app = new Celeriac({ broker: 'memory://rate-parse' });
    expect(() => app.task('t', () => 1, { rateLimit: '3/d' as never })).toThrow(/the rateLimit of task t "3\/d" is not a rate/);
  });
});

describe('TokenBucket', () => {
  it('spaces takes at the rate, with no burst after an idle spell', () => {
    const clock = new ManualClock(0);
    const bucket = new TokenBucket(4, clock); // one every 250 ms
    expect(bucket.take()).toBe(0);
    expect(bucket.take()).toBe(250);
    clock.advance(100);
    expect(bucket.take()).toBe(150);
    clock.advance(10_000);
    expect(bucket.take()).toBe(0);
    expect(bucket.take()).toBe(250); // capacity 1: idle time does not pile up
  });

  it('changes rate from now on', () => {
    const clock = new ManualClock(0);
    const bucket = new TokenBucket(1, clock);
    bucket.take();
    bucket.setRate(10);
    expect(bucket.take()).toBe(100);
  });
});

/** A task stand-in with just what the gates read. */
function task(name: string, options: Record<string, unknown>): Task<never, unknown> {
  return { name, options } as unknown as Task<never, unknown>;
}

function gates(clock: ManualClock, store?: SharedRateStore): { released: string[]; gates: RateGates<{ id: string; task: Task<never, unknown>; args: unknown[] }> } {
  const released: string[] = [];
  const logger = createLogger('critical', () => undefined);
  return { released, gates: new RateGates(clock, (job) => released.push(job.id), () => store, logger) };
}

describe('RateGates', () => {
  it('lets jobs of a limited task go in order at the rate, other tasks untouched', async () => {
    const clock = new ManualClock(0);
    const { released, gates: g } = gates(clock);
    const limited = task('slow', { rateLimit: '2/s' });
    for (let i = 1; i <= 4; i++) g.admit({ id: `s${i}`, task: limited, args: [] });
    expect(g.limits(task('free', {}))).toBe(false);
    await Promise.resolve();
    expect(released).toEqual(['s1']);
    expect(g.held).toBe(3);
    clock.advance(500);
    await Promise.resolve();
    expect(released).toEqual(['s1', 's2']);
    clock.advance(1_000);
    await new Promise((resolve) => setImmediate(resolve));
    expect(released).toEqual(['s1', 's2', 's3', 's4']);
    expect(g.held).toBe(0);
  });

  it('limits each key on its own', async () => {
    const clock = new ManualClock(0);
    const { released, gates: g } = gates(clock);
    const perCustomer = task('bill', { rateLimit: '1/s', rateLimitKey: (customer: string) => customer });
    for (const [id, customer] of [['a1', 'a'], ['a2', 'a'], ['b1', 'b'], ['b2', 'b']] as const) g.admit({ id, task: perCustomer, args: [customer] });
    await Promise.resolve();
    expect(released.sort()).toEqual(['a1', 'b1']);
    clock.advance(1_000);
    await new Promise((resolve) => setImmediate(resolve));
    expect(released.sort()).toEqual(['a1', 'a2', 'b1', 'b2']);
  });

  it('applies a rate changed at run time, and lets everything go when the limit is lifted', async () => {
    const clock = new ManualClock(0);
    const { released, gates: g } = gates(clock);
    const t = task('t', { rateLimit: '1/m' });
    for (let i = 1; i <= 3; i++) g.admit({ id: `j${i}`, task: t, args: [] });
    await Promise.resolve();
    expect(released).toEqual(['j1']);
    g.setRate('t', '10/s');
    clock.advance(100);
    await new Promise((resolve) => setImmediate(resolve));
    expect(released).toEqual(['j1', 'j2']);
    g.setRate('t', '0');
    await new Promise((resolve) => setImmediate(resolve));
    expect(released).toEqual(['j1', 'j2', 'j3']);
    expect(g.limits(t)).toBe(false);
  });

  it('asks the shared store for a global limit, releases what it grants, and waits as long as it says', async () => {
    const clock = new ManualClock(0);
    const asked: Array<[string, number]> = [];
    const answers = [{ granted: 1, waitMs: 0 }, { granted: 0, waitMs: 300 }, { granted: 2, waitMs: 0 }, { granted: 0, waitMs: 200 }];
    const store: SharedRateStore = { acquire: async (key, _perSecond, count) => (asked.push([key, count]), answers.shift() ?? { granted: 0, waitMs: 60_000 }) };
    const { released, gates: g } = gates(clock, store);
    const t = task('g', { rateLimit: '5/s', rateLimitScope: 'global' });
    g.admit({ id: 'x1', task: t, args: [] });
    await new Promise((resolve) => setImmediate(resolve));
    expect(released).toEqual(['x1']);
    g.admit({ id: 'x2', task: t, args: [] }); // the store says: not for 300 ms
    await new Promise((resolve) => setImmediate(resolve));
    expect(released).toEqual(['x1']);
    g.admit({ id: 'x3', task: t, args: [] });
    g.admit({ id: 'x4', task: t, args: [] });
    clock.advance(299);
    await new Promise((resolve) => setImmediate(resolve));
    expect(released).toEqual(['x1']);
    clock.advance(1); // two of the three slots are due now; the third in 200 ms
    await new Promise((resolve) => setImmediate(resolve));
    expect(released).toEqual(['x1', 'x2', 'x3']);
    expect(asked).toEqual([['g', 1], ['g', 1], ['g', 3], ['g', 1]]); // each time, as many as wait
  });

  it('hands back everything held when drained', () => {
    const clock = new ManualClock(0);
    const { gates: g } = gates(clock);
    const t = task('t', { rateLimit: '1/h' });
    for (let i = 1; i <= 3; i++) g.admit({ id: `d${i}`, task: t, args: [] });
    expect(g.drain().map((job) => job.id)).toEqual(['d2', 'd3']);
    expect(g.held).toBe(0);
  });
});
