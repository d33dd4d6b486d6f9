/** How long brokers replay control commands to late subscribers (Celery's revoke lifetime). */
export const CONTROL_REPLAY_MS = 3 * 60 * 60 * 1000;
