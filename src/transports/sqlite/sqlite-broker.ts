/**
 * `sqlite://PATH`: the embedded broker, one SQLite file (WAL) shared by every producer and worker
 * process on the machine.
 *
 * A consumer takes messages by leasing them to itself (one transaction per batch). Each consumer
 * holds an exclusive lock on a lock file of its own for its life (consumer-locks.ts), which the
 * kernel drops when its process ends. The sweep every consuming process runs each second asks
 * every consumer's lock: held, the consumer lives (even with its event loop blocked by a task),
 * and its heartbeat and leases are renewed for it; free, it died, and its leases go back to the
 * queue at once, marked redelivered. A consumer without a lock file (one of an older celeriac)
 * is judged as before: lost when its pid is gone on this host or its heartbeat is older than
 * `consumer_timeout`, and a lease not renewed for `visibility_timeout` goes back too. ETA
 * messages wait in the file until their time. Writes made in one event-loop turn share one commit.
 *
 * Consumers learn of messages published by other processes from the kernel's report of a write
 * to the file's log (connection.ts), checking every `poll_interval` too in case one went unreported.
 *
 * URL options: `visibility_timeout` (s, default 300), `consumer_timeout` (s, default 60),
 * `synchronous` (`normal` default, or `full`), `poll_interval` (s, default 1). A live consumer's heartbeat and leases are
 * renewed once older than 2 s, or a quarter of the shorter timeout when that is less (checked by
 * each sweep). Control commands and replies (control.ts) and events
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
  enqueueWrite,
  ExternalChangeWatcher,
  onLocalChange,
  pollIntervalOption,
  shareDatabase,
  synchronousOption,
  type Database,
  type SharedDatabase,
  type Synchronous,
} from './connection.js';
import { ConsumerLocks } from './consumer-locks.js';
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
import { sameDeadLetter } from '../../brokers/dead-letters.js';
import { clampPriority } from '../../brokers/priority.js';
import { createBrokerSchema, prepareBrokerStatements, type BrokerStatements, type MessageRow } from './schema.js';
import { SqliteRateLimits } from './rate-limits.js';
import { SqliteControlChannel } from './control.js';
import { SqliteEvents } from './events.js';
import { isProcessAlive } from '../../process-alive.js';

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
  readonly #pollMs: number;
  #connection: SharedDatabase | undefined;
  #sql!: BrokerStatements;
  /** After a commit with writes of this broker's, wakes the consumers of this process. */
  readonly #announce = (): void => announceChange(this.path, 'messages');
  readonly #consumers = new Set<SqliteConsumer>();
  #watcher: ExternalChangeWatcher | undefined;
  #unlisten: (() => void) | undefined;
  #timers: NodeJS.Timeout[] = [];
  /** How old a live consumer's heartbeat may grow before a sweep renews it and its leases. */
  readonly #renewMs: number;
  /** The consumers' lock files (made on connect). */
  #locks: ConsumerLocks | undefined;

  constructor(url: ParsedUrl, raw: string) {
    super();
    this.displayUrl = url.display;
    const path = pathOf(raw);
    if (!path) throw new ConfigurationError(`${url.display} names no file; write sqlite://PATH, e.g. sqlite://.celeriac/celeriac.db`);
    this.path = absolutePath(path);
    this.#visibilityMs = numberOption(url.options, 'visibility_timeout', 300) * 1000;
    this.#consumerTimeoutMs = numberOption(url.options, 'consumer_timeout', 60) * 1000;
    this.#synchronous = synchronousOption(url.options);
    this.#pollMs = pollIntervalOption(url.options);
    this.#renewMs = Math.max(MIN_HEARTBEAT_MS, Math.min(HEARTBEAT_MS, this.#consumerTimeoutMs / 4, this.#visibilityMs / 4));
    this.control = new SqliteControlChannel(this);
    this.events = new SqliteEvents(this.path, () => this.#database(), {
      maxAgeMs: numberOption(url.options, 'event_retention', 3600) * 1000,
      maxRows: numberOption(url.options, 'event_max_rows', 50_000),
    });
    this.rateLimits = new SqliteRateLimits(() => this.#database(), (run) => this.write(run));
  }

  async connect(): Promise<void> {
    if (this.#connection) return;
    const connection = await shareDatabase(this.path, this.#synchronous);
    try {
      createBrokerSchema(connection.db);
      this.#sql = prepareBrokerStatements(connection.db);
    } catch (error) {
      connection.release();
      throw error;
    }
    const { default: Sqlite } = await import('better-sqlite3'); // loaded already by shareDatabase
    this.#locks = new ConsumerLocks(Sqlite, this.path);
    this.#connection = connection;
  }

  /** @internal */
  get sql(): BrokerStatements {
    this.#database();
    return this.#sql;
  }

  async publish(queue: string, message: TransportMessage, options: PublishOptions = {}): Promise<void> {
    const row = this.#row(queue, message, options);
    await this.#enqueue(() => this.#sql.insert.run(...row));
  }

  async publishMany(items: ReadonlyArray<{ queue: string; message: TransportMessage; options?: PublishOptions }>): Promise<void> {
    const rows = items.map((item) => this.#row(item.queue, item.message, item.options ?? {}));
    await this.#enqueue(() => {
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
    const db = this.#database();
    const consumer = new SqliteConsumer(this, [...queues], onDelivery, options.prefetch);
    // Locked before its row is added: a sweep that sees the row finds the lock held.
    this.#locks?.hold(consumer.id);
    this.#sql.registerConsumer.run(consumer.id, process.pid, HOST, Date.now());
    this.#consumers.add(consumer);
    if (this.#consumers.size === 1) this.#startConsuming(db);
    this.sweep();
    consumer.schedulePump();
    return consumer;
  }

  #startConsuming(db: Database): void {
    this.#watcher = new ExternalChangeWatcher(db, this.path, () => this.#lookNow(), this.#pollMs);
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

  /** Lets every consumer look in the next turn (a change made in this process). */
  #wakeAll(): void {
    for (const consumer of this.#consumers) consumer.schedulePump();
  }

  /**
   * Lets every consumer look at once: another process committed (the watcher calls this once
   * per turn, not per message). A change made in this process waits a turn instead, so what
   * its writer does on the commit (a client's `task-sent` event) comes before the task starts.
   */
  #lookNow(): void {
    for (const consumer of this.#consumers) consumer.pump();
  }

  /** @internal Leases up to `limit` ready messages from `queues` (in preference order) to `consumerId`. */
  take(queues: readonly string[], limit: number, consumerId: string): MessageRow[] {
    const db = this.#database();
    const now = Date.now();
    // A read first: a worker finding nothing (most looks of an idle one) takes no write lock.
    if (!queues.some((queue) => this.#sql.anyReady.get(queue, now))) return [];
    // The ready ids, then a lease of each by its id: cheaper than one UPDATE of the rows a
    // subquery picks. Immediate, to hold the write lock from the start: no other process commits
    // between the read and the leases (a deferred transaction would fail with SQLITE_BUSY_SNAPSHOT).
    const lockedUntil = now + this.#visibilityMs;
    const lease = db.transaction(() => {
      const taken: MessageRow[] = [];
      for (const queue of queues) {
        const ready = this.#sql.ready.all(queue, now, limit - taken.length) as Array<{ id: number }>;
        for (const { id } of ready) taken.push(this.#sql.lease.get(consumerId, lockedUntil, id) as MessageRow);
        if (taken.length >= limit) break;
      }
      return taken;
    });
    return lease.immediate();
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
    return this.#enqueue(run);
  }

  /** @internal Stops tracking a cancelled consumer (its lock stays while it holds messages). */
  release(consumer: SqliteConsumer): void {
    this.#consumers.delete(consumer);
    if (this.#consumers.size === 0) this.#stopConsuming();
  }

  /** @internal A cancelled consumer holds nothing any more: its row goes, then its lock. */
  retire(consumer: SqliteConsumer): void {
    if (!this.#connection) return; // closing: close() removes it
    void this.write(() => this.#sql.removeConsumer.run(consumer.id))
      .catch(() => undefined) // the sweeps find its lock free and remove the row
      .finally(() => this.#locks?.release(consumer.id));
  }

  /**
   * Renews live consumers and gives back what lost ones held. A consumer whose lock file is
   * locked lives: its heartbeat and leases are renewed once older than the renewal interval.
   * One whose lock file is free died: its row and file go, and its leases back to the queue.
   * One without a lock file is lost when its pid is gone on this host or it has been silent for
   * longer than `consumer_timeout`. Leases past `visibility_timeout` go back too.
   */
  sweep(): void {
    const locks = this.#locks;
    if (!locks) return;
    const now = Date.now();
    const consumers = this.#sql.listConsumers.all() as Array<{ id: string; pid: number; hostname: string; seen_at: number }>;
    const live: string[] = [];
    const lost: string[] = [];
    const dead: string[] = [];
    for (const c of consumers) {
      const state = locks.probe(c.id);
      if (state === 'alive') {
        if (now - c.seen_at >= this.#renewMs) live.push(c.id);
      } else if (state === 'dead') {
        dead.push(c.id);
      } else if (now - c.seen_at > this.#consumerTimeoutMs || (c.hostname === HOST && !isProcessAlive(c.pid))) {
        lost.push(c.id);
      }
    }
    try {
      const restored = this.#database().transaction(() => {
        for (const id of live) {
          this.#sql.heartbeat.run(now, id);
          this.#sql.renewLeases.run(now + this.#visibilityMs, id);
        }
        for (const id of [...dead, ...lost]) this.#sql.removeConsumer.run(id);
        return this.#sql.restoreLost.run(now).changes;
      })();
      for (const id of dead) locks.remove(id);
      if (restored > 0) {
        announceChange(this.path, 'messages');
        this.#wakeAll();
      }
    } catch {
      // The file is busy; the next sweep tries again.
    }
    locks.removeLeftovers(new Set(consumers.map((c) => c.id)), now);
  }

  async purge(queue: string): Promise<number> {
    return this.#enqueue(() => this.#sql.purge.run(queue).changes);
  }

  async queueLength(queue: string): Promise<number> {
    await this.#connection?.writes.drained();
    return (this.sql.length.get(queue) as { n: number }).n;
  }

  async listQueues(): Promise<string[]> {
    await this.#connection?.writes.drained();
    return (this.sql.queues.all() as Array<{ queue: string }>).map((row) => row.queue);
  }

  async listDeadLetters(limit = 100): Promise<DeadLetter[]> {
    await this.#connection?.writes.drained();
    const rows = this.sql.deadLetters.all(limit) as Array<Omit<MessageRow, 'id' | 'priority' | 'redelivered'> & { reason: string; at: number }>;
    return rows.reverse().map((row) => ({ queue: row.queue, reason: row.reason, at: row.at, message: toTransportMessage(row) }));
  }

  async removeDeadLetter(letter: Pick<DeadLetter, 'queue' | 'at' | 'message'>): Promise<boolean> {
    await this.#connection?.writes.drained();
    const db = this.#database();
    const rows = db
      .prepare(`SELECT id, queue, at, headers, properties, content_type, content_encoding, body FROM celeriac_dead_letters WHERE queue = ? AND at = ? ORDER BY id`)
      .all(letter.queue, letter.at) as Array<Omit<MessageRow, 'priority' | 'redelivered'> & { at: number }>;
    const row = rows.find((candidate) => sameDeadLetter({ queue: candidate.queue, at: candidate.at, message: toTransportMessage(candidate) }, letter));
    return row !== undefined && db.prepare(`DELETE FROM celeriac_dead_letters WHERE id = ?`).run(row.id).changes === 1;
  }

  async close(): Promise<void> {
    if (!this.#connection) return;
    for (const consumer of [...this.#consumers]) consumer.giveBackAll();
    await this.#connection?.writes.drained();
    for (const consumer of [...this.#consumers]) await consumer.cancel();
    await this.#connection?.writes.drained();
    // Every consumer this broker made, cancelled ones still holding messages too: row, then lock.
    for (const id of this.#locks?.heldIds() ?? []) this.#sql.removeConsumer.run(id);
    this.#locks?.releaseAll();
    this.#stopConsuming();
    await this.control.close();
    await this.events.close();
    announceChange(this.path, 'messages');
    this.#connection?.release();
    this.#connection = undefined;
  }

  /** @internal The open connection. */
  database(): Database {
    return this.#database();
  }

  #database(): Database {
    return this.#connected().db;
  }

  #connected(): SharedDatabase {
    if (!this.#connection) throw new NotConnectedError(`the SQLite broker ${this.displayUrl}`);
    return this.#connection;
  }

  /** Queues `run` for the connection's next commit; rejects when not connected. */
  #enqueue<T>(run: () => T): Promise<T> {
    return enqueueWrite(() => this.#connected(), run, this.#announce);
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
      this.pump();
    });
  }

  /** Leases what the free prefetch slots allow, if anything is ready, and hands it out. */
  pump(): void {
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

