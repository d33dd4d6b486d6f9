/**
 * `memory://[name]`: an in-process broker. Every instance with the same name in one process
 * shares the same queues, so a producer and an in-process worker meet. ETA messages wait on
 * timers, priorities 0–9 (9 first) are honoured, and unsettled deliveries of a closed broker go
 * back to their queue.
 */
import { randomUUID } from 'node:crypto';
import { systemClock, type Clock } from '../../clock.js';
import { OnceSettledDelivery, type Settlement } from '../../brokers/delivery.js';
import { TypedEmitter, type BrokerEventMap } from '../../events.js';
import type { ParsedUrl } from '../../url.js';
import type { TransportMessage } from '../../protocol/message.js';
import type {
  Broker,
  BrokerCapabilities,
  CeleryEvent,
  ConsumeOptions,
  Consumer,
  ControlChannel,
  ControlCommand,
  DeadLetter,
  Delivery,
  EventChannel,
  EventSubscription,
  PublishOptions,
  ReplyAddress,
  ReplyInbox,
} from '../../brokers/broker.js';
import { CONTROL_REPLAY_MS, replayable } from '../../brokers/control-log.js';
import { sameDeadLetter } from '../../brokers/dead-letters.js';
import { topicMatches } from '../../brokers/event-message.js';
import { PIDBOX_REPLY_EXCHANGE } from '../../brokers/pidbox-message.js';
import { clampPriority } from '../../brokers/priority.js';
import { Fifo } from './fifo.js';

interface StoredMessage {
  message: TransportMessage;
  priority: number;
  redelivered: boolean;
}

/** One named queue: a FIFO per priority, most urgent first. */
class MemoryQueue {
  readonly buckets = Array.from({ length: 10 }, () => new Fifo<StoredMessage>());
  /** Messages waiting for their ETA, by the function that cancels each one's timer. */
  readonly delayed = new Set<() => void>();

  get length(): number {
    let total = this.delayed.size;
    for (const bucket of this.buckets) total += bucket.length;
    return total;
  }

  take(): StoredMessage | undefined {
    for (let p = 9; p >= 0; p--) {
      const bucket = this.buckets[p]!;
      if (bucket.length > 0) return bucket.shift();
    }
    return undefined;
  }
}

/** The state every `memory://name` instance in this process shares. */
class MemoryNamespace {
  readonly queues = new Map<string, MemoryQueue>();
  readonly consumers = new Set<MemoryConsumer>();
  readonly deadLetters: DeadLetter[] = [];
  readonly controlLog: Array<{ at: number; command: ControlCommand }> = [];
  readonly controlListeners = new Set<(command: ControlCommand) => void>();
  /** Reply inboxes by routing key. */
  readonly inboxes = new Map<string, (ticket: string, body: Record<string, unknown>) => void>();
  readonly eventListeners = new Set<{ pattern: string; onEvent: (event: CeleryEvent) => void }>();
  #pumpScheduled = false;

  queue(name: string): MemoryQueue {
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new MemoryQueue();
      this.queues.set(name, queue);
    }
    return queue;
  }

  /** Hands waiting messages to consumers on the next turn of the event loop. */
  schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    setImmediate(() => {
      this.#pumpScheduled = false;
      for (const consumer of this.consumers) consumer.pump();
    });
  }
}

const namespaces = new Map<string, MemoryNamespace>();

class MemoryConsumer implements Consumer {
  unsettled = 0;
  cancelled = false;

  constructor(
    private readonly namespace: MemoryNamespace,
    readonly owner: MemoryBroker,
    private readonly queues: readonly string[],
    private readonly onDelivery: (delivery: Delivery) => void,
    private prefetch: number,
  ) {}

  setPrefetch(count: number): void {
    this.prefetch = count;
    this.namespace.schedulePump();
  }

  pump(): void {
    while (!this.cancelled && this.unsettled < this.prefetch) {
      let found: { stored: StoredMessage; queue: string } | undefined;
      for (const name of this.queues) {
        const stored = this.namespace.queues.get(name)?.take();
        if (stored) {
          found = { stored, queue: name };
          break;
        }
      }
      if (!found) return;
      this.unsettled++;
      const delivery = new MemoryDelivery(this, found.queue, found.stored);
      this.owner.outstanding.add(delivery);
      this.onDelivery(delivery);
    }
  }

  settled(delivery: MemoryDelivery): void {
    this.unsettled--;
    this.owner.outstanding.delete(delivery);
    this.namespace.schedulePump();
  }

  async cancel(): Promise<void> {
    this.cancelled = true;
    this.namespace.consumers.delete(this);
  }
}

class MemoryDelivery extends OnceSettledDelivery {
  constructor(
    private readonly consumer: MemoryConsumer,
    readonly queue: string,
    private readonly stored: StoredMessage,
  ) {
    super();
  }

  get message(): TransportMessage {
    return this.stored.message;
  }

  get redelivered(): boolean {
    return this.stored.redelivered;
  }

  protected settle(settlement: Settlement): void {
    if (settlement.kind === 'dead-letter') {
      this.consumer.owner.namespace.deadLetters.push({ queue: this.queue, reason: settlement.reason, message: this.stored.message, at: Date.now() });
    } else if (settlement.kind === 'reject' && settlement.requeue) {
      this.giveBack();
    }
  }

  protected done(): void {
    this.consumer.settled(this);
  }

  /** Puts the message back at the front of its queue, marked redelivered. */
  giveBack(): void {
    this.stored.redelivered = true;
    this.consumer.owner.namespace.queue(this.queue).buckets[this.stored.priority]!.unshift(this.stored);
    this.consumer.owner.namespace.schedulePump();
  }

  /** Gives it back, for a broker closing with this delivery still out. */
  reclaim(): void {
    void this.reject(true);
  }
}

/** The in-process broker. */
export class MemoryBroker extends TypedEmitter<BrokerEventMap> implements Broker {
  readonly capabilities: BrokerCapabilities = { delayedDelivery: true, priorities: true, durable: false, shared: false, exchanges: false };
  readonly displayUrl: string;
  readonly namespace: MemoryNamespace;
  /** Deliveries handed out by this instance's consumers and not yet settled. */
  readonly outstanding = new Set<MemoryDelivery>();
  readonly #consumers = new Set<MemoryConsumer>();
  readonly control: ControlChannel;
  readonly events: EventChannel;

  constructor(
    url: ParsedUrl,
    private readonly clock: Clock = systemClock,
  ) {
    super();
    this.displayUrl = url.display;
    const name = url.url.host + url.url.pathname;
    let namespace = namespaces.get(name);
    if (!namespace) {
      namespace = new MemoryNamespace();
      namespaces.set(name, namespace);
    }
    this.namespace = namespace;
    this.control = this.#controlChannel();
    this.events = this.#eventChannel();
  }

  async connect(): Promise<void> {}

  async publish(queue: string, message: TransportMessage, options: PublishOptions = {}): Promise<void> {
    const stored: StoredMessage = { message, priority: clampPriority(options.priority), redelivered: false };
    const target = this.namespace.queue(queue);
    const delay = options.notBefore === undefined ? 0 : options.notBefore - this.clock.now();
    if (delay > 0) {
      const timer = this.clock.setTimeout(() => {
        target.delayed.delete(cancel);
        target.buckets[stored.priority]!.push(stored);
        this.namespace.schedulePump();
      }, delay);
      const cancel = (): void => this.clock.clearTimeout(timer);
      target.delayed.add(cancel);
      return;
    }
    target.buckets[stored.priority]!.push(stored);
    this.namespace.schedulePump();
  }

  async publishMany(items: ReadonlyArray<{ queue: string; message: TransportMessage; options?: PublishOptions }>): Promise<void> {
    for (const item of items) await this.publish(item.queue, item.message, item.options);
  }

  async consume(queues: readonly string[], onDelivery: (delivery: Delivery) => void, options: ConsumeOptions): Promise<Consumer> {
    const consumer = new MemoryConsumer(this.namespace, this, [...queues], onDelivery, options.prefetch);
    this.namespace.consumers.add(consumer);
    this.#consumers.add(consumer);
    this.namespace.schedulePump();
    return consumer;
  }

  async purge(queue: string): Promise<number> {
    const target = this.namespace.queues.get(queue);
    if (!target) return 0;
    let removed = 0;
    for (const bucket of target.buckets) removed += bucket.clear();
    for (const cancel of target.delayed) cancel();
    removed += target.delayed.size;
    target.delayed.clear();
    return removed;
  }

  async queueLength(queue: string): Promise<number> {
    return this.namespace.queues.get(queue)?.length ?? 0;
  }

  async listQueues(): Promise<string[]> {
    return [...this.namespace.queues.keys()].sort();
  }

  async listDeadLetters(limit = 100): Promise<DeadLetter[]> {
    return this.namespace.deadLetters.slice(-limit);
  }

  async removeDeadLetter(letter: Pick<DeadLetter, 'queue' | 'at' | 'message'>): Promise<boolean> {
    const letters = this.namespace.deadLetters;
    const index = letters.findIndex((entry) => sameDeadLetter(entry, letter));
    if (index >= 0) letters.splice(index, 1);
    return index >= 0;
  }

  async close(): Promise<void> {
    for (const consumer of this.#consumers) await consumer.cancel();
    this.#consumers.clear();
    for (const delivery of [...this.outstanding]) delivery.reclaim();
  }

  #controlChannel(): ControlChannel {
    const namespace = this.namespace;
    return {
      replaysRecent: true,
      async broadcast(command: ControlCommand): Promise<void> {
        const now = Date.now();
        namespace.controlLog.push({ at: now, command });
        while (namespace.controlLog.length > 10_000 || (namespace.controlLog[0] && namespace.controlLog[0].at < now - CONTROL_REPLAY_MS)) {
          namespace.controlLog.shift();
        }
        for (const listener of namespace.controlListeners) listener(command);
      },
      async subscribe(onCommand: (command: ControlCommand) => void): Promise<Consumer> {
        const now = Date.now();
        for (const entry of namespace.controlLog) if (entry.at >= now - CONTROL_REPLAY_MS && replayable(entry.command, now)) onCommand(entry.command);
        namespace.controlListeners.add(onCommand);
        return { cancel: async () => void namespace.controlListeners.delete(onCommand) };
      },
      async reply(to: ReplyAddress, ticket: string, body: Record<string, unknown>): Promise<void> {
        // A copy, as a broker would hand over: the replier may change its objects later.
        namespace.inboxes.get(to.routingKey)?.(ticket, structuredClone(body));
      },
      async openInbox(): Promise<ReplyInbox> {
        const routingKey = randomUUID();
        return {
          address: { exchange: PIDBOX_REPLY_EXCHANGE, routingKey },
          listen: (onReply) => void namespace.inboxes.set(routingKey, onReply),
          close: async () => void namespace.inboxes.delete(routingKey),
        };
      },
    };
  }

  #eventChannel(): EventChannel {
    const namespace = this.namespace;
    return {
      async publish(routingKey: string, events: CeleryEvent | readonly CeleryEvent[]): Promise<void> {
        const list = structuredClone(Array.isArray(events) ? events : [events]) as CeleryEvent[];
        for (const listener of namespace.eventListeners) {
          if (topicMatches(listener.pattern, routingKey)) for (const event of list) listener.onEvent(event);
        }
      },
      async subscribe(onEvent: (event: CeleryEvent) => void, pattern = '#'): Promise<EventSubscription> {
        const listener = { pattern, onEvent };
        namespace.eventListeners.add(listener);
        return { dropped: 0, cancel: async () => void namespace.eventListeners.delete(listener) };
      },
    };
  }
}
