/**
 * `sqlite://PATH`: the embedded broker, one SQLite file (WAL) shared by every producer and worker
 * process on the machine.
 *
 * A consumer takes messages by leasing them to itself (one transaction per batch). Leases are
 * renewed by the consumer's heartbeat while it lives; a lease whose consumer died (its pid is gone
 * on this host, or its heartbeat is older than `consumer_timeout`) or that outlived
 * `visibility_timeout` without renewal goes back to the queue, marked redelivered. The heartbeats
 * and renewals come from a keeper thread with its own connection (lease-keeper-thread.ts), so a
 * task that blocks the event loop longer than those timeouts still runs once. ETA messages wait
 * in the file until their time. Writes made in one event-loop turn share one commit.
 *
 * URL options: `visibility_timeout` (s, default 300), `consumer_timeout` (s, default 60),
 * `synchronous` (`normal` default, or `full`). Heartbeats go every 2 s, or every quarter of the
 * shorter timeout when that is less. Control commands and replies (control.ts) and events
 * (events.ts; `event_retention` in s, default 3600, and `event_max_rows`, default 50000) have
 * tables of their own.
 */
import { OnceSettledDelivery, type Settlement } from '../../brokers/delivery.js';
import { TypedEmitter, type BrokerEventMap } from '../../events.js';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { ConfigurationError, NotConnectedError } from '../../errors.js';
import type { TransportMessage } from '../../protocol/message.js';
import {
  absolutePath,
  announceChange,
  ExternalChangeWatcher,
  onLocalChange,
  openDatabase,
  synchronousOption,
  type Database,
  type Synchronous,
} from './connection.js';
import { WriteBatcher } from './write-batcher.js';
import { LeaseKeeper } from '../lease-keeper.js';
import type { SqliteKeeperSettings } from './lease-keeper-thread.js';
import { numberOption, pathOf, type ParsedUrl } from '../../url.js';
import type {
  Broker,
  BrokerCapabilities,
  ConsumeOptions,
  Consumer,
  DeadLetter,
  Delivery,
  PublishOptions,
} from '../../brokers/broker.js';
import { clampPriority } from '../../brokers/priority.js';
import { createBrokerSchema, prepareBrokerStatements, type BrokerStatements, type MessageRow } from './schema.js';
import { SqliteRateLimits } from './rate-limits.js';
import { SqliteControlChannel } from './control.js';
import { SqliteEvents } from './events.js';

const HEARTBEAT_MS = 2_000;
/** The shortest heartbeat interval, whatever the timeouts. */
const MIN_HEARTBEAT_MS = 50;
const SWEEP_MS = 1_000;
const HOST = hostname();

/** The embedded SQLite broker. */
export class SqliteBroker extends TypedEmitter<BrokerEventMap> implements Broker {
  readonly capabilities: BrokerCapabilities = { delayedDelivery: true, priorities: true, durable: true, shared: true, exchanges: false };
  readonly displayUrl: string;
  readonly path: string;
  readonly control: SqliteControlChannel;
  readonly events: SqliteEvents;
  readonly rateLimits: SqliteRateLimits;
  readonly #visibilityMs: number;
  readonly #consumerTimeoutMs: number;
  readonly #synchronous: Synchronous;
  #db: Database | undefined;
  #sql!: BrokerStatements;
  readonly #writes: WriteBatcher;
  readonly #consumers = new Set<SqliteConsumer>();
  #watcher: ExternalChangeWatcher | undefined;
  #unlisten: (() => void) | undefined;
  #timers: NodeJS.Timeout[] = [];
  /** Renews the consumers' heartbeats and leases from a thread of its own. */
  readonly #keeper: LeaseKeeper;

  constructor(url: ParsedUrl, raw: string) {
    super();
    this.displayUrl = url.display;
    const path = pathOf(raw);
    if (!path) throw new ConfigurationError(`${url.display} names no file; write sqlite://PATH, e.g. sqlite://.celeriac/celeriac.db`);
    this.path = absolutePath(path);
    this.#visibilityMs = numberOption(url.options, 'visibility_timeout', 300) * 1000;
    this.#consumerTimeoutMs = numberOption(url.options, 'consumer_timeout', 60) * 1000;
    this.#synchronous = synchronousOption(url.options);
    const settings: SqliteKeeperSettings = {
      path: this.path,
      synchronous: this.#synchronous,
      visibilityMs: this.#visibilityMs,
      intervalMs: Math.max(MIN_HEARTBEAT_MS, Math.min(HEARTBEAT_MS, this.#consumerTimeoutMs / 4, this.#visibilityMs / 4)),
    };
    this.#keeper = new LeaseKeeper('transports/sqlite/lease-keeper-thread.js', settings, (message) => this.emit('warning', { message }));
    this.#writes = new WriteBatcher(() => this.#database(), () => announceChange(this.path, 'messages'));
    this.control = new SqliteControlChannel(this);
    this.events = new SqliteEvents(this.path, () => this.#database(), {
      maxAgeMs: numberOption(url.options, 'event_retention', 3600) * 1000,
      maxRows: numberOption(url.options, 'event_max_rows', 50_000),
    });
    this.rateLimits = new SqliteRateLimits(() => this.#database(), (run) => this.write(run));
  }

  async connect(): Promise<void> {
    if (this.#db) return;
    const db = await openDatabase(this.path, this.#synchronous);
    createBrokerSchema(db);
    this.#sql = prepareBrokerStatements(db);
    this.#db = db;
  }

  /** @internal */
  get sql(): BrokerStatements {
    this.#database();
    return this.#sql;
  }

  async publish(queue: string, message: TransportMessage, options: PublishOptions = {}): Promise<void> {
    const row = this.#row(queue, message, options);
    await this.#writes.enqueue(() => this.#sql.insert.run(...row));
  }

  async publishMany(items: ReadonlyArray<{ queue: string; message: TransportMessage; options?: PublishOptions }>): Promise<void> {
    const rows = items.map((item) => this.#row(item.queue, item.message, item.options ?? {}));
    await this.#writes.enqueue(() => {
      for (const row of rows) this.#sql.insert.run(...row);
    });
  }

  #row(queue: string, message: TransportMessage, options: PublishOptions) {
    return [
      queue,
      clampPriority(options.priority),
      options.notBefore ?? 0,
      JSON.stringify(message.headers),
      JSON.stringify(message.properties),
      message.contentType,
      message.contentEncoding,
      message.body,
    ] as const;
  }

  async consume(queues: readonly string[], onDelivery: (delivery: Delivery) => void, options: ConsumeOptions): Promise<Consumer> {
    this.#database();
    const consumer = new SqliteConsumer(this, [...queues], onDelivery, options.prefetch);
    await this.#keeper.hold(consumer.id);
    const db = this.#database(); // still open after the wait for the keeper
    this.#sql.registerConsumer.run(consumer.id, process.pid, HOST, Date.now());
    this.#consumers.add(consumer);
    if (this.#consumers.size === 1) this.#startConsuming(db);
    this.sweep();
    consumer.schedulePump();
    return consumer;
  }

  #startConsuming(db: Database): void {
    this.#watcher = new ExternalChangeWatcher(db, () => this.#wakeAll());
    this.#watcher.start();
    this.#unlisten = onLocalChange(this.path, 'messages', () => this.#wakeAll());
    this.#timers = [setInterval(() => this.sweep(), SWEEP_MS)];
    for (const timer of this.#timers) timer.unref();
  }

  #stopConsuming(): void {
    this.#watcher?.stop();
    this.#watcher = undefined;
    this.#unlisten?.();
    this.#unlisten = undefined;
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
  }

  #wakeAll(): void {
    for (const consumer of this.#consumers) consumer.schedulePump();
  }

  /** @internal Leases up to `limit` ready messages from `queues` (in preference order) to `consumerId`. */
  take(queues: readonly string[], limit: number, consumerId: string): MessageRow[] {
    const now = Date.now();
    return this.#database().transaction(() => {
      const taken: MessageRow[] = [];
      for (const queue of queues) {
        const rows = this.#sql.take.all(consumerId, now + this.#visibilityMs, queue, now, limit - taken.length) as MessageRow[];
        rows.sort((a, b) => b.priority - a.priority || a.id - b.id);
        taken.push(...rows);
        if (taken.length >= limit) break;
      }
      return taken;
    })();
  }

  /** @internal When the next delayed message of `queues` becomes visible, if any. */
  nextVisibleAt(queues: readonly string[]): number | null {
    let next: number | null = null;
    for (const queue of queues) {
      const at = (this.#sql.nextVisible.get(queue) as { at: number | null }).at;
      if (at !== null && (next === null || at < next)) next = at;
    }
    return next;
  }

  /** @internal Queues a write for the next batch. */
  write<T>(run: () => T): Promise<T> {
    return this.#writes.enqueue(run);
  }

  /** @internal Stops tracking a cancelled consumer (its heartbeat goes on while it holds messages). */
  release(consumer: SqliteConsumer): void {
    this.#consumers.delete(consumer);
    if (this.#consumers.size === 0) this.#stopConsuming();
  }

  /** @internal A cancelled consumer holds nothing any more: its heartbeat stops and its row goes. */
  retire(consumer: SqliteConsumer): void {
    void this.#keeper
      .release(consumer.id)
      .then(() => this.#db && this.write(() => this.#sql.removeConsumer.run(consumer.id)))
      .catch(() => undefined); // closing: close() removes it, or the sweeps of others do
  }

  /**
   * Gives back what lost consumers held: consumers on this host whose process is gone, consumers
   * silent for longer than `consumer_timeout`, and leases past `visibility_timeout`.
   */
  sweep(): void {
    const now = Date.now();
    const consumers = this.#sql.listConsumers.all() as Array<{ id: string; pid: number; hostname: string; seen_at: number }>;
    const lost = consumers.filter((c) => now - c.seen_at > this.#consumerTimeoutMs || (c.hostname === HOST && !processAlive(c.pid)));
    try {
      const restored = this.#database().transaction(() => {
        for (const consumer of lost) this.#sql.removeConsumer.run(consumer.id);
        return this.#sql.restoreLost.run(now).changes;
      })();
      if (restored > 0) {
        announceChange(this.path, 'messages');
        this.#wakeAll();
      }
    } catch {
      // The file is busy; the next sweep tries again.
    }
  }

  async purge(queue: string): Promise<number> {
    return this.#writes.enqueue(() => this.#sql.purge.run(queue).changes);
  }

  async queueLength(queue: string): Promise<number> {
    await this.#writes.drained();
    return (this.sql.length.get(queue) as { n: number }).n;
  }

  async listQueues(): Promise<string[]> {
    await this.#writes.drained();
    return (this.sql.queues.all() as Array<{ queue: string }>).map((row) => row.queue);
  }

  async listDeadLetters(limit = 100): Promise<DeadLetter[]> {
    await this.#writes.drained();
    const rows = this.sql.deadLetters.all(limit) as Array<Omit<MessageRow, 'id' | 'priority' | 'redelivered'> & { reason: string; at: number }>;
    return rows.reverse().map((row) => ({ queue: row.queue, reason: row.reason, at: row.at, message: toTransportMessage(row) }));
  }

  async close(): Promise<void> {
    const db = this.#db;
    if (!db) return;
    await this.#keeper.close();
    for (const consumer of [...this.#consumers]) consumer.giveBackAll();
    await this.#writes.drained();
    for (const consumer of [...this.#consumers]) {
      this.#sql.removeConsumer.run(consumer.id);
      await consumer.cancel();
    }
    this.#stopConsuming();
    await this.control.close();
    await this.events.close();
    announceChange(this.path, 'messages');
    this.#db = undefined;
    db.close();
  }

  /** @internal The open connection. */
  database(): Database {
    return this.#database();
  }

  #database(): Database {
    if (!this.#db) throw new NotConnectedError(`the SQLite broker ${this.displayUrl}`);
    return this.#db;
  }
}

/** One consumer: leases batches up to its free prefetch slots and hands them out. */
class SqliteConsumer implements Consumer {
  readonly id = randomUUID();
  readonly outstanding = new Set<SqliteDelivery>();
  #cancelled = false;
  #pumpScheduled = false;
  #delayTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly broker: SqliteBroker,
    private readonly queues: readonly string[],
    private readonly onDelivery: (delivery: Delivery) => void,
    private prefetch: number,
  ) {}

  setPrefetch(count: number): void {
    this.prefetch = count;
    this.schedulePump();
  }

  schedulePump(): void {
    if (this.#pumpScheduled || this.#cancelled) return;
    this.#pumpScheduled = true;
    setImmediate(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  #pump(): void {
    if (this.#cancelled) return;
    const free = this.prefetch - this.outstanding.size;
    if (free <= 0) return;
    let rows: MessageRow[];
    try {
      rows = this.broker.take(this.queues, free, this.id);
    } catch {
      this.#retryLater(10); // busy: another process holds the write lock
      return;
    }
    for (const row of rows) {
      const delivery = new SqliteDelivery(this, row);
      this.outstanding.add(delivery);
      this.onDelivery(delivery);
    }
    if (rows.length < free) {
      const next = this.broker.nextVisibleAt(this.queues);
      if (next !== null) this.#retryLater(Math.max(1, next - Date.now()));
    }
  }

  #retryLater(ms: number): void {
    clearTimeout(this.#delayTimer);
    this.#delayTimer = setTimeout(() => this.schedulePump(), Math.min(ms, 2 ** 31 - 1));
    this.#delayTimer.unref();
  }

  settled(delivery: SqliteDelivery): void {
    this.outstanding.delete(delivery);
    if (this.#cancelled && this.outstanding.size === 0) this.broker.retire(this);
    this.schedulePump();
  }

  /** Gives every unsettled delivery back to the queue (the broker is closing). */
  giveBackAll(): void {
    for (const delivery of [...this.outstanding]) void delivery.reject(true).catch(() => undefined);
  }

  async cancel(): Promise<void> {
    if (this.#cancelled) return;
    this.#cancelled = true;
    clearTimeout(this.#delayTimer);
    this.broker.release(this);
    if (this.outstanding.size === 0) this.broker.retire(this);
  }
}

class SqliteDelivery extends OnceSettledDelivery {
  readonly message: TransportMessage;
  readonly queue: string;
  readonly redelivered: boolean;

  constructor(
    private readonly consumer: SqliteConsumer,
    private readonly row: MessageRow,
  ) {
    super();
    this.message = toTransportMessage(row);
    this.queue = row.queue;
    this.redelivered = row.redelivered === 1;
  }

  protected async settle(settlement: Settlement): Promise<void> {
    const { broker, id: consumer } = this.consumer;
    const id = this.row.id;
    await broker.write(() => {
      const { sql } = broker;
      if (settlement.kind === 'dead-letter') sql.copyToDeadLetters.run(settlement.reason, Date.now(), id, consumer);
      if (settlement.kind === 'reject' && settlement.requeue) sql.requeue.run(id, consumer);
      else sql.ack.run(id, consumer);
    });
  }

  protected done(): void {
    this.consumer.settled(this);
  }
}

function toTransportMessage(row: Pick<MessageRow, 'headers' | 'properties' | 'content_type' | 'content_encoding' | 'body'>): TransportMessage {
  return {
    headers: JSON.parse(row.headers) as Record<string, unknown>,
    properties: JSON.parse(row.properties) as TransportMessage['properties'],
    contentType: row.content_type,
    contentEncoding: row.content_encoding,
    body: row.body,
  };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
