/**
 * What flows through each queue, from the event stream and from queue lengths sampled now and
 * then: tasks in flight (received by a worker, not yet ended), the rate out (tasks workers
 * received per second) and the rate in (tasks published per second).
 *
 * A task's queue is the one its `task-sent` event names (producers with `taskSentEvents`, or
 * Celery's `task_send_sent_event`); failing that, the worker's own queue when it consumes just
 * one. Events of different processes arrive in no set order: a worker's `task-received` can come
 * before the producer's `task-sent`, and is counted once that names the queue. The rate in
 * counts `task-sent` events where a queue has any; elsewhere it is the rate out plus the growth
 * of the queue between two length samples (in = out + d(length)/dt), so a queue nobody takes
 * from still shows what arrives.
 */
import type { CeleryEvent } from '../brokers/broker.js';
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';

/** Seconds the rates are averaged over. */
export const RATE_WINDOW = 60;
/** Tasks whose queue is remembered (the latest). */
const MAX_TASKS = 100_000;
/** Received tasks waiting for a `task-sent` event to name their queue (the latest). */
const MAX_UNPLACED = 10_000;
/** A rate from length samples needs them at least this far apart (seconds). */
const MIN_SAMPLE_SPAN = 2;

const ENDED = new Set(['task-succeeded', 'task-failed', 'task-revoked', 'task-rejected', 'task-retried']);

/** A queue's flow now. */
export interface QueueFlowStats {
  /** Tasks workers received from it that have not ended. */
  inFlight: number;
  /** Tasks per second workers received from it, over the last {@link RATE_WINDOW} s. */
  rateOut: number;
  /** Tasks per second published to it, or null while nothing tells. */
  rateIn: number | null;
  /** Where the rate in comes from. */
  rateInFrom: 'task-sent events' | 'length samples' | null;
}

/** Counts per second over a sliding window. */
class Rate {
  readonly #counts = new Float64Array(RATE_WINDOW);
  #second = 0;

  add(at: number): void {
    this.#advance(at);
    this.#counts[Math.floor(at) % RATE_WINDOW]! += 1;
  }

  perSecond(now: number): number {
    this.#advance(now);
    let total = 0;
    for (const count of this.#counts) total += count;
    return total / RATE_WINDOW;
  }

  /** Clears the seconds between the last one counted and `at`. */
  #advance(at: number): void {
    const second = Math.floor(at);
    if (second <= this.#second) return;
    for (let s = Math.max(this.#second + 1, second - RATE_WINDOW + 1); s <= second; s++) this.#counts[s % RATE_WINDOW] = 0;
    this.#second = second;
  }
}

interface Flow {
  readonly inFlight: Set<string>;
  readonly sent: Rate;
  readonly received: Rate;
  sentSeen: boolean;
  /** Length samples within the window, oldest first: [seconds, length]. */
  samples: Array<[number, number]>;
}

export class QueueFlow {
  readonly #flows = new Map<string, Flow>();
  /** Task id → its queue, in arrival order (the oldest forgotten first). */
  readonly #queueOf = new Map<string, string>();
  /** Task id → when it was received, for tasks received before anything named their queue. */
  readonly #unplaced = new Map<string, { at: number; ended: boolean }>();
  readonly #clock: Clock;

  constructor(
    /** The queues a worker consumes, where known. */
    private readonly workerQueues: (hostname: string) => readonly string[] | null | undefined,
    options: { clock?: Clock } = {},
  ) {
    this.#clock = options.clock ?? systemClock;
  }

  /** Takes in one event. */
  observe(event: CeleryEvent): void {
    const type = event.type;
    if (!type.startsWith('task-')) return;
    const uuid = event['uuid'];
    if (typeof uuid !== 'string') return;
    const at = typeof event['timestamp'] === 'number' ? event['timestamp'] : this.#clock.now() / 1000;
    if (type === 'task-sent') {
      const queue = stringOf(event['queue']) ?? stringOf(event['routing_key']);
      if (!queue) return;
      this.#remember(uuid, queue);
      const flow = this.#flow(queue);
      flow.sentSeen = true;
      flow.sent.add(at);
      const received = this.#unplaced.get(uuid);
      if (received) {
        this.#unplaced.delete(uuid);
        this.#received(flow, uuid, received.at, received.ended);
      }
    } else if (type === 'task-received') {
      let queue = this.#queueOf.get(uuid);
      if (!queue) {
        const queues = this.workerQueues(String(event['hostname']));
        if (queues?.length === 1) queue = queues[0]!;
      }
      if (!queue) {
        this.#awaitQueue(uuid, at);
        return;
      }
      this.#remember(uuid, queue);
      this.#received(this.#flow(queue), uuid, at, false);
    } else if (ENDED.has(type)) {
      const queue = this.#queueOf.get(uuid);
      if (queue) this.#flows.get(queue)?.inFlight.delete(uuid);
      const received = this.#unplaced.get(uuid);
      if (received) received.ended = true;
    }
  }

  #received(flow: Flow, uuid: string, at: number, ended: boolean): void {
    flow.received.add(at);
    if (!ended) flow.inFlight.add(uuid);
  }

  /** Holds a received task until a `task-sent` event names its queue. */
  #awaitQueue(uuid: string, at: number): void {
    this.#unplaced.set(uuid, { at, ended: false });
    if (this.#unplaced.size > MAX_UNPLACED) this.#unplaced.delete(this.#unplaced.keys().next().value!);
  }

  /** The queue a task was sent to or taken from, where known. */
  queueOf(uuid: string): string | undefined {
    return this.#queueOf.get(uuid);
  }

  /** Records a queue's length read at `at` (seconds; default now). */
  sample(queue: string, length: number, at = this.#clock.now() / 1000): void {
    const flow = this.#flow(queue);
    flow.samples.push([at, length]);
    // Keep those within the window (at least two), at most 32.
    while (flow.samples.length > 2 && (at - flow.samples[0]![0] > RATE_WINDOW || flow.samples.length > 32)) flow.samples.shift();
  }

  stats(queue: string): QueueFlowStats {
    const now = this.#clock.now() / 1000;
    const flow = this.#flows.get(queue);
    if (!flow) return { inFlight: 0, rateOut: 0, rateIn: null, rateInFrom: null };
    const rateOut = flow.received.perSecond(now);
    if (flow.sentSeen) return { inFlight: flow.inFlight.size, rateOut, rateIn: flow.sent.perSecond(now), rateInFrom: 'task-sent events' };
    const [first, last] = [flow.samples[0], flow.samples.at(-1)];
    if (!first || !last || last[0] - first[0] < MIN_SAMPLE_SPAN) return { inFlight: flow.inFlight.size, rateOut, rateIn: null, rateInFrom: null };
    const growth = (last[1] - first[1]) / (last[0] - first[0]);
    return { inFlight: flow.inFlight.size, rateOut, rateIn: Math.max(0, rateOut + growth), rateInFrom: 'length samples' };
  }

  #flow(queue: string): Flow {
    let flow = this.#flows.get(queue);
    if (!flow) {
      flow = { inFlight: new Set(), sent: new Rate(), received: new Rate(), sentSeen: false, samples: [] };
      this.#flows.set(queue, flow);
    }
    return flow;
  }

  #remember(uuid: string, queue: string): void {
    if (this.#queueOf.get(uuid) === queue) return;
    this.#queueOf.delete(uuid);
    this.#queueOf.set(uuid, queue);
    if (this.#queueOf.size <= MAX_TASKS) return;
    const [oldest, oldQueue] = this.#queueOf.entries().next().value!;
    this.#queueOf.delete(oldest);
    this.#flows.get(oldQueue)?.inFlight.delete(oldest);
  }
}

function stringOf(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}
