/**
 * What the dashboard asks the fleet and the broker rather than hears in events: each worker's
 * pool and queues (inspect `stats` and `active_queues`, refreshed in the background so no page
 * waits for replies), and the queues with their lengths and dead letters (read from the broker
 * when asked, kept for a second so a page and a scrape share one round).
 */
import type { Broker, DeadLetter, QueueDeclaration } from '../brokers/broker.js';
import type { ResultBackend } from '../backends/backend.js';
import type { Control } from '../control.js';
import { describeError } from '../errors.js';
import type { EventReceiver } from '../monitor/receiver.js';
import type { ApplyOptions } from '../task.js';
import { QueueFlow, type QueueFlowStats } from './queue-flow.js';
import type { TaskStore } from './store.js';

/** What the dashboard needs of an app (a `Celeriac` is one). */
export interface DashboardHost {
  readonly control: Control;
  readonly events: EventReceiver;
  readonly defaultQueue: string;
  readonly queueDeclarations: readonly QueueDeclaration[];
  broker(): Promise<Broker>;
  backend(): Promise<ResultBackend>;
  /** Sends a task by name (a Celeriac app's): the dashboard's "retry" sends a task again with it. */
  sendTask?(name: string, args?: unknown[], kwargs?: Record<string, unknown>, options?: ApplyOptions): { readonly id: string; readonly sent: Promise<void> };
}

/** A worker as inspect describes it. */
export interface WorkerDetails {
  /** `celeriac:event`, `celery.concurrency.prefork:TaskPool`, ... */
  pool: string | null;
  poolSize: number | null;
  queues: string[] | null;
  /** Tasks failed (celeriac workers report it). */
  failed: number | null;
  /** Unix ms of the reply. */
  at: number;
}

/** One queue as the queues page shows it. */
export interface QueueInfo {
  name: string;
  /** Messages waiting, or null when the broker could not say. */
  length: number | null;
  /** Dead letters of the queue, where the broker lists them (null where it cannot). */
  deadLetters: number | null;
  /** Workers consuming it, by inspect. */
  consumers: string[];
  /** Tasks in flight and rates in and out, from the events and length samples ({@link QueueFlow}). */
  flow: QueueFlowStats;
}

/** Dead letters read per listing. */
export const DEAD_LETTER_LIMIT = 1_000;
/** Seconds to wait for inspect replies. */
const INSPECT_TIMEOUT = 1;

export class Fleet {
  readonly #details = new Map<string, WorkerDetails>();
  #refreshing: Promise<void> | undefined;
  #refreshedAt = 0;
  #queues: { at: number; value: Promise<QueueInfo[]> } | undefined;
  /** The last error reading the fleet or the broker, for the pages to show. */
  lastError: string | undefined;

  constructor(
    private readonly host: DashboardHost,
    private readonly store: TaskStore,
    /** Called when new details arrived. */
    private readonly onChange: () => void,
    /** In flight and rates per queue; fed the lengths read here. */
    readonly flow: QueueFlow = new QueueFlow((hostname) => this.details(hostname)?.queues),
  ) {}

  details(hostname: string): WorkerDetails | undefined {
    return this.#details.get(hostname);
  }

  /** Workers that replied to inspect, whether or not their heartbeats were heard. */
  inspected(): string[] {
    return [...this.#details.keys()];
  }

  /** Starts a refresh in the background when the details are older than `maxAgeMs`. */
  refreshIfStale(maxAgeMs = 5_000): void {
    if (Date.now() - this.#refreshedAt > maxAgeMs) void this.refresh();
  }

  /** Asks every worker for its stats and queues; one refresh at a time. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = undefined;
      this.#refreshedAt = Date.now();
    });
    return this.#refreshing;
  }

  async #refresh(): Promise<void> {
    const alive = this.store.state.aliveWorkers().length;
    const inspect = this.host.control.inspect({ timeout: INSPECT_TIMEOUT, ...(alive > 0 ? { limit: alive } : {}) });
    try {
      const [stats, queues] = await Promise.all([inspect.stats(), inspect.activeQueues()]);
      const at = Date.now();
      for (const hostname of new Set([...Object.keys(stats), ...Object.keys(queues)])) {
        const stat = stats[hostname] as { pool?: Record<string, unknown>; celeriac?: { failed?: unknown } } | undefined;
        const previous = this.#details.get(hostname);
        const queueList = queues[hostname];
        this.#details.set(hostname, {
          pool: typeof stat?.pool?.['implementation'] === 'string' ? stat.pool['implementation'] : (previous?.pool ?? null),
          poolSize: typeof stat?.pool?.['max-concurrency'] === 'number' ? stat.pool['max-concurrency'] : (previous?.poolSize ?? null),
          queues: Array.isArray(queueList) ? queueList.map((queue) => queue.name) : (previous?.queues ?? null),
          failed: typeof stat?.celeriac?.failed === 'number' ? stat.celeriac.failed : (previous?.failed ?? null),
          at,
        });
      }
      this.lastError = undefined;
    } catch (error) {
      this.lastError = `inspect failed: ${describeError(error)}`;
    }
    this.onChange();
  }

  /** Every queue known: the broker's list, the app's, and those workers consume. */
  queues(maxAgeMs = 1_000): Promise<QueueInfo[]> {
    if (this.#queues && Date.now() - this.#queues.at <= maxAgeMs) return this.#queues.value;
    const value = this.#readQueues();
    this.#queues = { at: Date.now(), value };
    value.catch(() => (this.#queues = undefined));
    return value;
  }

  /** Forgets the queue lengths read, after a purge. */
  invalidateQueues(): void {
    this.#queues = undefined;
  }

  async #readQueues(): Promise<QueueInfo[]> {
    const broker = await this.host.broker();
    const consumers = new Map<string, string[]>();
    for (const [hostname, details] of this.#details) for (const queue of details.queues ?? []) consumers.set(queue, [...(consumers.get(queue) ?? []), hostname]);
    const listed = await broker.listQueues?.().catch(() => undefined);
    const names = new Set([this.host.defaultQueue, ...this.host.queueDeclarations.map((declaration) => declaration.name), ...(listed ?? []), ...consumers.keys()]);
    const letters = await this.deadLetters();
    const lengths = await this.#lengths(broker, [...names]);
    return [...names]
      .map((name, i) => ({
        name,
        length: lengths[i] ?? null,
        deadLetters: letters === undefined ? null : letters.filter((letter) => letter.queue === name).length,
        consumers: consumers.get(name) ?? [],
        flow: this.flow.stats(name),
      }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Reads the queues' lengths (null where the broker could not say), sampling them for the rates in. */
  async #lengths(broker: Broker, names: string[]): Promise<Array<number | null>> {
    const lengths = await Promise.all(names.map((name) => broker.queueLength(name).catch(() => null)));
    names.forEach((name, i) => {
      const length = lengths[i];
      if (typeof length === 'number') this.flow.sample(name, length);
    });
    return lengths;
  }

  /** Samples the lengths of the queues known (not their dead letters), for the rates in. */
  async sampleLengths(): Promise<void> {
    const broker = await this.host.broker();
    const names = new Set([this.host.defaultQueue, ...this.host.queueDeclarations.map((declaration) => declaration.name), ...[...this.#details.values()].flatMap((details) => details.queues ?? [])]);
    await this.#lengths(broker, [...names]);
  }

  /** A queue's line, for one not in the list (read on its own). */
  async queue(name: string): Promise<QueueInfo> {
    const known = (await this.queues()).find((info) => info.name === name);
    if (known) return known;
    const [length] = await this.#lengths(await this.host.broker(), [name]);
    return { name, length: length ?? null, deadLetters: null, consumers: [], flow: this.flow.stats(name) };
  }

  /** The broker's dead letters (the latest {@link DEAD_LETTER_LIMIT}), or undefined where it cannot list them. */
  async deadLetters(): Promise<DeadLetter[] | undefined> {
    const broker = await this.host.broker();
    if (!broker.listDeadLetters) return undefined;
    return broker.listDeadLetters(DEAD_LETTER_LIMIT);
  }
}
