/**
 * OpenTelemetry tracing, when the app asks for it (`new Celeriac({ tracing: true })`): a
 * PRODUCER span per task published (`apply_async/<task>`) and a CONSUMER span per run
 * (`run/<task>`), as Python's opentelemetry-instrumentation-celery names them. W3C trace context
 * travels in the task message's own headers, `traceparent` and `tracestate`, where that
 * instrumentation injects it (Celery copies message headers onto `task.request`, where it
 * extracts it), so traces continue across both languages.
 *
 * The run span is a child of the publish span's context. A message sent because a task ran (a
 * retry, the next step of a chain, a callback, a task sent from a handler) is published under
 * that run's span, found by the message's parent id, so the whole workflow is one trace; a
 * retry's run also links to the run before it.
 *
 * `@opentelemetry/api` is an optional peer dependency, imported only when tracing is on.
 * @internal
 */
import type * as OtelApi from '@opentelemetry/api';
import { describeError, Retry } from './errors.js';
import { importOptional } from './optional-package.js';
import type { TaskMessage } from './protocol/message.js';
import type { TaskContext, TaskHandler } from './task.js';

type Api = typeof OtelApi;

/** Run spans remembered per task id, so messages a run causes are published under it. */
const MAX_REMEMBERED_RUNS = 10_000;
const TRACER_NAME = 'celeriac';

/** A publish span begun, to end once the broker took the message. */
export interface PublishSpan {
  /** The message to encode: its headers carry this span's context. */
  readonly message: TaskMessage;
  end(error?: unknown): void;
}

/** The app's tracing: the API once imported, and the run spans it remembers. */
export class Tracing {
  #api: Api | undefined;
  /** Resolves once the API is imported; rejects, naming the package, when it is not installed. */
  readonly ready: Promise<void>;
  readonly #runs = new Map<string, OtelApi.SpanContext>();

  constructor(load: () => Promise<Api> = () => import('@opentelemetry/api')) {
    this.ready = importOptional('@opentelemetry/api', 'tracing (tracing: true)', load).then((api) => {
      this.#api = api;
    });
    this.ready.catch(() => undefined); // reported where it is awaited
  }

  /** Begins a publish span for `message` and returns the message carrying its context. */
  async publish(message: TaskMessage, queue: string): Promise<PublishSpan> {
    if (!this.#api) await this.ready;
    const api = this.#api!;
    const previousRun = this.#runs.get(message.parentId ?? '');
    // The caller's own span first; else the run that caused this message (a retry, a chain's
    // next step, a task sent from a handler); else a context the message already carries.
    const active = api.context.active();
    const activeSpan = api.trace.getSpan(active);
    const parent =
      activeSpan && api.isSpanContextValid(activeSpan.spanContext())
        ? active
        : previousRun
          ? api.trace.setSpanContext(api.ROOT_CONTEXT, previousRun)
          : (extract(api, message.extraHeaders) ?? active);
    const links: OtelApi.Link[] = previousRun && message.parentId === message.id ? [{ context: previousRun, attributes: { 'celery.link': 'retry' } }] : [];
    const span = api.trace.getTracer(TRACER_NAME).startSpan(
      `apply_async/${message.task}`,
      {
        kind: api.SpanKind.PRODUCER,
        links,
        attributes: {
          'celery.action': 'apply_async',
          'celery.task_name': message.task,
          'messaging.system': 'celery',
          'messaging.message.id': message.id,
          'messaging.destination.name': queue,
          'celery.retries': message.retries,
          ...(message.parentId ? { 'celery.parent_id': message.parentId } : {}),
          'celery.root_id': message.rootId,
        },
      },
      parent,
    );
    const headers = { ...message.extraHeaders };
    delete headers['tracestate'];
    inject(span.spanContext(), headers);
    return {
      message: { ...message, extraHeaders: headers },
      end: (error?: unknown) => {
        if (error !== undefined) failed(api, span, error);
        span.end();
      },
    };
  }

  /** The handler, running each call in a run span continued from the message's headers. */
  wrap<A extends unknown[], R>(name: string, handler: TaskHandler<A, R>): TaskHandler<A, R> {
    const traced = (ctx: TaskContext, ...args: A): R | Promise<R> => {
      const api = this.#api;
      if (!api) return this.ready.then(() => traced(ctx, ...args));
      const request = ctx.request;
      const parent = extract(api, request.extraHeaders) ?? api.ROOT_CONTEXT;
      const previous = this.#runs.get(request.id);
      const span = api.trace.getTracer(TRACER_NAME).startSpan(
        `run/${name}`,
        {
          kind: api.SpanKind.CONSUMER,
          links: previous ? [{ context: previous, attributes: { 'celery.link': 'retry' } }] : [],
          attributes: {
            'celery.action': 'run',
            'celery.task_name': name,
            'messaging.system': 'celery',
            'messaging.message.id': request.id,
            'celery.retries': request.retries,
            ...(request.parentId ? { 'celery.parent_id': request.parentId } : {}),
            'celery.root_id': request.rootId,
          },
        },
        parent,
      );
      this.#remember(request.id, span.spanContext());
      const ended = (error?: unknown): void => {
        if (error !== undefined) failed(api, span, error);
        span.end();
      };
      let value: R | Promise<R>;
      try {
        value = api.context.with(api.trace.setSpan(parent, span), () => handler(ctx, ...args));
      } catch (error) {
        ended(error);
        throw error;
      }
      if (!isPromiseLike(value)) {
        ended();
        return value;
      }
      return Promise.resolve(value).then(
        (result) => {
          ended();
          return result;
        },
        (error: unknown) => {
          ended(error);
          throw error;
        },
      );
    };
    return traced;
  }

  /** The run of task `id` remembered here, as W3C headers: to hand to another process (a pool slot, its worker). */
  runHeaders(id: string): Record<string, string> | undefined {
    const context = this.#runs.get(id);
    if (!context) return undefined;
    const headers: Record<string, string> = {};
    inject(context, headers);
    return headers;
  }

  /** Remembers a run of task `id` traced in another process, from its W3C headers. */
  adoptRun(id: string, headers: Readonly<Record<string, unknown>>): void {
    const api = this.#api;
    const context = api && extract(api, headers);
    const spanContext = context && api.trace.getSpanContext(context);
    if (spanContext) this.#remember(id, spanContext);
  }

  #remember(id: string, context: OtelApi.SpanContext): void {
    this.#runs.delete(id);
    this.#runs.set(id, context);
    if (this.#runs.size > MAX_REMEMBERED_RUNS) this.#runs.delete(this.#runs.keys().next().value!);
  }
}

/** A retry is not a failure: it is noted on the span (as Python's instrumentation does); others set status ERROR. */
function failed(api: Api, span: OtelApi.Span, error: unknown): void {
  if (error instanceof Retry) {
    span.setAttribute('celery.retry.reason', error.reasonError === null ? error.message : describeError(error.reasonError));
    return;
  }
  if (error instanceof Error) span.recordException(error);
  span.setStatus({ code: api.SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
}

const TRACEPARENT = /^([\da-f]{2})-([\da-f]{32})-([\da-f]{16})-([\da-f]{2})(-.*)?$/;

/** The remote parent in W3C `traceparent` / `tracestate` headers, if valid. */
export function extract(api: Api, headers: Readonly<Record<string, unknown>>): OtelApi.Context | undefined {
  const traceparent = headers['traceparent'];
  if (typeof traceparent !== 'string') return undefined;
  const match = TRACEPARENT.exec(traceparent.trim().toLowerCase());
  if (!match || match[1] === 'ff' || (match[1] === '00' && match[5])) return undefined;
  const tracestate = headers['tracestate'];
  const spanContext: OtelApi.SpanContext = {
    traceId: match[2]!,
    spanId: match[3]!,
    traceFlags: Number.parseInt(match[4]!, 16) & 1,
    isRemote: true,
    ...(typeof tracestate === 'string' && tracestate ? { traceState: api.createTraceState(tracestate) } : {}),
  };
  if (!api.isSpanContextValid(spanContext)) return undefined;
  return api.trace.setSpanContext(api.ROOT_CONTEXT, spanContext);
}

/** Writes a span's context as W3C `traceparent` (and `tracestate`, when it has one). */
export function inject(context: OtelApi.SpanContext, headers: Record<string, unknown>): void {
  headers['traceparent'] = `00-${context.traceId}-${context.spanId}-0${(context.traceFlags & 1).toString(16)}`;
  const state = context.traceState?.serialize();
  if (state) headers['tracestate'] = state;
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
