/**
 * The leader lease of one beat process: taken in the store, renewed every third of its length
 * while the process lives, confirmed (compare-and-renew) before each send, and given up on stop.
 *
 * The process counts itself leader only until its lease could have lapsed by its own clock
 * (from when it asked, minus a margin), so a stalled renewal makes it stop sending before
 * another beat may start.
 */
import type { Clock, ClockTimer } from '../clock.js';
import { TypedEmitter } from '../events.js';
import type { Logger } from '../logger.js';
import type { BeatStore } from './store.js';

/** Events of a {@link LeaderLease}. */
export interface LeaseEventMap {
  acquired: { epoch: number };
  lost: { reason: string };
}

/** Settings of a {@link LeaderLease}. */
export interface LeaseSettings {
  /** Names this process in the store (`beat.<pid>@<host>`). */
  holder: string;
  leaseMs: number;
  clock: Clock;
  logger: Logger;
}

/** One process's view of the leader lease. */
export class LeaderLease extends TypedEmitter<LeaseEventMap> {
  #token: string | undefined;
  #epoch = 0;
  #validUntil = 0;
  #renewTimer: ClockTimer | undefined;
  #expiryTimer: ClockTimer | undefined;
  #renewing: Promise<unknown> | undefined;
  readonly #margin: number;

  constructor(
    private readonly store: BeatStore,
    private readonly settings: LeaseSettings,
  ) {
    super();
    this.#margin = Math.min(1_000, settings.leaseMs / 10);
  }

  /** True while this process holds the lease by its own reckoning. */
  get held(): boolean {
    return this.#token !== undefined && this.settings.clock.now() < this.#validUntil;
  }

  /** The fencing token of the current tenure (undefined when not held). */
  get token(): string | undefined {
    return this.held ? this.#token : undefined;
  }

  /** The current tenure's epoch (0 before the first). */
  get epoch(): number {
    return this.#epoch;
  }

  /**
   * Takes the lease if it is free. Resolves to 0 when taken, else to how long (ms) the holder's
   * lease has left: the moment worth trying again.
   */
  async tryAcquire(): Promise<number> {
    if (this.held) return 0;
    const asked = this.settings.clock.now();
    const result = await this.store.acquire(this.settings.holder, this.settings.leaseMs);
    if (!result.acquired) return result.expiresInMs;
    this.#token = result.token;
    this.#epoch = result.epoch;
    this.#extend(asked);
    this.emit('acquired', { epoch: result.epoch });
    return 0;
  }

  /**
   * The fencing check before a send: renews the lease if this process's token still holds it.
   * False when it does not (the lease is then lost) or when the store cannot say (it is kept
   * until it lapses by this process's clock, and nothing should be sent meanwhile).
   */
  async confirm(): Promise<boolean> {
    const token = this.#token;
    if (token === undefined) return false;
    const asked = this.settings.clock.now();
    let renewed: boolean;
    try {
      renewed = await this.store.renew(token, this.settings.leaseMs);
    } catch (error) {
      this.settings.logger.warning(`beat: cannot reach the store ${this.store.displayUrl} to renew the lease: ${(error as Error).message}`);
      this.#checkExpiry();
      if (token === this.#token && !this.#renewTimer) this.#armRenewal(Math.min(1_000, this.settings.leaseMs / 10));
      return false;
    }
    if (token !== this.#token) return false; // lost or released meanwhile
    if (!renewed) {
      this.#lose('another beat holds the lease (this one was too late to renew it)');
      return false;
    }
    this.#extend(asked);
    return true;
  }

  /** Gives the lease up (compare-and-delete), so another beat takes over at once. */
  async release(): Promise<void> {
    const token = this.#token;
    this.#clear();
    this.#token = undefined;
    await this.#renewing;
    if (token !== undefined) await this.store.release(token).catch(() => undefined);
  }

  /** Stops counting itself leader, without telling the store (the lease lapses by itself). */
  abandon(reason: string): void {
    if (this.#token !== undefined) this.#lose(reason);
  }

  #extend(asked: number): void {
    this.#validUntil = asked + this.settings.leaseMs - this.#margin;
    this.#clear();
    const { clock, leaseMs } = this.settings;
    this.#armRenewal(leaseMs / 3);
    this.#expiryTimer = clock.setTimeout(() => this.#checkExpiry(), Math.max(0, this.#validUntil - clock.now()));
  }

  #armRenewal(ms: number): void {
    this.#renewTimer = this.settings.clock.setTimeout(() => {
      this.#renewTimer = undefined;
      this.#renewing = this.confirm().finally(() => (this.#renewing = undefined));
    }, ms);
  }

  #checkExpiry(): void {
    if (this.#token !== undefined && !this.held) this.#lose('the lease lapsed before it could be renewed (the store was unreachable or this process stalled)');
  }

  #lose(reason: string): void {
    this.#clear();
    this.#token = undefined;
    this.emit('lost', { reason });
  }

  #clear(): void {
    if (this.#renewTimer) this.settings.clock.clearTimeout(this.#renewTimer);
    if (this.#expiryTimer) this.settings.clock.clearTimeout(this.#expiryTimer);
    this.#renewTimer = this.#expiryTimer = undefined;
  }
}
