/**
 * `celeriac/dashboard`: the web dashboard and the Prometheus endpoints, for embedding in a
 * process of one's own (`celeriac dashboard` and `celeriac worker --dashboard/--metrics-port`
 * run the same code).
 *
 * @example
 * ```ts
 * import { startDashboard } from 'celeriac/dashboard';
 * const dashboard = await startDashboard(app, { port: 5555 });   // http://127.0.0.1:5555
 * ```
 */
export { Dashboard, startDashboard, type DashboardHost, type DashboardOptions } from './dashboard.js';
export { assertSafeListen, authFromOptions, isLoopback, type AuthSettings } from './auth.js';
export { serveMetrics, workerMetrics, type MeteredWorker, type MetricsServerOptions } from './worker-metrics.js';
export { Registry, Counter, Gauge, Histogram, PROMETHEUS_CONTENT_TYPE, RUNTIME_BUCKETS } from './prometheus.js';
export { TaskStore, type TaskQuery, type TaskPage, type TaskStoreOptions } from './store.js';
export type { Listening } from './http.js';
