/**
 * The Celeriac app: configuration, the task registry, sending tasks, and looking up results.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { systemClock, type Clock } from './clock.js';
import { noChordJoin, type ChordJoin, type ResultBackend } from './backends/backend.js';
import { Applier, type Dispatcher, type TaskCall } from './canvas/apply.js';
import { registerBuiltins } from './canvas/builtins.js';
import { sendOptionsOf, toWireOptions, type SendOptions, type WireOptions } from './canvas/options.js';
import { fromDict, Signature, type AnySignature, type SignatureOptions } from './canvas/signature.js';
import { createBackend, repliesToSender } from './backends/index.js';
import type { Broker, PublishOptions, QueueDeclaration } from './brokers/broker.js';
import { createBroker } from './brokers/index.js';
import { Beat } from './beat/beat.js';
import type { ScheduleDefinition, ScheduleEntry } from './beat/entry.js';
import { Control } from './control.js';
import { EventReceiver } from './monitor/receiver.js';
import { SentEvents } from './monitor/sent-events.js';
import { ConfigurationError } from './errors.js';
import { parseRate } from './rate-limit.js';
import { encodeTaskMessage } from './protocol/encode.js';
import type { SignatureDict, TaskMessage } from './protocol/message.js';
import { AsyncResult, GroupResult, restoreGroup, type AnyResult, type ResultSource, type RevokeOptions } from './result.js';
import { parseArguments } from './schema.js';
import { createLogger } from './logger.js';
import { exchangeOptionsFor, Router, type Destination, type Route, type Routes } from './routing.js';
import { Tracing } from './tracing.js';
import { Task, type ApplyOptions, type PublishRetryPolicy, type TaskHandler, type TaskOptions } from './task.js';
import { currentTask } from './worker/current-task.js';
import type { WorkerSettings } from './worker/options.js';
import { Worker } from './worker/worker.js';

/** Where broker and results live when nothing is configured: one embedded SQLite file. */
export const DEFAULT_URL = 'sqlite://.celeriac/celeriac.db';

/** App configuration. Every field has a default, so `new Celeriac()` works on a fresh machine. */
export interface CeleriacConfig {
  /**
   * Broker URL, or a broker instance of one's own (connected on first use). Default:
   * `CELERIAC_BROKER_URL`, else {@link DEFAULT_URL}.
   */
  broker?: string | Broker;
  /**
   * Result backend URL, or a backend instance of one's own (connected on first use). Default:
   * `CELERIAC_RESULT_BACKEND`, else the broker URL.
   */
  backend?: string | ResultBackend;
  /** Queue for tasks that name none. Default `celery`, as in Celery. */
  defaultQueue?: string;
  /** Send a `task-sent` event for every task published, for monitors (Celery's `task_send_sent_event`). Default false. */
  taskSentEvents?: boolean;
  /** Defaults for every task defined on this app. */
  taskDefaults?: TaskOptions;
  /**
   * The clock for ETA, countdown, retries, expiry and time limits. Default: the system clock;
   * tests pass a `ManualClock` and move time with `advance()`.
   */
  clock?: Clock;
  /**
   * How queues are bound, as Celery's `task_queues` (RabbitMQ): a queue with an `exchange` is
   * declared on that exchange with its `routingKey`, and calls routed to the queue are
   * published through the exchange. Queues not listed get Celery's default: a direct exchange
   * of the queue's name. Other brokers reach every queue by its name.
   */
  queues?: QueueDeclaration[];
  /**
   * Where calls of each task go, as Celery's `task_routes`: task names or `*` patterns to
   * `{ queue, exchange, routingKey }`; the first matching entry wins. A call's own options
   * win over its route, and a route over the task's `queue`.
   */
  routes?: Routes;
  /**
   * OpenTelemetry tracing (needs `@opentelemetry/api`, an optional peer dependency): a PRODUCER
   * span per task sent and a CONSUMER span per run, with W3C `traceparent`/`tracestate` in the
   * message headers where Python's opentelemetry-instrumentation-celery reads and writes them.
   * Spans go to the tracer provider registered with the API. Default false: nothing is loaded
   * and nothing is added to messages.
   */
  tracing?: boolean;
}

const DEFAULT_PUBLISH_RETRY: Required<PublishRetryPolicy> = { maxRetries: 3, intervalStart: 0, intervalStep: 0.2, intervalMax: 1 };

/** A celeriac application. Define tasks on it, send them, and run workers for it. */
// Also a TaskSender (for its tasks) and a CanvasHost (for its signatures), through members kept
// out of the published types; handing `this` to them checks the fit.
export class Celeriac implements ResultSource {
  /** Registered tasks by name. */
  readonly tasks = new Map<string, Task<never, unknown>>();
  brokerUrl: string;
  backendUrl: string;
  readonly defaultQueue: string;
  /** The clock every time decision of this app and its workers reads. */
  readonly clock: Clock;
  /** Commands to every worker on the broker: `app.control.rateLimit('tasks.fetch', '10/m')`. */
  readonly control = new Control(() => this.broker());
  /** The broker's event stream: `for await (const event of await app.events.receive()) ...`. */
  readonly events = new EventReceiver(() => this.broker());
  /**
   * Periodic tasks: entries defined with {@link schedule}, entries stored and changed at run
   * time (`app.beat.add/remove/pause/resume/list`), and the scheduler (`app.beat.start()`, or
   * `celeriac beat`).
   */
  readonly beat: Beat = new Beat(this);
  /** The app's queue declarations, given to the broker before it declares anything. */
  readonly queueDeclarations: readonly QueueDeclaration[];
  readonly #router: Router;
  /** This process's node name as a producer: `gen<pid>@<host>`, as Celery clients name theirs. */
  readonly origin = `gen${process.pid}@${hostname()}`;
  private readonly taskDefaults: TaskOptions;
  #broker: Promise<Broker> | undefined;
  #backend: Promise<ResultBackend> | undefined;
  #eager = false;
  #eagerWorker: Promise<Worker> | undefined;
  /** `task-sent` events, when the app sends them. */
  readonly #sentEvents: SentEvents | undefined;
  /** OpenTelemetry spans and trace context, when the app traces. */
  readonly #tracing: Tracing | undefined;
  #brokerInstance: Broker | undefined;
  #backendInstance: ResultBackend | undefined;
  /** Whether a send waits for the backend (`rpc://`); found on the first send. */
  #waitsForBackend: boolean | undefined;
  /**
   * This app's reply address (Celery's `thread_oid`): the `reply_to` of every task it sends,
   * where an `rpc://` backend hears their results.
   */
  readonly replyTo = randomUUID();
  /** What applying signatures needs from this app. */
  readonly #dispatcher: Dispatcher = {
    send: (calls, before) => this.#sendCalls(calls, before),
    chordJoin: () => this.#chordJoin(),
    asyncResult: (id, sent) => new AsyncResult(id, this, sent),
    groupResult: (id, results) => new GroupResult(id, results, this),
    replyTo: this.replyTo,
  };

  constructor(config: CeleriacConfig = {}) {
    const { broker, backend } = config;
    if (typeof broker === 'object') this.#brokerInstance = broker;
    if (typeof backend === 'object') this.#backendInstance = backend;
    this.brokerUrl = typeof broker === 'object' ? broker.displayUrl : (broker ?? process.env['CELERIAC_BROKER_URL'] ?? DEFAULT_URL);
    this.backendUrl =
      typeof backend === 'object' ? backend.displayUrl : (backend ?? process.env['CELERIAC_RESULT_BACKEND'] ?? (this.#brokerInstance ? DEFAULT_URL : this.brokerUrl));
    this.defaultQueue = config.defaultQueue ?? 'celery';
    if (config.taskSentEvents) this.#sentEvents = new SentEvents();
    if (config.tracing) this.#tracing = new Tracing();
    this.clock = config.clock ?? systemClock;
    this.taskDefaults = config.taskDefaults ?? {};
    this.queueDeclarations = config.queues ?? [];
    this.#router = new Router(config.routes ?? {}, this.queueDeclarations, this.defaultQueue);
    registerBuiltins(this);
  }

  /**
   * Defines a task. The handler takes a {@link TaskContext} and then the task's arguments;
   * their types become the types of `delay(...)`, and its return type the result's.
   *
   * @example
   * ```ts
   * const add = app.task('tasks.add', (ctx, a: number, b: number) => a + b);
   * const sum: number = await add.delay(2, 3);
   * ```
   */
  task<A extends unknown[], R>(name: string, handler: TaskHandler<A, R>, options: TaskOptions<A> = {}): Task<A, R> {
    if (this.tasks.has(name)) throw new ConfigurationError(`task ${JSON.stringify(name)} is already defined`);
    parseRate(options.rateLimit, `the rateLimit of task ${name}`);
    const task = new Task<A, R>(name, this.#tracing ? this.#tracing.wrap(name, handler) : handler, { ...(this.taskDefaults as TaskOptions<A>), ...options }, this);
    this.tasks.set(name, task as unknown as Task<never, unknown>);
    return task;
  }

  /**
   * Runs a task periodically: every beat process that loads this module sends it when due
   * (`celeriac beat -A ./tasks.ts`, or a worker with `-B`), one leader at a time. `every` is an
   * interval (seconds, `{ minutes: 5 }`), a crontab (`'30 2 * * *'`, read in `timezone`), or a
   * date (once). Checked now: a bad crontab, interval or time zone throws, naming the field.
   *
   * @example
   * ```ts
   * app.schedule('cleanup', { task: cleanup, every: 300 });
   * app.schedule('report', { task: 'reports.daily', args: ['eu'], every: '30 2 * * mon-fri', timezone: 'Europe/Paris' });
   * ```
   */
  schedule<A extends unknown[]>(name: string, definition: ScheduleDefinition<A>): ScheduleEntry {
    return this.beat.define(name, definition);
  }

  /**
   * Sends a task by name, typically one defined elsewhere (in Python, say). Type the result
   * with the type parameter: `app.sendTask<number>('proj.add', [2, 3])`.
   */
  sendTask<R = unknown>(name: string, args: unknown[] = [], kwargs: Record<string, unknown> = {}, options: ApplyOptions = {}): AsyncResult<R> {
    const defaults = (this.tasks.get(name)?.options as TaskOptions | undefined) ?? this.taskDefaults;
    return this.send<R>(name, args, { ...options, kwargs: { ...kwargs, ...options.kwargs } }, defaults);
  }

  /**
   * Points the app at other URLs (the CLI's `--broker`/`--backend`), or makes it eager (for
   * tests, as Celery's `task_always_eager`): every call then runs at once in this process, on a
   * worker the app starts for itself over an in-memory broker, so results, retries (without
   * their countdown), errors and time limits behave as on a worker; countdown and ETA are
   * ignored. Only before the first connection: afterwards it throws.
   */
  configure(settings: { broker?: string | undefined; backend?: string | undefined; eager?: boolean }): void {
    if (this.#broker || this.#backend) throw new ConfigurationError('the app is already connected; configure it before sending or starting a worker');
    if (settings.eager) {
      this.#eager = true;
      this.brokerUrl = this.backendUrl = `memory://eager-${randomUUID()}`;
      this.#brokerInstance = this.#backendInstance = undefined;
      return;
    }
    if (settings.broker) {
      this.brokerUrl = settings.broker;
      this.#brokerInstance = undefined;
    }
    if (settings.backend || settings.broker) {
      this.backendUrl = settings.backend ?? settings.broker!;
      this.#backendInstance = undefined;
    }
  }

  /** True once `configure({ eager: true })` made calls run at once in this process. */
  get eager(): boolean {
    return this.#eager;
  }

  /** Where a call goes; in eager mode, always the eager worker's queue. */
  #destination(name: string, call: Route, taskQueue: string | undefined): Destination {
    return this.#eager ? { queue: this.defaultQueue } : this.#router.resolve(name, call, taskQueue);
  }

  /**
   * What must be up before a message goes out: an eager app's own worker, and a backend that
   * replies to the sender (its reply queue must exist before any state is sent to it). Other
   * backends are not waited for.
   */
  #readyToSend(): Promise<unknown> | undefined {
    if (this.#eager) return this.#eagerWorkerReady();
    this.#waitsForBackend ??= this.#backendInstance ? this.#backendInstance.repliesToSender === true : repliesToSender(this.backendUrl);
    return this.#waitsForBackend ? this.backend() : undefined;
  }

  /** The eager app's own worker, started on the first call. */
  #eagerWorkerReady(): Promise<Worker> {
    this.#eagerWorker ??= (async () => {
      const worker = new Worker(this, { eager: true, concurrency: 100, logger: createLogger('critical') });
      await worker.start();
      return worker;
    })();
    return this.#eagerWorker;
  }

  /** A future for a task id sent earlier (by anyone). */
  asyncResult<R = unknown>(taskId: string): AsyncResult<R> {
    return new AsyncResult<R>(taskId, this);
  }

  /**
   * A signature of a task by name, bound to this app: typically a task defined elsewhere (in
   * Python, say), to use in a chain, group or chord, or as a callback. Type its result with the
   * type parameter.
   */
  signature<R = unknown>(name: string, args: readonly unknown[] = [], kwargs: Record<string, unknown> = {}, options: SignatureOptions = {}): Signature<any, R> {
    return new Signature<any, R>({ task: name, args, kwargs, options: toWireOptions(options) }, this);
  }

  /** A signature rebuilt from Celery's dict, bound to this app. */
  signatureFromDict(dict: SignatureDict): AnySignature {
    return fromDict(dict, this);
  }

  /**
   * A group saved earlier with {@link GroupResult.save} (by either language), as `{ group }`,
   * or null. (Wrapped, because a promise of the thenable handle would resolve to its values.)
   */
  restoreGroup<R extends readonly unknown[] = unknown[]>(groupId: string): Promise<{ group: GroupResult<R> } | null> {
    return restoreGroup<R>(this, groupId);
  }

  /** @internal Sends a signature; use its `delay` / `applyAsync`. */
  applySignature(signature: AnySignature, args: readonly unknown[], kwargs: Record<string, unknown>, options: WireOptions): AnyResult {
    return new Applier(this.#dispatcher).apply(signature.bind(this), args, kwargs, options);
  }

  /** Creates a worker for this app's tasks; call `start()` on it. */
  worker(options: WorkerSettings = {}): Worker {
    return new Worker(this, options);
  }

  /** @internal The trace context of task `id`'s last run in this process, for a pool slot or its worker. */
  runTrace(id: string): Record<string, string> | undefined {
    return this.#tracing?.runHeaders(id);
  }

  /** @internal Remembers a run of task `id` traced in another process (a pool slot). */
  adoptRunTrace(id: string, headers: Readonly<Record<string, unknown>>): void {
    this.#tracing?.adoptRun(id, headers);
  }

  /** @internal Builds, encodes and publishes one task message. */
  send<R>(name: string, args: unknown[], options: ApplyOptions, defaults: TaskOptions): AsyncResult<R> {
    const message = this.buildMessage(name, args, sendOptionsOf(options), defaults);
    const destination = this.#destination(name, options, defaults.queue);
    const publish = (): Promise<void> => this.publish(message, destination, options);
    const checking = this.#checkOnCall(name, [args], defaults);
    const sent = checking ? checking.then(publish) : publish();
    const result = new AsyncResult<R>(message.id, this, sent);
    sent.catch(() => undefined); // observed through result.sent / result.get()
    return result;
  }

  /** @internal Builds and publishes many messages of one task in one broker batch. */
  sendMany<R>(name: string, argsList: readonly unknown[][], options: ApplyOptions, defaults: TaskOptions): AsyncResult<R>[] {
    const destination = this.#destination(name, options, defaults.queue);
    const shared = sendOptionsOf(options);
    delete shared.taskId; // each message gets its own id
    const batch = argsList.map((args) => ({ message: this.buildMessage(name, args, shared, defaults), destination }));
    const publish = (): Promise<void> => this.publishBatch(batch, options);
    const checking = this.#checkOnCall(name, argsList, defaults);
    const sent = checking ? checking.then(publish) : publish();
    sent.catch(() => undefined); // observed through each result's sent / get()
    return batch.map(({ message }) => new AsyncResult<R>(message.id, this, sent));
  }

  /** Sends calls made by applying signatures, in one broker batch once `before` settles. */
  async #sendCalls(calls: readonly TaskCall[], before?: Promise<unknown>): Promise<void> {
    const batch = calls.map((call) => {
      const defaults = (this.tasks.get(call.name)?.options as TaskOptions | undefined) ?? this.taskDefaults;
      return {
        message: this.buildMessage(call.name, call.args, { ...call.options, kwargs: call.kwargs }, defaults),
        destination: this.#destination(call.name, call.options, defaults.queue),
      };
    });
    await before;
    if (batch.length > 0) await this.publishBatch(batch, calls[0]!.options);
  }

  /** With `validateOnCall`, checks each call's arguments against the task's schema (else undefined). */
  #checkOnCall(name: string, argsList: readonly unknown[][], defaults: TaskOptions): Promise<void> | undefined {
    const schema = defaults.schema;
    if (!schema || !defaults.validateOnCall) return undefined;
    return Promise.all(argsList.map((args) => parseArguments(name, schema, args))).then(() => undefined);
  }

  async #chordJoin(): Promise<ChordJoin> {
    const backend = await this.backend();
    if (!backend.chords) throw new ConfigurationError(noChordJoin(backend));
    return backend.chords;
  }

  /**
   * @internal The task message for a call, before encoding. Called from inside a running task,
   * the message names that task as its parent (and its workflow's root), and the task records
   * it among its children.
   */
  buildMessage(name: string, args: unknown[], options: SendOptions, defaults: TaskOptions): TaskMessage {
    const id = options.taskId ?? randomUUID();
    const now = this.clock.now();
    // An eager app runs every call at once: nothing it sends waits for an ETA.
    const eta = this.#eager ? null : (options.eta ?? (options.countdown !== undefined ? new Date(now + options.countdown * 1000) : null));
    const expiresOption = options.expires ?? defaults.expires;
    const expires =
      expiresOption === undefined ? null : expiresOption instanceof Date ? expiresOption : new Date(now + expiresOption * 1000);
    const priority = options.priority ?? defaults.priority ?? null;
    const running = currentTask.getStore();
    running?.children.push([[id, null], null]);
    return {
      id,
      task: name,
      args,
      kwargs: options.kwargs ?? {},
      embed: {
        callbacks: options.link ?? null,
        errbacks: options.linkError ?? null,
        chain: options.chain ?? null,
        chord: options.chord ?? null,
      },
      eta,
      expires,
      retries: 0,
      timeLimit: [options.timeLimit ?? defaults.timeLimit ?? null, options.softTimeLimit ?? defaults.softTimeLimit ?? null],
      rootId: options.rootId ?? running?.rootId ?? id,
      parentId: options.parentId ?? running?.id ?? null,
      group: options.groupId ?? null,
      groupIndex: options.groupIndex ?? null,
      shadow: options.shadow ?? null,
      origin: this.origin,
      ignoreResult: options.ignoreResult ?? defaults.ignoreResult ?? false,
      replyTo: options.replyTo ?? this.replyTo,
      priority,
      extraHeaders: { ...options.headers },
    };
  }

  /** @internal Publishes a built message to its destination, retrying per the policy. */
  async publish(message: TaskMessage, destination: Destination, options: Pick<ApplyOptions, 'retry' | 'retryPolicy'> = {}): Promise<void> {
    const ready = this.#readyToSend();
    if (ready) await ready;
    const broker = await this.broker();
    const span = this.#tracing ? await this.#tracing.publish(message, destination.queue) : undefined;
    const wire = encodeTaskMessage(span ? span.message : message);
    const publishOptions = { ...publishOptionsOf(message), ...exchangeOptionsFor(destination, broker) };
    try {
      await withPublishRetry(options, () => broker.publish(destination.queue, wire, publishOptions));
    } catch (error) {
      span?.end(error);
      throw error;
    }
    span?.end();
    this.#sentEvents?.sent(broker, message, destination);
  }

  /**
   * @internal Publishes built messages, each to its destination, as a single broker batch,
   * retrying the batch per the policy (a batch whose confirmation was lost may then arrive twice).
   */
  async publishBatch(batch: ReadonlyArray<{ message: TaskMessage; destination: Destination }>, options: Pick<ApplyOptions, 'retry' | 'retryPolicy'> = {}): Promise<void> {
    const ready = this.#readyToSend();
    if (ready) await ready;
    const broker = await this.broker();
    const tracing = this.#tracing;
    const spans = tracing ? await Promise.all(batch.map(({ message, destination }) => tracing.publish(message, destination.queue))) : undefined;
    const items = batch.map(({ message, destination }, index) => ({
      queue: destination.queue,
      message: encodeTaskMessage(spans ? spans[index]!.message : message),
      options: { ...publishOptionsOf(message), ...exchangeOptionsFor(destination, broker) },
    }));
    try {
      await withPublishRetry(options, () => broker.publishMany(items));
    } catch (error) {
      for (const span of spans ?? []) span.end(error);
      throw error;
    }
    for (const span of spans ?? []) span.end();
    if (this.#sentEvents) for (const { message, destination } of batch) this.#sentEvents.sent(broker, message, destination);
  }

  /** The connected broker (connected on first use). */
  broker(): Promise<Broker> {
    this.#broker ??= connectOnce(async () => {
      const broker = this.#brokerInstance ?? (await createBroker(this.brokerUrl, { clock: this.clock }));
      broker.declareQueues?.(this.queueDeclarations);
      return broker;
    }).catch((error: unknown) => {
      this.#broker = undefined; // the next call tries again
      throw error;
    });
    return this.#broker;
  }

  /** The connected result backend (connected on first use). */
  backend(): Promise<ResultBackend> {
    this.#backend ??= connectOnce(async () => this.#backendInstance ?? createBackend(this.backendUrl, { brokerUrl: this.brokerUrl, replyTo: this.replyTo })).catch((error: unknown) => {
      this.#backend = undefined;
      throw error;
    });
    return this.#backend;
  }

  /** Revokes tasks on every worker: they will not start; `terminate` also stops running ones. */
  async revoke(taskIds: string[], options: RevokeOptions = {}): Promise<void> {
    await this.control.revoke(taskIds, options);
  }

  /** Closes the connections: `await using app = new Celeriac(...)` closes them at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Stops its beat, if running, and closes the broker and backend connections this app opened. */
  async close(): Promise<void> {
    await this.beat.stop();
    await this.#sentEvents?.drain();
    const eagerWorker = this.#eagerWorker;
    this.#eagerWorker = undefined;
    await eagerWorker?.then((worker) => worker.stop(0), () => undefined);
    const broker = this.#broker;
    const backend = this.#backend;
    this.#broker = undefined;
    this.#backend = undefined;
    await Promise.all([broker?.then((b) => b.close(), () => undefined), backend?.then((b) => b.close(), () => undefined)]);
  }
}

/** Runs a publish, trying again per the retry policy (Celery's defaults unless given). */
async function withPublishRetry(options: Pick<ApplyOptions, 'retry' | 'retryPolicy'>, publish: () => Promise<void>): Promise<void> {
  const policy = { ...DEFAULT_PUBLISH_RETRY, ...options.retryPolicy };
  const attempts = options.retry === false ? 1 : policy.maxRetries + 1;
  for (let attempt = 1; ; attempt++) {
    try {
      await publish();
      return;
    } catch (error) {
      if (attempt >= attempts) throw error;
      const delay = Math.min(policy.intervalMax, policy.intervalStart + policy.intervalStep * (attempt - 1));
      await new Promise((resolve) => setTimeout(resolve, delay * 1000));
    }
  }
}

function publishOptionsOf(message: TaskMessage): PublishOptions {
  const options: PublishOptions = {};
  if (message.priority !== null) options.priority = message.priority;
  if (message.eta) options.notBefore = message.eta.getTime();
  return options;
}

async function connectOnce<T extends { connect(): Promise<void> }>(create: () => Promise<T>): Promise<T> {
  const transport = await create();
  await transport.connect();
  return transport;
}
