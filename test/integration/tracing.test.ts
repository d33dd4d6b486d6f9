/**
 * OpenTelemetry tracing with the real @opentelemetry/api and SDK: a task sent from one app and
 * run by a worker (in this process, and in a worker process) gives a publish span (PRODUCER)
 * and a run span (CONSUMER) in one trace, the run a child of the publish; a retry and a chain's
 * next step continue the trace from the run before them (the retry also links to it); a message
 * carrying `traceparent` as Python's opentelemetry-instrumentation-celery writes it is
 * continued; with tracing off nothing is added to messages.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SpanKind, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { Celeriac, chain, ConfigurationError, createLogger, type Task } from '../../src/index.js';
import { encodeTaskMessage } from '../../src/protocol/encode.js';
import { Tracing } from '../../src/tracing.js';
import { ROOT, startWorkerProcess, tempSqlite } from '../helpers/cli.js';
import { spanRecord, type SpanRecord } from '../helpers/spans.js';
import { until } from '../helpers/wait.js';

const exporter = new InMemorySpanExporter();
beforeAll(() => {
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
});
beforeEach(() => exporter.reset());

const closers: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

const spans = (): SpanRecord[] => exporter.getFinishedSpans().map(spanRecord);
const one = (list: SpanRecord[], predicate: (span: SpanRecord) => boolean): SpanRecord => {
  const found = list.filter(predicate);
  expect(found, JSON.stringify(list, null, 1)).toHaveLength(1);
  return found[0]!;
};

async function inProcess(tracing = true): Promise<Celeriac & { add: Task<[number, number], number> }> {
  const url = `memory://${randomUUID()}`;
  const app = new Celeriac({ broker: url, backend: url, tracing });
  const add = app.task('tr.add', (_ctx, a: number, b: number) => a + b);
  app.task('tr.flaky', (ctx) => {
    if (ctx.retries === 0) ctx.retry({ countdown: 0.01, error: new Error('first attempt') });
    return ctx.retries;
  });
  // Sends a child task from its handler and waits for it.
  app.task('tr.spawn', async () => app.sendTask<number>('tr.add', [20, 22]).get({ timeout: 5 }));
  const worker = app.worker({ logger: createLogger('critical') });
  await worker.start();
  closers.push(() => app.close(), () => worker.stop(1));
  return Object.assign(app, { add });
}

describe('tracing in one process', () => {
  it('a sent task gives a publish span and a run span, its child, in one trace, with Celery-like names and attributes', async () => {
    const app = await inProcess();
    const result = app.sendTask<number>('tr.add', [2, 3]);
    expect(await result.get({ timeout: 5 })).toBe(5);
    await until(() => spans().length >= 2);
    const publish = one(spans(), (span) => span.name === 'apply_async/tr.add');
    const run = one(spans(), (span) => span.name === 'run/tr.add');
    expect(publish.kind).toBe(SpanKind.PRODUCER);
    expect(run.kind).toBe(SpanKind.CONSUMER);
    expect(run.traceId).toBe(publish.traceId);
    expect(run.parentSpanId).toBe(publish.spanId);
    expect(publish.attributes).toMatchObject({ 'celery.action': 'apply_async', 'celery.task_name': 'tr.add', 'messaging.message.id': result.id, 'messaging.destination.name': 'celery', 'celery.retries': 0 });
    expect(run.attributes).toMatchObject({ 'celery.action': 'run', 'celery.task_name': 'tr.add', 'messaging.message.id': result.id, 'celery.retries': 0 });
  });

  it('the message carries traceparent in its headers, where the Python instrumentation injects it', async () => {
    const app = await inProcess();
    const broker = await app.broker();
    const publish = vi.spyOn(broker, 'publish');
    await app.sendTask('tr.add', [1, 1]).get({ timeout: 5 });
    const headers = publish.mock.calls[0]![1].headers;
    await until(() => spans().length >= 2);
    const published = one(spans(), (span) => span.name === 'apply_async/tr.add');
    expect(headers['traceparent']).toBe(`00-${published.traceId}-${published.spanId}-01`);
  });

  it('a retry is published under the run that asked for it, and its run links to that run', async () => {
    const app = await inProcess();
    expect(await app.sendTask<number>('tr.flaky').get({ timeout: 5 })).toBe(1);
    await until(() => spans().filter((span) => span.name === 'run/tr.flaky').length === 2 && spans().length >= 4);
    const all = spans();
    const runs = all.filter((span) => span.name === 'run/tr.flaky').sort((a, b) => Number(a.attributes['celery.retries']) - Number(b.attributes['celery.retries']));
    const publishes = all.filter((span) => span.name === 'apply_async/tr.flaky').sort((a, b) => Number(a.attributes['celery.retries']) - Number(b.attributes['celery.retries']));
    expect(new Set(all.map((span) => span.traceId)).size).toBe(1);
    expect(runs[0]!.parentSpanId).toBe(publishes[0]!.spanId);
    expect(runs[0]!.attributes['celery.retry.reason']).toContain('first attempt');
    expect(publishes[1]!.parentSpanId).toBe(runs[0]!.spanId);
    expect(publishes[1]!.links).toEqual([runs[0]!.spanId]);
    expect(runs[1]!.parentSpanId).toBe(publishes[1]!.spanId);
    expect(runs[1]!.links).toEqual([runs[0]!.spanId]);
  });

  it("a chain's next step (producer → worker → child task) continues the trace from the step before", async () => {
    const app = await inProcess();
    expect(await chain(app.add.s(1, 2), app.add.s(10)).delay().get({ timeout: 5 })).toBe(13);
    await until(() => spans().filter((span) => span.name === 'run/tr.add').length === 2);
    const all = spans();
    const runs = all.filter((span) => span.name === 'run/tr.add');
    const publishes = all.filter((span) => span.name === 'apply_async/tr.add');
    expect(new Set(all.map((span) => span.traceId)).size).toBe(1);
    const first = runs.find((span) => span.parentSpanId === publishes.find((p) => p.parentSpanId === undefined)!.spanId)!;
    const nextPublish = one(publishes, (span) => span.parentSpanId === first.spanId);
    one(runs, (span) => span.parentSpanId === nextPublish.spanId);
  });

  it('a task sent from a handler (producer → worker → child task) is published under the run that sent it', async () => {
    const app = await inProcess();
    expect(await app.sendTask<number>('tr.spawn').get({ timeout: 5 })).toBe(42);
    await until(() => spans().length >= 4);
    const all = spans();
    const sent = one(all, (span) => span.name === 'apply_async/tr.spawn');
    const run = one(all, (span) => span.name === 'run/tr.spawn');
    const childSent = one(all, (span) => span.name === 'apply_async/tr.add');
    const childRun = one(all, (span) => span.name === 'run/tr.add');
    expect(run.parentSpanId).toBe(sent.spanId);
    expect(childSent.parentSpanId).toBe(run.spanId);
    expect(childSent.attributes['celery.parent_id']).toBe(run.attributes['messaging.message.id']);
    expect(childRun.parentSpanId).toBe(childSent.spanId);
    expect(new Set(all.map((span) => span.traceId)).size).toBe(1);
  });

  it('a message with traceparent and tracestate set as Python writes them is continued', async () => {
    const app = await inProcess();
    const traceId = 'a'.repeat(31) + '1';
    const spanId = 'b'.repeat(15) + '2';
    const id = randomUUID();
    // As Python's Celery sends it: protocol 2, W3C context among the message headers.
    const message = app.buildMessage('tr.add', [4, 5], { taskId: id }, {});
    const wire = encodeTaskMessage({ ...message, extraHeaders: { traceparent: `00-${traceId}-${spanId}-01`, tracestate: 'vendor=x' } });
    wire.headers['lang'] = 'py';
    await (await app.broker()).publish('celery', wire, {});
    expect(await app.asyncResult(id).get({ timeout: 5 })).toBe(9);
    await until(() => spans().some((span) => span.name === 'run/tr.add'));
    const run = one(spans(), (span) => span.name === 'run/tr.add');
    expect(run.traceId).toBe(traceId);
    expect(run.parentSpanId).toBe(spanId);
  });

  it('with tracing off, no span is made and no header added', async () => {
    const app = await inProcess(false);
    const publish = vi.spyOn(await app.broker(), 'publish');
    await app.sendTask('tr.add', [1, 1]).get({ timeout: 5 });
    expect(publish.mock.calls[0]![1].headers).not.toHaveProperty('traceparent');
    expect(spans()).toEqual([]);
  });

  it('a missing @opentelemetry/api is named in one line when tracing is on', async () => {
    const missing = Object.assign(new Error("Cannot find package '@opentelemetry/api' imported from x"), { code: 'ERR_MODULE_NOT_FOUND' });
    const tracing = new Tracing(() => Promise.reject(missing));
    await expect(tracing.ready).rejects.toThrow(ConfigurationError);
    await expect(tracing.ready).rejects.toThrow('tracing (tracing: true) needs the @opentelemetry/api package, which is not installed; run: npm install @opentelemetry/api');
  });
});

describe('tracing across processes', () => {
  // On the event pool the run and the retry's publish share a process; with -P processes the run
  // span is made in a child, which hands its context back to the worker (and a retry's run gets
  // the previous run's): either way the retry is published under the run and its run links to it.
  it.each([
    { pool: 'event', args: [] as string[] },
    { pool: 'processes', args: ['-P', 'processes'] },
  ])('a task sent here and run by a worker process ($pool pool): the run span is the publish span’s child, in one trace with its retry', async ({ args }) => {
    const { dir, url, cleanup } = tempSqlite();
    closers.push(cleanup);
    const spansFile = join(dir, 'spans.jsonl');
    const worker = startWorkerProcess(url, ['-c', '2', ...args], { SPANS_FILE: spansFile }, join(ROOT, 'test', 'fixtures', 'traced-tasks.ts'));
    closers.push(async () => {
      worker.child.kill('SIGTERM');
      await worker.exited;
    });
    await worker.waitFor('ready');
    const app = new Celeriac({ broker: url, tracing: true });
    closers.push(() => app.close());
    expect(await app.sendTask<number>('traced.add', [2, 3]).get({ timeout: 10 })).toBe(5);
    expect(await app.sendTask<number>('traced.flaky').get({ timeout: 10 })).toBe(1);
    const remote = (): SpanRecord[] => (existsSync(spansFile) ? readFileSync(spansFile, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as SpanRecord) : []);
    await until(() => remote().filter((span) => span.name.startsWith('run/')).length === 3);
    const local = spans();
    const sentAdd = one(local, (span) => span.name === 'apply_async/traced.add');
    const runAdd = one(remote(), (span) => span.name === 'run/traced.add');
    expect(runAdd.kind).toBe(SpanKind.CONSUMER);
    expect(runAdd.traceId).toBe(sentAdd.traceId);
    expect(runAdd.parentSpanId).toBe(sentAdd.spanId);

    const sentFlaky = one(local, (span) => span.name === 'apply_async/traced.flaky');
    const runs = remote().filter((span) => span.name === 'run/traced.flaky').sort((a, b) => Number(a.attributes['celery.retries']) - Number(b.attributes['celery.retries']));
    const retryPublish = one(remote(), (span) => span.name === 'apply_async/traced.flaky');
    expect(runs[0]!.parentSpanId).toBe(sentFlaky.spanId);
    expect(runs[1]!.parentSpanId).toBe(retryPublish.spanId);
    expect(retryPublish.parentSpanId).toBe(runs[0]!.spanId);
    expect(runs[1]!.links).toEqual([runs[0]!.spanId]);
    expect(new Set([...runs, retryPublish].map((span) => span.traceId))).toEqual(new Set([sentFlaky.traceId]));
  }, 40_000);
});
