import type { ControlCommand } from './broker.js';

/** How long brokers replay control commands to late subscribers (Celery's revoke lifetime). */
export const CONTROL_REPLAY_MS = 3 * 60 * 60 * 1000;

/**
 * Whether a command kept in a control log is replayed to a subscriber that comes late: only
 * fire-and-forget commands (a revoke) are. A request waiting for replies (`ticket`, `replyTo`)
 * was answered, or given up on, by those listening when it was sent; a command whose
 * `expiresAt` has passed is dropped by every worker anyway.
 */
export function replayable(command: ControlCommand, now: number): boolean {
  if (command.ticket || command.replyTo) return false;
  return typeof command.expiresAt !== 'number' || command.expiresAt > now;
}
