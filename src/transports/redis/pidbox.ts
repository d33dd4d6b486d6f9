/**
 * Celery's control channel ("pidbox") on Redis: kombu sends fanout messages with PUBLISH to
 * `/{db}.celery.pidbox`, as the same JSON envelope a queue holds, and every worker listens with
 * PSUBSCRIBE. So `celery control revoke` from Python reaches celeriac workers, and a revoke
 * from celeriac reaches Python workers. Like Celery's, it is not durable: a worker that is not
 * listening when a command is sent does not hear it.
 */
import type { RedisClient } from './client.js';
import type { Consumer, ControlChannel, ControlCommand } from '../../brokers/broker.js';
import { decodeControlCommand, encodeControlCommand, PIDBOX_EXCHANGE } from '../../brokers/pidbox-message.js';
import { fromEnvelope, toEnvelope, type Envelope } from './kombu-layout.js';

export class RedisPidbox implements ControlChannel {
  /** kombu's fanout channel for the exchange, prefixed with the database number. */
  readonly channel: string;

  constructor(
    private readonly client: () => RedisClient,
    db: number,
  ) {
    this.channel = `/${db}.${PIDBOX_EXCHANGE}`;
  }

  async broadcast(command: ControlCommand): Promise<void> {
    const body = encodeControlCommand(command);
    const envelope = toEnvelope('', { headers: {}, properties: {}, contentType: 'application/json', contentEncoding: 'utf-8', body }, 0);
    envelope.properties.delivery_info = { exchange: PIDBOX_EXCHANGE, routing_key: '' };
    await this.client().publish(this.channel, JSON.stringify(envelope));
  }

  async subscribe(onCommand: (command: ControlCommand) => void): Promise<Consumer> {
    const subscriber = this.client().duplicate();
    subscriber.on('error', () => undefined);
    subscriber.on('pmessage', (_pattern: string, _channel: string, text: string) => {
      const command = parseCommand(text);
      if (command) onCommand(command);
    });
    await subscriber.psubscribe(this.channel);
    return {
      cancel: async () => {
        subscriber.disconnect();
      },
    };
  }
}

/** The command inside a pidbox envelope; anything malformed is not a command. */
function parseCommand(text: string): ControlCommand | null {
  try {
    return decodeControlCommand(fromEnvelope(JSON.parse(text) as Envelope).body);
  } catch {
    return null;
  }
}
