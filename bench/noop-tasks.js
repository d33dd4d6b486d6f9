// The no-op task as plain JavaScript, to measure a worker without the TypeScript loader.
import { Celeriac } from 'celeriac';

export const app = new Celeriac();
app.task('bench.noop', () => null);
export default app;
