/**
 * The worker: takes deliveries from the broker, checks them, runs their tasks through its
 * executors (the event loop, and thread or process pools), applies their time limits, stores
 * results, then acks. Bad input is refused with a reason and the worker goes on; shutdown hands
 * back what it did not start.
 */
import type { Clock, ClockTimer } from '../clock.js';
import type { ResultBackend, ResultTuple } from '../backends/backend.js';
import type { Broker, ConsumeOptions, Consumer, Delivery } from '../brokers/broker.js';
import { ConfigurationError, describeError, EncodeError, InvalidArguments, NotRegistered, ProtocolError, SoftTimeLimitExceeded, TaskRevokedError, TimeLimitExceeded, type RevokeReason } from '../errors.js';
import { TypedEmitter, type RejectReason, type WorkerEventMap } from '../events.js';
import { createLogger } from '../logger.js';
import { Continuation, type ContinuationHost } from '../canvas/continuation.js';
import { decodeTaskMessage } from '../protocol/decode.js';
import { serializeException, type ExceptionDict } from '../protocol/exceptions.js';
import type { TaskMessage } from '../protocol/message.js';
import type { Destination } from '../routing.js';
import { FAILURE, PROGRESS, RETRY, REVOKED, STARTED, SUCCESS, type TaskState } from '../states.js';
import type { Task } from '../task.js';
import { parseArguments, type StandardSchema } from '../schema.js';
import { fitArguments, type FittedArguments } from './arguments.js';
import type { Execution, Executor, RunOutcome } from './executor.js';
import { Executors } from './executors.js';
import { attachLogging } from './logging.js';
import { resolveWorkerOptions, type WorkerOptions, type WorkerSettings } from './options.js';
import { buildResultMeta } from './result-meta.js';
import { RateGates } from './rate-gates.js';
import type { RequestInfo } from './remote/control-commands.js';
import { describeRequest } from './remote/request-info.js';
import { WorkerRemote, type RemoteWorker } from './remote/worker-remote.js';
import { RevokedSet } from './revoked-set.js';

/** What a worker needs of its app. */
export interface WorkerHost extends ContinuationHost {
  readonly clock: Clock;
  readonly tasks: ReadonlyMap<string, Task<never, unknown>>;
  readonly defaultQueue: string;
  broker(): Promise<Broker>;
  backend(): Promise<ResultBackend>;
  publish(message: TaskMessage, destination: Destination): Promise<void>;
  /** The trace context of a task's last run here, when tracing is on (handed to a pool slot). */
  runTrace?(id: string): Record<string, string> | undefined;
  /** Remembers a run traced in a pool slot, so what the worker sends after it continues its trace. */
  adoptRunTrace?(id: string, headers: Readonly<Record<string, unknown>>): void;
}

/** One task message on its way through the worker. */
interface Job {
  readonly delivery: Delivery;
  readonly request: TaskMessage;
  readonly task: Task<never, unknown>;
  readonly args: unknown[];
  readonly kwargs: Readonly<Record<string, unknown>>;
  /** Where it runs. */
  readonly executor: Executor;
  execution?: Execution;
  /** What it sent while running (its children), when the worker tracks children. */
  children?: ResultTuple[];
  revokedBy?: RevokeReason;
  /** Signalled by shutdown: if it now fails, it goes back to the broker instead. */
  stopping?: boolean;
  handedBack?: boolean;
  lastProgressAt?: number;
  /** When it started, in Unix seconds (for `active`); unset while it waits in its executor (a pool slot's queue). */
  startedAt?: number;
  /** When it started, by `performance.now()` (for its runtime). */
  runStartedAt?: number;
  /** Its soft and hard time limits, counting from its start. */
  timeLimits?: ClockTimer[] | undefined;
}

/** How a run ended. */
type Outcome =
  | { kind: 'success'; value: unknown }
  | { kind: 'failure'; error: unknown }
  | { kind: 'retry'; error: unknown; countdown: number }
  | { kind: 'revoked'; reason: RevokeReason }
  | { kind: 'hand-back' };

/** Counters a worker keeps. */
export interface WorkerStats {
  received: number;
  succeeded: number;
  failed: number;
  retried: number;
  revoked: number;
  handedBack: number;
  rejected: Partial<Record<RejectReason, number>>;
}

const PROGRESS_INTERVAL_MS = 200;
/** Held tasks raise the prefetch by at most this many times its own value. */
const HELD_MAX_FACTOR = 10;

/** An ETA task due within this many ms waits in worker memory rather than a broker round trip. */
const ETA_HOLD_MS = 1_000;

/** Runs an app's tasks. Create it with `app.worker(options)`. */
export class Worker extends TypedEmitter<WorkerEventMap> {
  readonly options: WorkerOptions;
  readonly stats: WorkerStats = { received: 0, succeeded: 0, failed: 0, retried: 0, revoked: 0, handedBack: 0, rejected: {} };
  #state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  #broker!: Broker;
  #backend!: ResultBackend;
  #continuation!: Continuation;
  #consumer: Consumer | undefined;
  #remote: WorkerRemote | undefined;
  /** Time limits set at run time (`time_limit`), by task name. */
  readonly #timeLimits = new Map<string, { hard: number | null; soft: number | null }>();
  /** Consumers added at run time (`add_consumer`), by queue. */
  readonly #addedConsumers = new Map<string, Consumer>();
  /** Tasks started, by name: `stats().total`. */
  readonly #totals = new Map<string, number>();
  #startedAt = 0;
  readonly #active = new Set<Job>();
  readonly #reserved: Job[] = [];
  /** ETA tasks this worker holds until they are due. */
  readonly #held = new Map<Delivery, { timer: ClockTimer; request: TaskMessage }>();
  readonly #settling = new Set<Promise<void>>();
  readonly #revoked: RevokedSet;
  readonly #executors: Executors;
  readonly #rateGates: RateGates<Job>;
  /** The consumer's prefetch now: the option's, plus one per held task. */
  #prefetch: number;
  #prefetchSyncDue = false;
  /** The main pool's capacity when the prefetch last followed it. */
  #capacitySeen = 0;
  #idle: (() => void) | undefined;
  #stopping: Promise<void> | undefined;
  readonly #logWarning = ({ message }: { message: string }): void => this.options.logger.warning(message);

  constructor(
    private readonly app: WorkerHost,
    options: WorkerSettings = {},
  ) {
    super();
    this.options = resolveWorkerOptions(options, app.defaultQueue, createLogger('info'));
    this.#prefetch = this.options.prefetch;
    this.#executors = new Executors(this.options);
    this.#revoked = new RevokedSet(this.options.revokedMax, this.options.revokedExpires);
    this.#rateGates = new RateGates<Job>(
      app.clock,
      (job) => {
        this.#syncPrefetch();
        this.#admitNow(job);
      },
      () => this.#broker?.rateLimits,
      this.options.logger,
    );
    attachLogging(this, this.options.logger);
  }

  /** The app's clock: every time decision of this worker reads it. */
  get #clock(): Clock {
    return this.app.clock;
  }

  /** Tasks running now. */
  get activeCount(): number {
    return this.#running().length;
  }

  /** Jobs handed to an executor that have started (not queued in a pool slot). */
  #running(): Job[] {
    return [...this.#active].filter((job) => job.startedAt !== undefined);
  }

  /** True when nothing is running, reserved, held for its ETA, or still being recorded. */
  get idle(): boolean {
    return this.#active.size === 0 && this.#reserved.length === 0 && this.#held.size === 0 && this.#rateGates.held === 0 && this.#settling.size === 0;
  }

  /**
   * Connects and starts consuming. Rejects with a clear error if the broker is unreachable; a
   * worker whose start failed can be started again.
   */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error(`worker cannot start: it is ${this.#state}`);
    this.#state = 'running';
    try {
      await this.#connect();
    } catch (error) {
      await this.#remote?.stop().catch(() => undefined);
      this.#remote = undefined;
      await this.#closeExecutors();
      this.#state = 'new';
      throw error;
    }
    this.#startedAt = Date.now();
    this.emit('worker-online', { hostname: this.options.hostname, queues: this.options.queues });
  }

  async #connect(): Promise<void> {
    await this.#executors.start(this.app.tasks.values());
    [this.#broker, this.#backend] = await Promise.all([this.app.broker(), this.app.backend()]);
    this.#checkSharedRateLimits();
    this.#continuation = new Continuation(this.app, this.#backend, { hostname: this.options.hostname, queue: this.options.queues[0] ?? this.app.defaultQueue });
    this.#broker.on('warning', this.#logWarning);
    this.#remote = new WorkerRemote(this.#broker, this.#controlTarget(), this, {
      hostname: this.options.hostname,
      taskEvents: this.options.taskEvents,
      mingle: this.options.mingle && !this.#broker.control?.replaysRecent,
      logger: this.options.logger,
    });
    await this.#remote.start();
    this.#consumer = await this.#broker.consume(this.options.queues, (delivery) => this.#onDelivery(delivery), this.#consumeOptions(this.options.prefetch));
  }

  #consumeOptions(prefetch: number): ConsumeOptions {
    return { prefetch, concurrency: this.options.concurrency };
  }

  /** A task limited across every worker needs a broker that can keep the shared rate. */
  #checkSharedRateLimits(): void {
    if (this.#broker.rateLimits) return;
    const shared = [...this.app.tasks.values()].filter((task) => task.options.rateLimitScope === 'global' && task.options.rateLimit !== undefined).map((task) => task.name);
    if (shared.length > 0) {
      throw new ConfigurationError(`${shared.join(', ')} ${shared.length === 1 ? 'has' : 'have'} a global rate limit, which the broker ${this.#broker.displayUrl} cannot keep; use a redis:// or sqlite:// broker`);
    }
  }

  /**
   * Warm shutdown: stop taking work, hand back what has not started, let running tasks finish
   * within `graceSeconds` (default: the `shutdownGrace` option), then fire their signals and
   * hand back whatever still runs. Calling it again while it runs waits for the same shutdown.
   */
  stop(graceSeconds = this.options.shutdownGrace): Promise<void> {
    if (this.#state === 'running') this.#stopping = this.#shutDown(graceSeconds);
    return this.#stopping ?? Promise.resolve();
  }

  /** Stops the worker: `await using worker = app.worker()` stops it at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async #shutDown(graceSeconds: number): Promise<void> {
    this.#state = 'stopping';
    for (const consumer of [this.#consumer, ...this.#addedConsumers.values()]) {
      await consumer?.cancel().catch((error: unknown) => this.emit('error', { error, during: 'cancelling a consumer' }));
    }
    this.#addedConsumers.clear();
    for (const job of [...this.#reserved.splice(0), ...this.#rateGates.drain()]) this.#handBack(job);
    for (const [delivery, { timer }] of this.#held) {
      this.#clock.clearTimeout(timer);
      this.#settle(delivery.reject(true), 'handing back a held ETA task');
    }
    this.#held.clear();
    if (!(await this.#waitIdle(graceSeconds * 1000))) {
      for (const job of this.#active) {
        job.stopping = true;
        job.execution?.signal(new TaskRevokedError('shutdown'));
      }
      if (!(await this.#waitIdle(1000))) {
        for (const job of [...this.#active]) {
          this.#handBack(job);
          job.execution?.terminate(new TaskRevokedError('shutdown'));
        }
      }
    }
    await Promise.allSettled([...this.#settling]);
    await this.#closeExecutors();
    await this.#remote?.stop().catch(() => undefined);
    this.#broker.off('warning', this.#logWarning);
    this.#state = 'stopped';
    this.emit('worker-offline', { hostname: this.options.hostname });
  }

  #waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.#active.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#idle = undefined;
        resolve(false);
      }, timeoutMs);
      this.#idle = () => {
        clearTimeout(timer);
        this.#idle = undefined;
        resolve(true);
      };
    });
  }

  #onDelivery(delivery: Delivery): void {
    if (this.#state !== 'running') {
      this.#settle(delivery.reject(true), 'handing back a late delivery');
      return;
    }
    let request: TaskMessage;
    try {
      request = decodeTaskMessage(delivery.message, { maxBytes: this.options.maxMessageBytes });
    } catch (error) {
      const reason = error instanceof ProtocolError ? error.reason : 'undecodable';
      this.#refuse(delivery, headerString(delivery, 'id'), headerString(delivery, 'task'), reason, error);
      return;
    }
    this.stats.received++;
    if (this.listens('task-received')) {
      const { id, task: name, args, kwargs, eta, expires, retries, rootId, parentId } = request;
      this.emit('task-received', { id, name, args, kwargs, eta, expires, retries, rootId, parentId });
    }
    const task = this.app.tasks.get(request.task);
    if (!task) {
      this.#refuse(delivery, request.id, request.task, 'unknown-task', new NotRegistered(request.task), request);
      return;
    }
    if (request.eta && request.eta.getTime() > this.#clock.now()) {
      this.#defer(delivery, request);
      return;
    }
    this.#accept(delivery, request, task);
  }

  /** Runs the checks due when a task may start, then runs or reserves it. */
  #accept(delivery: Delivery, request: TaskMessage, task: Task<never, unknown>): void {
    let fitted;
    try {
      fitted = fitArguments(task, request.args, request.kwargs);
    } catch (error) {
      const reason = error instanceof InvalidArguments ? 'invalid-arguments' : 'malformed';
      this.#refuse(delivery, request.id, request.task, reason, error, request);
      return;
    }
    const schema = task.options.schema as StandardSchema<unknown, unknown[]> | undefined;
    if (!schema) {
      this.#prepare(delivery, request, task, fitted);
      return;
    }
    const parsed = parseArguments(task.name, schema, fitted.args).then(
      (args) => this.#prepare(delivery, request, task, { args, kwargs: fitted.kwargs }),
      (error: unknown) => this.#refuse(delivery, request.id, request.task, 'invalid-arguments', error, request),
    );
    this.#settle(parsed, 'checking arguments against the schema');
  }

  /** Makes the job for a task whose arguments fit, then runs or reserves it. */
  #prepare(delivery: Delivery, request: TaskMessage, task: Task<never, unknown>, fitted: FittedArguments): void {
    const job: Job = { delivery, request, task, args: fitted.args, kwargs: fitted.kwargs, executor: this.#executors.for(task) };
    if (delivery.redelivered) {
      this.#settle(this.#admitRedelivered(job), 'checking a redelivered task');
      return;
    }
    this.#admit(job);
  }

  /**
   * A redelivered task that already succeeded (its worker died before acking) is not run again;
   * a chord member's end is recorded again, in case the worker died before recording it (the
   * join counts a member once).
   */
  async #admitRedelivered(job: Job): Promise<void> {
    const stored = await this.#backend.get(job.request.id);
    if (stored?.status === SUCCESS) {
      this.options.logger.info(`${job.request.task}[${job.request.id}] already succeeded; skipping the redelivered copy`);
      await this.#continuation.chordPart(chordMember(job.request), SUCCESS, stored.result);
      await job.delivery.ack();
      return;
    }
    this.#admit(job);
  }

  #admit(job: Job): void {
    if (this.#state === 'running' && this.#rateGates.limits(job.task)) {
      this.#rateGates.admit(job); // comes back through #admitNow when its rate allows
      this.#syncPrefetch();
      return;
    }
    this.#admitNow(job);
  }

  #admitNow(job: Job): void {
    if (this.#state !== 'running') {
      this.#handBack(job);
    } else if (job.executor.busy < job.executor.capacity) {
      this.#run(job);
    } else {
      this.#reserved.push(job);
    }
  }

  /**
   * An ETA in the future: the broker holds it if it can (a publish with a delay, or a postpone
   * of the delivery), unless it is due within {@link ETA_HOLD_MS}; otherwise this worker does.
   */
  #defer(delivery: Delivery, request: TaskMessage): void {
    const eta = request.eta!.getTime();
    const farOff = eta - this.#clock.now() > ETA_HOLD_MS;
    if (farOff && delivery.postpone) {
      this.#settle(delivery.postpone(eta), 'handing an ETA task to the broker');
      return;
    }
    if (farOff && this.#broker.capabilities.delayedDelivery) {
      const republish = this.#broker
        .publish(delivery.queue, delivery.message, {
          notBefore: eta,
          ...(request.priority !== null ? { priority: request.priority } : {}),
        })
        .then(() => delivery.ack());
      this.#settle(republish, 'handing an ETA task to the broker');
      return;
    }
    const timer = this.#clock.setTimeout(() => {
      this.#held.delete(delivery);
      this.#syncPrefetch();
      const task = this.app.tasks.get(request.task);
      if (task) this.#accept(delivery, request, task);
    }, eta - this.#clock.now());
    this.#held.set(delivery, { timer, request });
    this.#syncPrefetch();
  }

  #run(job: Job): void {
    this.#active.add(job);
    const { request } = job;
    const now = this.#clock.now();
    const revokedBy = this.#revoked.has(request.id, now) ? 'revoked' : request.expires && request.expires.getTime() <= now ? 'expired' : undefined;
    if (revokedBy) {
      this.#finish(job, { kind: 'revoked', reason: revokedBy }, 0);
      return;
    }
    if (job.task.options.acksLate === false) this.#settle(job.delivery.ack(), 'acking early');
    const execution = job.executor.run({
      request,
      message: job.delivery.message,
      task: job.task,
      args: job.args,
      kwargs: job.kwargs,
      logger: this.options.logger,
      onStart: () => this.#started(job),
      onProgress: (current, total, info) => this.#reportProgress(job, current, total, info),
      trace: this.app.runTrace?.(request.id),
    });
    job.execution = execution;
    if (execution.immediate) {
      this.#clearTimeLimits(job);
      job.children = execution.immediate.children;
      this.#finish(job, this.#classify(job, execution.immediate), job.runStartedAt ?? 0);
      return;
    }
    void execution.outcome.then((outcome) => {
      this.#clearTimeLimits(job);
      if (outcome.trace) this.app.adoptRunTrace?.(request.id, outcome.trace);
      job.children = outcome.children;
      this.#finish(job, this.#classify(job, outcome), job.runStartedAt ?? 0);
    });
  }

  /**
   * The run started: on the event loop as it was handed over, in a pool when its slot took it up
   * (after the runs queued ahead of it there). It is active from here, and its time limits count
   * from here.
   */
  #started(job: Job): void {
    const { request } = job;
    this.#totals.set(request.task, (this.#totals.get(request.task) ?? 0) + 1);
    if (this.listens('task-started')) this.emit('task-started', { id: request.id, name: request.task });
    if (job.task.options.trackStarted) this.#settle(this.#store(job, STARTED, { pid: process.pid, hostname: this.options.hostname }, null), 'storing STARTED');
    job.runStartedAt = performance.now();
    job.startedAt = Date.now() / 1000;
    job.timeLimits = this.#applyTimeLimits(job);
  }

  /**
   * The soft limit fires the task's signal; the hard limit ends the run with TimeLimitExceeded
   * (a thread or child is killed and replaced).
   */
  #applyTimeLimits(job: Job): ClockTimer[] | undefined {
    const set = this.#timeLimits.get(job.task.name);
    const hard = job.request.timeLimit[0] ?? (set ? set.hard : job.task.options.timeLimit);
    const soft = job.request.timeLimit[1] ?? (set ? set.soft : job.task.options.softTimeLimit);
    if (!hard && !soft) return undefined;
    const timers: ClockTimer[] = [];
    // On the event loop the run starts before `run` returns its execution: the timers find it when they fire.
    if (soft) timers.push(this.#clock.setTimeout(() => job.execution?.signal(new SoftTimeLimitExceeded(soft)), soft * 1000));
    if (hard) timers.push(this.#clock.setTimeout(() => job.execution?.terminate(new TimeLimitExceeded(hard)), hard * 1000));
    return timers;
  }

  #clearTimeLimits(job: Job): void {
    if (job.timeLimits) for (const timer of job.timeLimits) this.#clock.clearTimeout(timer);
  }

  /** How the worker treats the way a run ended. */
  #classify(job: Job, outcome: RunOutcome): Outcome {
    if (job.revokedBy) return { kind: 'revoked', reason: job.revokedBy };
    if (outcome.kind === 'returned') return { kind: 'success', value: outcome.value };
    if (job.stopping) return { kind: 'hand-back' };
    const options = job.task.options;
    if (outcome.kind === 'lost') {
      // Celery's reject_on_worker_lost: the task runs again elsewhere instead of failing.
      return options.rejectOnWorkerLost && options.acksLate !== false ? { kind: 'hand-back' } : { kind: 'failure', error: outcome.error };
    }
    if (outcome.retry) return { kind: 'retry', error: outcome.retry.reason, countdown: outcome.retry.countdown };
    return { kind: 'failure', error: outcome.error };
  }

  /** Frees the slot at once; stores the outcome and acks in the background. */
  #finish(job: Job, outcome: Outcome, startedAt: number): void {
    if (outcome.kind === 'hand-back') {
      this.#handBack(job);
      this.#next();
      return;
    }
    if (!this.#active.delete(job)) return; // already handed back or timed out
    job.delivery.ran?.();
    const runtime = startedAt ? (performance.now() - startedAt) / 1000 : 0;
    const recorded = this.#record(job, outcome, runtime).catch(async (error: unknown) => {
      // Not recorded, so not acked: give it back to run again rather than lose it.
      this.emit('error', { error, during: `recording ${job.request.task}[${job.request.id}]; handing it back` });
      await job.delivery.reject(true);
    });
    this.#settle(recorded, 'handing back an unrecorded task');
    this.#next();
  }

  /**
   * The prefetch before held tasks: the option's, or, for a default prefetch, the multiplier
   * times what the main pool holds when that is more (a pool whose slots queue short tasks).
   */
  #basePrefetch(): number {
    const { prefetch, prefetchMultiplier } = this.options;
    const capacity = this.#executors.main?.capacity ?? 0;
    return prefetchMultiplier === null ? prefetch : Math.max(prefetch, prefetchMultiplier * capacity);
  }

  /** Runs reserved tasks, in order, wherever their executor has room. */
  #next(): void {
    if (this.options.prefetchMultiplier !== null) {
      const capacity = this.#executors.main?.capacity ?? 0;
      if (capacity !== this.#capacitySeen) {
        this.#capacitySeen = capacity;
        this.#syncPrefetch();
      }
    }
    const reserved = this.#reserved;
    for (let i = 0; i < reserved.length && this.#state === 'running' && this.#hasRoom(); ) {
      const job = reserved[i]!;
      if (job.executor.busy < job.executor.capacity) {
        reserved.splice(i, 1);
        this.#run(job);
      } else {
        i++;
      }
    }
    if (this.#active.size === 0) this.#idle?.();
  }

  #hasRoom(): boolean {
    return this.#executors.hasRoom();
  }

  async #record(job: Job, outcome: Outcome, runtime: number): Promise<void> {
    const { request, task } = job;
    const { id, task: name } = request;
    switch (outcome.kind) {
      case 'success':
        try {
          await this.#recordSuccess(job, outcome.value, runtime);
        } catch (error) {
          if (!(error instanceof EncodeError)) throw error;
          // A result with no JSON form fails the task, rather than coming back forever.
          await this.#record(job, { kind: 'failure', error: new EncodeError(`the result of ${name}[${id}] ${error.message}`) }, runtime);
          return;
        }
        break;
      case 'failure':
        this.stats.failed++;
        await this.#storeEnded(job, FAILURE, serializeException(outcome.error), stackOf(outcome.error));
        this.emit('task-failed', { id, name, error: outcome.error, runtime });
        break;
      case 'retry':
        this.stats.retried++;
        await this.app.publish(
          { ...request, retries: request.retries + 1, eta: this.options.eager ? null : new Date(this.#clock.now() + outcome.countdown * 1000), parentId: request.id, origin: this.options.hostname },
          { queue: job.delivery.queue },
        );
        await this.#store(job, RETRY, serializeException(outcome.error), stackOf(outcome.error));
        this.emit('task-retried', { id, name, error: outcome.error, countdown: outcome.countdown, retries: request.retries + 1 });
        break;
      case 'hand-back':
        return;
      case 'revoked':
        this.stats.revoked++;
        await this.#storeEnded(job, REVOKED, serializeException(new TaskRevokedError(outcome.reason)), null);
        this.emit('task-revoked', { id, name, reason: outcome.reason });
        break;
    }
    if (job.handedBack || task.options.acksLate === false) return;
    if (outcome.kind === 'failure' && task.options.acksOnFailureOrTimeout === false) {
      await job.delivery.deadLetter(`failed: ${describeError(outcome.error)}`);
      return;
    }
    await job.delivery.ack();
  }

  async #recordSuccess(job: Job, value: unknown, runtime: number): Promise<void> {
    const { request, task } = job;
    // Callbacks and the next chain step go out first, so the stored result lists them.
    const { embed } = request;
    const sent = embed.callbacks || embed.chain ? await this.#continuation.afterSuccess(request, value) : [];
    if (!task.options.ignoreResult && !request.ignoreResult) await this.#store(job, SUCCESS, value, null, childrenOf(job, sent));
    this.stats.succeeded++;
    if (embed.chord) await this.#continuation.chordPart(chordMember(request), SUCCESS, value);
    this.emit('task-succeeded', { id: request.id, name: request.task, result: value, runtime });
  }

  /** Stores a FAILURE or REVOKED end, then ends the workflow around it (chord, chain, errbacks). */
  async #storeEnded(job: Pick<Job, 'request' | 'delivery' | 'children'>, state: TaskState, error: ExceptionDict, traceback: string | null): Promise<void> {
    await this.#store(job, state, error, traceback, childrenOf(job, []));
    await this.#continuation.chordPart(chordMember(job.request), state, error);
    await this.#continuation.afterFailure(job.request, state, error, traceback);
  }

  #store(job: Pick<Job, 'request' | 'delivery'>, status: TaskState, result: unknown, traceback: string | null, children: unknown[] = []): Promise<void> {
    const meta = buildResultMeta(job.request, status, result, traceback, { hostname: this.options.hostname, queue: job.delivery.queue }, children);
    return this.#backend.store(meta, { replyTo: job.request.replyTo });
  }

  #reportProgress(job: Job, current: number, total: number | null, info: Record<string, unknown>): void {
    const now = this.#clock.now();
    if (job.lastProgressAt !== undefined && now - job.lastProgressAt < PROGRESS_INTERVAL_MS && current !== total) return;
    job.lastProgressAt = now;
    this.emit('task-progress', { id: job.request.id, name: job.request.task, current, total });
    this.#settle(this.#store(job, PROGRESS, { ...info, current, total }, null), 'storing progress');
  }

  /**
   * Refuses a message that cannot run: counted, logged, FAILURE stored if it has an id (and, if
   * it decoded, the workflow around it ended as for a failure), moved aside.
   */
  #refuse(delivery: Delivery, id: string | null, name: string | null, reason: RejectReason, error: unknown, request?: TaskMessage): void {
    this.stats.rejected[reason] = (this.stats.rejected[reason] ?? 0) + 1;
    const detail = error instanceof Error ? error.message : String(error);
    this.emit('task-rejected', { id, name, reason, detail });
    const refused = async (): Promise<void> => {
      if (request) {
        await this.#storeEnded({ request, delivery }, FAILURE, serializeException(error), null);
      } else if (id !== null) {
        const meta = buildResultMeta({ id, task: name ?? '', retries: 0, group: null, parentId: null }, FAILURE, serializeException(error), null, { hostname: this.options.hostname, queue: delivery.queue });
        await this.#backend.store(meta, { replyTo: headerString(delivery, 'reply_to') ?? null });
      }
      await delivery.deadLetter(`${reason}: ${detail}`);
    };
    this.#settle(refused(), 'refusing a message');
  }

  #handBack(job: Job): void {
    if (job.handedBack) return;
    job.handedBack = true;
    this.#active.delete(job);
    this.stats.handedBack++;
    this.emit('task-handed-back', { id: job.request.id, name: job.request.task });
    this.#settle(job.delivery.reject(true), 'handing back a task');
    if (this.#active.size === 0) this.#idle?.();
  }

  /** What remote control reads and changes of this worker. */
  #controlTarget(): RemoteWorker {
    const describe = (job: Pick<Job, 'request' | 'delivery' | 'startedAt'>, acknowledged: boolean): RequestInfo => describeRequest(job, this.options.hostname, acknowledged);
    return {
      hostname: this.options.hostname,
      clock: () => this.#remote?.clock.value ?? 0,
      processed: () => this.stats.succeeded + this.stats.failed + this.stats.retried + this.stats.revoked,
      activeCount: () => this.activeCount,
      active: () => this.#running().map((job) => describe(job, job.task.options.acksLate === false)),
      reserved: () => [...this.#reserved, ...[...this.#active].filter((job) => job.startedAt === undefined), ...this.#rateGates.waiting()].map((job) => describe(job, false)),
      scheduled: () =>
        [...this.#held].map(([delivery, { request }]) => ({ eta: request.eta!.toISOString(), priority: request.priority, request: describe({ request, delivery }, false) })),
      revokedIds: () => this.#revoked.ids(this.#clock.now()),
      registered: () => [...this.app.tasks.values()].map((task) => ({ name: task.name, rateLimit: task.options.rateLimit === undefined ? null : String(task.options.rateLimit) })),
      activeQueues: () => [...this.options.queues, ...this.#addedConsumers.keys()],
      stats: () => this.#statsReply(),
      conf: () => ({ broker_url: this.#broker.displayUrl, worker_concurrency: this.options.concurrency, worker_prefetch_multiplier: this.options.prefetch / this.options.concurrency, worker_pool: this.options.pool, task_default_queue: this.app.defaultQueue }),
      revoke: (ids, terminate) => this.#revoke(ids, terminate),
      mergeRevoked: (ids) => {
        for (const id of ids) this.#revoked.add(id, this.#clock.now());
      },
      setRateLimit: (taskName, rate) => {
        this.#rateGates.setRate(taskName, rate);
        this.options.logger.info(`rate limit of ${taskName} set to ${rate === null || rate === 0 || rate === '0' ? 'none' : rate}`);
      },
      setTimeLimit: (taskName, hard, soft) => void this.#timeLimits.set(taskName, { hard, soft }),
      hasTask: (taskName) => this.app.tasks.has(taskName),
      shutdown: (reason) => {
        this.options.logger.warning(`${reason}: warm shutdown`);
        void this.stop();
      },
      resizePool: (by) => this.#executors.main?.resize?.(by) ?? false,
      autoscale: (max, min) => this.#executors.main?.autoscale?.(max, min) ?? false,
      addConsumer: (queue) => this.#addConsumer(queue),
      cancelConsumer: (queue) => this.#cancelConsumer(queue),
      setTaskEvents: (on) => {
        if (this.#remote) this.#remote.taskEvents = on;
      },
      heartbeat: () => this.#remote?.heartbeat(),
    };
  }

  #closeExecutors(): Promise<void> {
    return this.#executors.close((error, kind) => this.emit('error', { error, during: `closing the ${kind} pool` }));
  }

  /** Revokes `ids`: they will not start here; with `terminate`, running ones are stopped. */
  #revoke(ids: string[], terminate: boolean): void {
    for (const id of ids) this.#revoked.add(id, this.#clock.now());
    if (!terminate) return;
    for (const job of this.#active) {
      if (!ids.includes(job.request.id)) continue;
      job.revokedBy = 'terminated';
      job.execution?.terminate(new TaskRevokedError('terminated'));
    }
  }

  #statsReply(): Record<string, unknown> {
    const executor = this.#executors.main;
    const usage = process.resourceUsage();
    return {
      total: Object.fromEntries(this.#totals),
      pid: process.pid,
      clock: String(this.#remote?.clock.value ?? 0),
      uptime: Math.round((Date.now() - this.#startedAt) / 1000),
      pool: { implementation: `celeriac:${this.options.pool}`, 'max-concurrency': executor?.concurrency ?? 0, 'max-tasks-per-child': this.options.maxTasksPerChild ?? 'N/A', processes: executor?.slotIds?.() ?? [process.pid], timeouts: [0, 0] },
      broker: { transport: this.#broker.displayUrl.split(':')[0], hostname: this.#broker.displayUrl },
      prefetch_count: this.#prefetch,
      rusage: { utime: usage.userCPUTime / 1e6, stime: usage.systemCPUTime / 1e6, maxrss: usage.maxRSS, minflt: usage.minorPageFault, majflt: usage.majorPageFault, nvcsw: usage.voluntaryContextSwitches, nivcsw: usage.involuntaryContextSwitches },
      celeriac: { ...this.stats, controlDropped: this.#remote?.dropped ?? 0 },
    };
  }

  /** Starts consuming one more queue (`add_consumer`); false when it already does. */
  async #addConsumer(queue: string): Promise<boolean> {
    if (this.options.queues.includes(queue) || this.#addedConsumers.has(queue) || this.#state !== 'running') return false;
    this.#addedConsumers.set(queue, await this.#broker.consume([queue], (delivery) => this.#onDelivery(delivery), this.#consumeOptions(this.options.prefetch)));
    this.options.logger.info(`now consuming from ${queue}`);
    return true;
  }

  /** Stops consuming a queue (`cancel_consumer`); false when it did not. */
  async #cancelConsumer(queue: string): Promise<boolean> {
    const added = this.#addedConsumers.get(queue);
    if (added) {
      this.#addedConsumers.delete(queue);
      await added.cancel();
    } else if (this.options.queues.includes(queue) && this.#state === 'running') {
      const remaining = this.options.queues.filter((name) => name !== queue);
      const previous = this.#consumer;
      this.options.queues = remaining;
      this.#consumer = remaining.length > 0 ? await this.#broker.consume(remaining, (delivery) => this.#onDelivery(delivery), this.#consumeOptions(this.#prefetch)) : undefined;
      await previous?.cancel();
    } else {
      return false;
    }
    this.options.logger.info(`no longer consuming from ${queue}`);
    return true;
  }

  /**
   * Raises the consumer's prefetch by one for each task held back (ETA, rate limit), as
   * Celery's worker does, so they do not keep other tasks out; at most {@link HELD_MAX_FACTOR}
   * times the prefetch, so a long backlog of held tasks is not all pulled into memory. Once per
   * turn, whatever changed in it.
   */
  #syncPrefetch(): void {
    if (this.#prefetchSyncDue) return;
    this.#prefetchSyncDue = true;
    queueMicrotask(() => {
      this.#prefetchSyncDue = false;
      const base = this.#basePrefetch();
      const wanted = base + Math.min(this.#held.size + this.#rateGates.held, base * HELD_MAX_FACTOR);
      if (wanted === this.#prefetch) return;
      this.#prefetch = wanted;
      this.#consumer?.setPrefetch?.(wanted);
    });
  }

  /** Tracks background work so shutdown can wait for it; reports its failure. */
  #settle(work: Promise<void>, during: string): void {
    // One reaction per piece of work (a task's record and ack is one): not catch, then finally.
    const tracked: Promise<void> = work.then(
      () => void this.#settling.delete(tracked),
      (error: unknown) => {
        this.#settling.delete(tracked);
        this.emit('error', { error, during });
      },
    );
    this.#settling.add(tracked);
  }
}

/** What a job sent while it ran, then what was sent after it: its result's `children`. */
function childrenOf(job: Pick<Job, 'children'>, sentAfter: readonly unknown[]): unknown[] {
  const during = job.children ?? [];
  return sentAfter.length === 0 ? during : [...during, ...sentAfter];
}

/** A request as a chord member, for the join. */
function chordMember(request: TaskMessage): Pick<TaskMessage, 'id' | 'group' | 'groupIndex'> & { chord: TaskMessage['embed']['chord'] } {
  return { id: request.id, group: request.group, groupIndex: request.groupIndex, chord: request.embed.chord };
}

function headerString(delivery: Delivery, key: string): string | null {
  const value = key === 'reply_to' ? delivery.message.properties.reply_to : delivery.message.headers?.[key];
  return typeof value === 'string' && value.length > 0 ? value : null;
}

function stackOf(error: unknown): string | null {
  return error instanceof Error ? (error.stack ?? null) : null;
}
