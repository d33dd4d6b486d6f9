/**
 * A run's task message on its way to a slot and back into a message there: the body's bytes
 * unchanged and the headers decoding reads, so the slot decodes it as the worker did (headers
 * travel as JSON: an AMQP header holding a timestamp or bytes arrives as their JSON form).
 */
import { JSON_CONTENT_TYPE } from '../../protocol/encode.js';
import type { TransportMessage } from '../../protocol/message.js';
import type { RunRequest } from '../executor.js';
import type { AbortCause, RunOrder } from './pool-protocol.js';

/** Headers only people read (Celery's reprs of the arguments, often as long as the body). */
const UNREAD_HEADERS = new Set(['argsrepr', 'kwargsrepr']);

/** The order for run `run` of `request`, with the signals that fired before it was sent. */
export function runOrder(run: number, request: RunRequest, aborts: readonly AbortCause[]): RunOrder {
  const { headers: all, properties, body } = request.message;
  const headers: Record<string, unknown> = {};
  for (const key in all) if (!UNREAD_HEADERS.has(key)) headers[key] = all[key];
  const order: RunOrder = { run, headers, body: body.toString('latin1') };
  if (typeof properties.reply_to === 'string') order.replyTo = properties.reply_to;
  if (typeof properties.priority === 'number') order.priority = properties.priority;
  if (request.trace) order.trace = request.trace;
  if (aborts.length > 0) order.aborts = [...aborts];
  return order;
}

/** The task message an order carries, as a slot decodes it. */
export function orderedMessage(order: RunOrder): TransportMessage {
  const properties: TransportMessage['properties'] = {};
  if (order.replyTo !== undefined) properties.reply_to = order.replyTo;
  if (order.priority !== undefined) properties.priority = order.priority;
  return { headers: order.headers, properties, contentType: JSON_CONTENT_TYPE, contentEncoding: 'utf-8', body: Buffer.from(order.body, 'latin1') };
}
