// The tasks of bench/canvas.ts, run by a `celeriac worker -A bench/canvas-tasks.js` process (plain
// JavaScript: no TypeScript loader in the worker being measured). The same names as
// bench/python/canvas_tasks.py, so either worker serves the same workflows.
import { Celeriac } from 'celeriac';

// The worker sends chain steps and chord bodies to the app's default queue: it must be the
// queue the benchmark's worker consumes, which BENCH_QUEUE names.
export const app = new Celeriac({ defaultQueue: process.env.BENCH_QUEUE });
app.task('bench.noop', () => null);
app.task('bench.inc', (_ctx, n) => n + 1);
app.task('bench.count', (_ctx, results) => results.length);
// When it started, in seconds since the epoch (as Python's time.time()), with sub-ms precision,
// for the enqueue→start latency measured by the producer in another process.
app.task('bench.probe', () => (performance.timeOrigin + performance.now()) / 1000);
export default app;
