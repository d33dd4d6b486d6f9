/** The no-op task the benchmarks run in worker processes. */
import { Celeriac } from 'celeriac';

export const app = new Celeriac();
app.task('bench.noop', () => null);
export default app;
