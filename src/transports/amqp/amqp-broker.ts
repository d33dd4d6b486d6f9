/**
 * `amqp://` and `amqps://`: RabbitMQ with Celery's exchanges and queues (see topology.ts), so
 * Python Celery workers and clients share them.
 *
 * - Publishing goes through one confirm channel; many publishes share the broker's confirms
 *   (they are acknowledged in batches), and a publish resolves only once RabbitMQ has it. A
 *   publish whose confirm is lost with the connection is sent again on the next connection,
 *   then reported if that fails too; nothing is dropped in silence.
 * - Each consumer has its own channel with `basic.qos` set to its prefetch; acks are manual.
 *   Consumers (and the pidbox and event subscriptions) share a connection of their own, opened
 *   with the first of them, as a Celery worker keeps its consumer apart from its producers. That
 *   connection's heartbeats are kept by a relay thread (see session.ts), so a task that blocks
 *   the event loop does not make RabbitMQ drop it and requeue what the worker runs; publishing
 *   stays one hop from the server (a blocked loop only makes it reconnect, and publishes retry).
 * - ETA messages go through the delay levels, so RabbitMQ, not worker memory, holds them.
 * - The connection reopens by itself; consumers and declarations come back with it.
 * - Control commands and replies (pidbox.ts) and events (events.ts) use Celery's exchanges.
 */
import { OnceSettledDelivery, type Settlement } from '../../brokers/delivery.js';
import { TypedEmitter, type BrokerEventMap } from '../../events.js';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import { ChannelSlot } from './channel-slot.js';
import { AmqpSession } from './session.js';
import { ConfigurationError, ConnectionError, NotConnectedError } from '../../errors.js';
import type { TransportMessage } from '../../protocol/message.js';
import { numberOption, type ParsedUrl } from '../../url.js';
import type {
  Broker,
  BrokerCapabilities,
  ConsumeOptions,
  Consumer,
  DeadLetter,
  Delivery,
  PublishOptions,
  QueueDeclaration,
} from '../../brokers/broker.js';
import { sameDeadLetter } from '../../brokers/dead-letters.js';
import { AmqpPidbox } from './pidbox.js';
import { AmqpEvents } from './events.js';
import { ChannelAcks, type Tracked } from './channel-acks.js';
import { clampPriority } from '../../brokers/priority.js';
import { drainedOrClosed } from './exchange-publisher.js';
import {
  bindTaskQueue,
  DEAD_AT_HEADER,
  DEAD_LETTER_EXCHANGE,
  DEAD_REASON_HEADER,
  deadLetterQueue,
  declareSharedEntities,
  declareTaskQueue,
  DELAY_ENTRY_EXCHANGE,
  delayedRoutingKey,
  isBrokerDeathHeader,
  type TaskQueueShape,
} from './topology.js';

/** How many times a publish is sent before its failure is reported. */
const PUBLISH_ATTEMPTS = 3;
/** How long a publish waits for a lost connection to come back before each attempt. */
const RECONNECT_WAIT_MS = 30_000;

type PublishItem = { queue: string; message: TransportMessage; options?: PublishOptions };

/** The RabbitMQ broker. */
export class AmqpBroker extends TypedEmitter<BrokerEventMap> implements Broker {
  readonly capabilities: BrokerCapabilities;
  readonly displayUrl: string;
  readonly control: AmqpPidbox;
  readonly events: AmqpEvents;
  readonly #session: AmqpSession;
  /** The consumers' connection (heartbeats kept by the relay thread), opened with the first of them. */
  #consumerSession: AmqpSession | undefined;
  readonly #url: ParsedUrl;
  readonly #shape: TaskQueueShape;
  readonly #consumers = new Set<AmqpConsumer>();
  /** Queues declared on the current connection; cleared when it drops. */
  #declared = new Map<string, Promise<void>>();
  /** How queues are bound, from the app's queue declarations; others get Celery's default. */
  readonly #declarations = new Map<string, QueueDeclaration>();
  /** Declarations; RabbitMQ closes this channel on a refused declaration, so it is replaced. */
  readonly #topology = new ChannelSlot<Channel>(async () => (await this.#session.current()).createChannel());
  /** Publishing, with confirms. */
  readonly #publisher = new ChannelSlot<ConfirmChannel>(async () => (await this.#readyConnection()).createConfirmChannel());
  /** Called with a warning the user should see (a queue declared differently elsewhere...). */

  constructor(url: ParsedUrl) {
    super();
    this.displayUrl = url.display;
    const maxPriority = url.options.get('max_priority');
    const queueType = url.options.get('queue_type') ?? 'classic';
    if (queueType !== 'classic' && queueType !== 'quorum') {
      throw new ConfigurationError(`URL option queue_type=${queueType} in ${url.display}: use classic or quorum`);
    }
    this.#shape = { maxPriority: maxPriority === null ? null : Math.min(255, numberOption(url.options, 'max_priority', 0)), queueType };
    this.capabilities = { delayedDelivery: true, priorities: this.#shape.maxPriority !== null, durable: true, shared: true, exchanges: true };
    this.#url = url;
    this.#session = new AmqpSession(url);
    this.#session.onLost = () => {
      this.#declared = new Map();
      this.#topology.reset();
      this.#publisher.reset();
    };
    this.control = new AmqpPidbox(this.#session, () => this.consumerSession());
    this.events = new AmqpEvents(this.#session, () => this.consumerSession());
  }

  /** @internal The consumers' connection, opened on first use. */
  async consumerSession(): Promise<AmqpSession> {
    if (!this.#consumerSession) {
      const session = new AmqpSession(this.#url, { relay: true });
      this.#consumerSession = session;
      try {
        await session.connect();
      } catch (error) {
        this.#consumerSession = undefined;
        throw error;
      }
    }
    await this.#consumerSession.connect();
    return this.#consumerSession;
  }

  async connect(): Promise<void> {
    await this.#session.connect();
    await this.#session.addSetup(async (connection) => {
      const channel = await connection.createChannel();
      await declareSharedEntities(channel);
      await channel.close();
    });
  }

  declareQueues(declarations: readonly QueueDeclaration[]): void {
    for (const declaration of declarations) this.#declarations.set(declaration.name, declaration);
  }

  async publish(queue: string, message: TransportMessage, options: PublishOptions = {}): Promise<void> {
    await this.publishMany([{ queue, message, options }]);
  }

  async publishMany(items: readonly PublishItem[]): Promise<void> {
    let pending = [...items];
    for (let attempt = 1; pending.length > 0; attempt++) {
      const failed: PublishItem[] = [];
      let lastError: unknown;
      try {
        const channel = await this.#publisher.get();
        for (const queue of this.#queuesToDeclare(pending)) await this.declareQueue(queue);
        const confirms: Array<Promise<unknown>> = [];
        for (const item of pending) {
          const { confirmed, flowing } = this.#send(channel, item);
          confirms.push(confirmed.catch((error: unknown) => ((lastError = error), failed.push(item))));
          // The socket's buffer is full: let it empty (or the channel close, failing what is left).
          if (!flowing) await drainedOrClosed(channel);
        }
        await Promise.all(confirms);
      } catch (error) {
        if (error instanceof NotConnectedError) throw error; // trying again cannot help
        lastError = error;
        failed.splice(0, failed.length, ...pending);
      }
      pending = failed;
      if (pending.length > 0 && attempt >= PUBLISH_ATTEMPTS) {
        throw new ConnectionError(`RabbitMQ at ${this.displayUrl} did not confirm ${pending.length} of ${items.length} published message(s): ${describe(lastError)}`, {
          cause: lastError,
        });
      }
    }
  }

  /**
   * The queues a batch needs declared first: each queue published to directly, and, for a
   * publish through an exchange, the queue it is meant for when the app declared how that queue
   * is bound (as Celery declares a known queue's entities before routing to it).
   */
  #queuesToDeclare(items: readonly PublishItem[]): Set<string> {
    return new Set(items.filter((item) => !item.options?.exchange || this.#declarations.has(item.queue)).map((item) => item.queue));
  }

  /** Sends one message; `confirmed` settles with RabbitMQ's confirm, `flowing` is false when the socket is backed up. */
  #send(channel: ConfirmChannel, { queue, message, options = {} }: PublishItem): { confirmed: Promise<void>; flowing: boolean } {
    const priority = options.priority ?? (message.properties.priority as number | undefined);
    const properties = publishProperties(message, priority === undefined ? undefined : clampPriority(priority));
    const delay = options.notBefore === undefined ? 0 : options.notBefore - Date.now();
    // Straight to the queue through the default exchange, as Celery does, unless an exchange
    // is named; an ETA goes by way of the delay levels to the queue whatever the exchange.
    const [exchange, routingKey] =
      delay > 0 ? [DELAY_ENTRY_EXCHANGE, delayedRoutingKey(queue, delay)] : options.exchange ? [options.exchange, options.routingKey ?? queue] : ['', queue];
    let flowing = true;
    const confirmed = new Promise<void>((resolve, reject) => {
      flowing = channel.publish(exchange, routingKey, message.body, properties, (error) => (error ? reject(error) : resolve()));
    });
    return { confirmed, flowing };
  }

  #readyConnection(): Promise<ChannelModel> {
    return withTimeout(this.#session.ready(), RECONNECT_WAIT_MS, `RabbitMQ at ${this.displayUrl} is unreachable`);
  }

  /**
   * @internal Declares a task queue as Celery does, once per connection. When the queue exists
   * with other arguments (declared by another client with a different max priority or type),
   * RabbitMQ refuses the declaration; the queue is then used as it is, with a warning.
   */
  declareQueue(queue: string): Promise<void> {
    let declared = this.#declared.get(queue);
    if (!declared) {
      declared = this.#declareQueue(queue);
      this.#declared.set(queue, declared);
      declared.catch(() => this.#declared.delete(queue));
    }
    return declared;
  }

  async #declareQueue(queue: string): Promise<void> {
    try {
      await declareTaskQueue(await this.#topology.get(), this.#declarationOf(queue), this.#shape);
    } catch (error) {
      if (!/PRECONDITION_FAILED|inequivalent/i.test(describe(error))) throw error;
      this.emit('warning', { message: `queue ${queue} exists with other arguments than this URL asks for (${describe(error)}); using it as it is` });
      const channel = await this.#topology.get();
      await channel.checkQueue(queue);
      await bindTaskQueue(channel, this.#declarationOf(queue));
    }
  }

  #declarationOf(queue: string): QueueDeclaration {
    return this.#declarations.get(queue) ?? { name: queue };
  }

  async consume(queues: readonly string[], onDelivery: (delivery: Delivery) => void, options: ConsumeOptions): Promise<Consumer> {
    const session = await this.consumerSession();
    const consumer = new AmqpConsumer(this, session, [...queues], onDelivery, options.prefetch, this.#shape.queueType === 'quorum');
    this.#consumers.add(consumer);
    await session.addSetup(consumer.setup);
    return consumer;
  }

  /** @internal */
  release(consumer: AmqpConsumer): void {
    this.#consumers.delete(consumer);
    this.#consumerSession?.removeSetup(consumer.setup);
  }

  /** @internal Publishes a dead letter for `queue` and resolves once it is confirmed. */
  async publishDeadLetter(queue: string, message: TransportMessage, reason: string): Promise<void> {
    const channel = await this.#publisher.get();
    await this.declareQueue(queue);
    const properties = publishProperties({ ...message, headers: { ...message.headers, [DEAD_REASON_HEADER]: reason, [DEAD_AT_HEADER]: Date.now() } }, undefined);
    await new Promise<void>((resolve, reject) =>
      channel.publish(DEAD_LETTER_EXCHANGE, queue, message.body, properties, (error) => (error ? reject(error) : resolve())),
    );
  }

  async purge(queue: string): Promise<number> {
    await this.declareQueue(queue);
    const { messageCount } = await (await this.#topology.get()).purgeQueue(queue);
    return messageCount;
  }

  async queueLength(queue: string): Promise<number> {
    await this.declareQueue(queue);
    const { messageCount } = await (await this.#topology.get()).checkQueue(queue);
    return messageCount;
  }

  /** Reads (and leaves in place) the dead letters of the queues this broker has declared. */
  async listDeadLetters(limit = 100): Promise<DeadLetter[]> {
    const connection = await this.#readyConnection();
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    const letters: DeadLetter[] = [];
    try {
      for (const queue of this.#declared.keys()) {
        for (let message = await channel.get(deadLetterQueue(queue)); message; message = await channel.get(deadLetterQueue(queue))) {
          const transport = toTransportMessage(message);
          const { [DEAD_REASON_HEADER]: reason, [DEAD_AT_HEADER]: at, ...headers } = transport.headers;
          letters.push({ queue, reason: typeof reason === 'string' ? reason : 'unknown', at: Number(at ?? 0), message: { ...transport, headers } });
        }
      }
    } finally {
      await channel.close().catch(() => undefined); // unacked gets go back to their queues
    }
    return letters.sort((a, b) => a.at - b.at).slice(-limit);
  }

  /** Reads the queue's dead letters, acks the one named, and lets the rest go back. */
  async removeDeadLetter(letter: Pick<DeadLetter, 'queue' | 'at' | 'message'>): Promise<boolean> {
    const connection = await this.#readyConnection();
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    try {
      const source = deadLetterQueue(letter.queue);
      for (let message = await channel.get(source); message; message = await channel.get(source)) {
        const transport = toTransportMessage(message);
        if (sameDeadLetter({ queue: letter.queue, at: Number(transport.headers[DEAD_AT_HEADER] ?? 0), message: transport }, letter)) {
          channel.ack(message);
          return true;
        }
      }
      return false;
    } finally {
      await channel.close().catch(() => undefined); // unacked gets go back to their queue
    }
  }

  async close(): Promise<void> {
    for (const consumer of [...this.#consumers]) await consumer.cancel();
    const consumerSession = this.#consumerSession;
    this.#consumerSession = undefined;
    await consumerSession?.close();
    await this.#session.close();
  }
}

/**
 * One consumer: a channel with its own prefetch, consuming every queue it was given. Its
 * channel is opened again whenever it closes, whether with the connection (the session runs
 * {@link AmqpConsumer.setup} on the new one) or alone (RabbitMQ closes a channel on a
 * `consumer_timeout` or a refused operation, and the consumer reopens it itself).
 */
class AmqpConsumer implements Consumer {
  #channel: Channel | undefined;
  #channelConnection: ChannelModel | undefined;
  #acks: ChannelAcks | undefined;
  #tags: string[] = [];
  #cancelled = false;
  #opening: Promise<void> = Promise.resolve();
  readonly #outstanding = new Set<AmqpDelivery>();

  constructor(
    readonly broker: AmqpBroker,
    private readonly session: AmqpSession,
    private readonly queues: readonly string[],
    private readonly onDelivery: (delivery: Delivery) => void,
    private prefetch: number,
    private readonly quorum: boolean,
  ) {}

  setPrefetch(count: number): void {
    this.prefetch = count;
    // basic.qos again on the open channel; a channel opened later starts with the new count.
    this.#channel?.prefetch(count, this.queues.length > 1 && !this.quorum).catch(() => undefined);
  }

  /** Opens the channel on `connection` and consumes, unless that is done already. */
  readonly setup = (connection: ChannelModel): Promise<void> => {
    this.#opening = this.#opening.catch(() => undefined).then(() => this.#open(connection));
    return this.#opening;
  };

  async #open(connection: ChannelModel): Promise<void> {
    if (this.#cancelled || (this.#channel && this.#channelConnection === connection)) return;
    for (const queue of this.queues) await this.broker.declareQueue(queue);
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    channel.on('close', () => this.#closed(channel));
    // One limit for the whole channel when it consumes several queues (quorum queues only
    // know per-consumer limits, so there each queue gets the full prefetch).
    await channel.prefetch(this.prefetch, this.queues.length > 1 && !this.quorum);
    this.#channel = channel;
    this.#channelConnection = connection;
    this.#outstanding.clear(); // deliveries of a lost channel come back from RabbitMQ
    this.#tags = [];
    const acks = new ChannelAcks(channel); // the channel's acks, sent together once per turn
    this.#acks = acks;
    for (const queue of this.queues) {
      const { consumerTag } = await channel.consume(queue, (message) => message && this.#deliver(acks, queue, message), { noAck: false });
      this.#tags.push(consumerTag);
    }
  }

  #closed(channel: Channel): void {
    if (this.#channel !== channel) return;
    this.#channel = undefined;
    if (this.#cancelled) return;
    // If the connection went too, the session reopens it and runs setup; otherwise do it here.
    setTimeout(() => {
      if (this.#cancelled || this.#channel || !this.session.connected) return;
      void this.session
        .ready()
        .then((connection) => this.setup(connection))
        .catch(() => undefined);
    }, 100);
  }

  #deliver(acks: ChannelAcks, queue: string, message: ConsumeMessage): void {
    const delivery = new AmqpDelivery(this, acks, acks.track(message), queue, message);
    this.#outstanding.add(delivery);
    this.onDelivery(delivery);
  }

  /** @internal */
  settled(delivery: AmqpDelivery): void {
    this.#outstanding.delete(delivery);
    if (this.#cancelled && this.#outstanding.size === 0) void this.#closeChannel();
  }

  /** Sends the acks still waiting for the end of the turn, then closes the channel. */
  async #closeChannel(): Promise<void> {
    this.#acks?.flush();
    await this.#channel?.close().catch(() => undefined);
  }

  async cancel(): Promise<void> {
    if (this.#cancelled) return;
    this.#cancelled = true;
    this.broker.release(this);
    await this.#opening.catch(() => undefined);
    const channel = this.#channel;
    if (!channel) return;
    await Promise.all(this.#tags.map((tag) => channel.cancel(tag).catch(() => undefined)));
    if (this.#outstanding.size === 0) await this.#closeChannel();
  }
}

class AmqpDelivery extends OnceSettledDelivery {
  readonly message: TransportMessage;
  readonly redelivered: boolean;

  constructor(
    private readonly consumer: AmqpConsumer,
    private readonly acks: ChannelAcks,
    private readonly tracked: Tracked,
    readonly queue: string,
    raw: ConsumeMessage,
  ) {
    super();
    this.message = toTransportMessage(raw);
    this.redelivered = raw.fields.redelivered;
  }

  /**
   * Settles on the channel the message came on. If that channel is gone (the connection was
   * lost), RabbitMQ has already put the message back, so there is nothing left to settle.
   */
  protected async settle(settlement: Settlement): Promise<void> {
    if (settlement.kind === 'dead-letter') await this.consumer.broker.publishDeadLetter(this.queue, this.message, settlement.reason);
    try {
      if (settlement.kind === 'reject') this.acks.nack(this.tracked, settlement.requeue);
      else this.acks.ack(this.tracked);
    } catch {
      // channel closed: the message is redelivered by RabbitMQ
    }
  }

  protected done(): void {
    this.consumer.settled(this);
  }
}

/** AMQP basic properties for a Celery message. @internal (also used by bench/amqp.ts) */
export function publishProperties(message: TransportMessage, priority: number | undefined): Options.Publish {
  const { correlation_id, reply_to, delivery_mode, expiration } = message.properties;
  const properties: Options.Publish = {
    contentType: message.contentType,
    contentEncoding: message.contentEncoding,
    headers: message.headers, // amqplib leaves out undefined values
    deliveryMode: delivery_mode ?? 2,
  };
  if (correlation_id !== undefined) properties.correlationId = correlation_id;
  if (reply_to !== undefined) properties.replyTo = reply_to;
  if (priority !== undefined) properties.priority = priority;
  if (expiration !== undefined) properties.expiration = expiration;
  return properties;
}

/** The message a consumer sees; headers RabbitMQ added on the delay path are left out. */
function toTransportMessage(raw: { content: Buffer; properties: ConsumeMessage['properties'] }): TransportMessage {
  const { headers = {}, contentType, contentEncoding, correlationId, replyTo, deliveryMode, priority, expiration } = raw.properties;
  const own = Object.fromEntries(Object.entries(headers as Record<string, unknown>).filter(([name]) => !isBrokerDeathHeader(name)));
  const properties: TransportMessage['properties'] = {};
  if (correlationId !== undefined) properties.correlation_id = String(correlationId);
  if (replyTo !== undefined) properties.reply_to = String(replyTo);
  if (deliveryMode !== undefined) properties.delivery_mode = Number(deliveryMode);
  if (priority !== undefined) properties.priority = Number(priority);
  if (expiration !== undefined) properties.expiration = String(expiration);
  return {
    headers: own,
    properties,
    contentType: typeof contentType === 'string' ? contentType : 'application/json',
    contentEncoding: typeof contentEncoding === 'string' ? contentEncoding : 'utf-8',
    body: raw.content,
  };
}


function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new ConnectionError(`${message} (waited ${ms / 1000} s for the connection to come back)`)), ms);
    promise.then(
      (value) => (clearTimeout(timer), resolve(value)),
      (error: unknown) => (clearTimeout(timer), reject(error)),
    );
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
