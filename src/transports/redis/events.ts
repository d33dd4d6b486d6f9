/**
 * Celery's event stream on Redis, as kombu lays it out: `celeryev` is a fanout exchange with
 * patterns, so an event with routing key `worker.heartbeat` is PUBLISHed to
 * `/{db}.celeryev/worker.heartbeat` in the envelope a queue holds, and monitors PSUBSCRIBE
 * `/{db}.celeryev/*` (or `worker.*`). Not durable, as in Celery: a monitor hears what is sent
 * while it listens.
 */
import { randomUUID } from 'node:crypto';
import type { CeleryEvent, EventChannel, EventSubscription } from '../../brokers/broker.js';
import { decodeEvents, encodeEvents, EVENT_EXCHANGE } from '../../brokers/event-message.js';
import type { RedisClient } from './client.js';
import { fromEnvelope, type Envelope } from './kombu-layout.js';

export class RedisEvents implements EventChannel {
  readonly #prefix: string;

  constructor(
    private readonly client: () => RedisClient,
    db: number,
  ) {
    this.#prefix = `/${db}.${EVENT_EXCHANGE}/`;
  }

  async publish(routingKey: string, events: CeleryEvent | readonly CeleryEvent[], hostname: string): Promise<void> {
    await this.client().publish(this.#prefix + routingKey, eventEnvelope(routingKey, events, hostname));
  }

  async subscribe(onEvent: (event: CeleryEvent) => void, pattern = '#'): Promise<EventSubscription> {
    const subscriber = this.client().duplicate();
    subscriber.on('error', () => undefined);
    let dropped = 0;
    subscriber.on('pmessage', (_pattern: string, _channel: string, text: string) => {
      const events = parse(text);
      if (!events) {
        dropped++;
        return;
      }
      for (const event of events) onEvent(event);
    });
    // kombu turns the topic pattern into a glob: '#' and '*' both become '*'.
    await subscriber.psubscribe(this.#prefix + pattern.replaceAll('#', '*'));
    return {
      get dropped() {
        return dropped;
      },
      cancel: async () => {
        subscriber.disconnect();
      },
    };
  }
}

/**
 * kombu's envelope around an event message, written out rather than built and stringified: a
 * busy worker sends one per turn, and its base64 body needs no escaping.
 */
function eventEnvelope(routingKey: string, events: CeleryEvent | readonly CeleryEvent[], hostname: string): string {
  const body = encodeEvents(events).toString('base64');
  const properties = `{"delivery_mode":1,"delivery_info":{"exchange":"${EVENT_EXCHANGE}","routing_key":${JSON.stringify(routingKey)}},"priority":0,"body_encoding":"base64","delivery_tag":"${randomUUID()}"}`;
  return `{"body":"${body}","content-encoding":"utf-8","content-type":"application/json","headers":{"hostname":${JSON.stringify(hostname)}},"properties":${properties}}`;
}

function parse(text: string): CeleryEvent[] | null {
  try {
    return decodeEvents(fromEnvelope(JSON.parse(text) as Envelope).body);
  } catch {
    return null;
  }
}
