/**
 * The dashboard with a real Python Celery worker on Redis, in headless Chromium: the Python
 * worker shows online with its pool and software, its tasks appear with their results and a
 * Python traceback, and a rate limit set from the worker's page is obeyed by Celery's answer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDashboard, type Dashboard } from '../../src/dashboard/index.js';
import { Celeriac } from '../../src/index.js';
import { launchChromium, screenshot } from '../helpers/dashboard.js';
import { pythonCeleryMissing } from './harness.js';

const BROKER = 'redis://127.0.0.1:6379/10';
const PYTHON_DIR = fileURLToPath(new URL('./python/', import.meta.url));
const missing = pythonCeleryMissing(['celery', 'redis']);

describe.skipIf(missing !== null)(`the dashboard with a Python Celery worker on Redis${missing ? ` (skipped: ${missing})` : ''}`, () => {
  const queue = `dash-py-${randomUUID()}`;
  const pyNode = `py-${randomUUID().slice(0, 8)}@dashboard`;
  let python: ChildProcess;
  let app: Celeriac;
  let dashboard: Dashboard;
  let browser: Browser;
  let context: BrowserContext;

  beforeAll(async () => {
    app = new Celeriac({ broker: BROKER });
    dashboard = await startDashboard(app, { port: 0, enableEvents: false }); // the worker has -E
    python = spawn('/usr/bin/python3', ['-m', 'celery', '-A', 'monitor_app', 'worker', '--pool=solo', '-E', '-Q', queue, '-n', pyNode, '-l', 'info'], {
      cwd: PYTHON_DIR,
      env: { ...process.env, CELERIAC_TEST_BROKER: BROKER, CELERIAC_TEST_BACKEND: BROKER },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Python worker not ready:\n${log}`)), 30_000);
      const watch = (chunk: Buffer): void => {
        log += chunk.toString();
        if (!/ready\./.test(log)) return;
        clearTimeout(timer);
        resolve();
      };
      python.stdout!.on('data', watch);
      python.stderr!.on('data', watch);
    });
    browser = await launchChromium();
    context = await browser.newContext({ baseURL: dashboard.url, viewport: { width: 1400, height: 900 } });
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    if (python && python.exitCode === null && python.signalCode === null) {
      python.kill('SIGKILL');
      await new Promise((resolve) => python.once('exit', resolve));
    }
    await dashboard?.close();
    await app?.close();
  });

  it('shows the Python worker and its tasks, results and tracebacks', async () => {
    const page = await context.newPage();
    await page.goto('/');
    const row = page.locator(`tr[data-worker="${pyNode}"]`);
    await row.locator('.badge.online').waitFor({ timeout: 15_000 });
    await row.locator('[data-field="pool-size"]', { hasText: '(1)' }).waitFor({ timeout: 10_000 }); // the solo pool, by inspect stats
    await row.getByText('py-celery').waitFor({ timeout: 10_000 });
    await screenshot(page, 'python-workers');

    const sum = app.sendTask<number>('mon.py_add', [2, 3], {}, { queue });
    expect(await sum.get({ timeout: 15 })).toBe(5);
    await page.goto(`/tasks/${sum.id}`);
    await page.locator('h1 .badge', { hasText: 'SUCCESS' }).waitFor({ timeout: 10_000 });
    expect(await page.locator('#result').innerText()).toBe('5');
    expect(await page.locator('#task-args').innerText()).toBe('[2, 3]'); // the argsrepr celeriac sent, in the Python worker's event

    const broken = app.sendTask('mon.py_add', ['a', 1], {}, { queue });
    await expect(broken.get({ timeout: 15 })).rejects.toThrow(/TypeError/);
    await page.goto(`/tasks/${broken.id}`);
    await page.locator('#traceback').waitFor({ timeout: 10_000 });
    expect(await page.locator('#traceback').innerText()).toMatch(/Traceback \(most recent call last\):[\s\S]*TypeError/);
    await screenshot(page, 'python-task-failed');
    await page.close();
  });

  it('sets a rate limit on the Python worker from its page', async () => {
    const page = await context.newPage();
    await page.goto(`/workers/${encodeURIComponent(pyNode)}`);
    await page.locator('form[data-action="rate-limit"] input[name="task"]').fill('mon.py_add');
    await page.locator('form[data-action="rate-limit"] input[name="rate"]').fill('10/m');
    await page.locator('form[data-action="rate-limit"] button').click();
    await page.locator('.flash', { hasText: `${pyNode}: new rate limit set successfully` }).waitFor();
    await page.close();
  });
});
