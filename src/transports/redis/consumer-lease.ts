/**
 * celeriac's own Redis keys for each consumer (Python Celery ignores them): a lease key that
 * exists while the consumer lives, and the set of the delivery tags it holds. When the lease
 * lapses (the process died), any celeriac worker gives back what the set names at once, instead
 * of after kombu's visibility timeout.
 */
import { UNACKED_INDEX } from './kombu-layout.js';

export const HELD_PREFIX = 'celeriac.held.';

/** The consumer's lease key. */
export const aliveKeyOf = (consumerId: string): string => `celeriac.alive.${consumerId}`;

/** The set of delivery tags the consumer holds. */
export const heldKeyOf = (consumerId: string): string => HELD_PREFIX + consumerId;

/** The RENEW script's keys and arguments (see scripts.ts) for renewing `consumerIds` now. */
export function renewArguments(consumerIds: readonly string[], leaseMs: number): Array<string | number> {
  return [1 + 2 * consumerIds.length, UNACKED_INDEX, ...consumerIds.flatMap((id) => [aliveKeyOf(id), heldKeyOf(id)]), Date.now() / 1000, leaseMs];
}

/**
 * The list a waiting consumer's blocking `BLMOVE` moves a message into from the queue: the
 * message is out of the queue and safe there (it belongs to this consumer), and is handed to the
 * worker at once, without waiting for another round trip; a script then records it as unacked
 * like any other taken message. What a dead consumer's taking lists still hold goes back to the
 * queue with its held set. One list per queue, named `celeriac.taking.<consumer id>|<queue>`
 * (a consumer id never contains `|`).
 */
export const TAKING_PREFIX = 'celeriac.taking.';

/** The consumer's taking list for `queue`. */
export const takingKeyOf = (consumerId: string, queue: string): string => `${TAKING_PREFIX}${consumerId}|${queue}`;

/** The consumer and the queue of a taking list's key, or null for a key of another shape. */
export function parseTakingKey(key: string): { consumerId: string; queue: string } | null {
  const bar = key.indexOf('|');
  if (!key.startsWith(TAKING_PREFIX) || bar < 0) return null;
  return { consumerId: key.slice(TAKING_PREFIX.length, bar), queue: key.slice(bar + 1) };
}
