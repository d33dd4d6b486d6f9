/**
 * Rate limits in the worker: a task over its limit waits here, in arrival order per task (and
 * per key), taking no concurrency slot, until its bucket lets it go. A `worker` limit is a token
 * bucket in this process; a `global` one asks the broker's shared store, so every worker draws
 * from one rate. Limits changed at run time (`rate_limit`) apply from the next release.
 */
import type { Clock, ClockTimer } from '../clock.js';
import { describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import { parseRate, TokenBucket } from '../rate-limit.js';
import type { Task } from '../task.js';

/** Idle gates are swept once per this many new ones. */
const SWEEP_EVERY = 1_000;

/** A rate shared by every worker: the broker's store of when each key may next run. */
export interface SharedRateStore {
  /**
   * Lets up to `count` runs of `key` go: those whose slots (spaced at the rate) start within
   * the next {@link SLOT_HORIZON_MS}, recorded as taken. `waitMs` says how long until the next
   * slot when none was granted.
   */
  acquire(key: string, perSecond: number, count: number): Promise<{ granted: number; waitMs: number }>;
}

/**
 * Slots of a shared rate that start within this many ms are granted at once: a fast rate is
 * taken many runs per round trip, and no window longer than this runs ahead of the rate.
 */
export const SLOT_HORIZON_MS = 1;
/** At most this many runs are asked for in one round trip. */
const SHARED_BATCH = 1_000;

/** What a held job must offer. */
export interface GatedJob {
  readonly task: Task<never, unknown>;
  readonly args: readonly unknown[];
}

interface Gate<J> {
  readonly key: string;
  readonly taskName: string;
  readonly global: boolean;
  readonly waiting: J[];
  bucket: TokenBucket | undefined;
  timer: ClockTimer | undefined;
  pumping: boolean;
}

/** The worker's rate gates. */
export class RateGates<J extends GatedJob> {
  readonly #gates = new Map<string, Gate<J>>();
  /** Rates set at run time, by task name: tasks per second, or null for none. */
  readonly #overrides = new Map<string, number | null>();
  /** Each task's own rate, parsed once (checked when the task was defined). */
  readonly #parsed = new WeakMap<Task<never, unknown>, number | null>();
  #held = 0;
  #created = 0;

  constructor(
    private readonly clock: Clock,
    private readonly release: (job: J) => void,
    private readonly sharedStore: () => SharedRateStore | undefined,
    private readonly logger: Logger,
  ) {}

  /** Jobs waiting for their rate. */
  get held(): number {
    return this.#held;
  }

  /** True when `task` runs under a rate limit now. */
  limits(task: Task<never, unknown>): boolean {
    return this.#rateOf(task) !== null;
  }

  /** The jobs held now, gate by gate in arrival order. */
  waiting(): J[] {
    return [...this.#gates.values()].flatMap((gate) => gate.waiting);
  }

  /** Holds `job` until its rate lets it go (at once, if it does now). */
  admit(job: J): void {
    const gate = this.#gateFor(job);
    gate.waiting.push(job);
    this.#held++;
    this.#pump(gate);
  }

  /** Sets a task's rate from now on (`rate_limit`); null or `'0'` lifts it. */
  setRate(taskName: string, rate: string | number | null): void {
    const perSecond = parseRate(rate === null ? null : typeof rate === 'number' ? rate : String(rate), `rate_limit for ${taskName}`);
    this.#overrides.set(taskName, perSecond);
    for (const gate of this.#gates.values()) {
      if (gate.taskName !== taskName) continue;
      if (perSecond !== null) gate.bucket?.setRate(perSecond);
      if (gate.timer) this.clock.clearTimeout(gate.timer);
      gate.timer = undefined;
      this.#pump(gate);
    }
  }

  /** Empties every gate (shutdown): the jobs it held, to hand back. */
  drain(): J[] {
    const jobs: J[] = [];
    for (const gate of this.#gates.values()) {
      if (gate.timer) this.clock.clearTimeout(gate.timer);
      jobs.push(...gate.waiting.splice(0));
    }
    this.#gates.clear();
    this.#held = 0;
    return jobs;
  }

  #rateOf(task: Task<never, unknown>): number | null {
    if (this.#overrides.has(task.name)) return this.#overrides.get(task.name)!;
    if (task.options.rateLimit === undefined) return null;
    let rate = this.#parsed.get(task);
    if (rate === undefined) this.#parsed.set(task, (rate = parseRate(task.options.rateLimit)));
    return rate;
  }

  #gateFor(job: J): Gate<J> {
    const { task } = job;
    const key = this.#keyOf(job);
    let gate = this.#gates.get(key);
    if (!gate) {
      this.#sweepIdle();
      gate = { key, taskName: task.name, global: task.options.rateLimitScope === 'global', waiting: [], bucket: undefined, timer: undefined, pumping: false };
      this.#gates.set(key, gate);
    }
    return gate;
  }

  #keyOf(job: J): string {
    const options = job.task.options as { rateLimitKey?(...args: readonly unknown[]): string };
    if (!options.rateLimitKey) return job.task.name;
    try {
      return `${job.task.name}\u0000${String(options.rateLimitKey(...job.args))}`;
    } catch (error) {
      this.logger.warning(`rateLimitKey of ${job.task.name} threw (${describeError(error)}); limiting the call under the task's own key`);
      return job.task.name;
    }
  }

  /** Lets go of what the rate allows now, and comes back when it allows the next. */
  #pump(gate: Gate<J>): void {
    if (gate.pumping || gate.timer) return;
    const store = gate.global ? this.sharedStore() : undefined;
    if (!store) {
      this.#releaseDue(gate, (perSecond) => (gate.bucket ??= new TokenBucket(perSecond, this.clock)).take());
      return;
    }
    gate.pumping = true;
    void this.#releaseShared(gate, store).finally(() => {
      gate.pumping = false;
      this.#forgetIfEmpty(gate);
    });
  }

  /** Releases jobs while `take` allows; sets a timer for the next when it does not. */
  #releaseDue(gate: Gate<J>, take: (perSecond: number) => number): void {
    while (gate.waiting.length > 0) {
      const perSecond = this.#rateOf(gate.waiting[0]!.task);
      const waitMs = perSecond === null ? 0 : take(perSecond);
      if (waitMs > 0) {
        this.#comeBack(gate, waitMs);
        return;
      }
      this.#releaseHead(gate);
    }
    this.#forgetIfEmpty(gate);
  }

  /** The same against the shared store: as many slots per round trip as are due. */
  async #releaseShared(gate: Gate<J>, store: SharedRateStore): Promise<void> {
    while (gate.waiting.length > 0) {
      const perSecond = this.#rateOf(gate.waiting[0]!.task);
      const { granted, waitMs } = perSecond === null ? { granted: gate.waiting.length, waitMs: 0 } : await this.#acquire(gate, store, perSecond);
      for (let i = 0; i < granted && gate.waiting.length > 0; i++) this.#releaseHead(gate); // fewer if drained meanwhile
      if (granted === 0) {
        this.#comeBack(gate, Math.max(1, waitMs));
        return;
      }
    }
  }

  async #acquire(gate: Gate<J>, store: SharedRateStore, perSecond: number): Promise<{ granted: number; waitMs: number }> {
    try {
      return await store.acquire(gate.key, perSecond, Math.min(gate.waiting.length, SHARED_BATCH));
    } catch (error) {
      this.logger.warning(`the shared rate limit of ${gate.taskName} is out of reach (${describeError(error)}); trying again in 1 s`);
      return { granted: 0, waitMs: 1_000 };
    }
  }

  #releaseHead(gate: Gate<J>): void {
    const job = gate.waiting.shift()!;
    this.#held--;
    this.release(job);
  }

  #comeBack(gate: Gate<J>, waitMs: number): void {
    gate.timer = this.clock.setTimeout(() => {
      gate.timer = undefined;
      this.#pump(gate);
    }, waitMs);
  }

  /** An idle gate goes once its bucket is full again (keeping it sooner would forget the rate). */
  #forgetIfEmpty(gate: Gate<J>): void {
    if (gate.waiting.length === 0 && !gate.timer && !gate.pumping && (!gate.bucket || gate.bucket.full)) this.#gates.delete(gate.key);
  }

  /** Every so many new gates, idle ones whose buckets refilled go (one per key used, otherwise). */
  #sweepIdle(): void {
    if (++this.#created % SWEEP_EVERY !== 0) return;
    for (const gate of this.#gates.values()) this.#forgetIfEmpty(gate);
  }
}
