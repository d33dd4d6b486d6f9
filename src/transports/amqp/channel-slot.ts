/** A channel opened on first use and opened afresh after RabbitMQ closes it. */
import type { Channel } from 'amqplib';

export class ChannelSlot<C extends Channel> {
  #current: Promise<C> | undefined;

  constructor(private readonly open: () => Promise<C>) {}

  /** The open channel, opening one if there is none. */
  get(): Promise<C> {
    if (this.#current) return this.#current;
    const opening = this.open().then((channel) => {
      channel.on('error', () => undefined); // the 'close' that follows is what matters
      channel.on('close', () => this.#forget(opening));
      return channel;
    });
    opening.catch(() => this.#forget(opening));
    this.#current = opening;
    return opening;
  }

  /** Drops the current channel (its connection is gone). */
  reset(): void {
    this.#current = undefined;
  }

  #forget(channel: Promise<C>): void {
    if (this.#current === channel) this.#current = undefined;
  }
}
