/**
 * What every broker's deliveries share: a delivery settles once. The first `ack`, `reject` or
 * `deadLetter` acts; later calls do nothing. Each broker says how to settle, and is told when a
 * delivery is done with, whether or not settling it worked (a lost connection gives it back).
 */
import type { TransportMessage } from '../protocol/message.js';
import type { Delivery } from './broker.js';

/** How a delivery ends. */
export type Settlement = { readonly kind: 'ack' } | { readonly kind: 'reject'; readonly requeue: boolean } | { readonly kind: 'dead-letter'; readonly reason: string };

const ACK: Settlement = { kind: 'ack' };
const REQUEUE: Settlement = { kind: 'reject', requeue: true };
const DROP: Settlement = { kind: 'reject', requeue: false };

/** A delivery that settles once; subclasses implement {@link settle} and {@link done}. */
export abstract class OnceSettledDelivery implements Delivery {
  abstract readonly message: TransportMessage;
  abstract readonly queue: string;
  abstract readonly redelivered: boolean;
  #settled = false;

  /** True once `ack`, `reject` or `deadLetter` was called. */
  get isSettled(): boolean {
    return this.#settled;
  }

  ack(): Promise<void> {
    return this.#settleOnce(ACK);
  }

  reject(requeue: boolean): Promise<void> {
    return this.#settleOnce(requeue ? REQUEUE : DROP);
  }

  deadLetter(reason: string): Promise<void> {
    return this.#settleOnce({ kind: 'dead-letter', reason });
  }

  /** Carries out a settlement with the broker. */
  protected abstract settle(settlement: Settlement): Promise<void> | void;

  /** Called once the delivery is done with, after `settle` succeeded or failed. */
  protected abstract done(): void;

  #settleOnce(settlement: Settlement): Promise<void> {
    return this.settleOnceBy(() => this.settle(settlement));
  }

  /**
   * Settles by a broker's own means (a Redis postpone), unless the delivery is settled already.
   * One reaction rather than an async function's promises: every task settles a delivery, and
   * each promise costs more while AsyncLocalStorage follows handlers (the worker's default).
   */
  protected settleOnceBy(action: () => Promise<void> | void): Promise<void> {
    if (this.#settled) return Promise.resolve();
    this.#settled = true;
    let settling: Promise<void> | void;
    try {
      settling = action();
    } catch (error) {
      this.done();
      return Promise.reject(error as Error);
    }
    return Promise.resolve(settling).then(
      () => this.done(),
      (error: unknown) => {
        this.done();
        throw error;
      },
    );
  }
}
