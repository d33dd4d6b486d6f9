/**
 * A worker's executors: its own pool (`pool`, `concurrency`) and the pools its tasks' `runIn`
 * options ask for, created and started together, each task placed on one of them.
 */
import { ConfigurationError } from '../errors.js';
import type { Task } from '../task.js';
import type { Executor, PoolKind } from './executor.js';
import { InlineExecutor } from './inline-executor.js';
import type { WorkerOptions } from './options.js';
import { PoolExecutor } from './pool/pool-executor.js';

/** Tasks at once on the event loop for `runIn: 'event'` tasks of a worker whose pool is threads or processes. */
const DEFAULT_EVENT_CONCURRENCY = 10;
/** The pool of each `runIn` placement. */
const POOL_OF = { event: 'event', thread: 'threads', process: 'processes' } as const satisfies Record<string, PoolKind>;

export class Executors {
  readonly #executors = new Map<PoolKind, Executor>();

  constructor(private readonly options: WorkerOptions) {}

  /** The pool tasks run in unless their `runIn` says otherwise. */
  get main(): Executor | undefined {
    return this.#executors.get(this.#mainKind);
  }

  /**
   * Creates and starts the worker's pool and those `tasks` ask for.
   *
   * @throws {@link ConfigurationError} when a thread or process pool has no module to load, or
   *   a slot cannot load it.
   */
  async start(tasks: Iterable<Task<never, unknown>>): Promise<void> {
    const all = [...tasks];
    const kinds = new Set<PoolKind>([this.#mainKind]);
    if (!this.options.eager) for (const task of all) if (task.options.runIn) kinds.add(POOL_OF[task.options.runIn]);
    for (const kind of kinds) this.#executors.set(kind, this.#create(kind, all));
    await Promise.all([...this.#executors.values()].map((executor) => executor.start()));
  }

  /** Where `task` runs: its `runIn`, else the worker's pool. */
  for(task: Task<never, unknown>): Executor {
    const placed = task.options.runIn && this.#executors.get(POOL_OF[task.options.runIn]);
    return placed || this.main!;
  }

  /** True when some executor has a free slot. */
  hasRoom(): boolean {
    for (const executor of this.#executors.values()) if (executor.busy < executor.capacity) return true;
    return false;
  }

  /** Closes every executor; `onError` hears those that fail to. */
  async close(onError: (error: unknown, kind: PoolKind) => void): Promise<void> {
    await Promise.all([...this.#executors.values()].map((executor) => executor.close().catch((error: unknown) => onError(error, executor.kind))));
    this.#executors.clear();
  }

  get #mainKind(): PoolKind {
    return this.options.eager ? 'event' : this.options.pool;
  }

  #create(kind: PoolKind, tasks: readonly Task<never, unknown>[]): Executor {
    const { options } = this;
    const main = kind === options.pool;
    if (kind === 'event') return new InlineExecutor({ concurrency: main ? options.concurrency : DEFAULT_EVENT_CONCURRENCY, trackChildren: options.trackChildren });
    if (!options.module) {
      const placed = tasks.filter((task) => task.options.runIn && POOL_OF[task.options.runIn] === kind).map((task) => task.name);
      throw new ConfigurationError(
        `the ${kind} pool${main ? '' : ` (for ${placed.join(', ')})`} loads the app's module in every ${kind === 'threads' ? 'thread' : 'child process'}; ` +
          'tell the worker which module that is: app.worker({ module: import.meta.url }) (celeriac worker -A sets it)',
      );
    }
    const size = main ? options.concurrency : kind === 'threads' ? options.threads : options.processes;
    const [max, min] = main && options.autoscale ? options.autoscale : [size, size];
    return new PoolExecutor(kind, {
      max,
      min,
      module: options.module,
      overrides: options.moduleOverrides,
      trackChildren: options.trackChildren,
      maxTasksPerChild: options.maxTasksPerChild,
      maxMemoryPerChild: options.maxMemoryPerChild,
      keepaliveMs: options.autoscaleIdle * 1000,
      logger: options.logger,
    });
  }
}
