/**
 * The broker port. It speaks in queue terms (publish, consume, ack, reject, dead-letter) and
 * never in driver verbs; each implementation owns its connections.
 *
 * Delivery is at-least-once: a delivery that is neither acked nor rejected comes back, after
 * the broker's visibility timeout or once its consumer is known to be gone.
 */
import type { BrokerEventMap } from '../events.js';
import type { TransportMessage } from '../protocol/message.js';
import type { SharedRateStore } from '../worker/rate-gates.js';

/** What a broker can do beyond the minimum; callers check these instead of classes. */
export interface BrokerCapabilities {
  /**
   * The broker holds messages published with {@link PublishOptions.notBefore} until that time,
   * so ETA tasks do not wait in worker memory.
   */
  readonly delayedDelivery: boolean;
  /** Messages of a higher {@link PublishOptions.priority} are delivered first. */
  readonly priorities: boolean;
  /** The broker survives the process (SQLite, Redis, RabbitMQ), unlike `memory://`. */
  readonly durable: boolean;
  /** Other processes on this machine or beyond can share the broker. */
  readonly shared: boolean;
  /**
   * Publishes can go through a named exchange with a routing key
   * ({@link PublishOptions.exchange}), and queues can be bound to exchanges of their own
   * ({@link QueueDeclaration}): RabbitMQ. Other brokers route by queue name only.
   */
  readonly exchanges: boolean;
}

/**
 * How a queue is bound, as in Celery's `task_queues`: `Queue('images', Exchange('media',
 * type='topic'), routing_key='image.#')` is `{ name: 'images', exchange: 'media',
 * exchangeType: 'topic', routingKey: 'image.#' }`. Without an exchange a queue is bound to a
 * direct exchange of its own name with its name as the key, which is Celery's default.
 */
export interface QueueDeclaration {
  name: string;
  exchange?: string;
  /** Default `direct`. */
  exchangeType?: 'direct' | 'topic' | 'fanout';
  /** The binding key. Default: the queue's name. */
  routingKey?: string;
}

/** Options for one publish. */
export interface PublishOptions {
  /** Priority 0–9; 9 is the most urgent. */
  priority?: number;
  /**
   * Earliest delivery time in ms since the epoch (the task's ETA). Brokers with
   * `capabilities.delayedDelivery` honour it; others deliver at once and the worker holds it.
   */
  notBefore?: number;
  /**
   * Publish through this exchange with {@link routingKey} instead of straight to the queue
   * (brokers with `capabilities.exchanges` only). The queue argument still names where the
   * message is expected, for declarations and for the delay path of an ETA.
   */
  exchange?: string;
  /** The routing key for {@link exchange}. Default: the queue's name. */
  routingKey?: string;
}

/** One message handed to a consumer. Exactly one of ack, reject or deadLetter settles it. */
export interface Delivery {
  readonly message: TransportMessage;
  /** The queue it was taken from. */
  readonly queue: string;
  /** True when the message was delivered before and not acked (a crash or a hand-back). */
  readonly redelivered: boolean;
  /** The message is done with: remove it for good. */
  ack(): Promise<void>;
  /** Give it back (`requeue: true`) or drop it. */
  reject(requeue: boolean): Promise<void>;
  /** Move it aside to the broker's dead-letter place, recording why. */
  deadLetter(reason: string): Promise<void>;
  /**
   * Hand it back to the broker, in one step, to be delivered again at `notBefore` (ms since the
   * epoch): an ETA task far off then waits in the broker, not in the worker's memory. Brokers
   * whose publishes cannot carry a delay without changing what other clients see (Redis, whose
   * Python workers expect ETA tasks in the queue) offer this instead of
   * {@link BrokerCapabilities.delayedDelivery}.
   */
  postpone?(notBefore: number): Promise<void>;
  /**
   * Its task has run; what remains is recording the outcome (the result stored, then the ack).
   * A broker that keeps the prefetch window itself stops counting the delivery from here, so the
   * next messages arrive while this one is recorded instead of after it.
   */
  ran?(): void;
}

/** Options for {@link Broker.consume}. */
export interface ConsumeOptions {
  /**
   * At most this many deliveries are unsettled at once; where deliveries report
   * {@link Delivery.ran}, up to as many again whose tasks ran may still be being recorded.
   */
  prefetch: number;
  /**
   * How many deliveries the caller runs at once; the rest of the prefetch waits in its memory.
   * A broker may refill in batches while those waiting last. Default: the prefetch.
   */
  concurrency?: number;
}

/** A running consumer. */
export interface Consumer {
  /** Stops delivering; deliveries already handed out remain the caller's to settle. */
  cancel(): Promise<void>;
  /**
   * Changes how many deliveries may be unsettled at once, from now on: a worker raises it by
   * one for each task it holds back (an ETA, a rate limit), as Celery's worker does, so held
   * tasks do not stop others from arriving.
   */
  setPrefetch?(count: number): void;
}

/** A message the broker moved aside, with the reason. */
export interface DeadLetter {
  queue: string;
  reason: string;
  message: TransportMessage;
  /** When it was moved aside, in ms since the epoch. */
  at: number;
}

/** Where a control command's replies go: kombu's `reply_to`. */
export interface ReplyAddress {
  exchange: string;
  routingKey: string;
}

/** A command broadcast to every worker (revoke, shutdown, ...), in Celery's pidbox shape. */
export interface ControlCommand {
  method: string;
  arguments: Record<string, unknown>;
  /** Node names to address, or null for every worker. */
  destination: string[] | null;
  /** Set when replies are wanted: where they go, and the ticket they carry. */
  replyTo?: ReplyAddress | undefined;
  ticket?: string | undefined;
  /** Workers drop the command after this time (ms since the epoch): kombu's `expires` header. */
  expiresAt?: number | undefined;
}

/** The replies to this client's commands, as they arrive. */
export interface ReplyInbox {
  /** The address to put in a command's `replyTo`. */
  readonly address: ReplyAddress;
  /** Calls `onReply` with each reply's ticket and body (`{"<node>": payload}`). */
  listen(onReply: (ticket: string, body: Record<string, unknown>) => void): void;
  close(): Promise<void>;
}

/** Broadcast of control commands to every worker sharing the broker, and their replies. */
export interface ControlChannel {
  /** True when a new subscriber also hears recent commands (a late worker still gets a revoke). */
  readonly replaysRecent?: boolean;
  /**
   * Sends a command to every worker listening; resolves with how many listeners it reached,
   * where the broker can tell (Redis), so a sender knows how many replies to expect.
   */
  broadcast(command: ControlCommand): Promise<number | void>;
  /**
   * Calls `onCommand` for each command broadcast from now on. Brokers that keep commands
   * durably (SQLite) also replay recent ones, so a worker started late still hears a revoke.
   * A message that is not a command (malformed, oversized) is skipped, and `onDropped` told why.
   * `node` names the listener where the broker keeps a queue per node (RabbitMQ's
   * `<node>.celery.pidbox`, as Celery names it).
   */
  subscribe(onCommand: (command: ControlCommand) => void, onDropped?: (reason: string) => void, node?: string): Promise<Consumer>;
  /** Sends a worker's reply to a command that asked for one, where the channel carries replies. */
  reply?(to: ReplyAddress, ticket: string, body: Record<string, unknown>): Promise<void>;
  /** Opens an inbox for replies to this client's commands (kombu's `<oid>.reply.celery.pidbox`). */
  openInbox?(): Promise<ReplyInbox>;
}

/** One event in Celery's form: `{type, hostname, timestamp, clock, ...}`. */
export type CeleryEvent = Record<string, unknown> & { type: string };

/** Celery's event stream (`celeryev`): what workers and clients report, for monitors. */
export interface EventChannel {
  /**
   * Publishes one event, or several task events as one `task.multi` message (a JSON list),
   * with routing key `routingKey` (`worker.heartbeat`, `task.multi`, ...).
   */
  publish(routingKey: string, events: CeleryEvent | readonly CeleryEvent[], hostname: string): Promise<void>;
  /**
   * Calls `onEvent` for every event published from now on whose routing key matches
   * `pattern` (`#` all, `worker.#` workers only); a `task.multi` list arrives one event at a
   * time. Malformed messages are counted in `dropped` and skipped.
   */
  subscribe(onEvent: (event: CeleryEvent) => void, pattern?: string): Promise<EventSubscription>;
}

/** A running event subscription. */
export interface EventSubscription extends Consumer {
  /** Messages that were not events (malformed, oversized), skipped. */
  readonly dropped: number;
}

/** A message broker. */
export interface Broker {
  readonly capabilities: BrokerCapabilities;
  /** The URL it was opened with, credentials masked, for logs. */
  readonly displayUrl: string;
  /** Opens the connection; rejects with a {@link ConnectionError} that says what failed. */
  connect(): Promise<void>;
  /** Puts one message on a queue. Resolves once the broker has it durably (where it can). */
  publish(queue: string, message: TransportMessage, options?: PublishOptions): Promise<void>;
  /** Puts many messages in as few round trips as the broker allows. */
  publishMany(items: ReadonlyArray<{ queue: string; message: TransportMessage; options?: PublishOptions }>): Promise<void>;
  /**
   * Tells the broker how queues are bound, before it declares them for a publish or a
   * consumer. Brokers without `capabilities.exchanges` need no declarations and leave it out.
   */
  declareQueues?(declarations: readonly QueueDeclaration[]): void;
  /** Starts delivering messages from `queues` (listed first = preferred) to `onDelivery`. */
  consume(queues: readonly string[], onDelivery: (delivery: Delivery) => void, options: ConsumeOptions): Promise<Consumer>;
  /** Removes every waiting message from a queue; returns how many. */
  purge(queue: string): Promise<number>;
  /**
   * How many messages wait in a queue, not counting those being worked on. Delayed messages
   * count where the broker keeps them in the queue itself (SQLite); RabbitMQ holds them on
   * its delay path, outside the queue, until they are due.
   */
  queueLength(queue: string): Promise<number>;
  /** Queues the broker knows of, where it can tell; otherwise undefined. */
  listQueues?(): Promise<string[]>;
  /** Messages moved aside, where the broker can list them. */
  listDeadLetters?(limit?: number): Promise<DeadLetter[]>;
  /**
   * Removes one dead letter listed by {@link listDeadLetters}: the first of `letter.queue` with
   * the same task id (`id` header) and `at`. Resolves false if it is no longer there. Where the
   * broker can (a dashboard re-sends a dead letter by publishing it again, then removing it).
   */
  removeDeadLetter?(letter: Pick<DeadLetter, 'queue' | 'at' | 'message'>): Promise<boolean>;
  /** The control channel, where the broker has one. */
  readonly control?: ControlChannel;
  /** The event stream, where the broker has one. */
  readonly events?: EventChannel;
  /** Where rate limits shared by every worker are kept, where the broker can keep them. */
  readonly rateLimits?: SharedRateStore;
  /**
   * Listens to what the broker reports that fails no call: `warning` (a stalled consumer being
   * reconnected, a queue declared differently elsewhere). Every worker on the broker logs them.
   */
  on<K extends keyof BrokerEventMap & string>(event: K, listener: (payload: BrokerEventMap[K]) => void): unknown;
  off<K extends keyof BrokerEventMap & string>(event: K, listener: (payload: BrokerEventMap[K]) => void): unknown;
  /** Closes connections. Unsettled deliveries are given back by the broker's own rules. */
  close(): Promise<void>;
}
