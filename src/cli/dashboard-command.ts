/**
 * `celeriac dashboard`: the web dashboard for the workers on a broker (celeriac's and Python
 * Celery's), until SIGINT/SIGTERM. Also what `celeriac worker --dashboard` and
 * `--metrics-port` start inside a worker.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { Celeriac } from '../app.js';
import type { Logger } from '../logger.js';
import type { Worker } from '../worker/worker.js';
import { loadApp, type AppOptions } from './load-app.js';
import { positiveInt } from './option-parsers.js';

/** The dashboard's default address: Flower's port, on loopback. */
export const DASHBOARD_DEFAULTS = { host: '127.0.0.1', port: 5555 } as const;

interface DashboardCommandOptions extends AppOptions {
  host: string;
  port: number;
  auth?: string;
  token?: string;
  maxTasks: number;
  enableEvents: boolean;
}

/** Adds `dashboard` to the program. */
export function registerDashboardCommand(program: Command, withConnection: (command: Command) => Command): void {
  withConnection(program.command('dashboard'))
    .description('Serve the web dashboard: workers, queues, tasks live, charts, control actions and /metrics.')
    .option('--host <address>', 'address to listen on; beyond 127.0.0.1 it needs --auth or --token', DASHBOARD_DEFAULTS.host)
    .option('-p, --port <port>', 'port to listen on', port, DASHBOARD_DEFAULTS.port)
    .option('--auth <user:password>', 'require basic auth (or set CELERIAC_DASHBOARD_AUTH, which keeps it out of ps)')
    .option('--token <token>', 'require this token: Authorization: Bearer, or typed on the login page (or set CELERIAC_DASHBOARD_TOKEN)')
    .option('--max-tasks <n>', 'tasks kept in memory; the oldest go first', positiveInt, 100_000)
    .option('--no-enable-events', "don't ask workers to send task events (by default it does, as Flower does)")
    .addHelpText(
      'after',
      `
Examples:
  $ celeriac dashboard -A ./tasks.ts                       http://127.0.0.1:5555
  $ celeriac dashboard --broker redis://localhost:6379/0 --port 8080
  $ CELERIAC_DASHBOARD_AUTH=admin:s3cret celeriac dashboard --host 0.0.0.0

Tasks appear as workers send task events: start them with -E, or let the dashboard turn
events on (it does unless --no-enable-events). Scrape /metrics with Prometheus; with auth on,
give the scrape config basic_auth or a bearer token.`,
    )
    .action((options: DashboardCommandOptions) => runDashboard(options));
}

async function runDashboard(options: DashboardCommandOptions): Promise<void> {
  const { authFromOptions, assertSafeListen, startDashboard } = await import('../dashboard/index.js');
  const auth = authFromOptions(options);
  assertSafeListen(options.host, auth); // before connecting to anything
  const app = await loadApp(options);
  if (app.brokerUrl.startsWith('memory:')) {
    const { ConfigurationError } = await import('../errors.js');
    throw new ConfigurationError(`the broker ${app.brokerUrl} lives inside one process, so a dashboard started on its own would never see a worker; use sqlite:// (the default), redis:// or amqp:// (or startDashboard(app) in the process itself)`);
  }
  const { createLogger } = await import('../logger.js');
  const logger = createLogger('info');
  try {
    const dashboard = await startDashboard(app, { host: options.host, port: options.port, auth, maxTasks: options.maxTasks, enableEvents: options.enableEvents, logger });
    const broker = await app.broker();
    logger.info(`celeriac dashboard: ${dashboard.url} (broker ${broker.displayUrl}${auth.basic || auth.token ? `, ${auth.basic ? 'basic auth' : 'token'} required` : ''}); Ctrl-C to stop`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    await dashboard.close();
  } finally {
    await app.close();
  }
}

/** `--dashboard [address]` and `--metrics-port <address>` of `celeriac worker`. */
export interface WorkerWebOptions {
  /** True for the default address, or `port` / `host:port`. */
  dashboard?: string | boolean;
  metricsPort?: string;
}

/**
 * Checks the worker's web options before anything connects: their addresses, and auth (from
 * `CELERIAC_DASHBOARD_AUTH` / `CELERIAC_DASHBOARD_TOKEN`) for any beyond loopback.
 */
export async function checkWorkerWeb(options: WorkerWebOptions): Promise<(app: Celeriac, worker: Worker, logger: Logger) => Promise<() => Promise<void>>> {
  if (options.dashboard === undefined && options.metricsPort === undefined) return async () => async () => undefined;
  const { assertSafeListen, authFromOptions } = await import('../dashboard/index.js');
  const { parseAddress } = await import('../dashboard/http.js');
  const auth = authFromOptions({});
  const dashboardAt = options.dashboard === undefined ? undefined : parseAddress(typeof options.dashboard === 'string' ? options.dashboard : String(DASHBOARD_DEFAULTS.port), DASHBOARD_DEFAULTS);
  const metricsAt = options.metricsPort === undefined ? undefined : parseAddress(options.metricsPort, { host: '127.0.0.1', port: 9808 });
  if (dashboardAt) assertSafeListen(dashboardAt.host, auth);
  if (metricsAt) assertSafeListen(metricsAt.host, auth);
  return async (app, worker, logger) => {
    const { serveMetrics, startDashboard, workerMetrics } = await import('../dashboard/index.js');
    const stops: Array<() => Promise<void>> = [];
    const stopAll = async (): Promise<void> => {
      for (const stop of stops.reverse()) await stop().catch(() => undefined);
    };
    try {
      if (metricsAt) {
        const metrics = workerMetrics(worker, () => app.broker());
        const server = await serveMetrics(metrics.registry, { ...metricsAt, auth });
        stops.push(async () => {
          metrics.detach();
          await server.close();
        });
        logger.info(`metrics: ${server.url}/metrics`);
      }
      if (dashboardAt) {
        const dashboard = await startDashboard(app, { ...dashboardAt, auth, logger });
        stops.push(() => dashboard.close());
        logger.info(`dashboard: ${dashboard.url}`);
      }
    } catch (error) {
      await stopAll();
      throw error;
    }
    return stopAll;
  };
}

function port(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 0 || number > 65535) throw new InvalidArgumentError('expected a port from 0 to 65535');
  return number;
}
