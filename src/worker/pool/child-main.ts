/**
 * The entry of a pool thread or child process. It loads the app's module once, then runs the
 * tasks the worker sends it, one at a time, on an {@link InlineExecutor} of one slot: decoded
 * from the message as it arrived, checked as the worker checks them, and reported back as
 * kombu JSON (results) or in Celery's exception form (errors).
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
import { fitArguments } from '../arguments.js';
import type { Execution, RunOutcome } from '../executor.js';
import { InlineExecutor } from '../inline-executor.js';
import type { AbortCause, ChildMessage, ParentMessage, ThrownError } from './pool-protocol.js';

/** The way back to the worker: the thread's port, or the child's IPC channel. */
const post: (message: ChildMessage) => void = isMainThread ? (message) => process.send!(message) : (message) => parentPort!.postMessage(message);

let app: Celeriac | undefined;
let executor: InlineExecutor | undefined;
let logLevels: readonly LogLevel[] = [];
let reportMemory = false;
const running = new Map<number, Execution>();

function onMessage(message: ParentMessage): void {
  switch (message.type) {
    case 'init':
      void init(message);
      break;
    case 'run':
      void run(message.runId, message.message, message.trace);
      break;
    case 'abort':
      running.get(message.runId)?.signal(abortReason(message.cause));
      break;
    case 'exit':
      void exit();
      break;
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

async function run(runId: number, raw: TransportMessage, trace: Record<string, string> | undefined): Promise<void> {
  const message: TransportMessage = { ...raw, body: Buffer.from(raw.body.buffer, raw.body.byteOffset, raw.body.byteLength) };
  let outcome: RunOutcome;
  let taskId: string | undefined;
  try {
    const request = decodeTaskMessage(message, { maxBytes: Number.POSITIVE_INFINITY });
    taskId = request.id;
    if (trace) app!.adoptRunTrace(request.id, trace);
    outcome = await execute(runId, message, request);
  } catch (error) {
    // Checked by the worker before it was sent here; only a module that differs gets here.
    outcome = { kind: 'threw', error, retry: null, children: [] };
  }
  const runTrace = taskId === undefined ? undefined : app!.runTrace(taskId);
  post({ type: 'done', runId, outcome: encodeOutcome(outcome), children: outcome.children, memoryKiB: reportMemory ? memoryKiB() : null, trace: runTrace });
}

async function execute(runId: number, message: TransportMessage, request: TaskMessage): Promise<RunOutcome> {
  const task = app!.tasks.get(request.task);
  if (!task) throw new NotRegistered(request.task);
  const fitted = fitArguments(task, request.args, request.kwargs);
  const schema = task.options.schema as StandardSchema<unknown, unknown[]> | undefined;
  const args = schema ? await parseArguments(task.name, schema, fitted.args) : fitted.args;
  const execution = executor!.run({
    request,
    message,
    task,
    args,
    kwargs: fitted.kwargs,
    logger: forwardingLogger(runId, ''),
    onProgress: (current, total, info) => post({ type: 'progress', runId, current, total, info }),
  });
  running.set(runId, execution);
  try {
    return await execution.outcome;
  } finally {
    running.delete(runId);
  }
}

function encodeOutcome(outcome: RunOutcome): Extract<ChildMessage, { type: 'done' }>['outcome'] {
  if (outcome.kind === 'returned') {
    try {
      return { kind: 'returned', json: encodeJson(outcome.value) };
    } catch (error) {
      const encodeError = error instanceof EncodeError ? new EncodeError(`the result ${error.message}`) : error;
      return { kind: 'threw', ...thrown(encodeError) };
    }
  }
  const failure = thrown(outcome.error);
  if (outcome.kind === 'threw' && outcome.retry) {
    const { reason, countdown } = outcome.retry;
    failure.retry = { reason: reason == null ? null : serializeException(reason), reasonTraceback: stackOf(reason), countdown };
  }
  return { kind: 'threw', ...failure };
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

/** A task's `ctx.log`: each line goes to the worker's logger, which writes it. */
function forwardingLogger(runId: number, prefix: string): Logger {
  const method =
    (level: LogLevel): LogMethod =>
    ((first: string | LogFields, message?: string): void => {
      if (!logLevels.includes(level)) return;
      post(typeof first === 'string' ? { type: 'log', runId, prefix, level, fields: null, message: first } : { type: 'log', runId, prefix, level, fields: first, message: message ?? '' });
    }) as LogMethod;
  return assembleLogger(
    method,
    (childPrefix) => forwardingLogger(runId, prefix ? `${prefix} ${childPrefix}` : childPrefix),
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
