/**
 * Trace context between celeriac (tracing: true, the real @opentelemetry/api and SDK) and real
 * Python Celery 5.2 on Redis, in the message headers where opentelemetry-instrumentation-celery
 * injects and extracts it (test/interop/python/trace_app.py does what its hooks do with them):
 * a task a Python producer sent with `traceparent`/`tracestate` runs on a celeriac worker in a
 * span continuing that trace; a task celeriac sent reaches a Python worker with the publish
 * span's context in `task.request.traceparent`, where the instrumentation reads it.
 */
import { randomUUID } from 'node:crypto';
import { trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spanRecord } from '../helpers/spans.js';
import { until } from '../helpers/wait.js';
import { interopHarness, pythonCeleryMissing } from './harness.js';

const REDIS = 'redis://127.0.0.1:6379/6';
const exporter = new InMemorySpanExporter();
beforeAll(() => {
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
});

const missing = pythonCeleryMissing();
describe.skipIf(missing !== null)('trace context with Python Celery on Redis', () => {
  const harness = interopHarness({ broker: REDIS, backend: REDIS, module: 'trace_app', env: { CELERIAC_TEST_BROKER: REDIS, CELERIAC_TEST_BACKEND: REDIS } });
  afterEach(() => harness.closeApps());
  afterAll(() => harness.killPythonWorkers());

  it('a task a Python producer sent with traceparent and tracestate runs in a span of that trace', async () => {
    exporter.reset();
    const queue = `trace-py-${randomUUID()}`;
    const app = harness.app({ tracing: true });
    app.task('ts.traced', () => 'traced');
    await harness.tsWorker(app, queue);
    const traceId = randomUUID().replaceAll('-', '');
    const spanId = randomUUID().replaceAll('-', '').slice(0, 16);
    const lines = await harness.pythonClient('produce', queue, `00-${traceId}-${spanId}-01`, 'python=1');
    expect(lines).toEqual(['traced']);
    await until(() => exporter.getFinishedSpans().some((span) => span.name === 'run/ts.traced'));
    const run = spanRecord(exporter.getFinishedSpans().find((span) => span.name === 'run/ts.traced')!);
    expect(run.traceId).toBe(traceId);
    expect(run.parentSpanId).toBe(spanId);
    expect(exporter.getFinishedSpans().find((span) => span.name === 'run/ts.traced')!.parentSpanContext?.traceState?.get('python')).toBe('1');
  });

  it('a task celeriac sent reaches a Python worker with the publish span’s context in task.request', async () => {
    exporter.reset();
    const queue = `trace-ts-${randomUUID()}`;
    await harness.pythonWorker(queue);
    const app = harness.app({ tracing: true });
    const [traceparent, tracestate] = await app.sendTask<[string | null, string | null]>('py.trace_context', [], {}, { queue }).get({ timeout: 30 });
    const publish = spanRecord(exporter.getFinishedSpans().find((span) => span.name === 'apply_async/py.trace_context')!);
    expect(traceparent).toBe(`00-${publish.traceId}-${publish.spanId}-01`);
    expect(tracestate).toBeNull();
  });
});

it('has Python Celery for the trace interop tests', () => {
  expect(missing).toBeNull();
});
