/**
 * The body of a Celery control ("pidbox") message, as kombu's Mailbox writes it:
 * `{method, arguments, destination, pattern, matcher}` in JSON. Shared by the brokers whose
 * control channel Python Celery also uses (Redis, RabbitMQ).
 */
import { decodeJsonObject, encodeJson } from '../protocol/kombu-json.js';
import type { ControlCommand } from './broker.js';

/** Celery's control exchange. */
export const PIDBOX_EXCHANGE = 'celery.pidbox';

export function encodeControlCommand(command: ControlCommand): Buffer {
  return Buffer.from(encodeJson({ method: command.method, arguments: command.arguments, destination: command.destination, pattern: null, matcher: null }));
}

/** The command in a control message body; null for anything that is not one. */
export function decodeControlCommand(body: Buffer): ControlCommand | null {
  const decoded = decodeJsonObject(body);
  if (!decoded || typeof decoded['method'] !== 'string') return null;
  const { method, arguments: args, destination } = decoded;
  return {
    method,
    arguments: typeof args === 'object' && args !== null ? (args as Record<string, unknown>) : {},
    destination: Array.isArray(destination) ? destination.map(String) : null,
  };
}
