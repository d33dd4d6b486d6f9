/**
 * Celery's event stream on RabbitMQ, as Celery 5.2.6 lays it out (checked with `rabbitmqctl
 * list_exchanges/list_queues/list_bindings` while a worker ran with `-E` and `celery events
 * --dump` listened, and the messages read off a queue bound beside theirs):
 *
 * - Events go to the durable **topic** exchange `celeryev` with the routing key of their type
 *   (`worker.heartbeat`, `task.succeeded`, or `task.multi` for a list), JSON, headers
 *   `{hostname}`, transient (delivery mode 1).
 * - A subscriber declares `celeryev.<uuid>` as Celery's EventReceiver does (non-durable,
 *   auto-delete, not exclusive, `x-message-ttl` 5000 and `x-expires` 60000: Celery's
 *   `event_queue_ttl` and `event_queue_expires`), bound with its pattern (`#` for a monitor,
 *   `worker.#` for a worker's gossip), and consumes it without acks. So an event waits at most
 *   5 s for a slow subscriber, and a subscriber hears only what is sent once it is bound.
 *
 * Events are published over the broker's publishing connection and heard over the consumers'
 * one (whose heartbeats the relay thread keeps, so a monitor busy drawing keeps its queue).
 */
import { randomUUID } from 'node:crypto';
import type { ConsumeMessage } from 'amqplib';
import type { CeleryEvent, EventChannel, EventSubscription } from '../../brokers/broker.js';
import { decodeEvents, encodeEvents, EVENT_EXCHANGE } from '../../brokers/event-message.js';
import { ExchangePublisher, type ExchangeShape } from './exchange-publisher.js';
import { listen } from './pidbox.js';
import type { AmqpSession } from './session.js';

const EVENTS: ExchangeShape = { name: EVENT_EXCHANGE, type: 'topic', durable: true };
/** Celery's `event_queue_ttl` and `event_queue_expires`, in ms. */
export const EVENT_QUEUE_ARGUMENTS = { 'x-message-ttl': 5_000, 'x-expires': 60_000 };

export class AmqpEvents implements EventChannel {
  readonly #publisher: ExchangePublisher;

  constructor(
    session: AmqpSession,
    private readonly consumerSession: () => Promise<AmqpSession>,
  ) {
    this.#publisher = new ExchangePublisher(session);
  }

  async publish(routingKey: string, events: CeleryEvent | readonly CeleryEvent[], hostname: string): Promise<void> {
    await this.#publisher.publish(EVENTS, routingKey, encodeEvents(events), {
      headers: { hostname },
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      deliveryMode: 1,
    });
  }

  async subscribe(onEvent: (event: CeleryEvent) => void, pattern = '#'): Promise<EventSubscription> {
    const queue = `${EVENT_EXCHANGE}.${randomUUID()}`;
    let dropped = 0;
    const onMessage = (message: ConsumeMessage | null): void => {
      if (!message) return; // cancelled by the server; the next connection consumes again
      const events = isJson(message) ? decodeEvents(message.content) : null;
      if (!events) {
        dropped++;
        return;
      }
      for (const event of events) onEvent(event);
    };
    const listening = await listen(await this.consumerSession(), async (channel) => {
      await channel.assertExchange(EVENTS.name, EVENTS.type, { durable: EVENTS.durable, autoDelete: false });
      await channel.assertQueue(queue, { durable: false, autoDelete: true, exclusive: false, arguments: EVENT_QUEUE_ARGUMENTS });
      await channel.bindQueue(queue, EVENTS.name, pattern);
      return { queue, consumerTag: (await channel.consume(queue, onMessage, { noAck: true })).consumerTag };
    });
    return {
      get dropped() {
        return dropped;
      },
      cancel: () => listening.cancel(true),
    };
  }
}

/** Celery's receivers accept JSON only; a message of another content type is not an event. */
function isJson(message: ConsumeMessage): boolean {
  const type = message.properties.contentType as unknown;
  return type === undefined || type === 'application/json';
}
