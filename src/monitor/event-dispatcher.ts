/**
 * Sends Celery events for one node: each gets the fields every Celery event carries
 * (`hostname`, `utcoffset`, `pid`, `clock`, `timestamp`, `type`). Worker events go out at once;
 * task events of one turn are buffered and sent as one `task.multi` list (at most
 * {@link TASK_BATCH} per message), as Celery's workers batch them.
 */
import type { CeleryEvent, EventChannel } from '../brokers/broker.js';
import { eventRoutingKey } from '../brokers/event-message.js';
import type { LamportClock } from './lamport-clock.js';

/**
 * Task events per `task.multi` message at most. Celery's workers send up to 24; receivers take
 * lists of any length, and larger ones cost a busy worker fewer publishes.
 */
export const TASK_BATCH = 100;

/** A node's event sender. */
export class EventDispatcher {
  #buffer: CeleryEvent[] = [];
  /** Hours east of UTC, as Celery sends it; read once. */
  readonly #utcoffset = -new Date().getTimezoneOffset() / 60;
  #flushScheduled = false;
  #sending = new Set<Promise<void>>();
  /** Events that could not be sent (the broker was unreachable). */
  failed = 0;

  constructor(
    private readonly channel: EventChannel,
    private readonly hostname: string,
    private readonly clock: LamportClock,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** The event `type`: `fields` (taken over, not copied) with the standard ones, as Celery builds it. */
  build(type: string, fields: Record<string, unknown>): CeleryEvent {
    fields['hostname'] = this.hostname;
    fields['utcoffset'] = this.#utcoffset;
    fields['pid'] = process.pid;
    fields['clock'] = this.clock.forward();
    fields['timestamp'] = Date.now() / 1000;
    fields['type'] = type;
    return fields as CeleryEvent;
  }

  /** Sends a worker event now (`worker-online`, `worker-heartbeat`, ...). */
  send(type: string, fields: Record<string, unknown>): Promise<void> {
    return this.#publish(eventRoutingKey(type), this.build(type, fields));
  }

  /** Buffers a task event; the buffer goes out at the end of the turn or when full. */
  sendTask(type: string, fields: Record<string, unknown>): void {
    this.#buffer.push(this.build(type, fields));
    if (this.#buffer.length >= TASK_BATCH) {
      this.flush();
    } else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Sends what is buffered now. */
  flush(): void {
    this.#flushScheduled = false;
    while (this.#buffer.length > 0) void this.#publish('task.multi', this.#buffer.splice(0, TASK_BATCH));
  }

  /** Flushes and waits for everything sent so far. */
  async drain(): Promise<void> {
    this.flush();
    await Promise.allSettled([...this.#sending]);
  }

  #publish(routingKey: string, events: CeleryEvent | CeleryEvent[]): Promise<void> {
    const sent = this.channel.publish(routingKey, events, this.hostname).catch((error: unknown) => {
      this.failed += Array.isArray(events) ? events.length : 1;
      this.onError(error);
    });
    this.#sending.add(sent);
    void sent.finally(() => this.#sending.delete(sent));
    return sent;
  }
}
