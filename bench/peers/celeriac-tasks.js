// The tasks bench/separate.ts runs in `celeriac worker -A bench/peers/celeriac-tasks.js`: a no-op, and a
// probe given its send time that returns the milliseconds from then to its handler's start (both
// performance.timeOrigin + performance.now(), in the producer and here).
import { Celeriac } from 'celeriac';

export const app = new Celeriac();
app.task('bench.noop', () => null);
app.task('bench.probe', (_ctx, sentAt) => performance.timeOrigin + performance.now() - sentAt);
export default app;
