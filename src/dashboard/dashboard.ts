/**
 * The dashboard: one process that listens to the broker's event stream (Celery's, so Python
 * workers show up too), keeps the fleet in a bounded {@link TaskStore}, and serves pages,
 * `/metrics` and a stream of server-sent events that keeps open pages live. Control actions go
 * through `app.control` (POST only, with a CSRF token); results are read from the backend.
 *
 * Routes: `/` workers, `/workers/:name`, `/tasks`, `/tasks/:id`, `/queues`, `/queues/:name`,
 * `/charts`, `/metrics`, `/events` (SSE), `/api/workers`, `/api/tasks`, `/api/tasks/:id`; POST
 * actions under `/workers/:name/`, `/queues/:name/` (purge, dead-letters/resend) and
 * `/tasks/:id/` (revoke, terminate, retry).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ResultMeta } from '../backends/backend.js';
import type { CeleryEvent } from '../brokers/broker.js';
import type { Clock } from '../clock.js';
import type { Replies } from '../control.js';
import { describeError } from '../errors.js';
import { createLogger, type Logger } from '../logger.js';
import type { EventStream } from '../monitor/receiver.js';
import type { EventTaskState } from '../monitor/state.js';
import { parseRate } from '../rate-limit.js';
import type { RequestInfo } from '../worker/remote/control-commands.js';
import { SCRIPT, STYLE } from './assets.js';
import { assertSafeListen, Guard, type AuthSettings } from './auth.js';
import { DEAD_LETTER_LIMIT, Fleet, type DashboardHost } from './fleet.js';
import { html } from './html.js';
import { HttpError, listen, readForm, redirect, Router, send, sendHtml, sendJson, sendText, startEventStream, type Listening, type Request } from './http.js';
import type { Flash, PageContext } from './layout.js';
import { DashboardMetrics } from './metrics.js';
import { chartsPage, confirmPage, errorPage, loginPage, queuePage, queuesPage, TASK_STATES, taskPage, tasksPage, workerPage, workersPage, type WorkerRow, type WorkflowNode } from './pages.js';
import { plural } from './layout.js';
import { parsePythonLiteral } from './python-literal.js';
import { PROMETHEUS_CONTENT_TYPE } from './prometheus.js';
import { TaskSeries } from './series.js';
import { TaskStore, type TaskQuery } from './store.js';
import { withTimeout } from './with-timeout.js';

export type { DashboardHost } from './fleet.js';

/** Options of {@link startDashboard}. */
export interface DashboardOptions {
  /** Address to listen on. Default `127.0.0.1`; anything beyond loopback needs `auth`. */
  host?: string;
  /** Port. Default 5555 (Flower's); 0 picks a free one. */
  port?: number;
  /** Basic auth and/or a token; required beyond loopback. */
  auth?: AuthSettings;
  /** Tasks kept in memory; the oldest go first. Default 100,000. */
  maxTasks?: number;
  /**
   * Ask workers to send task events (`enable_events`) at start and as each comes online, as
   * Flower does. Default true.
   */
  enableEvents?: boolean;
  logger?: Logger;
  clock?: Clock;
}

/** A request with the context its page is rendered in. */
interface PageRequest extends Request {
  readonly page: PageContext;
}

/** Seconds to wait for replies to a control action. */
const ACTION_TIMEOUT = 2;
/** Pages kept live at once (each holds one event stream open). */
const MAX_STREAMS = 200;
const FLASH_KEEP = 200;
const WINDOWS: Record<string, number> = { '5m': 300, '15m': 900, '1h': 3600 };
/** How often queue lengths are sampled for the rates in (ms). */
const SAMPLE_EVERY = 5_000;
/** Tasks shown at most in a task's workflow. */
const WORKFLOW_LIMIT = 200;

/** Starts a dashboard for `host` (a Celeriac app) and resolves once it listens. */
export async function startDashboard(host: DashboardHost, options: DashboardOptions = {}): Promise<Dashboard> {
  const dashboard = new Dashboard(host, options);
  await dashboard.start();
  return dashboard;
}

export class Dashboard {
  readonly store: TaskStore;
  readonly fleet: Fleet;
  readonly series: TaskSeries;
  readonly metrics: DashboardMetrics;
  readonly #guard: Guard;
  readonly #router = new Router<PageRequest>();
  readonly #logger: Logger;
  readonly #streams = new Set<ServerResponse>();
  readonly #flashes = new Map<string, Flash>();
  #pending = new Set<string>();
  #notifyTimer: NodeJS.Timeout | undefined;
  #keepAlive: NodeJS.Timeout | undefined;
  #sampler: NodeJS.Timeout | undefined;
  #stream: EventStream | undefined;
  #reading: Promise<void> | undefined;
  #listening: Listening | undefined;
  #taskEventsSeen = false;
  readonly #knownWorkers = new Set<string>();

  constructor(
    private readonly host: DashboardHost,
    private readonly options: DashboardOptions = {},
  ) {
    const auth = options.auth ?? {};
    assertSafeListen(options.host ?? '127.0.0.1', auth);
    this.#guard = new Guard(auth);
    this.#logger = options.logger ?? createLogger('warning');
    this.store = new TaskStore({ maxTasks: options.maxTasks ?? 100_000, ...(options.clock ? { clock: options.clock } : {}) });
    this.series = new TaskSeries(options.clock ? { clock: options.clock } : {});
    this.fleet = new Fleet(host, this.store, () => this.#changed('workers'));
    this.metrics = new DashboardMetrics(this.store, this.fleet, () => this.#stream?.dropped ?? 0);
    this.#routes();
  }

  /** `http://host:port` once started. */
  get url(): string {
    if (!this.#listening) throw new Error('the dashboard is not listening');
    return this.#listening.url;
  }

  /** Subscribes to events, then listens. */
  async start(): Promise<void> {
    this.#stream = await this.host.events.receive({ maxBuffered: 100_000 });
    this.#reading = this.#read(this.#stream);
    try {
      this.#listening = await listen(this.options.host ?? '127.0.0.1', this.options.port ?? 5555, (request, response) => void this.#handle(request, response));
    } catch (error) {
      await this.#stream.close();
      throw error;
    }
    this.#keepAlive = setInterval(() => {
      for (const stream of this.#streams) stream.write(': keep-alive\n\n');
    }, 15_000);
    this.#keepAlive.unref();
    this.#sampler = setInterval(() => void this.fleet.sampleLengths().catch(() => undefined), SAMPLE_EVERY);
    this.#sampler.unref();
    if (this.options.enableEvents !== false) void this.host.control.broadcast('enable_events').catch((error: unknown) => this.#logger.warning(`could not ask workers for task events: ${describeError(error)}`));
    void this.fleet.refresh();
  }

  /** Stops listening and reading events; open pages are disconnected. */
  async close(): Promise<void> {
    clearInterval(this.#keepAlive);
    clearInterval(this.#sampler);
    clearTimeout(this.#notifyTimer);
    for (const stream of this.#streams) stream.end();
    this.#streams.clear();
    await this.#listening?.close();
    await this.#stream?.close();
    await this.#reading;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #read(stream: EventStream): Promise<void> {
    try {
      for await (const event of stream) this.#take(event);
    } catch (error) {
      this.#logger.error(`the event stream failed: ${describeError(error)}`);
    }
  }

  /** Takes in one event: the store, the metrics, the charts, and the live pages. */
  #take(event: CeleryEvent): void {
    const change = this.store.event(event);
    this.metrics.observe(event, change);
    this.fleet.flow.observe(event);
    if (change) {
      this.#taskEventsSeen = true;
      const { task } = change;
      const timestamp = typeof event['timestamp'] === 'number' ? event['timestamp'] : Date.now() / 1000;
      if (event.type === 'task-succeeded') this.series.record(task.name ?? '(unknown)', 'succeeded', timestamp, task.runtime);
      else if (event.type === 'task-failed') this.series.record(task.name ?? '(unknown)', 'failed', timestamp, task.runtime);
      this.#changed('tasks');
    } else if (event.type.startsWith('worker-')) {
      const hostname = String(event['hostname']);
      if (event.type !== 'worker-offline' && !this.#knownWorkers.has(hostname)) {
        this.#knownWorkers.add(hostname);
        if (this.options.enableEvents !== false) void this.host.control.broadcast('enable_events', {}, { destination: [hostname] }).catch(() => undefined);
        void this.fleet.refresh();
      } else if (event.type === 'worker-offline') {
        this.#knownWorkers.delete(hostname);
      }
      this.#changed('workers');
    }
  }

  /** Tells open pages, at most ten times a second, what changed. */
  #changed(kind: 'tasks' | 'workers'): void {
    this.#pending.add(kind);
    this.#notifyTimer ??= setTimeout(() => {
      this.#notifyTimer = undefined;
      const kinds = this.#pending;
      this.#pending = new Set();
      const message = [...kinds].map((name) => `event: ${name}\ndata: ${name === 'tasks' ? this.store.tasksVersion : this.store.workersVersion}\n\n`).join('');
      for (const stream of this.#streams) stream.write(message);
    }, 100);
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(request.url ?? '/', 'http://dashboard.invalid');
    } catch {
      sendText(response, 400, 'bad request\n');
      return;
    }
    const context = (): PageContext => ({ csrf: this.#guard.csrfFor(request), session: this.#guard.acceptsLogin, flash: this.#takeFlash(url) });
    try {
      if (url.pathname.startsWith('/static/')) {
        this.#static(url.pathname, response);
        return;
      }
      if (request.method === 'GET' && url.searchParams.has('token') && this.#guard.acceptsLogin) {
        const cookie = this.#guard.login(url.searchParams.get('token') ?? '');
        url.searchParams.delete('token');
        if (cookie) {
          redirect(response, `${url.pathname}${url.search}`, { 'Set-Cookie': cookie });
          return;
        }
      }
      if (url.pathname === '/login' || url.pathname === '/logout') {
        await this.#login(request, response, url);
        return;
      }
      const outcome = this.#guard.check(request);
      if (!outcome.ok) {
        const wantsPage = request.method === 'GET' && (request.headers.accept ?? '').includes('text/html');
        if (outcome.status === 401 && wantsPage && this.#guard.acceptsLogin) {
          sendHtml(response, 401, loginPage({ next: `${url.pathname}${url.search}`, csrf: this.#guard.csrfFor(request, 'login') }), outcome.headers);
        } else {
          sendText(response, outcome.status, `${outcome.reason}\n`, outcome.headers);
        }
        return;
      }
      const match = this.#router.match(request.method ?? 'GET', url.pathname);
      if (match === 405) {
        sendText(response, 405, 'method not allowed: actions are POST forms from the dashboard\'s pages\n', { Allow: 'GET, HEAD' });
        return;
      }
      if (!match) throw new HttpError(404, `nothing at ${url.pathname}`);
      let form: URLSearchParams | undefined;
      if (request.method === 'POST') {
        form = await readForm(request);
        const refused = this.#guard.checkPost(request, form);
        if (refused) throw new HttpError(403, refused);
      }
      const req: PageRequest = { method: request.method ?? 'GET', url, params: match.params, raw: request, form: async () => form ?? new URLSearchParams(), page: context() };
      await match.handler(req, response);
    } catch (error) {
      if (response.headersSent) {
        response.destroy();
        return;
      }
      const status = error instanceof HttpError ? error.status : 500;
      const message = error instanceof HttpError ? error.message : describeError(error);
      if (status === 500) this.#logger.error(`dashboard: ${request.method} ${url.pathname}: ${describeError(error)}`);
      if ((request.headers.accept ?? '').includes('text/html')) sendHtml(response, status, errorPage(context(), status, message));
      else sendText(response, status, `${message}\n`);
    }
  }

  #static(path: string, response: ServerResponse): void {
    const cache = { 'Cache-Control': 'public, max-age=31536000, immutable' };
    if (path === '/static/app.js') send(response, 200, 'text/javascript; charset=utf-8', SCRIPT, cache);
    else if (path === '/static/app.css') send(response, 200, 'text/css; charset=utf-8', STYLE, cache);
    else sendText(response, 404, 'not found\n');
  }

  async #login(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
    if (url.pathname === '/logout') {
      if (request.method !== 'POST') throw new HttpError(405, 'log out with the button');
      const form = await readForm(request);
      const refused = this.#guard.checkPost(request, form);
      if (refused) throw new HttpError(403, refused);
      redirect(response, this.#guard.acceptsLogin ? '/login' : '/', { 'Set-Cookie': this.#guard.logout(request) });
      return;
    }
    const next = safeNext(url.searchParams.get('next'));
    if (!this.#guard.acceptsLogin) {
      redirect(response, next);
      return;
    }
    if (request.method === 'POST') {
      const form = await readForm(request);
      const refused = this.#guard.checkPost(request, form, 'login');
      if (refused) throw new HttpError(403, refused);
      const cookie = this.#guard.login(form.get('token') ?? '');
      if (cookie) {
        redirect(response, safeNext(form.get('next')), { 'Set-Cookie': cookie });
        return;
      }
      sendHtml(response, 401, loginPage({ error: 'That token is not right.', next: safeNext(form.get('next')), csrf: this.#guard.csrfFor(request, 'login') }));
      return;
    }
    sendHtml(response, 200, loginPage({ next, csrf: this.#guard.csrfFor(request, 'login') }));
  }

  #routes(): void {
    const r = this.#router;
    r.get('/', (req, res) => this.#workers(req, res));
    r.get('/workers', (req, res) => this.#workers(req, res));
    r.get('/workers/:hostname', (req, res) => this.#worker(req, res));
    r.post('/workers/enable-events', async (_req, res) => {
      const replies = await this.host.control.enableEvents({ timeout: ACTION_TIMEOUT });
      this.#done(res, '/', `Task events turned on: ${summarize(replies)}`, Object.keys(replies).length === 0);
    });
    r.post('/workers/:hostname/shutdown', (req, res) => this.#shutdown(req, res));
    for (const action of ['pool-grow', 'pool-shrink', 'rate-limit', 'add-consumer', 'cancel-consumer'] as const) r.post(`/workers/:hostname/${action}`, (req, res) => this.#workerAction(action, req, res));
    r.get('/queues', async (req, res) => {
      const wanted = req.url.searchParams.get('queue')?.trim();
      if (wanted) {
        redirect(res, `/queues/${encodeURIComponent(wanted)}`);
        return;
      }
      const broker = await this.host.broker();
      sendHtml(res, 200, queuesPage(req.page, { queues: await this.fleet.queues(), broker: broker.displayUrl, listsDeadLetters: broker.listDeadLetters !== undefined }));
    });
    r.get('/queues/:name', async (req, res) => {
      const broker = await this.host.broker();
      const queue = await this.fleet.queue(req.params['name']!);
      sendHtml(res, 200, queuePage(req.page, { queue, deadLetters: await this.fleet.deadLetters(), resends: broker.removeDeadLetter !== undefined }));
    });
    r.post('/queues/:name/purge', (req, res) => this.#purge(req, res));
    r.post('/queues/:name/dead-letters/resend', (req, res) => this.#resend(req, res));
    r.get('/tasks', (req, res) => this.#tasks(req, res));
    r.get('/tasks/:id', (req, res) => this.#task(req, res));
    r.post('/tasks/:id/revoke', async (req, res) => {
      const id = req.params['id']!;
      await this.host.control.revoke([id]);
      this.#done(res, `/tasks/${encodeURIComponent(id)}`, `Revoke sent for ${id}: workers will not start it.`);
    });
    r.post('/tasks/:id/terminate', async (req, res) => {
      const id = req.params['id']!;
      await this.host.control.revoke([id], { terminate: true });
      this.#done(res, `/tasks/${encodeURIComponent(id)}`, `Terminate sent for ${id}: stopped where it runs, and revoked.`);
    });
    r.post('/tasks/:id/retry', (req, res) => this.#retry(req, res));
    r.get('/charts', (req, res) => this.#charts(req, res));
    r.get('/metrics', async (_req, res) => {
      send(res, 200, PROMETHEUS_CONTENT_TYPE, await this.metrics.render(), { 'Cache-Control': 'no-store' });
    });
    r.get('/events', (req, res) => this.#eventStream(req, res));
    r.get('/api/workers', (_req, res) => {
      sendJson(res, 200, this.#workerRows().map(({ hostname, info, alive, details }) => ({ hostname, alive, ...info, ...details })));
    });
    r.get('/api/tasks', (req, res) => sendJson(res, 200, this.store.query(this.#taskQuery(req.url))));
    r.get('/api/tasks/:id', async (req, res) => {
      const id = req.params['id']!;
      const [meta] = await this.#readMeta(id);
      sendJson(res, 200, { task: this.store.get(id) ?? null, result: meta ?? null, children: this.store.childrenOf(id) });
    });
  }

  #workerRows(): WorkerRow[] {
    const rows = new Map<string, WorkerRow>();
    for (const info of this.store.workers()) rows.set(info.hostname, { hostname: info.hostname, info, alive: this.store.state.isAlive(info), details: this.fleet.details(info.hostname) });
    for (const hostname of this.fleet.inspected()) if (!rows.has(hostname)) rows.set(hostname, { hostname, info: undefined, alive: true, details: this.fleet.details(hostname) });
    return [...rows.values()].sort((a, b) => Number(b.alive) - Number(a.alive) || a.hostname.localeCompare(b.hostname));
  }

  #workers(req: PageRequest, res: ServerResponse): void {
    this.fleet.refreshIfStale();
    sendHtml(
      res,
      200,
      workersPage(req.page, { workers: this.#workerRows(), counts: this.store.countsByState(), stored: this.store.size, taskEventsSeen: this.#taskEventsSeen, lastError: this.fleet.lastError, now: Date.now() / 1000 }),
    );
  }

  async #worker(req: PageRequest, res: ServerResponse): Promise<void> {
    const hostname = req.params['hostname']!;
    const info = this.store.state.workers.get(hostname);
    const live = req.raw.headers['x-celeriac-live'] === '1';
    let registered: string[] | undefined;
    let active: RequestInfo[] | undefined;
    let stats: Record<string, unknown> | undefined;
    if (!live) {
      const inspect = this.host.control.inspect({ destination: [hostname], limit: 1, timeout: 1 });
      const [registeredReplies, activeReplies, statsReplies] = await Promise.all([inspect.registered(), inspect.active(), inspect.stats()].map((promise) => promise.catch(() => ({}) as Replies<never>)));
      registered = (registeredReplies as Replies<string[]>)[hostname]?.map((entry) => entry.split(' ')[0]!);
      active = (activeReplies as Replies<RequestInfo[]>)[hostname];
      stats = (statsReplies as Replies<Record<string, unknown>>)[hostname];
    }
    if (!info && !registered && !this.fleet.details(hostname)) throw new HttpError(404, `no worker named ${hostname} has been seen`);
    sendHtml(res, 200, workerPage(req.page, { hostname, info, alive: info ? this.store.state.isAlive(info) : registered !== undefined, details: this.fleet.details(hostname), registered, active, stats, now: Date.now() / 1000 }));
  }

  async #shutdown(req: PageRequest, res: ServerResponse): Promise<void> {
    const hostname = req.params['hostname']!;
    const form = await req.form();
    if (form.get('confirm') !== 'yes') {
      sendHtml(
        res,
        200,
        confirmPage(req.page, {
          title: `Shut down ${hostname}?`,
          question: html`The worker <b>${hostname}</b> stops taking tasks, lets running ones finish within its grace period, and exits. It does not come back by itself.`,
          action: `/workers/${encodeURIComponent(hostname)}/shutdown`,
          confirmLabel: `Shut down ${hostname}`,
          cancel: `/workers/${encodeURIComponent(hostname)}`,
          section: 'workers',
        }),
      );
      return;
    }
    await this.host.control.shutdown({ destination: [hostname] });
    this.#done(res, '/', `Shutdown sent to ${hostname}.`);
  }

  async #workerAction(action: 'pool-grow' | 'pool-shrink' | 'rate-limit' | 'add-consumer' | 'cancel-consumer', req: Request, res: ServerResponse): Promise<void> {
    const hostname = req.params['hostname']!;
    const form = await req.form();
    const options = { destination: [hostname], limit: 1, timeout: ACTION_TIMEOUT };
    const back = `/workers/${encodeURIComponent(hostname)}`;
    let replies: Replies<unknown>;
    if (action === 'pool-grow' || action === 'pool-shrink') {
      const n = Number(form.get('n') ?? '1');
      if (!Number.isInteger(n) || n < 1 || n > 1000) throw new HttpError(400, 'the number of slots must be a whole number from 1 to 1000');
      replies = await (action === 'pool-grow' ? this.host.control.poolGrow(n, options) : this.host.control.poolShrink(n, options));
    } else if (action === 'rate-limit') {
      const task = (form.get('task') ?? '').trim();
      const rate = (form.get('rate') ?? '').trim();
      if (!task || !rate) throw new HttpError(400, 'a task name and a rate are needed');
      try {
        parseRate(rate, 'rate');
      } catch (error) {
        throw new HttpError(400, describeError(error));
      }
      replies = await this.host.control.request('rate_limit', { task_name: task, rate_limit: rate }, options);
    } else {
      const queue = (form.get('queue') ?? '').trim();
      if (!queue) throw new HttpError(400, 'a queue name is needed');
      replies = await (action === 'add-consumer' ? this.host.control.addConsumer(queue, options) : this.host.control.cancelConsumer(queue, options));
    }
    void this.fleet.refresh();
    const reply = replies[hostname];
    const failed = reply === undefined || (typeof reply === 'object' && reply !== null && 'error' in reply);
    this.#done(res, back, reply === undefined ? `${hostname} did not answer within ${ACTION_TIMEOUT} s.` : `${hostname}: ${replyText(reply)}`, failed);
  }

  async #purge(req: PageRequest, res: ServerResponse): Promise<void> {
    const name = req.params['name']!;
    const form = await req.form();
    const broker = await this.host.broker();
    if (form.get('confirm') !== 'yes') {
      const waiting = await broker.queueLength(name);
      sendHtml(
        res,
        200,
        confirmPage(req.page, {
          title: `Purge ${name}?`,
          question: html`Delete the <b id="purge-count">${waiting}</b> message${waiting === 1 ? '' : 's'} waiting in <b>${name}</b>? They are gone for good; tasks already taken by workers are not touched.`,
          action: `/queues/${encodeURIComponent(name)}/purge`,
          confirmLabel: `Delete ${waiting} message${waiting === 1 ? '' : 's'}`,
          cancel: '/queues',
          section: 'queues',
        }),
      );
      return;
    }
    const removed = await broker.purge(name);
    this.fleet.invalidateQueues();
    this.#done(res, '/queues', `Purged ${removed} message${removed === 1 ? '' : 's'} from ${name}.`);
  }

  /**
   * Re-sends dead letters of a queue (one, by task id and time, or all), after asking: each is
   * published again to its queue as it was, then removed from the dead letters (so a failure in
   * between leaves a copy behind rather than losing it).
   */
  async #resend(req: PageRequest, res: ServerResponse): Promise<void> {
    const name = req.params['name']!;
    const form = await req.form();
    const broker = await this.host.broker();
    const back = `/queues/${encodeURIComponent(name)}`;
    if (!broker.listDeadLetters || !broker.removeDeadLetter) throw new HttpError(400, `${broker.displayUrl} cannot remove its dead letters, so they cannot be re-sent from here`);
    const all = form.get('all') === 'yes';
    const id = form.get('id') ?? '';
    const at = Number(form.get('at'));
    if (!all && (!id || !Number.isFinite(at))) throw new HttpError(400, 'which dead letter? (id and at, or all)');
    const letters = (await broker.listDeadLetters(DEAD_LETTER_LIMIT)).filter((letter) => letter.queue === name && (all || (letter.message.headers['id'] === id && letter.at === at)));
    if (letters.length === 0) {
      this.#done(res, back, 'That dead letter is no longer there.', true);
      return;
    }
    if (form.get('confirm') !== 'yes') {
      const what = all ? `all ${plural(letters.length, 'dead letter')} of` : html`the dead letter of <b>${typeof letters[0]!.message.headers['task'] === 'string' ? letters[0]!.message.headers['task'] : '?'}</b> <span class="mono">${id}</span> to`;
      sendHtml(
        res,
        200,
        confirmPage(req.page, {
          title: `Re-send to ${name}?`,
          question: html`Publish ${what} <b>${name}</b> again, as ${letters.length === 1 ? 'it was' : 'they were'}, and remove ${letters.length === 1 ? 'it' : 'them'} from the dead letters? Workers will run ${letters.length === 1 ? 'it' : 'them'} again.`,
          action: `${back}/dead-letters/resend`,
          confirmLabel: `Re-send ${plural(letters.length, 'message')}`,
          cancel: back,
          section: 'queues',
          fields: all ? { all: 'yes' } : { id, at: String(at) },
        }),
      );
      return;
    }
    let sent = 0;
    for (const letter of letters) {
      await broker.publish(letter.queue, letter.message);
      await broker.removeDeadLetter(letter);
      sent++;
    }
    this.fleet.invalidateQueues();
    this.#done(res, back, `Re-sent ${plural(sent, 'message')} to ${name}.`);
  }

  /**
   * Sends a task again as a new task: same name and arguments (read back from its events, or
   * from its stored result where the backend keeps them), sent as its child, so each page links
   * to the other.
   */
  async #retry(req: PageRequest, res: ServerResponse): Promise<void> {
    const id = req.params['id']!;
    if (!this.host.sendTask) throw new HttpError(400, 'this dashboard cannot send tasks');
    const task = this.store.get(id);
    const [meta] = await this.#readMeta(id);
    const name = task?.name ?? meta?.name ?? null;
    if (!name) throw new HttpError(400, `the name of ${id} is not known (no events, no stored name)`);
    let args: unknown[];
    let kwargs: Record<string, unknown>;
    try {
      const readArgs = Array.isArray(meta?.args) ? meta.args : task?.args ? parsePythonLiteral(task.args) : [];
      const readKwargs = meta?.kwargs && typeof meta.kwargs === 'object' ? meta.kwargs : task?.kwargs ? parsePythonLiteral(task.kwargs) : {};
      if (!Array.isArray(readArgs) || typeof readKwargs !== 'object' || readKwargs === null || Array.isArray(readKwargs)) throw new Error('the arguments are not a list and a dict');
      args = readArgs;
      kwargs = readKwargs as Record<string, unknown>;
    } catch (error) {
      throw new HttpError(400, `${id} cannot be sent again: ${error instanceof Error ? error.message : String(error)}`);
    }
    const queue = this.fleet.flow.queueOf(id);
    const result = this.host.sendTask(name, args, kwargs, { parentId: id, rootId: task?.rootId ?? id, ...(queue ? { queue } : {}) });
    await result.sent;
    this.#done(res, `/tasks/${encodeURIComponent(result.id)}`, `Sent ${name} again as ${result.id}, a child of ${id}.`);
  }

  #taskQuery(url: URL): TaskQuery & { window?: string | undefined } {
    const get = (key: string): string | undefined => url.searchParams.get(key)?.trim() || undefined;
    const state = get('state');
    const window = get('window');
    const seconds = window ? { '5m': 300, '1h': 3600, '24h': 86_400 }[window] : undefined;
    return {
      state: state && (TASK_STATES as readonly string[]).includes(state) ? (state as EventTaskState) : undefined,
      name: get('name'),
      worker: get('worker'),
      search: get('q'),
      since: seconds === undefined ? undefined : Date.now() / 1000 - seconds,
      window: seconds === undefined ? undefined : window,
      offset: Number(get('offset') ?? 0) || 0,
      limit: Number(get('limit') ?? 50) || 50,
    };
  }

  #tasks(req: PageRequest, res: ServerResponse): void {
    const query = this.#taskQuery(req.url);
    const page = this.store.query(query);
    const names = [...this.store.countsByName().keys()].sort();
    const workers = [...new Set([...this.store.countsByWorker().keys(), ...this.store.state.workers.keys()])].sort();
    sendHtml(res, 200, tasksPage(req.page, { page, query, names, workers, counts: this.store.countsByState(), stored: this.store.size }));
  }

  async #task(req: PageRequest, res: ServerResponse): Promise<void> {
    const id = req.params['id']!;
    const task = this.store.get(id);
    const [meta, metaError] = await this.#readMeta(id);
    const childIds = new Set(this.store.childrenOf(id));
    for (const child of meta?.children ?? []) {
      const childId = Array.isArray(child) && Array.isArray(child[0]) ? child[0][0] : undefined;
      if (typeof childId === 'string') childIds.add(childId);
    }
    const children = [...childIds].map((childId) => ({ id: childId, task: this.store.get(childId) }));
    const parentId = task?.parentId ?? meta?.parent_id ?? null;
    sendHtml(res, 200, taskPage(req.page, { id, task, meta, metaError, children, parent: parentId ? this.store.get(parentId) : undefined, workflow: this.#workflow(id), canRetry: this.host.sendTask !== undefined }));
  }

  /**
   * The workflow a task belongs to, as a tree from its root (followed up through parents the
   * store holds), with the states the events gave; at most {@link WORKFLOW_LIMIT} tasks.
   */
  #workflow(id: string): WorkflowNode {
    let rootId = id;
    const seen = new Set([id]);
    for (let parent = this.store.get(id)?.parentId; parent && !seen.has(parent); parent = this.store.get(parent)?.parentId) {
      seen.add(parent);
      rootId = parent;
    }
    const rootTask = this.store.get(rootId);
    if (rootTask?.rootId && rootTask.rootId !== rootId && !seen.has(rootTask.rootId) && this.store.get(rootTask.rootId)) rootId = rootTask.rootId;
    let count = 0;
    const visited = new Set<string>();
    const build = (taskId: string): WorkflowNode => {
      visited.add(taskId);
      count++;
      const info = this.store.get(taskId);
      const children: WorkflowNode[] = [];
      for (const child of this.store.childrenOf(taskId)) {
        if (visited.has(child) || count >= WORKFLOW_LIMIT) continue;
        children.push(build(child));
      }
      return { id: taskId, name: info?.name ?? null, state: info?.state ?? null, children };
    };
    return build(rootId);
  }

  /** The stored result of a task (null: nothing stored), or why it could not be read. */
  async #readMeta(id: string): Promise<[ResultMeta | null | undefined, string | undefined]> {
    try {
      const backend = await this.host.backend();
      const meta = await withTimeout(backend.get(id), 2_000);
      return [meta, undefined];
    } catch (error) {
      return [undefined, describeError(error)];
    }
  }

  #charts(req: PageRequest, res: ServerResponse): void {
    const window = req.url.searchParams.get('window') ?? '15m';
    const seconds = WINDOWS[window] ?? 900;
    const nameParam = req.url.searchParams.get('name') || undefined;
    const allNames = this.series.names();
    const shown = nameParam ? [nameParam] : allNames.slice(0, 6);
    sendHtml(
      res,
      200,
      chartsPage(req.page, {
        window: WINDOWS[window] ? window : '15m',
        windows: [
          ['5m', 'last 5 min'],
          ['15m', 'last 15 min'],
          ['1h', 'last hour'],
        ],
        name: nameParam,
        names: allNames,
        throughput: this.series.throughput(seconds, shown),
        failures: this.series.failures(seconds, shown),
        percentiles: this.series.percentiles(seconds, nameParam),
        summary: this.series.summary(seconds),
        bucketSeconds: this.series.bucketSeconds,
      }),
    );
  }

  #eventStream(req: PageRequest, res: ServerResponse): void {
    if (this.#streams.size >= MAX_STREAMS) throw new HttpError(503, 'too many live pages open; close some');
    startEventStream(res);
    this.#streams.add(res);
    req.raw.once('close', () => this.#streams.delete(res));
  }

  /** Redirects to `location` with a message shown once there. */
  #done(res: ServerResponse, location: string, text: string, error = false): void {
    const id = randomBytes(9).toString('base64url');
    this.#flashes.set(id, { text, error });
    if (this.#flashes.size > FLASH_KEEP) this.#flashes.delete(this.#flashes.keys().next().value!);
    redirect(res, `${location}${location.includes('?') ? '&' : '?'}flash=${id}`);
  }

  #takeFlash(url: URL): Flash | undefined {
    const id = url.searchParams.get('flash');
    if (!id) return undefined;
    const flash = this.#flashes.get(id);
    this.#flashes.delete(id);
    return flash;
  }
}

/** Where to go after logging in: a path on this dashboard only. */
function safeNext(next: string | null): string {
  return next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\') ? next : '/';
}

function replyText(reply: unknown): string {
  if (typeof reply === 'object' && reply !== null) {
    const { ok, error } = reply as { ok?: unknown; error?: unknown };
    if (typeof ok === 'string') return ok;
    if (typeof error === 'string') return `error: ${error}`;
  }
  return JSON.stringify(reply);
}

function summarize(replies: Replies<unknown>): string {
  const nodes = Object.keys(replies);
  return nodes.length === 0 ? 'no worker answered' : nodes.map((node) => `${node}: ${replyText(replies[node])}`).join('; ');
}
