/**
 * Celery's control channel ("pidbox") on Redis, as kombu lays it out: commands are fanout
 * messages sent with PUBLISH to `/{db}.celery.pidbox` in the JSON envelope a queue holds, and
 * every worker listens with PSUBSCRIBE; a client that wants replies binds its queue
 * `<oid>.reply.celery.pidbox` to the `reply.celery.pidbox` exchange (`_kombu.binding.…`), and
 * workers LPUSH their replies to the queues bound under the command's routing key. So `celery
 * inspect` reaches celeriac workers, and celeriac's inspect reaches Python workers. Like
 * Celery's, commands are not durable — a worker not listening when one is sent does not hear it
 * — except revokes sent through celeriac, which are also kept (`celeriac.revoked`) for the
 * workers that start later.
 */
import { randomUUID } from 'node:crypto';
import { CONTROL_REPLAY_MS } from '../../brokers/control-log.js';
import type { RedisClient } from './client.js';
import type { Consumer, ControlChannel, ControlCommand, ReplyAddress, ReplyInbox } from '../../brokers/broker.js';
import { decodeControlCommand, decodeControlReply, encodeControlCommand, encodeControlReply, PIDBOX_EXCHANGE, PIDBOX_REPLY_EXCHANGE, type ControlMessage } from '../../brokers/pidbox-message.js';
import { fromEnvelope, queueKeys, SEP, toEnvelope, type Envelope } from './kombu-layout.js';

/** Ids revoked through celeriac, scored by when they stop mattering (ms since the epoch). */
const REVOKED_KEY = 'celeriac.revoked';

/** kombu's binding set of an exchange. */
const bindingKey = (exchange: string): string => `_kombu.binding.${exchange}`;

export class RedisPidbox implements ControlChannel {
  /** kombu's fanout channel for the exchange, prefixed with the database number. */
  readonly channel: string;

  constructor(
    private readonly client: () => RedisClient,
    db: number,
  ) {
    this.channel = `/${db}.${PIDBOX_EXCHANGE}`;
  }

  /** Publishes the command; resolves with how many subscribers (workers, ours and Python's) got it. */
  async broadcast(command: ControlCommand): Promise<number> {
    const client = this.client();
    if (command.method === 'revoke') await this.#keepRevoked(client, command);
    return client.publish(this.channel, JSON.stringify(envelopeOf(encodeControlCommand(command), PIDBOX_EXCHANGE, '', 2)));
  }

  /**
   * Calls `onCommand` for each command published from now on, after a `revoke` of the ids
   * revoked through celeriac in the last {@link CONTROL_REPLAY_MS} (kept in
   * {@link REVOKED_KEY}), so a worker that was not running at the time still honours them.
   */
  async subscribe(onCommand: (command: ControlCommand) => void, onDropped?: (reason: string) => void): Promise<Consumer> {
    const subscriber = this.client().duplicate();
    subscriber.on('error', () => undefined);
    subscriber.on('pmessage', (_pattern: string, _channel: string, text: string) => {
      const command = parseCommand(text);
      if (command) onCommand(command);
      else onDropped?.(`a message on ${this.channel} that is not a control command (${text.length} bytes)`);
    });
    await subscriber.psubscribe(this.channel);
    const revoked = await this.client().zrangebyscore(REVOKED_KEY, Date.now(), '+inf');
    if (revoked.length > 0) onCommand({ method: 'revoke', arguments: { task_id: revoked, terminate: false }, destination: null });
    return {
      cancel: async () => {
        subscriber.disconnect();
      },
    };
  }

  /** Records a revoke's ids until they expire, dropping those already expired. */
  async #keepRevoked(client: RedisClient, command: ControlCommand): Promise<void> {
    const raw = command.arguments['task_id'];
    const ids = (Array.isArray(raw) ? raw : [raw]).filter((id): id is string => typeof id === 'string');
    if (ids.length === 0) return;
    const now = Date.now();
    await client
      .multi()
      .zadd(REVOKED_KEY, ...ids.flatMap((id) => [now + CONTROL_REPLAY_MS, id]))
      .zremrangebyscore(REVOKED_KEY, '-inf', now)
      .pexpire(REVOKED_KEY, CONTROL_REPLAY_MS)
      .exec();
  }

  /** LPUSHes the reply to every queue bound to the reply exchange under its routing key, as kombu routes it. */
  async reply(to: ReplyAddress, ticket: string, body: Record<string, unknown>): Promise<void> {
    const client = this.client();
    const queues = (await client.smembers(bindingKey(to.exchange)))
      .map((member) => member.split(SEP))
      .filter(([routingKey]) => routingKey === to.routingKey)
      .map(([, , queue]) => queue!);
    if (queues.length === 0) return; // nobody waits for it any more
    const text = JSON.stringify(envelopeOf(encodeControlReply(ticket, body), to.exchange, to.routingKey, 1));
    await Promise.all(queues.map((queue) => client.lpush(queue, text)));
  }

  async openInbox(): Promise<ReplyInbox> {
    const oid = randomUUID();
    const queue = `${oid}.reply.celery.pidbox`;
    const address: ReplyAddress = { exchange: PIDBOX_REPLY_EXCHANGE, routingKey: oid };
    const member = `${oid}${SEP}${SEP}${queue}`;
    const client = this.client();
    await client.sadd(bindingKey(PIDBOX_REPLY_EXCHANGE), member);
    const reader = client.duplicate();
    reader.on('error', () => undefined);
    let closed = false;
    let listener: ((ticket: string, body: Record<string, unknown>) => void) | undefined;
    const read = async (): Promise<void> => {
      while (!closed) {
        const popped = await reader.brpop(...queueKeys(queue), 1).catch(() => null);
        const reply = popped && parseReply(popped[1]);
        if (reply) listener?.(reply.ticket, reply.body);
      }
    };
    return {
      address,
      listen(onReply) {
        listener = onReply;
        void read();
      },
      async close() {
        closed = true;
        reader.disconnect();
        await client.srem(bindingKey(PIDBOX_REPLY_EXCHANGE), member).catch(() => undefined);
        await client.del(...queueKeys(queue)).catch(() => undefined);
      },
    };
  }
}

/** A control message in kombu's envelope, as published to `exchange` with `routingKey`. */
function envelopeOf(message: ControlMessage, exchange: string, routingKey: string, deliveryMode: 1 | 2): Envelope {
  const envelope = toEnvelope('', { headers: message.headers, properties: { delivery_mode: deliveryMode }, contentType: 'application/json', contentEncoding: 'utf-8', body: message.body }, 0);
  envelope.properties.delivery_info = { exchange, routing_key: routingKey };
  return envelope;
}

/** The command inside a pidbox envelope; anything malformed is not a command. */
function parseCommand(text: string): ControlCommand | null {
  try {
    const message = fromEnvelope(JSON.parse(text) as Envelope);
    return decodeControlCommand(message.body, message.headers);
  } catch {
    return null;
  }
}

function parseReply(text: string): { ticket: string; body: Record<string, unknown> } | null {
  try {
    const message = fromEnvelope(JSON.parse(text) as Envelope);
    return decodeControlReply(message.body, message.headers);
  } catch {
    return null;
  }
}
