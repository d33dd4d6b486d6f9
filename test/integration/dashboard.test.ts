/**
 * The dashboard as an operator uses it, in real headless Chromium, on each broker: a worker
 * process (`-E`, `--metrics-port`) and `celeriac dashboard` (basic auth on) in processes of
 * their own, tasks sent from this test. The pages load and show the worker with its pool; a
 * task appears live within a second and reaches SUCCESS without a reload; a failing task shows
 * its traceback; revoke from the UI revokes; purge asks first; worker actions answer; auth and
 * CSRF are enforced; `/metrics` of the dashboard and of the worker parse as Prometheus text.
 * Screenshots go to test-output/dashboard/.
 */
import { randomUUID } from 'node:crypto';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Celeriac } from '../../src/index.js';
import { deleteAmqpQueues } from '../helpers/amqp.js';
import { FIXTURE_TASKS, runCli, startWorkerProcess, tempSqlite, type WorkerProcess } from '../helpers/cli.js';
import { basicAuth, launchChromium, screenshot, startDashboardProcess, startServing, type ServingProcess } from '../helpers/dashboard.js';
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.js';
import { until } from '../helpers/wait.js';

const REDIS = 'redis://127.0.0.1:6379/10';
const AMQP = 'amqp://guest:guest@127.0.0.1:5672//';
const CREDENTIALS = 'admin:dashboard-test-password';

const BROKERS: Array<{ name: string; key: string; open: () => { url: string; cleanup?: () => void } }> = [
  { name: 'Redis', key: 'redis', open: () => ({ url: REDIS }) },
  { name: 'SQLite', key: 'sqlite', open: () => tempSqlite() },
  { name: 'RabbitMQ', key: 'amqp', open: () => ({ url: AMQP }) },
];

let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
}, 60_000);
afterAll(async () => {
  await browser?.close();
});

describe.each(BROKERS)('the dashboard on $name', ({ key, open }) => {
  const { url: BROKER, cleanup } = open();
  const node = `dash-${randomUUID().slice(0, 8)}@test`;
  const queue = `dash-${randomUUID()}`;
  const idle = `idle-${randomUUID()}`;
  const purgeQueue = `purge-${randomUUID()}`;
  let worker: WorkerProcess;
  let metricsUrl: string;
  let dashboard: ServingProcess;
  let app: Celeriac;
  let context: BrowserContext;

  beforeAll(async () => {
    app = new Celeriac({ broker: BROKER });
    worker = startWorkerProcess(BROKER, ['-n', node, '-Q', queue, '-c', '2', '-E', '--metrics-port', '0']);
    await worker.waitFor('ready; consuming');
    metricsUrl = /metrics: (http:\/\/\S+)/.exec(worker.log())![1]!;
    // The worker has -E; --no-enable-events leaves alone the workers of other test runs sharing the server.
    dashboard = await startDashboardProcess(['--broker', BROKER, '--no-enable-events'], { CELERIAC_DASHBOARD_AUTH: CREDENTIALS });
    const [user, password] = CREDENTIALS.split(':') as [string, string];
    context = await browser.newContext({ baseURL: dashboard.url, httpCredentials: { username: user, password }, viewport: { width: 1400, height: 900 } });
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await dashboard?.stop();
    if (worker && worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
    await worker?.exited;
    await app?.close();
    if (key === 'amqp') await deleteAmqpQueues(AMQP, [queue, idle, purgeQueue]);
    cleanup?.();
  });

  it('loads its pages, showing the worker online with its pool and queues', async () => {
    const page = await context.newPage();
    const row = page.locator(`tr[data-worker="${node}"]`);
    await page.goto('/');
    await row.locator('.badge.online').waitFor({ timeout: 10_000 });
    await row.getByText('celeriac:event').waitFor({ timeout: 10_000 }); // from inspect stats, refreshed in the background
    expect(await row.innerText()).toContain(queue);
    await screenshot(page, `${key}-workers`);
    await page.goto(`/workers/${encodeURIComponent(node)}`);
    expect(await page.locator('#pool-size').innerText()).toBe('2');
    expect(await page.locator('#registered-tasks option[value="fx.add"]').count()).toBe(1);
    await screenshot(page, `${key}-worker`);
    for (const [path, heading] of [
      ['/tasks', 'Tasks'],
      ['/queues', 'Queues'],
      ['/charts', 'Charts'],
    ] as const) {
      const response = await page.goto(path);
      expect(response?.status(), path).toBe(200);
      expect(await page.locator('h1').first().innerText()).toContain(heading);
      await screenshot(page, `${key}${path.replace('/', '-')}`);
    }
    await page.close();
  });

  it('shows a task sent from a script within a second, live, until it succeeds', async () => {
    const page = await context.newPage();
    await page.goto('/tasks?name=fx.sleep');
    await page.locator('body[data-live-connected="1"]').waitFor({ timeout: 10_000 });
    await page.evaluate(() => ((globalThis as Record<string, unknown>)['sameDocument'] = true));
    const result = app.sendTask<number>('fx.sleep', [1_500], {}, { queue });
    await result.sent;
    const sentAt = performance.now();
    const row = page.locator(`tr[data-task-id="${result.id}"]`);
    await row.waitFor({ timeout: 1_000 });
    const shownAfter = performance.now() - sentAt;
    expect(['RECEIVED', 'STARTED']).toContain(await row.getAttribute('data-state'));
    await page.locator(`tr[data-task-id="${result.id}"][data-state="SUCCESS"]`).waitFor({ timeout: 10_000 });
    expect(await result.get({ timeout: 5 })).toBe(1_500);
    expect(await page.evaluate(() => (globalThis as Record<string, unknown>)['sameDocument'])).toBe(true); // no reload
    console.info(`${key}: the task was on the page ${shownAfter.toFixed(0)} ms after it was sent`);
    await screenshot(page, `${key}-tasks-live`);
    await page.close();
  });

  it('shows a failing task with its exception and traceback', async () => {
    const failing = app.sendTask('fx.fail', [], {}, { queue });
    await expect(failing.get({ timeout: 10 })).rejects.toThrow(/fixture failure/);
    const page = await context.newPage();
    await page.goto(`/tasks/${failing.id}`);
    await page.locator('#traceback').waitFor({ timeout: 10_000 });
    expect(await page.locator('#exception').innerText()).toContain('fixture failure');
    expect(await page.locator('#traceback').innerText()).toMatch(/Error: fixture failure\n\s+at /);
    expect(await page.locator('h1 .badge').innerText()).toBe('FAILURE');
    await screenshot(page, `${key}-task-failed`);
    await page.goto(`/tasks?state=FAILURE&q=${failing.id}`);
    expect(await page.locator(`tr[data-task-id="${failing.id}"]`).count()).toBe(1);
    await page.close();
  });

  it('revokes a task from its page, and adds and cancels a consumer from the worker page', async () => {
    const pending = app.sendTask('fx.add', [1, 2], {}, { queue: idle }); // nobody consumes it yet
    await pending.sent;
    const page = await context.newPage();
    await page.goto(`/tasks/${pending.id}`);
    await page.locator('form[data-action="revoke"] button').click();
    await page.locator('.flash', { hasText: 'Revoke sent' }).waitFor();
    await page.goto(`/workers/${encodeURIComponent(node)}`);
    await page.locator('form[data-action="add-consumer"] input[name="queue"]').fill(idle);
    await page.locator('form[data-action="add-consumer"] button').click();
    await page.locator('.flash', { hasText: `${node}: add consumer ${idle}` }).waitFor();
    await page.goto(`/tasks/${pending.id}`);
    await page.locator('h1 .badge', { hasText: 'REVOKED' }).waitFor({ timeout: 15_000 }); // live: the worker took it from the queue, and did not run it
    expect(await page.locator('#timeline').innerText()).not.toContain('STARTED');
    await screenshot(page, `${key}-task-revoked`);
    await page.goto(`/workers/${encodeURIComponent(node)}`);
    await page.locator('form[data-action="cancel-consumer"] input[name="queue"]').fill(idle);
    await page.locator('form[data-action="cancel-consumer"] button').click();
    await page.locator('.flash', { hasText: `${node}: no longer consuming from ${idle}` }).waitFor();
    await page.close();
  });

  it('asks before it purges a queue', async () => {
    await Promise.all([1, 2, 3].map((i) => app.sendTask('fx.add', [i, i], {}, { queue: purgeQueue }).sent));
    const broker = await app.broker();
    await until(async () => (await broker.queueLength(purgeQueue)) === 3, 10_000, 'three messages waiting');
    const page = await context.newPage();
    await page.goto('/queues');
    await page.locator('input[name="queue"]').fill(purgeQueue); // a queue no worker consumes, which Redis does not list
    await page.locator('input[name="queue"] ~ button, form[action="/queues"] button').first().click();
    await page.waitForURL(`**/queues/${encodeURIComponent(purgeQueue)}`);
    expect(await page.locator('[data-field="length"]').innerText()).toBe('3');
    await page.locator('form[data-action="purge"] button').click();
    await page.locator('#confirm').waitFor();
    expect(await page.locator('#purge-count').innerText()).toBe('3');
    expect(await broker.queueLength(purgeQueue)).toBe(3); // asked, not done
    await screenshot(page, `${key}-purge-confirm`);
    await page.locator('[data-action="confirm"]').click();
    await page.locator('.flash', { hasText: `Purged 3 messages from ${purgeQueue}` }).waitFor();
    expect(await broker.queueLength(purgeQueue)).toBe(0);
    await page.close();
  });

  it('changes the worker from its page: pool and rate limit', async () => {
    const page = await context.newPage();
    await page.goto(`/workers/${encodeURIComponent(node)}`);
    await page.locator('form[data-action="pool-grow"] button').click();
    await page.locator('.flash', { hasText: `${node}: pool will grow` }).waitFor();
    await page.locator('form[data-action="rate-limit"] input[name="task"]').fill('fx.add');
    await page.locator('form[data-action="rate-limit"] input[name="rate"]').fill('100/s');
    await page.locator('form[data-action="rate-limit"] button').click();
    await page.locator('.flash', { hasText: `${node}: new rate limit set successfully` }).waitFor();
    await page.locator('form[data-action="rate-limit"] input[name="task"]').fill('fx.add');
    await page.locator('form[data-action="rate-limit"] input[name="rate"]').fill('fast');
    await page.locator('form[data-action="rate-limit"] button').click();
    expect(await page.locator('.flash.error').innerText()).toContain('is not a rate');
    await page.close();
  });

  it('requires auth, a form token and its own origin for actions, and never acts on GET', async () => {
    const authorization = basicAuth(CREDENTIALS);
    for (const path of ['/', '/tasks', '/metrics', '/events', '/api/tasks']) {
      const response = await fetch(`${dashboard.url}${path}`);
      expect(response.status, path).toBe(401);
      expect(response.headers.get('www-authenticate'), path).toMatch(/^Basic /);
    }
    expect((await fetch(`${dashboard.url}/`, { headers: { authorization: basicAuth('admin:wrong') } })).status).toBe(401);
    expect((await fetch(`${dashboard.url}/tasks`, { headers: { authorization } })).status).toBe(200);
    const anonymous = await browser.newContext({ baseURL: dashboard.url });
    await expect((await anonymous.newPage()).goto('/')).rejects.toThrow(/ERR_INVALID_AUTH_CREDENTIALS/); // Chromium, answered 401 + Basic, has nothing to send
    await anonymous.close();

    const id = randomUUID();
    expect((await fetch(`${dashboard.url}/tasks/${id}/revoke`, { headers: { authorization } })).status).toBe(405);
    const post = (body: string, headers: Record<string, string> = {}): Promise<Response> =>
      fetch(`${dashboard.url}/tasks/${id}/revoke`, { method: 'POST', redirect: 'manual', body, headers: { authorization, 'content-type': 'application/x-www-form-urlencoded', ...headers } });
    expect((await post('')).status).toBe(403);
    const page = await (await fetch(`${dashboard.url}/tasks/${id}`, { headers: { authorization } })).text();
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page)![1]!;
    expect((await post(`_csrf=${csrf}`, { origin: 'http://evil.example' })).status).toBe(403);
    const accepted = await post(`_csrf=${csrf}`, { origin: dashboard.url });
    expect(accepted.status).toBe(303);
    expect(accepted.headers.get('location')).toMatch(new RegExp(`^/tasks/${id}\\?flash=`));
    const headers = { authorization, accept: 'text/html' };
    expect((await fetch(`${dashboard.url}/static/app.js`)).headers.get('content-type')).toContain('javascript');
    expect((await fetch(`${dashboard.url}/`, { headers })).headers.get('content-security-policy')).toContain("script-src 'self'");
  });

  it('serves /metrics that a strict Prometheus parser reads, from the dashboard and from the worker', async () => {
    const sum = app.sendTask<number>('fx.add', [20, 22], {}, { queue });
    expect(await sum.get({ timeout: 10 })).toBe(42);
    const response = await fetch(`${dashboard.url}/metrics`, { headers: { authorization: basicAuth(CREDENTIALS) } });
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    let families = parsePrometheusText(await response.text());
    await until(
      async () => {
        families = parsePrometheusText(await (await fetch(`${dashboard.url}/metrics`, { headers: { authorization: basicAuth(CREDENTIALS) } })).text());
        return (sampleValue(families, 'celeriac_tasks_total', { name: 'fx.add', state: 'SUCCESS' }) ?? 0) >= 1;
      },
      10_000,
      'fx.add counted',
    );
    expect(families.get('celeriac_tasks_total')?.type).toBe('counter');
    expect(families.get('celeriac_task_runtime_seconds')?.type).toBe('histogram');
    expect(sampleValue(families, 'celeriac_task_runtime_seconds_count', { name: 'fx.sleep' })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(families, 'celeriac_tasks', { name: 'fx.fail', state: 'FAILURE' })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(families, 'celeriac_worker_up', { worker: node })).toBe(1);
    expect(sampleValue(families, 'celeriac_workers_up')).toBeGreaterThanOrEqual(1);
    expect(sampleValue(families, 'celeriac_queue_length', { queue })).toBe(0);
    expect(sampleValue(families, 'celeriac_events_dropped_total')).toBe(0);

    const page = await context.newPage();
    await page.goto('/charts');
    await page.locator('#summary tr', { hasText: 'fx.sleep' }).waitFor();
    expect(await page.locator('#chart-throughput polyline').count()).toBeGreaterThan(0);
    await screenshot(page, `${key}-charts-after`);
    await page.close();

    const own = parsePrometheusText(await (await fetch(metricsUrl)).text());
    expect(sampleValue(own, 'celeriac_tasks_total', { name: 'fx.add', state: 'SUCCESS' })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(own, 'celeriac_tasks_total', { name: 'fx.fail', state: 'FAILURE' })).toBe(1);
    expect(sampleValue(own, 'celeriac_tasks_total', { name: 'fx.sleep', state: 'SUCCESS' })).toBe(1);
    expect(sampleValue(own, 'celeriac_task_runtime_seconds_count', { name: 'fx.sleep' })).toBe(1);
    expect(sampleValue(own, 'celeriac_task_runtime_seconds_bucket', { name: 'fx.sleep', le: '1' })).toBe(0);
    expect(sampleValue(own, 'celeriac_task_runtime_seconds_bucket', { name: 'fx.sleep', le: '2.5' })).toBe(1);
    expect(sampleValue(own, 'celeriac_worker_up', { worker: node })).toBe(1);
    expect(sampleValue(own, 'celeriac_queue_length', { queue })).toBe(0);
  });
});

describe('the dashboard refuses', () => {
  it('to listen beyond loopback without auth, in one line, from both commands', () => {
    const dashboard = runCli(['dashboard', '--host', '0.0.0.0', '--broker', REDIS]);
    expect(dashboard.status).toBe(2);
    expect(dashboard.stderr).toMatch(/^celeriac: error: refusing to listen on 0\.0\.0\.0 without auth: [^\n]*--auth user:pass or --token TOKEN[^\n]*\n$/);
    const worker = runCli(['worker', '--broker', REDIS, '--dashboard', '0.0.0.0:0']);
    expect(worker.status).toBe(2);
    expect(worker.stderr).toContain('refusing to listen on 0.0.0.0 without auth');
    const metrics = runCli(['worker', '--broker', REDIS, '--metrics-port', '0.0.0.0:0']);
    expect(metrics.status).toBe(2);
    expect(metrics.stderr).toContain('refusing to listen on 0.0.0.0 without auth');
  });
});

describe('the dashboard with a token', () => {
  const token = randomUUID();
  let dashboard: ServingProcess;
  let page: Page;
  let context: BrowserContext;

  beforeAll(async () => {
    dashboard = await startDashboardProcess(['--broker', REDIS, '--host', '0.0.0.0', '--token', token, '--no-enable-events']);
    context = await browser.newContext({ baseURL: dashboard.url.replace('0.0.0.0', '127.0.0.1') });
    page = await context.newPage();
  }, 30_000);
  afterAll(async () => {
    await context?.close();
    await dashboard?.stop();
  });

  it('listens beyond loopback, lets in whoever types the token, and lets them out', async () => {
    expect(dashboard.url).toMatch(/^http:\/\/0\.0\.0\.0:\d+$/);
    const first = await page.goto('/tasks');
    expect(first?.status()).toBe(401);
    await page.locator('input[name="token"]').fill('not-the-token-at-all');
    await page.locator('button[type="submit"]').click();
    await page.locator('.flash.error', { hasText: 'not right' }).waitFor();
    await page.locator('input[name="token"]').fill(token);
    await page.locator('button[type="submit"]').click();
    await page.locator('h1', { hasText: 'Tasks' }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/tasks');
    await screenshot(page, 'token-after-login');
    const base = dashboard.url.replace('0.0.0.0', '127.0.0.1');
    expect((await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
    await page.locator('header button', { hasText: 'Log out' }).click();
    await page.locator('input[name="token"]').waitFor();
    expect((await page.goto('/tasks'))?.status()).toBe(401);
  });
});

describe('celeriac worker --dashboard', () => {
  it('serves the dashboard from inside the worker, which sees itself and turns its task events on', async () => {
    const { url: broker, cleanup } = tempSqlite();
    const node = `embedded-${randomUUID().slice(0, 8)}@test`;
    const worker = await startServing(['worker', '-A', FIXTURE_TASKS, '--broker', broker, '-n', node, '--dashboard', '0'], /dashboard: (http:\/\/\S+)/);
    const app = new Celeriac({ broker });
    try {
      const page = await browser.newPage();
      await page.goto(worker.url);
      await page.locator(`tr[data-worker="${node}"] .badge.online`).waitFor({ timeout: 10_000 });
      // Started without -E: the dashboard asked it for task events (enable_events), as Flower does.
      // A task that ran before the command arrived sent none, so send tasks until one shows.
      await until(async () => {
        const result = app.sendTask<number>('fx.add', [2, 2]);
        expect(await result.get({ timeout: 10 })).toBe(4);
        await page.goto(`${worker.url}/tasks`);
        const row = page.locator(`tr[data-task-id="${result.id}"][data-state="SUCCESS"]`);
        return row.waitFor({ timeout: 2_000 }).then(() => true, () => false);
      }, 20_000, 'a task of the worker to show as SUCCESS in its own dashboard');
      await page.close();
    } finally {
      await app.close();
      await worker.stop();
      cleanup();
    }
  });
});
