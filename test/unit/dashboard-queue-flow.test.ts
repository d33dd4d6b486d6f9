/**
 * The dashboard's queue flow: tasks in flight per queue from the events (in whatever order
 * processes' events arrive), rates out from task-received, rates in from task-sent events or, without them, from the rate out and the
 * queue's growth between length samples; and reading back the Python reprs of arguments that
 * the "retry" action sends again.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { parsePythonLiteral } from '../../src/dashboard/python-literal.js';
import { QueueFlow, RATE_WINDOW } from '../../src/dashboard/queue-flow.js';
import { pythonRepr } from '../../src/protocol/repr.js';

const event = (type: string, uuid: string, at: number, extra: Record<string, unknown> = {}) => ({ type, uuid, timestamp: at, hostname: 'w1@host', ...extra });

describe('QueueFlow', () => {
  it('counts in flight from task-received to the end, and rates over the window', () => {
    const clock = new ManualClock(1_000_000_000);
    const flow = new QueueFlow(() => ['only'], { clock });
    const t = clock.now() / 1000;
    for (let i = 0; i < 6; i++) flow.observe(event('task-sent', `t${i}`, t, { queue: 'q1' }));
    for (let i = 0; i < 3; i++) flow.observe(event('task-received', `t${i}`, t));
    flow.observe(event('task-succeeded', 't0', t));
    flow.observe(event('task-retried', 't1', t));
    expect(flow.stats('q1')).toEqual({ inFlight: 1, rateOut: 3 / RATE_WINDOW, rateIn: 6 / RATE_WINDOW, rateInFrom: 'task-sent events' });
    clock.advance((RATE_WINDOW + 1) * 1000);
    expect(flow.stats('q1')).toMatchObject({ inFlight: 1, rateOut: 0, rateIn: 0 });
  });

  it('puts a task without a task-sent event on its worker’s queue when the worker consumes one only', () => {
    const clock = new ManualClock(1_000_000_000);
    const flow = new QueueFlow((hostname) => (hostname === 'solo@host' ? ['solo-q'] : ['a', 'b']), { clock });
    flow.observe(event('task-received', 'x', clock.now() / 1000, { hostname: 'solo@host' }));
    flow.observe(event('task-received', 'y', clock.now() / 1000, { hostname: 'multi@host' }));
    expect(flow.stats('solo-q').inFlight).toBe(1);
    expect(flow.stats('a').inFlight + flow.stats('b').inFlight).toBe(0);
    expect(flow.queueOf('x')).toBe('solo-q');
  });

  it('counts a task received before its task-sent event arrives, once that names the queue', () => {
    const clock = new ManualClock(1_000_000_000);
    const flow = new QueueFlow(() => ['a', 'b'], { clock });
    const t = clock.now() / 1000;
    flow.observe(event('task-received', 'early', t));
    flow.observe(event('task-received', 'done-early', t));
    flow.observe(event('task-succeeded', 'done-early', t));
    expect(flow.stats('q1').inFlight).toBe(0); // no queue known yet
    flow.observe(event('task-sent', 'early', t, { queue: 'q1' }));
    flow.observe(event('task-sent', 'done-early', t, { queue: 'q1' }));
    expect(flow.stats('q1')).toMatchObject({ inFlight: 1, rateOut: 2 / RATE_WINDOW, rateIn: 2 / RATE_WINDOW });
    flow.observe(event('task-succeeded', 'early', t));
    expect(flow.stats('q1').inFlight).toBe(0);
  });

  it('without task-sent events, the rate in is the rate out plus the growth between length samples', () => {
    const clock = new ManualClock(1_000_000_000);
    const flow = new QueueFlow(() => ['q'], { clock });
    flow.sample('q', 100);
    expect(flow.stats('q').rateIn).toBeNull();
    clock.advance(10_000);
    const t = clock.now() / 1000;
    for (let i = 0; i < 30; i++) flow.observe(event('task-received', `r${i}`, t));
    flow.sample('q', 150); // +50 in 10 s while 30 went out in the window: in = 30/60 + 5
    expect(flow.stats('q')).toMatchObject({ rateIn: 30 / RATE_WINDOW + 5, rateInFrom: 'length samples' });
    clock.advance(10_000);
    flow.sample('q', 0); // drained faster than anything can explain: never below zero
    expect(flow.stats('q').rateIn).toBe(0);
  });
});

describe('parsePythonLiteral', () => {
  it('reads back what pythonRepr writes', () => {
    for (const value of [[1, -2.5, 'it\'s "x" ✓\n\t\\', true, false, null, [], {}], { a: [1, { b: 'c' }], "d'e": null }, ['🙂 漢字', 1e21]]) {
      expect(parsePythonLiteral(pythonRepr(value))).toEqual(value);
    }
    expect(parsePythonLiteral("(1, 'two', [3])")).toEqual([1, 'two', [3]]);
    expect(parsePythonLiteral("'\\x41\\u00e9'")).toBe('Aé');
  });

  it('refuses what cannot be sent again, saying why', () => {
    expect(() => parsePythonLiteral(pythonRepr(['x'.repeat(2000)]))).toThrow(/cannot read the arguments back/);
    expect(() => parsePythonLiteral("[b'bytes']")).toThrow(/bytes/);
    expect(() => parsePythonLiteral('[<object at 0x1>]')).toThrow(/not a literal/);
    expect(() => parsePythonLiteral('[nan]')).toThrow(/no JSON form/);
    expect(() => parsePythonLiteral('{1: 2}')).toThrow(/text keys/);
  });
});
