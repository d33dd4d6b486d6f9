/**
 * The body of a Celery control ("pidbox") message, as kombu's Mailbox writes it:
 * `{method, arguments, destination, pattern, matcher}` in JSON. Shared by the brokers whose
 * control channel Python Celery also uses (Redis, RabbitMQ).
 */
import { decodeJson, encodeJson } from '../protocol/kombu-json.js';
import type { ControlCommand } from './broker.js';

/** Celery's control exchange. */
export const PIDBOX_EXCHANGE = 'celery.pidbox';

export function encodeControlCommand(command: ControlCommand): Buffer {
  return Buffer.from(encodeJson({ method: command.method, arguments: command.arguments, destination: command.destination, pattern: null, matcher: null }));
}

/** The command in a control message body; null for anything that is not one. */
export function decodeControlCommand(body: Buffer): ControlCommand | null {
  let decoded: unknown;
  try {
    decoded = decodeJson(body.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof decoded !== 'object' || decoded === null) return null;
  const { method, arguments: args, destination } = decoded as Record<string, unknown>;
  if (typeof method !== 'string') return null;
  return {
    method,
    arguments: typeof args === 'object' && args !== null ? (args as Record<string, unknown>) : {},
    destination: Array.isArray(destination) ? destination.map(String) : null,
  };
}
