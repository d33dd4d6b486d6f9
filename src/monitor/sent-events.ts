/**
 * `task-sent` events from a producer, as Celery's `task_send_sent_event` sends them: one per
 * task published, from the node `gen<pid>@<host>`, so monitors see tasks before any worker
 * takes them.
 */
import { hostname } from 'node:os';
import type { Broker } from '../brokers/broker.js';
import type { TaskMessage } from '../protocol/message.js';
import { pythonRepr } from '../protocol/repr.js';
import type { Destination } from '../routing.js';
import { EventDispatcher } from './event-dispatcher.js';
import { LamportClock } from './lamport-clock.js';

/** Sends `task-sent` for the tasks an app publishes, where the broker carries events. */
export class SentEvents {
  #dispatcher: EventDispatcher | undefined;

  /** Records that `message` was published to `destination`. */
  sent(broker: Broker, message: TaskMessage, destination: Destination): void {
    if (!broker.events) return;
    this.#dispatcher ??= new EventDispatcher(broker.events, `gen${process.pid}@${hostname()}`, new LamportClock(), () => undefined);
    this.#dispatcher.sendTask('task-sent', {
      uuid: message.id,
      root_id: message.rootId,
      parent_id: message.parentId,
      name: message.task,
      args: pythonRepr(message.args),
      kwargs: pythonRepr(message.kwargs),
      retries: message.retries,
      eta: message.eta?.toISOString() ?? null,
      expires: message.expires?.toISOString() ?? null,
      queue: destination.queue,
      exchange: destination.exchange ?? '',
      routing_key: destination.routingKey ?? destination.queue,
    });
  }

  /** Sends what is buffered and waits for it. */
  async drain(): Promise<void> {
    await this.#dispatcher?.drain();
  }
}
