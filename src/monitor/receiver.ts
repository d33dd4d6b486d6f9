/**
 * Receiving Celery's events: `app.events.receive()` is an async iterator over every event on the
 * broker (workers' and clients', Python's included), one at a time even when they came as a
 * `task.multi` list. A slow reader does not lose events; they wait in memory up to `maxBuffered`,
 * beyond which the oldest are dropped (and counted).
 */
import type { Broker, CeleryEvent, EventSubscription } from '../brokers/broker.js';
import { ConfigurationError } from '../errors.js';

/** Options of {@link EventReceiver.receive}. */
export interface ReceiveOptions {
  /** Routing-key pattern: `#` everything (default), `worker.#` worker events, `task.#` task events. */
  pattern?: string;
  /** Events kept for a slow reader before the oldest are dropped. Default 100,000. */
  maxBuffered?: number;
  /** Stops the iteration. */
  signal?: AbortSignal;
}

/** A stream of events that can be read and closed. */
export interface EventStream extends AsyncIterableIterator<CeleryEvent> {
  /** Events dropped: malformed messages, and events a slow reader let overflow. */
  readonly dropped: number;
  close(): Promise<void>;
}

/** `app.events`. */
export class EventReceiver {
  constructor(private readonly broker: () => Promise<Broker>) {}

  /** Events from now on, as they arrive; subscribed before it resolves, so none sent after are missed. */
  async receive(options: ReceiveOptions = {}): Promise<EventStream> {
    const broker = await this.broker();
    if (!broker.events) throw new ConfigurationError(`the broker ${broker.displayUrl} carries no events`);
    const maxBuffered = options.maxBuffered ?? 100_000;
    const buffered: CeleryEvent[] = [];
    let overflowed = 0;
    let wake: (() => void) | undefined;
    let closed = false;
    const subscription: EventSubscription = await broker.events.subscribe((event) => {
      if (buffered.length >= maxBuffered) {
        buffered.shift();
        overflowed++;
      }
      buffered.push(event);
      wake?.();
    }, options.pattern ?? '#');
    const close = async (): Promise<void> => {
      if (closed) return;
      closed = true;
      wake?.();
      await subscription.cancel();
    };
    options.signal?.addEventListener('abort', () => void close(), { once: true });
    const stream: EventStream = {
      get dropped() {
        return overflowed + subscription.dropped;
      },
      close,
      async next(): Promise<IteratorResult<CeleryEvent>> {
        while (buffered.length === 0 && !closed) await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        const event = buffered.shift();
        return event ? { value: event, done: false } : { value: undefined, done: true };
      },
      async return(): Promise<IteratorResult<CeleryEvent>> {
        await close();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return stream;
      },
    };
    return stream;
  }
}
