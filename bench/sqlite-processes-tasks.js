// Tasks for bench/sqlite-processes.ts: a no-op, and a probe returning when it started (wall
// clock in ms, sub-ms precision), so a producer in another process can time enqueue→start.
import { Celeriac } from 'celeriac';

export const app = new Celeriac();
app.task('bench.noop', () => null);
app.task('bench.startedAt', () => performance.timeOrigin + performance.now());
export default app;
