/**
 * Celery's control channel ("pidbox") on RabbitMQ, as kombu's Mailbox lays it out (checked with
 * `rabbitmqctl list_exchanges/list_queues/list_bindings` against a Celery 5.2.6 worker and
 * `celery inspect ping`, and the messages read off queues bound beside Celery's):
 *
 * - Commands go to the fanout exchange `celery.pidbox` (non-durable) with routing key `""`,
 *   persistent (delivery mode 2, as kombu publishes them), headers `{clock, expires}`. Each
 *   node listens on its own queue `<node>.celery.pidbox` (non-durable, auto-delete,
 *   `x-message-ttl` 300000, `x-expires` 10000), consumed without acks.
 * - Replies go to the direct exchange `reply.celery.pidbox` (non-durable) with the routing key
 *   the command's `reply_to` names, transient (delivery mode 1), headers `{ticket, clock}`,
 *   body `{"<node>": payload}`. A client's inbox is the queue `<oid>.reply.celery.pidbox`
 *   (non-durable, auto-delete, `x-message-ttl` 300000, `x-expires` 10000) bound with `<oid>`.
 *   A reply whose inbox is gone is dropped by RabbitMQ (no queue is bound under its key).
 *
 * Revokes sent through celeriac also go to the stream `celeriac.revoked` (kept three hours),
 * which every subscriber reads from its start: a worker that was not running when a task was
 * revoked still honours the revoke (Celery has no such record: its late workers rely on mingle).
 *
 * Commands and replies are sent over the broker's publishing connection. The subscription is
 * heard over the consumers' connection (whose heartbeats the relay thread keeps); an inbox, which
 * holds nothing a blocked event loop could lose, lives on the publishing connection, so a client
 * that only inspects opens no second connection.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import type { Consumer, ControlChannel, ControlCommand, ReplyAddress, ReplyInbox } from '../../brokers/broker.js';
import {
  decodeControlCommand,
  decodeControlReply,
  encodeControlCommand,
  encodeControlReply,
  PIDBOX_EXCHANGE,
  PIDBOX_REPLY_EXCHANGE,
} from '../../brokers/pidbox-message.js';
import { ExchangePublisher, type ExchangeShape } from './exchange-publisher.js';
import type { AmqpSession } from './session.js';
import { PIDBOX_QUEUE_ARGUMENTS, pidboxQueue } from './topology.js';

const COMMANDS: ExchangeShape = { name: PIDBOX_EXCHANGE, type: 'fanout', durable: false };
const REPLIES: ExchangeShape = { name: PIDBOX_REPLY_EXCHANGE, type: 'direct', durable: false };
/** kombu's `<oid>.reply.celery.pidbox`. */
export const replyQueue = (oid: string): string => `${oid}.${PIDBOX_REPLY_EXCHANGE}`;

type ReplyListener = (ticket: string, body: Record<string, unknown>) => void;

/** A RabbitMQ stream of the revokes sent through celeriac, kept three hours (Celery's revoke lifetime). */
const REVOKED_STREAM = 'celeriac.revoked';
const REVOKED_STREAM_OPTIONS = { durable: true, arguments: { 'x-queue-type': 'stream', 'x-max-age': '3h' } };
/** The longest a new subscriber waits to hear the revokes already in the stream. */
const REVOKED_BACKLOG_WAIT_MS = 5_000;

export class AmqpPidbox implements ControlChannel {
  readonly #publisher: ExchangePublisher;
  #revokedStream: Promise<void> | undefined;

  constructor(
    private readonly session: AmqpSession,
    private readonly consumerSession: () => Promise<AmqpSession>,
  ) {
    this.#publisher = new ExchangePublisher(session);
  }

  async broadcast(command: ControlCommand): Promise<void> {
    const { headers, body } = encodeControlCommand(command);
    const options = { headers, contentType: 'application/json', contentEncoding: 'utf-8', deliveryMode: 2 };
    if (command.method === 'revoke') {
      await this.#declareRevokedStream();
      await this.#publisher.publish('', REVOKED_STREAM, body, options);
    }
    await this.#publisher.publish(COMMANDS, '', body, options);
  }

  /** Declares the stream of celeriac's revokes (once per broker; a lost declaration is tried again). */
  #declareRevokedStream(): Promise<void> {
    this.#revokedStream ??= (async () => {
      const channel = await (await this.session.ready()).createChannel();
      channel.on('error', () => undefined);
      try {
        await channel.assertQueue(REVOKED_STREAM, REVOKED_STREAM_OPTIONS);
      } finally {
        await channel.close().catch(() => undefined);
      }
    })().catch((error: unknown) => {
      this.#revokedStream = undefined;
      throw error;
    });
    return this.#revokedStream;
  }

  async subscribe(onCommand: (command: ControlCommand) => void, onDropped?: (reason: string) => void, node?: string): Promise<Consumer> {
    const queue = pidboxQueue(node ?? `celeriac-${randomUUID().slice(0, 8)}@${hostname()}`);
    const onMessage = (message: ConsumeMessage | null): void => {
      if (!message) return;
      const command = decodeControlCommand(message.content, headersOf(message));
      if (command) onCommand(command);
      else onDropped?.(`a message on ${queue} that is not a control command (${message.content.length} bytes)`);
    };
    const session = await this.consumerSession();
    const commands = await listen(session, async (channel) => {
      await channel.assertExchange(COMMANDS.name, COMMANDS.type, { durable: COMMANDS.durable, autoDelete: false });
      await channel.assertQueue(queue, { durable: false, autoDelete: true, arguments: PIDBOX_QUEUE_ARGUMENTS });
      await channel.bindQueue(queue, COMMANDS.name, '');
      return { queue, consumerTag: (await channel.consume(queue, onMessage, { noAck: true })).consumerTag };
    });
    // The revokes of the last three hours, from the stream's start: a worker that was not running
    // when they were sent honours them too (revokes heard twice are merged).
    // Subscribing waits until those already there were heard, so none arrives after a task it revokes.
    const revokes = await listen(session, async (channel) => {
      const { messageCount } = await channel.assertQueue(REVOKED_STREAM, REVOKED_STREAM_OPTIONS);
      await channel.prefetch(100);
      let heard = 0;
      let caughtUp!: () => void;
      const backlog = new Promise<void>((resolve) => (caughtUp = resolve));
      if (messageCount === 0) caughtUp();
      const onRevoke = (message: ConsumeMessage | null): void => {
        if (!message) return;
        onMessage(message);
        channel.ack(message);
        if (++heard >= messageCount) caughtUp();
      };
      const { consumerTag } = await channel.consume(REVOKED_STREAM, onRevoke, { noAck: false, arguments: { 'x-stream-offset': 'first' } });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([backlog, new Promise((resolve) => (timer = setTimeout(resolve, REVOKED_BACKLOG_WAIT_MS)))]);
      clearTimeout(timer);
      return { queue: REVOKED_STREAM, consumerTag };
    });
    return {
      cancel: async () => {
        await Promise.all([commands.cancel(), revokes.cancel()]);
      },
    };
  }

  /** Sends a reply to `to`; RabbitMQ drops it when no inbox is bound under its routing key. */
  async reply(to: ReplyAddress, ticket: string, body: Record<string, unknown>): Promise<void> {
    const message = encodeControlReply(ticket, body);
    // Celery's own reply exchange is declared first, as kombu does; another is used as it is.
    const exchange = to.exchange === REPLIES.name ? REPLIES : to.exchange;
    await this.#publisher.publish(exchange, to.routingKey, message.body, {
      headers: message.headers,
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      deliveryMode: 1,
    });
  }

  async openInbox(): Promise<ReplyInbox> {
    const oid = randomUUID();
    const queue = replyQueue(oid);
    let listener: ReplyListener | undefined;
    const early: Array<Parameters<ReplyListener>> = [];
    const onMessage = (message: ConsumeMessage | null): void => {
      const reply = message && decodeControlReply(message.content, headersOf(message));
      if (!reply) return;
      if (listener) listener(reply.ticket, reply.body);
      else early.push([reply.ticket, reply.body]);
    };
    const subscription = await listen(this.session, async (channel) => {
      await channel.assertExchange(REPLIES.name, REPLIES.type, { durable: REPLIES.durable, autoDelete: false });
      await channel.assertQueue(queue, { durable: false, autoDelete: true, arguments: PIDBOX_QUEUE_ARGUMENTS });
      await channel.bindQueue(queue, REPLIES.name, oid);
      return { queue, consumerTag: (await channel.consume(queue, onMessage, { noAck: true })).consumerTag };
    });
    return {
      address: { exchange: REPLIES.name, routingKey: oid },
      listen(onReply) {
        listener = onReply;
        for (const [ticket, body] of early.splice(0)) onReply(ticket, body);
      },
      async close() {
        listener = () => undefined;
        await subscription.cancel(true);
      },
    };
  }
}

/** A consumer kept across reconnects: `consume` runs on a fresh channel of every connection. */
interface Listening {
  /** Cancels the consumer and closes its channel; `remove` also deletes its queue. */
  cancel(remove?: boolean): Promise<void>;
}

/**
 * Runs `consume` on a channel of its own on `session`'s connection, now and after every
 * reconnect, until cancelled. @internal (events.ts consumes the same way)
 */
export async function listen(session: AmqpSession, consume: (channel: Channel) => Promise<{ queue: string; consumerTag: string }>): Promise<Listening> {
  let current: { channel: Channel; queue: string; consumerTag: string } | undefined;
  let cancelled = false;
  const setup = async (connection: ChannelModel): Promise<void> => {
    if (cancelled) return;
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    try {
      current = { channel, ...(await consume(channel)) };
    } catch (error) {
      await channel.close().catch(() => undefined);
      throw error;
    }
  };
  try {
    await session.addSetup(setup);
  } catch (error) {
    session.removeSetup(setup);
    throw error;
  }
  return {
    async cancel(remove = false) {
      if (cancelled) return;
      cancelled = true;
      session.removeSetup(setup);
      const listening = current;
      current = undefined;
      if (!listening) return;
      const { channel, queue, consumerTag } = listening;
      await channel.cancel(consumerTag).catch(() => undefined);
      if (remove) await channel.deleteQueue(queue).catch(() => undefined);
      await channel.close().catch(() => undefined);
    },
  };
}

function headersOf(message: ConsumeMessage): Record<string, unknown> {
  return (message.properties.headers ?? {}) as Record<string, unknown>;
}
