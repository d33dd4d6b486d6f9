// Tasks for bench/monitoring.ts: a no-op, and a no-op under a global rate limit that never binds
// (so its cost is the limiter's round trip alone).
import { Celeriac } from 'celeriac';

export const app = new Celeriac();
app.task('bench.noop', () => null);
app.task('bench.limited', () => null, { rateLimit: '1000000/s', rateLimitScope: 'global' });
export default app;
