/**
 * Acks of one consumer channel, gathered per event-loop turn: the acked deliveries at the front
 * of the channel's unsettled window go in one `basic.ack` with `multiple`, the others one frame
 * each. Nothing is held back past the turn (a held ack still counts against the prefetch), and
 * nothing unsettled is ever covered by a `multiple` ack.
 */
import type { Channel, Message } from 'amqplib';

/** One delivery's place in the window; `track` hands it out, `ack`/`nack` take it back. */
export interface Tracked {
  readonly message: Message;
  state: 'open' | 'acked' | 'settled';
}

export class ChannelAcks {
  /** Deliveries in the order RabbitMQ numbered them; settled ones are dropped from the front. */
  #window: Tracked[] = [];
  #head = 0;
  #flushScheduled = false;

  constructor(readonly channel: Channel) {}

  /** Records a delivery as unsettled (call in the order deliveries arrive). */
  track(message: Message): Tracked {
    const entry: Tracked = { message, state: 'open' };
    this.#window.push(entry);
    return entry;
  }

  /** Acks at the end of this turn, together with the turn's other acks. */
  ack(entry: Tracked): void {
    if (entry.state !== 'open') return;
    entry.state = 'acked';
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Rejects now, with or without requeue. */
  nack(entry: Tracked, requeue: boolean): void {
    if (entry.state !== 'open') return;
    entry.state = 'settled';
    this.channel.nack(entry.message, false, requeue);
  }

  /** Sends the acks gathered so far now (before the channel closes, say). */
  flush(): void {
    this.#flushScheduled = false;
    let front: Message | undefined;
    while (this.#head < this.#window.length) {
      const entry = this.#window[this.#head]!;
      if (entry.state === 'open') break;
      if (entry.state === 'acked') front = entry.message;
      entry.state = 'settled';
      this.#head++;
    }
    try {
      if (front) this.channel.ack(front, true);
      for (let i = this.#head; i < this.#window.length; i++) {
        const entry = this.#window[i]!;
        if (entry.state !== 'acked') continue;
        this.channel.ack(entry.message);
        entry.state = 'settled';
      }
    } catch {
      // the channel closed: RabbitMQ puts its unacked messages back
    }
    if (this.#head > 1024 && this.#head * 2 > this.#window.length) {
      this.#window = this.#window.slice(this.#head);
      this.#head = 0;
    }
  }
}
