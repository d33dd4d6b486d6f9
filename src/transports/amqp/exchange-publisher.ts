/**
 * Publishing to a named exchange over a confirm channel of its own, apart from the broker's task
 * publisher (a refused publish closes its channel, and must not take task publishes with it).
 * Each exchange is declared once per channel before the first publish to it, as kombu's
 * `maybe_declare` does; a publish resolves once RabbitMQ confirms it.
 */
import type { ConfirmChannel, Options } from 'amqplib';
import { ChannelSlot } from './channel-slot.js';
import type { AmqpSession } from './session.js';

/** An exchange as Celery declares it. */
export interface ExchangeShape {
  name: string;
  type: 'direct' | 'topic' | 'fanout';
  durable: boolean;
}

export class ExchangePublisher {
  readonly #slot: ChannelSlot<ConfirmChannel>;
  readonly #declared = new WeakMap<ConfirmChannel, Map<string, Promise<unknown>>>();

  constructor(session: AmqpSession) {
    this.#slot = new ChannelSlot(async () => (await session.ready()).createConfirmChannel());
  }

  /**
   * Publishes `body` to `exchange` (declared first) or, when `exchange` is a bare name, to an
   * exchange someone else declares.
   */
  async publish(exchange: ExchangeShape | string, routingKey: string, body: Buffer, options: Options.Publish): Promise<void> {
    const channel = await this.#slot.get();
    if (typeof exchange !== 'string') await this.#declare(channel, exchange);
    const name = typeof exchange === 'string' ? exchange : exchange.name;
    let flowing = true;
    const confirmed = new Promise<void>((resolve, reject) => {
      flowing = channel.publish(name, routingKey, body, options, (error) => (error ? reject(error) : resolve()));
    });
    if (!flowing) await drainedOrClosed(channel);
    await confirmed;
  }

  #declare(channel: ConfirmChannel, exchange: ExchangeShape): Promise<unknown> {
    let declared = this.#declared.get(channel);
    if (!declared) this.#declared.set(channel, (declared = new Map()));
    let done = declared.get(exchange.name);
    if (!done) {
      done = channel.assertExchange(exchange.name, exchange.type, { durable: exchange.durable, autoDelete: false });
      declared.set(exchange.name, done);
    }
    return done;
  }
}

/** Resolves when a backed-up channel can take more, or has closed. */
export function drainedOrClosed(channel: ConfirmChannel): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      channel.off('drain', done);
      channel.off('close', done);
      resolve();
    };
    channel.on('drain', done);
    channel.on('close', done);
  });
}
