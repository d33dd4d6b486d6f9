/**
 * Celery's event messages: JSON, one event or a list of them (`task.multi`), headers
 * `{hostname}`, transient; the routing key is the event type with `-` as `.`
 * (`task-succeeded` → `task.succeeded`). Shared by the brokers Python Celery also uses.
 */
import { decodeJson } from '../protocol/kombu-json.js';
import type { CeleryEvent } from './broker.js';

/** Celery's event exchange. */
export const EVENT_EXCHANGE = 'celeryev';
/** Larger event messages are dropped unread. */
export const MAX_EVENT_BYTES = 1024 * 1024;

/** The routing key of one event type. */
export function eventRoutingKey(type: string): string {
  return type.replaceAll('-', '.');
}

/**
 * The body of an event message. Event fields are strings, numbers, null and lists of them (a
 * task's arguments and result travel as reprs), so plain JSON encodes them.
 */
export function encodeEvents(events: CeleryEvent | readonly CeleryEvent[]): Buffer {
  return Buffer.from(JSON.stringify(events));
}

/**
 * The events in a message body: one, or each of a `task.multi` list; null when the body is
 * not events (not JSON, too large, not objects with a `type`).
 */
export function decodeEvents(body: Buffer): CeleryEvent[] | null {
  if (body.length > MAX_EVENT_BYTES) return null;
  let decoded: unknown;
  try {
    decoded = decodeJson(body.toString('utf8'));
  } catch {
    return null;
  }
  const list = Array.isArray(decoded) ? decoded : [decoded];
  return list.every(isEvent) ? list : null;
}

function isEvent(value: unknown): value is CeleryEvent {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && typeof (value as { type?: unknown }).type === 'string';
}

/** True when `routingKey` matches an AMQP topic `pattern` (`*` one word, `#` any number). */
export function topicMatches(pattern: string, routingKey: string): boolean {
  const words = routingKey.split('.');
  const parts = pattern.split('.');
  const match = (p: number, w: number): boolean => {
    if (p === parts.length) return w === words.length;
    if (parts[p] === '#') return match(p + 1, w) || (w < words.length && match(p, w + 1));
    return w < words.length && (parts[p] === '*' || parts[p] === words[w]) && match(p + 1, w + 1);
  };
  return match(0, 0);
}
