/**
 * kombu's Redis layout: the JSON envelope around a base64 body, priority sub-queues, exchange
 * bindings and the `unacked` bookkeeping, so Python Celery shares queues with celeriac.
 */
import { randomUUID } from 'node:crypto';
import type { MessageProperties, TransportMessage } from '../../protocol/message.js';

/** kombu's separator inside priority keys and binding members. */
export const SEP = '\x06\x16';
/** kombu's priority steps: a message goes to the largest step not above its priority. */
export const PRIORITY_STEPS = [0, 3, 6, 9] as const;
export const UNACKED = 'unacked';
export const UNACKED_INDEX = 'unacked_index';
export const UNACKED_MUTEX = 'unacked_mutex';

/** The list key a message of `priority` waits in. */
export function queueKey(queue: string, priority: number): string {
  let step = 0;
  for (const candidate of PRIORITY_STEPS) if (priority >= candidate) step = candidate;
  return step === 0 ? queue : `${queue}${SEP}${step}`;
}

/** Every list key of a queue, in the order kombu consumes them (bucket 0 first). */
export function queueKeys(queue: string): string[] {
  return PRIORITY_STEPS.map((step) => queueKey(queue, step));
}

/** The binding set and member kombu writes when a queue is declared on its own exchange. */
export function binding(queue: string): { key: string; member: string } {
  return { key: `_kombu.binding.${queue}`, member: `${queue}${SEP}${SEP}${queue}` };
}

/** The kombu envelope as stored in the list. */
export interface Envelope {
  body: string;
  'content-encoding': string;
  'content-type': string;
  headers: Record<string, unknown>;
  properties: MessageProperties & {
    delivery_info: { exchange: string; routing_key: string; redelivered?: boolean };
    body_encoding: string;
    delivery_tag: string;
    priority: number;
  };
}

/**
 * {@link toEnvelope} as the JSON text a list holds, written without building the envelope
 * object first (the bulk publish path: about a fifth of its CPU went to that object).
 */
export function envelopeText(queue: string, message: TransportMessage, priority: number): string {
  const given = message.properties;
  if ('priority' in given || 'delivery_info' in given || 'body_encoding' in given || 'delivery_tag' in given) return JSON.stringify(toEnvelope(queue, message, priority));
  const properties = JSON.stringify(given);
  const extra = `"delivery_info":{"exchange":"","routing_key":${JSON.stringify(queue)}},"priority":${priority},"body_encoding":"base64","delivery_tag":"${randomUUID()}"}`;
  return (
    `{"body":"${message.body.toString('base64')}","content-encoding":${JSON.stringify(message.contentEncoding)},"content-type":${JSON.stringify(message.contentType)}` +
    `,"headers":${JSON.stringify(message.headers)},"properties":${properties.length > 2 ? `${properties.slice(0, -1)},` : '{'}${extra}}`
  );
}

/** Wraps a message as kombu does: base64 body, a fresh delivery tag. */
export function toEnvelope(queue: string, message: TransportMessage, priority: number): Envelope {
  return {
    body: message.body.toString('base64'),
    'content-encoding': message.contentEncoding,
    'content-type': message.contentType,
    headers: message.headers,
    properties: {
      ...message.properties,
      delivery_info: { exchange: '', routing_key: queue },
      priority,
      body_encoding: 'base64',
      delivery_tag: randomUUID(),
    },
  };
}

/** Unwraps an envelope; the body is base64 unless `body_encoding` says otherwise. */
export function fromEnvelope(envelope: Envelope): TransportMessage {
  const { delivery_info: _info, body_encoding, delivery_tag: _tag, ...properties } = envelope.properties;
  return {
    headers: envelope.headers ?? {},
    properties,
    contentType: envelope['content-type'],
    contentEncoding: envelope['content-encoding'],
    body: body_encoding === 'base64' ? Buffer.from(envelope.body, 'base64') : Buffer.from(String(envelope.body), 'utf8'),
  };
}

/** Marks an envelope as redelivered, the way kombu's restore does. */
export function markRedelivered(envelope: Envelope): Envelope {
  return {
    ...envelope,
    headers: { ...envelope.headers, redelivered: true },
    properties: { ...envelope.properties, delivery_info: { ...envelope.properties.delivery_info, redelivered: true } },
  };
}
