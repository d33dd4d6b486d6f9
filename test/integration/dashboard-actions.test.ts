/**
 * The dashboard's queue flow and its re-send, retry and workflow features, in real headless
 * Chromium, on memory://, SQLite and Redis (an app, its worker with task events and the dashboard in this
 * process): a queue shows tasks in flight and its rates in and out; a dead letter is re-sent
 * after asking, runs again and leaves the dead letters; a task's "retry" sends it again with the
 * same arguments as its child; a task's page draws its workflow with the states of its steps.
 * (RabbitMQ's removal of a dead letter is covered by the broker conformance suite.)
 */
import { randomUUID } from 'node:crypto';
import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Celeriac, chain, createLogger, type Task, type Worker } from '../../src/index.js';
import { startDashboard, type Dashboard } from '../../src/dashboard/index.js';
import { tempSqlite } from '../helpers/cli.js';
import { launchChromium, screenshot } from '../helpers/dashboard.js';
import { until } from '../helpers/wait.js';

const BROKERS: Array<{ name: string; key: string; open: () => { url: string; cleanup?: () => void } }> = [
  { name: 'memory://', key: 'memory', open: () => ({ url: `memory://${randomUUID()}` }) },
  { name: 'SQLite', key: 'sqlite', open: () => tempSqlite() },
  { name: 'Redis', key: 'redis', open: () => ({ url: 'redis://127.0.0.1:6379/11' }) },
];

let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
}, 60_000);
afterAll(async () => {
  await browser?.close();
});

describe.each(BROKERS)('dashboard actions on $name', ({ key, open }) => {
  const { url: BROKER, cleanup } = open();
  const queue = `acts-${randomUUID()}`;
  let app: Celeriac;
  let producer: Celeriac;
  let worker: Worker;
  let dashboard: Dashboard;
  let context: BrowserContext;
  let failing = true;
  let add!: Task<[number, number], number>;

  beforeAll(async () => {
    app = new Celeriac({ broker: BROKER, defaultQueue: queue });
    // Producers that send task-sent events, as Celery's task_send_sent_event.
    producer = new Celeriac({ broker: BROKER, defaultQueue: queue, taskSentEvents: true });
    for (const each of [app, producer]) {
      const defined = each.task('acts.add', (_ctx, a: number, b: number) => a + b);
      if (each === app) add = defined;
      each.task('acts.concat', (ctx, a: string, b: string) => (ctx.kwargs['upper'] === true ? (a + b).toUpperCase() : a + b));
      each.task('acts.sleep', async (_ctx, ms: number) => {
        await new Promise((resolve) => setTimeout(resolve, ms));
        return ms;
      });
      each.task(
        'acts.once',
        (_ctx, label: string) => {
          if (failing) throw new Error(`failing on purpose: ${label}`);
          return label;
        },
        { acksLate: true, acksOnFailureOrTimeout: false },
      );
    }
    worker = app.worker({ queues: [queue], concurrency: 4, taskEvents: true, logger: createLogger('critical') });
    await worker.start();
    dashboard = await startDashboard(app, { port: 0, enableEvents: false, logger: createLogger('critical') });
    context = await browser.newContext({ baseURL: dashboard.url, viewport: { width: 1400, height: 900 } });
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await dashboard?.close();
    await worker?.stop(1);
    await producer?.close();
    await app?.close();
    cleanup?.();
  });

  it('shows a queue’s tasks in flight and its rates in and out', async () => {
    // Long enough to stay in flight through the page loads below on a busy machine (2.5 s was not).
    const slow = [1, 2, 3].map(() => producer.sendTask('acts.sleep', [5_000]));
    for (const result of slow) await result.sent;
    const page = await context.newPage();
    await until(async () => {
      await page.goto(`/queues/${encodeURIComponent(queue)}`);
      return (await page.locator('.stat [data-field="in-flight"]').innerText()) === '3';
    }, 10_000, 'three tasks in flight on the queue page');
    expect(Number(await page.locator('.stat [data-field="rate-in"]').innerText())).toBeGreaterThan(0);
    expect(Number(await page.locator('.stat [data-field="rate-out"]').innerText())).toBeGreaterThan(0);
    expect(await page.locator('.stat', { hasText: 'in /s' }).innerText()).toContain('task-sent events');
    await page.goto('/queues');
    const row = page.locator(`tr[data-queue="${queue}"]`);
    expect(await row.locator('[data-field="in-flight"]').innerText()).toBe('3');
    const metrics = await (await page.request.get('/metrics')).text();
    expect(metrics).toContain(`celeriac_queue_in_flight{queue="${queue}"} 3`);
    await screenshot(page, `${key}-queues-flow`);
    for (const result of slow) await result.get({ timeout: 10 });
    await until(async () => {
      await page.goto(`/queues/${encodeURIComponent(queue)}`);
      return (await page.locator('.stat [data-field="in-flight"]').innerText()) === '0';
    }, 10_000, 'nothing in flight once they ended');
    await page.close();
  });

  it('re-sends a dead letter after asking: it runs again and leaves the dead letters', async () => {
    failing = true;
    const label = `dead-${randomUUID().slice(0, 6)}`;
    const result = app.sendTask('acts.once', [label]);
    const broker = await app.broker();
    const mine = async (): Promise<number> => (await broker.listDeadLetters!(1000)).filter((letter) => letter.message.headers['id'] === result.id).length;
    await until(async () => (await mine()) === 1, 10_000, 'the task in the dead letters');
    failing = false;
    const page = await context.newPage();
    await page.goto(`/queues/${encodeURIComponent(queue)}`);
    await page.locator(`tr[data-dead-letter="${result.id}"] form[data-action="resend"] button`).click();
    await page.locator('#confirm').waitFor();
    expect(await mine()).toBe(1); // asked first: nothing re-sent yet
    await screenshot(page, `${key}-resend-confirm`);
    await page.locator('button[data-action="confirm"]').click();
    await page.locator('.flash', { hasText: 'Re-sent 1 message' }).waitFor();
    expect(await page.locator(`tr[data-dead-letter="${result.id}"]`).count()).toBe(0);
    expect(await mine()).toBe(0);
    const backend = await app.backend();
    await until(async () => (await backend.get(result.id))?.status === 'SUCCESS', 10_000, 'the re-sent task to succeed');
    expect((await backend.get(result.id))?.result).toBe(label);
    await page.close();
  });

  it('sends a task again with the same arguments, as a new task linked to the first', async () => {
    const first = app.sendTask<string>('acts.concat', ["it's ", '"quoted" ✓'], { upper: true });
    expect(await first.get({ timeout: 10 })).toBe(`IT'S "QUOTED" ✓`);
    const page = await context.newPage();
    await page.goto(`/tasks/${first.id}`);
    await page.locator('form[data-action="retry"] button').click();
    await page.locator('.flash', { hasText: 'again as' }).waitFor();
    const againId = await page.locator('#task-id').innerText();
    expect(againId).not.toBe(first.id);
    expect(await page.locator('.flash', { hasText: 'again as' }).innerText()).toContain(`a child of ${first.id}`);
    expect(await app.asyncResult<string>(againId).get({ timeout: 10 })).toBe(`IT'S "QUOTED" ✓`);
    await page.locator(`dd a[href="/tasks/${first.id}"]`).first().waitFor(); // its parent: the first
    await page.goto(`/tasks/${first.id}`);
    await page.locator(`#children a[href="/tasks/${againId}"]`).waitFor({ timeout: 5_000 });
    await screenshot(page, `${key}-task-retried`);
    await page.close();
  });

  it('draws the workflow of a chain on each step’s page, with each step’s state', async () => {
    const result = chain(add.s(1, 2), add.s(3), add.s(4)).delay();
    expect(await result.get({ timeout: 10 })).toBe(10);
    const page = await context.newPage();
    await until(async () => {
      await page.goto(`/tasks/${result.id}`);
      return (await page.locator('#workflow li[data-state="SUCCESS"]').count()) === 3;
    }, 10_000, 'three steps in the workflow');
    // Nested: root > second > third (this page's task, the last step, marked current).
    expect(await page.locator('#workflow > li > ul > li > ul > li').count()).toBe(1);
    expect(await page.locator('#workflow li.current').getAttribute('data-task-id')).toBe(result.id);
    await screenshot(page, `${key}-workflow`);
    await page.close();
  });
});
