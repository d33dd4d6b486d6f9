/**
 * The dashboard's task store: filters, search by id and argument text, paging newest first,
 * counts that follow each task's state, children by parent, a bound that evicts the oldest
 * tasks from the index too, and the figure: a filtered query over 100,000 stored tasks
 * answers within 100 ms.
 */
import { describe, expect, it } from 'vitest';
import type { CeleryEvent } from '../../src/brokers/broker.js';
import { TaskStore } from '../../src/dashboard/store.js';
import { TaskSeries } from '../../src/dashboard/series.js';
import { ManualClock } from '../../src/clock.js';

const T0 = 1_800_000_000;

function received(uuid: string, name: string, args: string, at: number, extra: Record<string, unknown> = {}): CeleryEvent {
  return { type: 'task-received', uuid, name, args, kwargs: '{}', hostname: 'w1@h', timestamp: at, ...extra };
}

describe('TaskStore', () => {
  it('filters by state, name, worker, time and text, newest first, a page at a time', () => {
    const store = new TaskStore();
    for (let i = 0; i < 30; i++) {
      store.event(received(`id-${i}`, i % 3 === 0 ? 'mail.send' : 'img.resize', `['user-${i}@example.org']`, T0 + i, { hostname: i % 2 ? 'w1@h' : 'w2@h' }));
      if (i % 5 === 0) store.event({ type: 'task-failed', uuid: `id-${i}`, hostname: i % 2 ? 'w1@h' : 'w2@h', exception: 'ValueError()', timestamp: T0 + i + 0.5 });
    }
    expect(store.query({ limit: 3 }).tasks.map((task) => task.uuid)).toEqual(['id-29', 'id-28', 'id-27']);
    expect(store.query({ offset: 27, limit: 5 })).toMatchObject({ total: 30, offset: 27 });
    expect(store.query({ offset: 27, limit: 5 }).tasks.map((task) => task.uuid)).toEqual(['id-2', 'id-1', 'id-0']);
    expect(store.query({ state: 'FAILURE' }).tasks.map((task) => task.uuid)).toEqual(['id-25', 'id-20', 'id-15', 'id-10', 'id-5', 'id-0']);
    expect(store.query({ state: 'FAILURE', name: 'mail.send' }).tasks.map((task) => task.uuid)).toEqual(['id-15', 'id-0']);
    expect(store.query({ name: 'mail.send', worker: 'w2@h' }).total).toBe(5);
    expect(store.query({ search: 'USER-17@' }).tasks.map((task) => task.uuid)).toEqual(['id-17']);
    expect(store.query({ search: 'id-2' }).tasks.map((task) => task.uuid)).toEqual(['id-2']); // an exact id
    expect(store.query({ search: 'id-2', offset: 1 }).tasks).toEqual([]);
    expect(store.query({ since: T0 + 27 }).total).toBe(3);
    expect(Object.fromEntries(store.countsByState())).toEqual({ RECEIVED: 24, FAILURE: 6 });
    expect(store.countsByNameAndState()).toContainEqual(['mail.send', 'FAILURE', 2]);
  });

  it('moves counts with each state, and finds children by parent', () => {
    const store = new TaskStore();
    store.event(received('root', 'flow.start', '[]', T0));
    const change = store.event({ type: 'task-succeeded', uuid: 'root', result: '1', runtime: 0.2, hostname: 'w1@h', timestamp: T0 + 1 });
    expect(change).toMatchObject({ previous: 'RECEIVED', task: { state: 'SUCCESS' } });
    store.event(received('child-1', 'flow.step', '[1]', T0 + 2, { parent_id: 'root', root_id: 'root' }));
    store.event(received('child-2', 'flow.step', '[2]', T0 + 3, { parent_id: 'root', root_id: 'root' }));
    expect(store.childrenOf('root').sort()).toEqual(['child-1', 'child-2']);
    expect(Object.fromEntries(store.countsByState())).toEqual({ SUCCESS: 1, RECEIVED: 2 });
    expect(store.event({ type: 'worker-heartbeat', hostname: 'w1@h', freq: 2, timestamp: T0 })).toBeUndefined();
    expect(store.workersVersion).toBe(1);
  });

  it('keeps at most maxTasks, forgetting the oldest from the index and the counts too', () => {
    const store = new TaskStore({ maxTasks: 100 });
    for (let i = 0; i < 250; i++) store.event(received(`id-${i}`, i < 200 ? 'old.task' : 'new.task', `[${i}]`, T0 + i, { parent_id: i > 0 ? `id-${i - 1}` : null }));
    expect(store.size).toBe(100);
    expect(store.state.tasks.size).toBe(100);
    expect(store.query({ limit: 1000 }).tasks.map((task) => task.uuid)).toEqual(Array.from({ length: 100 }, (_, i) => `id-${249 - i}`));
    expect(Object.fromEntries(store.countsByName())).toEqual({ 'old.task': 50, 'new.task': 50 });
    expect(store.query({ search: '[3]' }).total).toBe(0);
    expect(store.childrenOf('id-149')).toEqual([]); // its child id-150 is the oldest kept, and keeps it as parent
    expect(store.childrenOf('id-150')).toEqual(['id-151']);
    // An evicted task that comes back is a new arrival.
    store.event({ type: 'task-succeeded', uuid: 'id-3', hostname: 'w1@h', timestamp: T0 + 999 });
    expect(store.size).toBe(100);
    expect(store.query({ limit: 1 }).tasks[0]!.uuid).toBe('id-3');
  });

  it('answers a filtered query over 100,000 stored tasks within 100 ms', () => {
    const store = new TaskStore({ maxTasks: 100_000 });
    const names = ['mail.send', 'img.resize', 'report.build', 'billing.charge', 'search.index'];
    const states = ['task-succeeded', 'task-failed', 'task-started'];
    for (let i = 0; i < 110_000; i++) {
      const uuid = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
      store.event(received(uuid, names[i % names.length]!, `['customer-${i % 977}', ${i}]`, T0 + i / 1000, { hostname: `w${i % 8}@h` }));
      store.event({ type: states[i % states.length]!, uuid, hostname: `w${i % 8}@h`, runtime: 0.01, timestamp: T0 + i / 1000 + 0.001 });
    }
    expect(store.size).toBe(100_000);
    const timings: Record<string, number> = {};
    const timed = (label: string, query: Parameters<TaskStore['query']>[0]): number => {
      const started = performance.now();
      const page = store.query(query);
      timings[label] = performance.now() - started;
      return page.total;
    };
    timed('warm-up', { state: 'FAILURE' });
    expect(timed('state + name', { state: 'FAILURE', name: 'billing.charge', limit: 50 })).toBeGreaterThan(0);
    expect(timed('worker, page 100', { worker: 'w3@h', offset: 5000, limit: 50 })).toBeGreaterThan(5000);
    expect(timed('argument text', { search: 'customer-42\'', limit: 50 })).toBeGreaterThan(0);
    expect(timed('text + state', { search: 'customer-9', state: 'SUCCESS', limit: 50 })).toBeGreaterThan(0);
    delete timings['warm-up'];
    console.info(`dashboard store, 100,000 tasks, query ms: ${JSON.stringify(Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Number(v.toFixed(1))])))}`);
    for (const [label, ms] of Object.entries(timings)) expect(ms, label).toBeLessThan(100);
  });
});

describe('TaskSeries', () => {
  it('counts ends per bucket and name, and reads run-time percentiles', () => {
    const clock = new ManualClock(T0 * 1000);
    const series = new TaskSeries({ bucketSeconds: 10, buckets: 6, clock });
    for (let i = 1; i <= 100; i++) series.record('a', 'succeeded', T0 - 15, i / 100);
    series.record('a', 'failed', T0 - 5);
    series.record('b', 'succeeded', T0 - 5, 2);
    series.record('b', 'succeeded', T0 - 3600, 2); // older than the window: left out
    const throughput = series.throughput(60, ['a']);
    expect(throughput.times).toHaveLength(6);
    // Buckets of 10 s; the last is the one now falls in (T0 starts it).
    expect(throughput.series.map((line) => [line.label, line.values.slice(-3)])).toEqual([
      ['a', [10, 0.1, 0]],
      ['(other)', [0, 0.1, 0]],
    ]);
    expect(series.failures(60, ['a', 'b']).series[0]!.values.at(-2)).toBe(1);
    expect(series.percentiles(60, 'a').series.map((line) => [line.label, line.values.at(-3)])).toEqual([
      ['p50', 0.5],
      ['p90', 0.9],
      ['p99', 0.99],
    ]);
    expect(series.summary(60)).toEqual([
      { name: 'a', succeeded: 100, failed: 1, p50: 0.5, p90: 0.9, p99: 0.99 },
      { name: 'b', succeeded: 1, failed: 0, p50: 2, p90: 2, p99: 2 },
    ]);
    clock.advance(120_000);
    expect(series.summary(60)).toEqual([]);
  });
});
