/**
 * celeriac's own Redis keys for each consumer (Python Celery ignores them): a lease key that
 * exists while the consumer lives, and the set of the delivery tags it holds. When the lease
 * lapses (the process died), any celeriac worker gives back what the set names at once, instead
 * of after kombu's visibility timeout.
 */
export const HELD_PREFIX = 'celeriac.held.';

/** The consumer's lease key. */
export const aliveKeyOf = (consumerId: string): string => `celeriac.alive.${consumerId}`;

/** The set of delivery tags the consumer holds. */
export const heldKeyOf = (consumerId: string): string => HELD_PREFIX + consumerId;
