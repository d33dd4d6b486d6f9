/**
 * The entry of a pool thread or child process. It loads the app's module once, then runs the
 * tasks the worker sends it one at a time, in the order they came, on an
 * {@link InlineExecutor} of one slot: decoded from the message as it arrived, checked as the
 * worker checks them, and reported back as kombu JSON (results) or in Celery's exception form
 * (errors). Runs that end in one turn go back in one message; a run still queued can be
 * cancelled, one that started cannot (the worker kills the slot).
 */
import { getHeapStatistics } from 'node:v8';
import { isMainThread, parentPort } from 'node:worker_threads';
import type { Celeriac } from '../../app.js';
import { EncodeError, NotRegistered, SoftTimeLimitExceeded, TaskRevokedError } from '../../errors.js';
import { importAppModule } from '../../loading/app-module.js';
import { assembleLogger, type LogFields, type Logger, type LogLevel, type LogMethod } from '../../logger.js';
import { decodeTaskMessage } from '../../protocol/decode.js';
import { serializeException } from '../../protocol/exceptions.js';
import { encodeJson } from '../../protocol/kombu-json.js';
import type { TaskMessage, TransportMessage } from '../../protocol/message.js';
import { parseArguments, type StandardSchema } from '../../schema.js';
import type { Task } from '../../task.js';
import { fitArguments } from '../arguments.js';
import type { Execution, RunOutcome } from '../executor.js';
import { InlineExecutor } from '../inline-executor.js';
import type { AbortCause, ChildMessage, EndedRun, ParentMessage, RunOrder, ThrownError } from './pool-protocol.js';
import { orderedMessage } from './run-order.js';

/** Runs started back to back stop after this long, so that signals and cancels sent meanwhile get in. */
const SLICE_MS = 2;

/** The way back to the worker: the thread's port, or the child's IPC channel. */
const post: (message: ChildMessage) => void = isMainThread ? (message) => process.send!(message) : (message) => parentPort!.postMessage(message);

let app: Celeriac | undefined;
let executor: InlineExecutor | undefined;
let logLevels: readonly LogLevel[] = [];
let reportMemory = false;
/** Runs received and not started, in order. */
const queue: RunOrder[] = [];
/** The run going on; `execution` once its handler was called. */
let current: { order: RunOrder; execution?: Execution } | null = null;
/** Runs ended since the last message to the worker. */
let ended: EndedRun[] = [];

function onMessage(message: ParentMessage): void {
  switch (message.type) {
    case 'init':
      void init(message);
      return;
    case 'runs':
      queue.push(...(JSON.parse(message.runs) as RunOrder[]));
      pump();
      return;
    case 'abort':
      abort(message.run, message.cause);
      return;
    case 'cancel':
      cancel(message.run);
      flush();
      return;
    case 'exit':
      void exit();
      return;
  }
}

async function init(message: Extract<ParentMessage, { type: 'init' }>): Promise<void> {
  try {
    app = await importAppModule(message.module);
    app.configure(message.overrides);
  } catch (error) {
    post({ type: 'failed', error: error instanceof Error ? error.message : String(error) });
    process.exit(1);
  }
  executor = new InlineExecutor({ concurrency: 1, trackChildren: message.trackChildren });
  logLevels = message.logLevels;
  reportMemory = message.reportMemory;
  post({ type: 'ready', pid: process.pid });
}

/** Starts queued runs while none is going on, yielding after {@link SLICE_MS}; then reports what ended. */
function pump(): void {
  const sliceStart = performance.now();
  while (!current && queue.length > 0) {
    if (performance.now() - sliceStart >= SLICE_MS) {
      setImmediate(pump);
      break;
    }
    start(queue.shift()!);
  }
  flush();
}

function start(order: RunOrder): void {
  const startedAt = performance.now();
  let message: TransportMessage;
  let request: TaskMessage;
  let task: Task<never, unknown>;
  let fitted: ReturnType<typeof fitArguments>;
  try {
    message = orderedMessage(order);
    request = decodeTaskMessage(message, { maxBytes: Number.POSITIVE_INFINITY });
    if (order.trace) app!.adoptRunTrace(request.id, order.trace);
    const found = app!.tasks.get(request.task);
    if (!found) throw new NotRegistered(request.task);
    task = found;
    fitted = fitArguments(task, request.args, request.kwargs);
  } catch (error) {
    // Checked by the worker before it was sent here; only a module that differs gets here.
    end(order.run, startedAt, undefined, { kind: 'threw', error, retry: null, children: [] });
    return;
  }
  const schema = task.options.schema as StandardSchema<unknown, unknown[]> | undefined;
  if (!schema) {
    execute(order, startedAt, message, request, task, fitted.args, fitted.kwargs);
    return;
  }
  current = { order };
  parseArguments(task.name, schema, fitted.args).then(
    (args) => {
      current = null;
      execute(order, startedAt, message, request, task, args, fitted.kwargs);
      pump();
    },
    (error: unknown) => {
      current = null;
      end(order.run, startedAt, request.id, { kind: 'threw', error, retry: null, children: [] });
      pump();
    },
  );
}

function execute(order: RunOrder, startedAt: number, message: TransportMessage, request: TaskMessage, task: Task<never, unknown>, args: unknown[], kwargs: Readonly<Record<string, unknown>>): void {
  const { run } = order;
  const execution = executor!.run({
    request,
    message,
    task,
    args,
    kwargs,
    logger: forwardingLogger(run, ''),
    onStart: () => undefined,
    onProgress: (current, total, info) => {
      flush();
      post({ type: 'progress', run, current, total, info });
    },
  });
  if (execution.immediate) {
    end(run, startedAt, request.id, execution.immediate);
    return;
  }
  current = { order, execution };
  for (const cause of order.aborts ?? []) execution.signal(abortReason(cause));
  void execution.outcome.then((outcome) => {
    current = null;
    end(run, startedAt, request.id, outcome);
    pump();
  });
}

/** Fires the signal of the run going on, or keeps it for a queued run to fire when it starts. */
function abort(run: number, cause: AbortCause): void {
  if (current?.order.run === run && current.execution) {
    current.execution.signal(abortReason(cause));
    return;
  }
  const order = current?.order.run === run ? current.order : queue.find((queued) => queued.run === run);
  if (order) (order.aborts ??= []).push(cause);
}

/** Drops a queued run; one that started goes on (the worker then kills this slot). */
function cancel(run: number): void {
  const index = queue.findIndex((queued) => queued.run === run);
  if (index === -1) return;
  queue.splice(index, 1);
  ended.push({ run, ms: 0, cancelled: true });
}

/** Records how a run that started at `startedAt` ended, with its children and trace, for the next report. */
function end(run: number, startedAt: number, taskId: string | undefined, outcome: RunOutcome): void {
  const ms = Math.round((performance.now() - startedAt) * 1000) / 1000;
  const report = { run, ms, ...encodeOutcome(outcome) } as EndedRun;
  if (outcome.children.length > 0) report.children = outcome.children;
  const trace = taskId === undefined ? undefined : app!.runTrace(taskId);
  if (trace) report.trace = trace;
  ended.push(report);
}

/** Sends the worker the runs that ended, in one message. */
function flush(): void {
  if (ended.length === 0) return;
  const runs = JSON.stringify(ended);
  ended = [];
  post({ type: 'ended', runs, memoryKiB: reportMemory ? memoryKiB() : null });
}

function encodeOutcome(outcome: RunOutcome): { result: string } | { error: ThrownError } {
  if (outcome.kind === 'returned') {
    try {
      return { result: encodeJson(outcome.value) };
    } catch (error) {
      const encodeError = error instanceof EncodeError ? new EncodeError(`the result ${error.message}`) : error;
      return { error: thrown(encodeError) };
    }
  }
  const failure = thrown(outcome.error);
  if (outcome.kind === 'threw' && outcome.retry) {
    const { reason, countdown } = outcome.retry;
    failure.retry = { reason: reason == null ? null : serializeException(reason), reasonTraceback: stackOf(reason), countdown };
  }
  return { error: failure };
}

function thrown(error: unknown): ThrownError {
  return { exception: serializeException(error), traceback: stackOf(error), retry: null };
}

function stackOf(error: unknown): string | null {
  return error instanceof Error ? (error.stack ?? null) : null;
}

function abortReason(cause: AbortCause): Error {
  return cause.kind === 'soft-time-limit' ? new SoftTimeLimitExceeded(cause.seconds) : new TaskRevokedError(cause.reason);
}

/** What `max-memory-per-child` compares: the process's resident set, or this thread's heap. */
function memoryKiB(): number {
  return Math.round((isMainThread ? process.memoryUsage.rss() : getHeapStatistics().used_heap_size) / 1024);
}

/** A task's `ctx.log`: each line goes to the worker's logger, which writes it (after the runs that ended before it). */
function forwardingLogger(run: number, prefix: string): Logger {
  const method =
    (level: LogLevel): LogMethod =>
    ((first: string | LogFields, message?: string): void => {
      if (!logLevels.includes(level)) return;
      flush();
      post(typeof first === 'string' ? { type: 'log', run, prefix, level, fields: null, message: first } : { type: 'log', run, prefix, level, fields: first, message: message ?? '' });
    }) as LogMethod;
  return assembleLogger(
    method,
    (childPrefix) => forwardingLogger(run, prefix ? `${prefix} ${childPrefix}` : childPrefix),
    (level) => logLevels.includes(level),
  );
}

async function exit(): Promise<void> {
  await app?.close().catch(() => undefined);
  process.exit(0);
}

if (isMainThread) {
  process.on('message', (message: ParentMessage) => onMessage(message));
  // The worker's end of the channel closed: the worker is gone.
  process.on('disconnect', () => process.exit(0));
} else {
  parentPort!.on('message', onMessage);
}
