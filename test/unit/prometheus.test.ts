/**
 * The Prometheus text the dashboard and workers serve, read back by a strict parser: escapes in
 * label values, histograms (cumulative buckets, +Inf = count), collectors run at scrape time,
 * and the cap on label sets a stream of made-up task names would otherwise grow without end.
 * The parser itself refuses what Prometheus would.
 */
import { describe, expect, it } from 'vitest';
import { MAX_SERIES, Registry } from '../../src/dashboard/prometheus.js';
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.js';

describe('Prometheus text exposition', () => {
  it('writes counters, gauges and histograms that parse back to what was recorded', async () => {
    const registry = new Registry();
    const tasks = registry.counter('celeriac_tasks_total', 'Tasks by state.\nSecond line \\ with a backslash.');
    const queue = registry.gauge('celeriac_queue_length', 'Waiting.');
    const runtime = registry.histogram('celeriac_task_runtime_seconds', 'Run time.', [0.1, 1, 10]);
    tasks.inc({ name: 'a "quoted"\\name\nwith a newline', state: 'SUCCESS' });
    tasks.inc({ name: 'plain', state: 'FAILURE' }, 3);
    let collected = 0;
    registry.collect(() => {
      collected++;
      queue.reset();
      queue.set({ queue: 'celery' }, 7);
    });
    for (const value of [0.05, 0.5, 0.5, 5, 50]) runtime.observe({ name: 'plain' }, value);
    runtime.observe({ name: 'plain' }, Number.NaN); // ignored

    const families = parsePrometheusText(await registry.render());
    expect(collected).toBe(1);
    expect(families.get('celeriac_tasks_total')).toMatchObject({ type: 'counter', help: 'Tasks by state.\nSecond line \\ with a backslash.' });
    expect(sampleValue(families, 'celeriac_tasks_total', { name: 'a "quoted"\\name\nwith a newline', state: 'SUCCESS' })).toBe(1);
    expect(sampleValue(families, 'celeriac_tasks_total', { name: 'plain', state: 'FAILURE' })).toBe(3);
    expect(sampleValue(families, 'celeriac_queue_length', { queue: 'celery' })).toBe(7);
    expect(families.get('celeriac_task_runtime_seconds')?.type).toBe('histogram');
    const bucket = (le: string): number | undefined => sampleValue(families, 'celeriac_task_runtime_seconds_bucket', { name: 'plain', le });
    expect([bucket('0.1'), bucket('1'), bucket('10'), bucket('+Inf')]).toEqual([1, 3, 4, 5]);
    expect(sampleValue(families, 'celeriac_task_runtime_seconds_count', { name: 'plain' })).toBe(5);
    expect(sampleValue(families, 'celeriac_task_runtime_seconds_sum', { name: 'plain' })).toBeCloseTo(56.05);
  });

  it(`keeps at most ${MAX_SERIES} label sets per metric and counts the rest`, async () => {
    const registry = new Registry();
    const counter = registry.counter('x_total', 'x');
    const histogram = registry.histogram('y_seconds', 'y');
    for (let i = 0; i < MAX_SERIES + 10; i++) {
      counter.inc({ name: `task-${i}` });
      histogram.observe({ name: `task-${i}` }, 1);
    }
    const families = parsePrometheusText(await registry.render());
    expect(families.get('x_total')!.samples).toHaveLength(MAX_SERIES);
    expect(families.get('y_seconds')!.samples.filter((sample) => sample.name === 'y_seconds_count')).toHaveLength(MAX_SERIES);
    expect(registry.seriesDropped).toBe(20);
  });

  it('refuses names that are not metric names', () => {
    expect(() => new Registry().counter('bad-name', 'x')).toThrow(/invalid metric name/);
  });
});

describe('the strict parser', () => {
  const refuses: Array<[string, string, RegExp]> = [
    ['a bad escape', '# TYPE a counter\na{x="\\q"} 1\n', /bad escape/],
    ['a duplicate series', '# TYPE a counter\na{x="1"} 1\na{x="1"} 2\n', /duplicate series/],
    ['a TYPE after samples', 'a 1\n# TYPE a counter\n', /TYPE after samples/],
    ['a split family', '# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x="2"} 1\n', /split/],
    ['a bad value', '# TYPE a gauge\na one\n', /bad value/],
    ['a missing newline at the end', '# TYPE a gauge\na 1', /newline/],
    ['buckets that are not cumulative', '# TYPE h histogram\nh_bucket{le="1"} 5\nh_bucket{le="+Inf"} 3\nh_sum 1\nh_count 3\n', /not cumulative/],
    ['a histogram without +Inf', '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', /\+Inf/],
    ['a +Inf bucket that is not the count', '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n', /not the count/],
  ];
  for (const [what, text, error] of refuses) it(`refuses ${what}`, () => expect(() => parsePrometheusText(text)).toThrow(error));
});
