// The tasks bench/separate.ts runs in `celeriac worker -A bench/peers/celeriac-tasks.js`: a no-op, and a
// probe given its send time that returns the milliseconds from then to its handler's start (both on
// CLOCK_MONOTONIC, process.hrtime, which every process on the machine shares).
import { Celeriac } from 'celeriac';

export const app = new Celeriac();
app.task('bench.noop', () => null);
app.task('bench.probe', (_ctx, sentAt) => Number(process.hrtime.bigint()) / 1e6 - sentAt);
export default app;
