/**
 * The exchanges and queues celeriac uses on RabbitMQ, named and shaped as Celery declares them
 * so Python workers and clients share them: a task queue `q` is a durable queue bound to a
 * durable direct exchange `q` with routing key `q`, and tasks are published through the default
 * exchange with routing key `q`.
 *
 * Beside Celery's entities celeriac adds two of its own, which Celery never declares:
 *
 * - **Delayed delivery.** 32 durable topic exchanges and queues `celeriac.delay.<L>`; queue L
 *   holds messages for 100 ms × 2^L, then dead-letters them to level L−1 (level 0 to
 *   `celeriac.delay.deliver`). The routing key spells the delay in binary, one word per level,
 *   followed by the destination queue: each level keeps a message whose bit is 1 and passes the
 *   others straight on. Every task queue is bound to `celeriac.delay.deliver`, so nothing waits
 *   in worker memory and a delay of any length costs the broker at most 32 hops.
 * - **Dead letters.** A direct exchange `celeriac.dead` and, per task queue `q`, a durable queue
 *   `q.celeriac.dead` that keeps messages no worker can process, with the reason in a header.
 *   Adding a dead-letter argument to `q` itself would make its declaration differ from Python
 *   Celery's and RabbitMQ would refuse one of the two.
 */
import type { Channel } from 'amqplib';
import type { QueueDeclaration } from '../../brokers/broker.js';

/** The queue a node's control commands arrive on. */
export const pidboxQueue = (node: string): string => `${node}.celery.pidbox`;
/** Celery's `control_queue_ttl` and `control_queue_expires`. */
export const PIDBOX_QUEUE_ARGUMENTS = { 'x-message-ttl': 300_000, 'x-expires': 10_000 };

export const DEAD_LETTER_EXCHANGE = 'celeriac.dead';
export const deadLetterQueue = (queue: string): string => `${queue}.celeriac.dead`;
/** Headers a dead letter carries: why it was moved aside, and when (ms since the epoch). */
export const DEAD_REASON_HEADER = 'x-celeriac-reason';
export const DEAD_AT_HEADER = 'x-celeriac-dead-at';

/** Number of delay levels; the longest delay is 100 ms × (2^32 − 1), about 13.6 years. */
export const DELAY_LEVELS = 32;
/** The smallest step of a broker-side delay. */
export const DELAY_RESOLUTION_MS = 100;
export const DELAY_DELIVER_EXCHANGE = 'celeriac.delay.deliver';
export const delayLevel = (level: number): string => `celeriac.delay.${level}`;
/** Where a delayed message enters: the highest level. */
export const DELAY_ENTRY_EXCHANGE = delayLevel(DELAY_LEVELS - 1);

/** How a task queue is declared. Both must match what other clients declare for the queue. */
export interface TaskQueueShape {
  /** `x-max-priority`, when priorities are on (Celery's `task_queue_max_priority`). */
  maxPriority: number | null;
  /** `x-queue-type`: `classic` (RabbitMQ's default) or `quorum`. */
  queueType: 'classic' | 'quorum';
}

/** The queue arguments for a shape; none at all for a plain classic queue, as Celery sends. */
export function taskQueueArguments(shape: TaskQueueShape): Record<string, unknown> {
  const args: Record<string, unknown> = {};
  if (shape.queueType === 'quorum') args['x-queue-type'] = 'quorum';
  if (shape.maxPriority !== null) args['x-max-priority'] = shape.maxPriority;
  return args;
}

/**
 * Declares a task queue the way Celery does — its exchange (by default a direct exchange of the
 * queue's name), the queue, and the binding with its routing key — plus its celeriac bindings.
 */
export async function declareTaskQueue(channel: Channel, declaration: QueueDeclaration, shape: TaskQueueShape): Promise<void> {
  const { exchange, type } = exchangeOf(declaration);
  await channel.assertExchange(exchange, type, { durable: true, autoDelete: false });
  await channel.assertQueue(declaration.name, { durable: true, exclusive: false, autoDelete: false, arguments: taskQueueArguments(shape) });
  await bindTaskQueue(channel, declaration);
}

/** Binds an existing task queue to its exchange and to celeriac's delay and dead-letter paths. */
export async function bindTaskQueue(channel: Channel, declaration: QueueDeclaration): Promise<void> {
  const queue = declaration.name;
  await channel.bindQueue(queue, exchangeOf(declaration).exchange, declaration.routingKey ?? queue);
  await channel.bindQueue(queue, DELAY_DELIVER_EXCHANGE, delayedBinding(queue));
  await channel.assertQueue(deadLetterQueue(queue), { durable: true, autoDelete: false });
  await channel.bindQueue(deadLetterQueue(queue), DEAD_LETTER_EXCHANGE, queue);
}

/** A queue's exchange: its own, or a direct exchange of its name (Celery's default). */
function exchangeOf(declaration: QueueDeclaration): { exchange: string; type: string } {
  return declaration.exchange ? { exchange: declaration.exchange, type: declaration.exchangeType ?? 'direct' } : { exchange: declaration.name, type: 'direct' };
}

/** Declares the delay levels and the dead-letter exchange; idempotent. */
export async function declareSharedEntities(channel: Channel): Promise<void> {
  await channel.assertExchange(DEAD_LETTER_EXCHANGE, 'direct', { durable: true, autoDelete: false });
  await channel.assertExchange(DELAY_DELIVER_EXCHANGE, 'topic', { durable: true, autoDelete: false });
  for (let level = 0; level < DELAY_LEVELS; level++) {
    const name = delayLevel(level);
    const next = level === 0 ? DELAY_DELIVER_EXCHANGE : delayLevel(level - 1);
    await channel.assertExchange(name, 'topic', { durable: true, autoDelete: false });
    await channel.assertQueue(name, {
      durable: true,
      autoDelete: false,
      arguments: { 'x-message-ttl': DELAY_RESOLUTION_MS * 2 ** level, 'x-dead-letter-exchange': next },
    });
    const skip = '*.'.repeat(DELAY_LEVELS - 1 - level);
    await channel.bindQueue(name, name, `${skip}1.#`);
    await channel.bindExchange(next, name, `${skip}0.#`);
  }
}

/**
 * The routing key that carries a message through the delay levels to `queue`: the delay in
 * units of {@link DELAY_RESOLUTION_MS}, rounded up so it never arrives early, as 32 binary
 * words (most significant first), then the queue.
 */
export function delayedRoutingKey(queue: string, delayMs: number): string {
  const units = Math.min(2 ** DELAY_LEVELS - 1, Math.max(0, Math.ceil(delayMs / DELAY_RESOLUTION_MS)));
  const bits = units.toString(2).padStart(DELAY_LEVELS, '0');
  return `${bits.split('').join('.')}.${queue}`;
}

/** The pattern binding a task queue to the end of the delay path: exactly 32 words, then it. */
export function delayedBinding(queue: string): string {
  return `${'*.'.repeat(DELAY_LEVELS)}${queue}`;
}

/** Headers RabbitMQ adds while dead-lettering through the delay levels; not the task's own. */
export function isBrokerDeathHeader(name: string): boolean {
  return name === 'x-death' || name.startsWith('x-first-death-') || name.startsWith('x-last-death-');
}
