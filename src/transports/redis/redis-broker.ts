/**
 * `redis://` and `rediss://`: a broker on kombu's Redis layout, so Python Celery workers and
 * clients share its queues (see kombu-layout.ts).
 *
 * A consumer takes up to its free prefetch slots in one round trip: a Lua script pops them and
 * records each in `unacked` / `unacked_index` in the same step (riding on the call that sends the
 * acks which freed the slots, when there is one), so no message is ever out of
 * the queue without a record of who holds it. When nothing waits, the consumer blocks on each queue's main
 * list with `BLMOVE q <its taking list> RIGHT LEFT` (1 s): a message that arrives is moved into a
 * list of the consumer's own and handed to the worker at once, and a script records it as unacked
 * in the round trip that follows, so an idle worker starts a task one round trip sooner. What a
 * dead consumer's taking list holds goes back to the queue with the rest of what it held.
 * (Messages in kombu's lower priority lists, 3/6/9, are seen by the take script on the next turn,
 * within a second when idle.)
 * A watchdog reconnects a consumer whose loop stops turning (a half-open connection that never
 * errors), so it keeps consuming after any network failure. Messages a dead consumer held are
 * restored after `visibility_timeout` (default 3600 s) under kombu's `unacked_mutex`, by Python
 * and TypeScript workers alike; a live celeriac consumer renews what it holds, and an ETA
 * message's entry is dated at its ETA, so neither is delivered twice for outliving the timeout.
 * celeriac consumers also keep a lease and a set of what they hold, so what a dead celeriac
 * consumer held comes back once its lease lapses (`consumer_timeout`, default 30 s), without
 * waiting for the visibility timeout. While the worker holds deliveries, leases and unacked
 * dates are renewed by a keeper thread with its own connection (lease-keeper-thread.ts), so a
 * task that blocks the event loop for longer than either timeout is still not delivered twice;
 * an idle worker renews them from its main thread.
 *
 * Priorities follow kombu: buckets 0, 3, 6, 9, and bucket 0 is served first (the reverse of
 * RabbitMQ), so `capabilities.priorities` is false: the port's "9 first" does not hold here.
 */
import { OnceSettledDelivery, type Settlement } from '../../brokers/delivery.js';
import { NotConnectedError } from '../../errors.js';
import { TypedEmitter, type BrokerEventMap } from '../../events.js';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { PrefetchWindow } from '../../brokers/prefetch-window.js';
import { Batcher } from '../batcher.js';
import { parseIsoDate } from '../../protocol/kombu-json.js';
import type { TransportMessage } from '../../protocol/message.js';
import { connectRedis, databaseOf, requireBrokerVersion, writeAtTickEnd, type RedisClient } from './client.js';
import { numberOption, type ParsedUrl } from '../../url.js';
import type { Broker, BrokerCapabilities, ConsumeOptions, Consumer, DeadLetter, Delivery, PublishOptions } from '../../brokers/broker.js';
import { sameDeadLetter } from '../../brokers/dead-letters.js';
import { clampPriority } from '../../brokers/priority.js';
import {
  binding,
  envelopeText,
  fromEnvelope,
  markRedelivered,
  queueKey,
  queueKeys,
  UNACKED,
  UNACKED_INDEX,
  UNACKED_MUTEX,
  type Envelope,
} from './kombu-layout.js';
import { RedisPidbox } from './pidbox.js';
import { defineScripts, type ScriptedClient } from './scripts.js';
import { aliveKeyOf, HELD_PREFIX, heldKeyOf, parseTakingKey, renewArguments, TAKING_PREFIX, takingKeyOf } from './consumer-lease.js';
import { LeaseKeeper } from '../lease-keeper.js';
import type { RedisKeeperSettings } from './lease-keeper-thread.js';
import { defineRateScript, RedisRateLimits } from './rate-limits.js';
import { RedisEvents } from './events.js';
import { DelayedMessages, delayedKeyOf } from './delayed.js';

/** How often lost messages are looked for: every 10 s, or twice per visibility timeout if shorter. */
const RESTORE_INTERVAL_MS = 10_000;
/** Leases are renewed this often, or every quarter of the lease or visibility timeout if shorter. */
const RENEW_INTERVAL_MS = 5_000;
const MIN_RENEW_INTERVAL_MS = 50;
const BLOCK_SECONDS = 1;
/** A small prefetch is refilled this many at a time, while tasks waiting in the worker last. */
const MIN_TAKE = 4;
/**
 * Each celeriac consumer keeps a lease key alive (see consumer-lease.ts); when it lapses (the
 * process died), any celeriac worker gives back what that consumer held at once instead of after
 * the visibility timeout. Its TTL is `?consumer_timeout=` (seconds).
 */
const DEFAULT_LEASE_SECONDS = 30;
const RECLAIM_INTERVAL_MS = 30_000;
/** A consumer loop that has not turned for this long (`?stall_timeout=` seconds) is reconnected. */
const DEFAULT_STALL_SECONDS = 15;

/**
 * Commands that go out as they are called rather than auto-pipelined (see client.ts): what
 * consumers send, batched per event-loop turn by the consumer itself, and publishes, held to the
 * end of their tick by {@link writeAtTickEnd} so that a tick's publishes still leave in one write
 * (sooner than the auto-pipeline, which waits for the next turn of the event loop). Each is the
 * first thing sent about the messages it names, so nothing auto-pipelined earlier in a turn that
 * it could overtake concerns them.
 */
const DIRECT_COMMANDS = ['celeriacTake', 'celeriacAckThenTake', 'celeriacAck', 'celeriacAdopt', 'blmove', 'lpush'];

interface Taken {
  queue: string;
  raw: string;
  /** The delivery tag the take script found; read from the message when absent. */
  tag?: string;
  /** The taking list a blocking wait moved the message into, still to be recorded as unacked. */
  takingKey?: string;
}

/** The Redis broker. */
export class RedisBroker extends TypedEmitter<BrokerEventMap> implements Broker {
  readonly capabilities: BrokerCapabilities = { delayedDelivery: false, priorities: false, durable: true, shared: true, exchanges: false };
  readonly displayUrl: string;
  readonly control: RedisPidbox;
  readonly events: RedisEvents;
  readonly rateLimits = new RedisRateLimits(() => this.client);
  readonly #visibilitySeconds: number;
  readonly #stallMs: number;
  /** @internal How long a consumer's lease lasts without renewal. */
  readonly leaseMs: number;
  /** Renews the consumers' leases and unacked dates from a thread of its own. */
  readonly #keeper: LeaseKeeper;
  #client: ScriptedClient | undefined;
  readonly #declared = new Set<string>();
  readonly #consumers = new Set<RedisConsumer>();
  #restoreTimer: NodeJS.Timeout | undefined;
  #restoring: Promise<number> | undefined;
  /** ETA tasks postponed until they are due (see delayed.ts). */
  readonly #delayed = new DelayedMessages(
    () => this.client,
    (error) => this.emit('warning', { message: `could not move due ETA tasks back into their queues: ${String(error)}` }),
  );

  constructor(private readonly url: ParsedUrl) {
    super();
    this.displayUrl = url.display;
    this.#visibilitySeconds = numberOption(url.options, 'visibility_timeout', 3600);
    this.#stallMs = numberOption(url.options, 'stall_timeout', DEFAULT_STALL_SECONDS) * 1000;
    this.leaseMs = numberOption(url.options, 'consumer_timeout', DEFAULT_LEASE_SECONDS) * 1000;
    const settings: RedisKeeperSettings = {
      url: url.url.href,
      leaseMs: this.leaseMs,
      intervalMs: Math.max(MIN_RENEW_INTERVAL_MS, Math.min(RENEW_INTERVAL_MS, this.leaseMs / 4, this.#visibilitySeconds * 250)),
    };
    this.#keeper = new LeaseKeeper('transports/redis/lease-keeper-thread.js', settings, {
      renewHere: (ids) => this.client.celeriacRenew(...renewArguments(ids, this.leaseMs)),
      holdsWork: () => [...this.#consumers].some((consumer) => consumer.outstanding.size > 0),
      warn: (message) => this.emit('warning', { message }),
    });
    this.control = new RedisPidbox(() => this.client, databaseOf(url));
    this.events = new RedisEvents(() => this.client, databaseOf(url));
  }

  /** Called with a warning the user should see (a stalled consumer being reconnected...). */

  async connect(): Promise<void> {
    if (this.#client) return;
    const client = defineScripts(await connectRedis(this.url, DIRECT_COMMANDS));
    defineRateScript(client);
    try {
      // A user whose ACL forbids INFO gets no check rather than no broker.
      requireBrokerVersion(await client.info('server').catch(() => ''), this.displayUrl);
    } catch (error) {
      client.disconnect();
      throw error;
    }
    client.on('error', () => undefined); // ioredis reconnects; commands wait meanwhile
    client.on('ready', () => {
      for (const consumer of this.#consumers) consumer.reclaimSoon();
    });
    this.#client = client;
  }

  /** @internal */
  get client(): ScriptedClient {
    if (!this.#client) throw new NotConnectedError(`the Redis broker ${this.displayUrl}`);
    return this.#client;
  }

  /** One LPUSH (after kombu's binding the first time), as kombu publishes. */
  async publish(queue: string, message: TransportMessage, options: PublishOptions = {}): Promise<void> {
    await this.#push([{ queue, message, options }], false);
  }

  /**
   * One LPUSH per list with all of its messages (in order: as many LPUSHes one after another
   * would leave them), in one MULTI transaction when the batch needs more than one command: a
   * batch lands whole or not at all, even if the connection drops.
   */
  async publishMany(items: ReadonlyArray<{ queue: string; message: TransportMessage; options?: PublishOptions }>): Promise<void> {
    await this.#push(items, true);
  }

  async #push(items: ReadonlyArray<{ queue: string; message: TransportMessage; options?: PublishOptions }>, atomic: boolean): Promise<void> {
    const lists = new Map<string, Array<string | Buffer>>();
    const queues = new Set<string>();
    // A batch goes as bytes: ioredis joins string arguments into one long string before the socket
    // encodes it, which cost 3-9 µs a message in a batch of 1,000 against about 1 µs this way. A
    // lone message stays a string, which is cheaper for a command of one.
    const asBytes = items.length > 1;
    for (const { queue, message, options } of items) {
      queues.add(queue);
      const priority = clampPriority(options?.priority ?? (message.properties.priority as number | undefined));
      const key = queueKey(queue, priority);
      const text = envelopeText(queue, message, priority);
      const envelope = asBytes ? Buffer.from(text) : text;
      const list = lists.get(key);
      if (list) list.push(envelope);
      else lists.set(key, [envelope]);
    }
    const undeclared = [...queues].filter((queue) => !this.#declared.has(queue));
    if (undeclared.length === 0 && lists.size === 1) {
      const [key, envelopes] = lists.entries().next().value!;
      writeAtTickEnd(this.client);
      await this.client.lpush(key, ...envelopes);
      return;
    }
    const commands = atomic ? this.client.multi() : this.client.pipeline();
    this.#declare(commands, undeclared);
    for (const [key, envelopes] of lists) commands.lpush(key, ...envelopes);
    const results = await commands.exec();
    const failed = results?.find(([error]) => error);
    if (failed) throw failed[0];
    for (const queue of undeclared) this.#declared.add(queue);
  }

  /** Adds kombu's binding for queues not yet declared by this broker (remembered by the caller). */
  #declare(commands: ReturnType<RedisClient['pipeline']>, queues: Iterable<string>): void {
    for (const queue of queues) {
      if (this.#declared.has(queue)) continue;
      const { key, member } = binding(queue);
      commands.sadd(key, member);
    }
  }

  async consume(queues: readonly string[], onDelivery: (delivery: Delivery) => void, options: ConsumeOptions): Promise<Consumer> {
    const waiters = queues.map(() => {
      const waiter = this.client.duplicate();
      waiter.on('error', () => undefined);
      return waiter;
    });
    const consumer = new RedisConsumer(this, waiters, [...queues], onDelivery, options.prefetch, this.#stallMs, options.concurrency);
    this.#keeper.hold(consumer.id);
    this.#consumers.add(consumer);
    this.#delayed.watch(queues.flatMap(queueKeys));
    const pipeline = this.client.pipeline();
    this.#declare(pipeline, queues);
    await pipeline.exec();
    for (const queue of queues) this.#declared.add(queue);
    if (!this.#restoreTimer) {
      await this.restoreVisible();
      this.#restoreTimer = setInterval(
        () => void this.restoreVisible().catch(() => undefined),
        Math.min(RESTORE_INTERVAL_MS, this.#visibilitySeconds * 500),
      );
    }
    consumer.start();
    return consumer;
  }

  /**
   * @internal Pops and records up to `limit` messages from `queues`, in kombu's order, as
   * unacked and as held by the consumer whose held set is `held`; forgets the `acked` tags
   * first, in the same call.
   */
  async take(queues: readonly string[], limit: number, held: string, acked: readonly string[] = []): Promise<Taken[]> {
    const keys = queues.flatMap(queueKeys);
    const names = queues.flatMap((queue) => queueKeys(queue).map(() => queue));
    const args = [keys.length + 3, ...keys, UNACKED, UNACKED_INDEX, held, limit, nowSeconds(), ...names];
    const flat = acked.length > 0 ? await this.client.celeriacAckThenTake(...args, ...acked) : await this.client.celeriacTake(...args);
    const taken: Taken[] = [];
    for (let i = 0; i < flat.length; i += 3) taken.push({ queue: flat[i]!, raw: flat[i + 1]!, tag: flat[i + 2]! });
    return taken;
  }

  /** @internal Dates an unacked entry at `seconds` (its ETA, or now for a renewal). */
  async hold(tag: string, seconds: number): Promise<void> {
    await this.client.zadd(UNACKED_INDEX, 'XX', seconds, tag);
  }

  /** @internal Forgets acked messages: their unacked records and their place in the consumer's held set. */
  async ack(held: string, tags: readonly string[]): Promise<void> {
    await this.client.celeriacAck(UNACKED, UNACKED_INDEX, held, ...tags);
  }

  /**
   * @internal Removes a message from the unacked bookkeeping and its consumer's held set, in
   * one transaction with `then`'s commands (a requeue or a dead letter).
   */
  async forgetUnacked(tag: string, held: string, then: (multi: ReturnType<RedisClient['multi']>) => void): Promise<void> {
    const multi = this.client.multi();
    then(multi);
    if (tag) multi.zrem(UNACKED_INDEX, tag).hdel(UNACKED, tag).srem(held, tag);
    await multi.exec();
  }

  /**
   * @internal Puts an unacked message back at the head of its queue, marked redelivered, unless
   * someone else already did. Returns true when this call restored it.
   */
  async restoreOne(tag: string, held: string = UNACKED): Promise<boolean> {
    const client = this.client;
    const value = await client.hget(UNACKED, tag);
    if (!value) {
      if (held !== UNACKED) await client.srem(held, tag);
      return false;
    }
    const [envelope, , routingKey] = JSON.parse(value) as [Envelope, string, string];
    const list = queueKey(routingKey, envelope.properties?.priority ?? 0);
    return (await client.celeriacRestoreOne(UNACKED, UNACKED_INDEX, list, held, tag, JSON.stringify(markRedelivered(envelope)))) === 1;
  }

  /**
   * @internal Gives back what a consumer holds but was never handed: messages a take recorded
   * while its reply was lost with the connection.
   */
  async reclaim(held: string, handedOut: ReadonlySet<string>, takingKeys: readonly string[] = []): Promise<number> {
    let restored = 0;
    for (const key of takingKeys) {
      const queue = parseTakingKey(key)!.queue;
      for (const raw of await this.client.lrange(key, 0, -1)) {
        const tag = tagOf(tryParse(raw));
        if (tag && handedOut.has(tag)) await this.adopt(key, held, queue, raw, tag);
        else if ((await this.client.celeriacReturnTaken(key, queueKey(queue, 0), raw, raw)) === 1) restored++;
      }
    }
    for (const tag of await this.client.smembers(held)) {
      if (!handedOut.has(tag) && (await this.restoreOne(tag, held))) restored++;
    }
    return restored;
  }

  /**
   * @internal Parks an unacked message in its list's delayed set until `notBefore` (ms), in one
   * step; a consumer of the list moves it back then.
   */
  async postpone(tag: string, held: string, listKey: string, raw: string, notBefore: number): Promise<void> {
    await this.client.celeriacPostpone(UNACKED, UNACKED_INDEX, held, delayedKeyOf(listKey), tag, notBefore, raw);
    this.#delayed.parked(notBefore);
  }

  /**
   * @internal Records a message a blocking wait moved into `takingKey` as unacked and held, as a
   * take does. Resolves false when it was no longer there.
   */
  async adopt(takingKey: string, held: string, queue: string, raw: string, tag: string): Promise<boolean> {
    return (await this.client.celeriacAdopt(takingKey, UNACKED, UNACKED_INDEX, held, nowSeconds(), queue, raw, tag)) === 1;
  }

  /** @internal A consumer handed out a delivery: from now on a task may block the event loop (see lease-keeper.ts). */
  busy(): void {
    this.#keeper.busy();
  }

  /** @internal True while leases are renewed from the keeper thread (deliveries were handed out lately). */
  get keeperThreadRunning(): boolean {
    return this.#keeper.threadRunning;
  }

  /** @internal Stops renewing a consumer's lease; resolves once no renewal of it can follow. */
  async release(consumer: RedisConsumer): Promise<void> {
    if (this.#consumers.delete(consumer)) this.#delayed.unwatch(consumer.queues.flatMap(queueKeys));
    await this.#keeper.release(consumer.id);
  }

  /**
   * kombu's visibility restore, under `unacked_mutex`: puts every unacked message older than the
   * visibility timeout back at the head of its queue, marked redelivered. celeriac also gives
   * back at once what celeriac consumers that stopped renewing their lease still held.
   */
  restoreVisible(): Promise<number> {
    // One at a time, and close() waits for it: a restore cut off by quit would leave the mutex
    // held for its full five minutes, stopping every worker's restores, Python's included.
    this.#restoring ??= this.#restoreVisible().finally(() => (this.#restoring = undefined));
    return this.#restoring;
  }

  async #restoreVisible(): Promise<number> {
    const client = this.client;
    const token = randomUUID();
    if ((await client.set(UNACKED_MUTEX, token, 'PX', 300_000, 'NX')) !== 'OK') return 0;
    let restored = 0;
    try {
      for (const tag of await client.zrangebyscore(UNACKED_INDEX, '-inf', nowSeconds() - this.#visibilitySeconds)) {
        if (await this.restoreOne(tag)) restored++;
      }
      restored += await this.#restoreDeadConsumers();
    } finally {
      await client.celeriacReleaseMutex(UNACKED_MUTEX, token);
    }
    return restored;
  }

  /**
   * What consumers whose lease key expired (they are gone) still hold: their held sets and their
   * taking lists, found in one SCAN of the keyspace.
   */
  async #restoreDeadConsumers(): Promise<number> {
    const client = this.client;
    let restored = 0;
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', 'celeriac.[ht]*', 'COUNT', 1000);
      cursor = next;
      for (const key of keys) {
        if (key.startsWith(HELD_PREFIX)) restored += await this.#restoreIfDead(key);
        else if (key.startsWith(TAKING_PREFIX)) restored += await this.#returnIfDead(key);
      }
    } while (cursor !== '0');
    return restored;
  }

  async #restoreIfDead(held: string): Promise<number> {
    const client = this.client;
    if (await client.exists(aliveKeyOf(held.slice(HELD_PREFIX.length)))) return 0;
    let restored = 0;
    for (const tag of await client.smembers(held)) if (await this.restoreOne(tag, held)) restored++;
    await client.del(held);
    return restored;
  }

  /** A dead consumer's taking list goes back to its queue, marked redelivered. */
  async #returnIfDead(key: string): Promise<number> {
    const client = this.client;
    const taking = parseTakingKey(key);
    if (!taking || (await client.exists(aliveKeyOf(taking.consumerId)))) return 0;
    let returned = 0;
    for (const raw of await client.lrange(key, 0, -1)) {
      const envelope = tryParse(raw);
      const list = queueKey(taking.queue, envelope?.properties.priority ?? 0);
      if ((await client.celeriacReturnTaken(key, list, raw, envelope ? JSON.stringify(markRedelivered(envelope)) : raw)) === 1) returned++;
    }
    return returned;
  }

  async purge(queue: string): Promise<number> {
    const keys = queueKeys(queue);
    const multi = this.client.multi();
    for (const key of keys) multi.llen(key);
    multi.del(...keys);
    const results = (await multi.exec()) ?? [];
    return results.slice(0, keys.length).reduce((sum, [, count]) => sum + Number(count), 0);
  }

  async queueLength(queue: string): Promise<number> {
    const pipeline = this.client.pipeline();
    for (const key of queueKeys(queue)) pipeline.llen(key);
    const results = (await pipeline.exec()) ?? [];
    return results.reduce((sum, [, count]) => sum + Number(count), 0);
  }

  async listQueues(): Promise<string[]> {
    const names = new Set<string>();
    let cursor = '0';
    do {
      const [next, keys] = await this.client.scan(cursor, 'MATCH', '_kombu.binding.*', 'COUNT', 1000);
      cursor = next;
      for (const key of keys) names.add(key.slice('_kombu.binding.'.length));
    } while (cursor !== '0');
    return [...names].filter((name) => !name.startsWith('celeryev') && !name.includes('pidbox')).sort();
  }

  async listDeadLetters(limit = 100): Promise<DeadLetter[]> {
    const queues = new Set([...this.#declared, ...(await this.listQueues())]);
    const letters: DeadLetter[] = [];
    for (const queue of queues) {
      for (const text of await this.client.lrange(deadLetterKey(queue), 0, limit - 1)) {
        const entry = JSON.parse(text) as { reason: string; at: number; queue: string; raw: string };
        letters.push({ queue: entry.queue, reason: entry.reason, at: entry.at, message: parseRaw(entry.raw) });
      }
    }
    return letters.sort((a, b) => a.at - b.at).slice(-limit);
  }

  async removeDeadLetter(letter: Pick<DeadLetter, 'queue' | 'at' | 'message'>): Promise<boolean> {
    const key = deadLetterKey(letter.queue);
    for (const text of await this.client.lrange(key, 0, -1)) {
      const entry = JSON.parse(text) as { at: number; raw: string };
      if (entry.at === letter.at && sameDeadLetter({ queue: letter.queue, at: entry.at, message: parseRaw(entry.raw) }, letter)) return (await this.client.lrem(key, 1, text)) === 1;
    }
    return false;
  }

  async close(): Promise<void> {
    const client = this.#client;
    if (!client) return;
    clearInterval(this.#restoreTimer);
    this.#restoreTimer = undefined;
    await this.#restoring?.catch(() => undefined);
    for (const consumer of [...this.#consumers]) await consumer.close();
    await this.#delayed.close();
    await this.#keeper.close();
    this.#client = undefined;
    await client.quit().catch(() => client.disconnect());
  }
}

/** One consumer: takes in batches while messages wait, waits without taking while none do. */
class RedisConsumer implements Consumer {
  /**
   * What it holds against its prefetch. Tasks that ran stop counting while they are recorded, so
   * a worker's next tasks arrive while the last ones' results are stored and acked (two round
   * trips) instead of after: no-ops at concurrency 1 (prefetch 4) from 9.0k to 11.0k/s in a
   * worker process.
   */
  readonly #window: PrefetchWindow<RedisDelivery>;
  readonly id = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  /** The set of tags this consumer has taken and not yet settled. */
  readonly heldKey = heldKeyOf(this.id);
  /** This consumer's lease: while it exists, what it holds is not given back to others. */
  readonly aliveKey = aliveKeyOf(this.id);
  #cancelled = false;
  /**
   * After a failed round trip or a reconnect, a take may have been recorded whose reply never
   * came (ioredis may even send it again, taking other messages): what this consumer holds but
   * was never handed is given back on the next turn, and every RECLAIM_INTERVAL_MS in any case.
   * The loop is the only taker, so no take of its own is in flight while it reclaims.
   */
  #reclaimDue = false;
  #lastReclaim = Date.now();
  #retiring: Promise<void> | undefined;
  #slotFreed: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  /** One wait in flight per queue's connection, shared by loop turns until it returns. */
  readonly #waits = new Map<RedisClient, Promise<unknown>>();
  #lastTurn = Date.now();
  /** A take is on its way (the loop's, or one riding on acks): no other take or reclaim starts meanwhile. */
  #taking = false;
  /** Acks of one event-loop turn go to Redis together, with the take that refills their slots when one is due. */
  readonly #acks = new Batcher<RedisDelivery>((_, deliveries) => this.#sendAcks(deliveries));
  #watchdog: NodeJS.Timeout | undefined;
  #lastCheck = Date.now();
  /**
   * Takes wait until a quarter of the prefetch is free (at least one slot) and take at most a
   * quarter: a busy consumer refills in batches instead of one round trip per finished task,
   * and its batches stay staggered through take → run → store → ack instead of moving in
   * lockstep (measured: 11k → 14k tasks/s at concurrency 50, prefetch 200). A small prefetch
   * waits for {@link MIN_TAKE} free slots while the tasks waiting in the worker last (the
   * prefetch beyond the concurrency), never while a slot would idle: at concurrency 1 and
   * prefetch 4, taking one at a time cost 2.7 socket writes per no-op task, taking four 0.8.
   */
  #batch: number;
  /** Per queue, the list its blocking wait moves a message into (see consumer-lease.ts). */
  readonly #takingKeys: readonly string[];

  constructor(
    readonly broker: RedisBroker,
    private readonly waiters: readonly RedisClient[],
    readonly queues: readonly string[],
    private readonly onDelivery: (delivery: Delivery) => void,
    prefetch: number,
    private readonly stallMs: number,
    private readonly concurrency: number | undefined,
  ) {
    this.#window = new PrefetchWindow(prefetch);
    this.#batch = this.#batchFor(prefetch);
    this.#takingKeys = queues.map((queue) => takingKeyOf(this.id, queue));
  }

  #batchFor(prefetch: number): number {
    const waitingInWorker = prefetch - (this.concurrency ?? prefetch);
    return Math.max(Math.floor(prefetch / 4), Math.min(waitingInWorker + 1, MIN_TAKE), 1);
  }

  setPrefetch(count: number): void {
    this.#window.prefetch = count;
    this.#batch = this.#batchFor(count);
    const wake = this.#slotFreed;
    this.#slotFreed = undefined;
    wake?.();
  }

  /** Gives back, on the next turn, what was recorded as held but never handed out. */
  reclaimSoon(): void {
    this.#reclaimDue = true;
  }

  start(): void {
    void this.broker.client.set(this.aliveKey, '1', 'PX', this.broker.leaseMs).catch(() => undefined);
    this.#loop = this.#run();
    this.#lastCheck = Date.now();
    this.#watchdog = setInterval(() => this.#checkStalled(), this.#checkEvery());
  }

  async #run(): Promise<void> {
    while (!this.#cancelled) {
      this.#lastTurn = Date.now();
      const { free } = this.#window;
      if (free < this.#batch || this.#taking) {
        await new Promise<void>((resolve) => (this.#slotFreed = resolve));
        continue;
      }
      try {
        if (this.#reclaimDue || Date.now() - this.#lastReclaim > RECLAIM_INTERVAL_MS) {
          // A taking list whose wait is in flight may be about to hand its message out: not now.
          const idleTakings = this.#takingKeys.filter((_, i) => !this.#waits.has(this.waiters[i]!));
          await this.broker.reclaim(this.heldKey, new Set([...this.outstanding].map((delivery) => delivery.tag)), idleTakings);
          this.#reclaimDue = false;
          this.#lastReclaim = Date.now();
        }
        this.#taking = true;
        const taken = await this.broker.take(this.queues, Math.min(free, this.#batch), this.heldKey).finally(() => (this.#taking = false));
        for (const item of taken) this.#deliver(item);
        if (taken.length === 0) await this.#waitForMessages();
      } catch {
        if (this.#cancelled) return;
        this.#reclaimDue = true;
        await new Promise((resolve) => setTimeout(resolve, 500)); // the connection is recovering
      }
    }
  }

  /**
   * Resolves when a message arrives on any queue's main list, or after BLOCK_SECONDS. The wait
   * is `BLMOVE` into the queue's taking list: a message that arrives is handed out at once, and
   * recorded as unacked by the round trip that follows instead of before it.
   */
  #waitForMessages(): Promise<unknown> {
    return Promise.race(
      this.queues.map((queue, i) => {
        const waiter = this.waiters[i]!;
        let wait = this.#waits.get(waiter);
        if (!wait) {
          const takingKey = this.#takingKeys[i]!;
          wait = waiter
            .blmove(queue, takingKey, 'RIGHT', 'LEFT', BLOCK_SECONDS)
            .then((raw) => {
              if (raw !== null) this.#deliver({ queue, raw, takingKey });
            })
            .finally(() => this.#waits.delete(waiter));
          this.#waits.set(waiter, wait);
        }
        return wait;
      }),
    );
  }

  #checkEvery(): number {
    return Math.max(250, this.stallMs / 3);
  }

  /**
   * The watchdog: a loop that neither turns nor waits for a free slot is stuck on a dead socket.
   * When the watchdog itself ran late, the event loop was blocked (a task), not the socket: the
   * loop gets a fresh stall timeout to turn in.
   */
  #checkStalled(): void {
    const now = Date.now();
    const blocked = now - this.#lastCheck > 2 * this.#checkEvery();
    this.#lastCheck = now;
    if (blocked) this.#lastTurn = now;
    if (this.#cancelled || this.#slotFreed || now - this.#lastTurn < this.stallMs) return;
    this.broker.emit('warning', { message: `the Redis consumer of ${this.queues.join(', ')} has not heard from ${this.broker.displayUrl} in ${Math.round((Date.now() - this.#lastTurn) / 1000)} s; reconnecting` });
    this.#lastTurn = Date.now();
    for (const waiter of this.waiters) waiter.disconnect(true);
    this.broker.client.disconnect(true);
  }

  #deliver(item: Taken): void {
    const delivery = new RedisDelivery(this, item);
    if (item.takingKey) {
      if (this.#cancelled) {
        void this.broker.client.celeriacReturnTaken(item.takingKey, queueKey(item.queue, 0), item.raw, item.raw).catch(() => undefined);
        return;
      }
      // Recorded once the task has started, and written at the end of the tick (an idle worker's
      // enqueue→start p50: 0.74 → 0.63 ms for the write, 0.15 ms less again for the command
      // built after the start), but always before anything that settles the delivery, on the
      // same connection: Redis runs them in order.
      const { takingKey, queue, raw } = item;
      delivery.recordFirst(() => {
        writeAtTickEnd(this.broker.client);
        this.#adopt(takingKey, queue, raw, delivery.tag);
      });
    } else if (this.#cancelled) {
      void delivery.reject(true).catch(() => undefined);
      return;
    }
    this.#window.add(delivery);
    this.broker.busy();
    if (delivery.holdUntil > nowSeconds()) {
      delivery.recorded();
      void this.broker.hold(delivery.tag, delivery.holdUntil).catch(() => undefined);
    }
    try {
      this.onDelivery(delivery);
    } finally {
      delivery.recorded();
    }
  }

  /** Every delivery handed out and not yet settled. */
  get outstanding(): ReadonlySet<RedisDelivery> {
    return this.#window.outstanding;
  }

  /** @internal `delivery`'s task ran: it no longer counts against the prefetch (see {@link #window}). */
  ran(delivery: RedisDelivery): void {
    if (!this.#window.ran(delivery)) return;
    const wake = this.#slotFreed;
    this.#slotFreed = undefined;
    wake?.();
  }

  /** @internal Acks `delivery` with the others of this turn. */
  ack(delivery: RedisDelivery): Promise<void> {
    return this.#acks.add('', delivery);
  }

  /**
   * Sends a turn's acks. When the loop is parked until slots free up and these acks free
   * enough, the take that refills them rides in the same call (as a job queue that hands out
   * the next job with the last one's completion does): one round trip fewer per batch.
   */
  async #sendAcks(deliveries: RedisDelivery[]): Promise<void> {
    const tags = deliveries.map((delivery) => delivery.tag);
    const freeAfter = this.#window.freeAfter(deliveries);
    if (this.#cancelled || this.#taking || !this.#slotFreed || freeAfter < this.#batch) {
      await this.broker.ack(this.heldKey, tags);
      return;
    }
    this.#taking = true;
    try {
      const taken = await this.broker.take(this.queues, Math.min(freeAfter, this.#batch), this.heldKey, tags);
      for (const item of taken) this.#deliver(item);
    } catch (error) {
      this.#reclaimDue = true; // a take may have been recorded whose reply was lost
      throw error;
    } finally {
      this.#taking = false;
    }
  }

  #adopt(takingKey: string, queue: string, raw: string, tag: string): void {
    this.broker.adopt(takingKey, this.heldKey, queue, raw, tag).then(
      (recorded) => {
        if (!recorded) this.broker.emit('warning', { message: `a message taken from ${queue} by ${this.id} was given back before it was recorded; it may run twice` });
      },
      () => (this.#reclaimDue = true), // the next reclaim records it (or gives it back if it never got here)
    );
  }

  settled(delivery: RedisDelivery): void {
    this.#window.settled(delivery);
    const wake = this.#slotFreed;
    this.#slotFreed = undefined;
    wake?.();
    if (this.#cancelled && this.outstanding.size === 0) void this.#retire();
  }

  /** Once cancelled and with nothing left to settle: drop the lease (renewed until now). */
  #retire(): Promise<void> {
    this.#retiring ??= (async () => {
      try {
        await this.broker.release(this);
        await this.broker.reclaim(this.heldKey, new Set(), this.#takingKeys);
        await this.broker.client.del(this.heldKey, this.aliveKey);
      } catch {
        // the broker closed first: the lease lapses and the held set is swept by others
      }
    })();
    return this.#retiring;
  }

  async cancel(): Promise<void> {
    if (this.#cancelled) return;
    this.#cancelled = true;
    clearInterval(this.#watchdog);
    this.#slotFreed?.();
    for (const waiter of this.waiters) waiter.disconnect();
    await this.#loop;
    if (this.outstanding.size === 0) await this.#retire();
  }

  /** Cancels and gives back everything unsettled (the broker is closing), then its lease. */
  async close(): Promise<void> {
    await this.cancel();
    await Promise.all([...this.outstanding].map((delivery) => delivery.reject(true).catch(() => undefined)));
    await this.#retire();
  }
}

class RedisDelivery extends OnceSettledDelivery {
  readonly message: TransportMessage;
  readonly queue: string;
  readonly redelivered: boolean;
  readonly tag: string;
  /** The unacked entry's date in seconds: its ETA when that is later than now. */
  readonly holdUntil: number;
  readonly #raw: string;
  /** Its priority, which names the list it came from (the queue's, or one of its priority lists). */
  readonly #priority: number;
  /** Records it as unacked, while that is still to do (a message a blocking wait handed out). */
  #record: (() => void) | undefined;

  constructor(
    private readonly consumer: RedisConsumer,
    item: Taken,
  ) {
    super();
    this.queue = item.queue;
    this.#raw = item.raw;
    const envelope = tryParse(item.raw);
    this.tag = item.tag ?? tagOf(envelope);
    this.message = messageOf(envelope, item.raw);
    this.#priority = envelope?.properties.priority ?? 0;
    const envelopeRedelivered = (this.message.headers['redelivered'] ?? false) === true;
    this.redelivered = envelopeRedelivered;
    const eta = typeof this.message.headers['eta'] === 'string' ? parseIsoDate(this.message.headers['eta']) : null;
    this.holdUntil = eta ? eta.getTime() / 1000 : 0;
  }

  ran(): void {
    this.consumer.ran(this);
  }

  /** Defers recording it as unacked to {@link recorded}, which anything that settles it calls first. */
  recordFirst(record: () => void): void {
    this.#record = record;
  }

  /** Sends the command that records it as unacked, if it is still to send. */
  recorded(): void {
    const record = this.#record;
    this.#record = undefined;
    record?.();
  }

  postpone(notBefore: number): Promise<void> {
    this.recorded();
    const { broker, heldKey } = this.consumer;
    return this.settleOnceBy(() => broker.postpone(this.tag, heldKey, queueKey(this.queue, this.#priority), this.#raw, notBefore));
  }

  protected settle(settlement: Settlement): Promise<void> | void {
    this.recorded();
    // Acks of one turn go out together (the batch's promise, no async function around it: one
    // per task); the rest change more than the unacked records.
    if (settlement.kind === 'ack') return this.tag ? this.consumer.ack(this) : undefined;
    return this.#forget(settlement);
  }

  async #forget(settlement: Exclude<Settlement, { kind: 'ack' }>): Promise<void> {
    const { broker, heldKey } = this.consumer;
    await broker.forgetUnacked(this.tag, heldKey, (multi) => {
      if (settlement.kind === 'dead-letter') {
        multi.lpush(deadLetterKey(this.queue), JSON.stringify({ reason: settlement.reason, at: Date.now(), queue: this.queue, raw: this.#raw }));
      } else if (settlement.kind === 'reject' && settlement.requeue) {
        const envelope = tryParse(this.#raw);
        const key = queueKey(this.queue, envelope?.properties?.priority ?? 0);
        multi.rpush(key, envelope ? JSON.stringify(markRedelivered(envelope)) : this.#raw);
      }
    });
  }

  protected done(): void {
    this.consumer.settled(this);
  }
}

/** Where celeriac moves messages it cannot process: a list beside the queue. */
export function deadLetterKey(queue: string): string {
  return `${queue}.celeriac.dead`;
}

function tryParse(raw: string): Envelope | null {
  try {
    const envelope = JSON.parse(raw) as Envelope;
    return typeof envelope === 'object' && envelope !== null && typeof envelope.properties === 'object' ? envelope : null;
  } catch {
    return null;
  }
}

/**
 * The message inside a raw list entry. An entry that is not a kombu envelope becomes a message
 * whose body is the raw text, so the worker's decoder refuses it with a reason and it is moved
 * aside rather than lost.
 */
function parseRaw(raw: string): TransportMessage {
  return messageOf(tryParse(raw), raw);
}

function messageOf(envelope: Envelope | null, raw: string): TransportMessage {
  if (envelope && typeof envelope.body === 'string') return fromEnvelope(envelope);
  return { headers: {}, properties: {}, contentType: 'application/json', contentEncoding: 'utf-8', body: Buffer.from(raw, 'utf8') };
}

/** An envelope's delivery tag, or '' (a message with none is not recorded as unacked). */
function tagOf(envelope: Envelope | null): string {
  const tag = envelope?.properties.delivery_tag;
  return typeof tag === 'string' ? tag : '';
}

function nowSeconds(): number {
  return Date.now() / 1000;
}
