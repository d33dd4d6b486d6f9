/** Encoding of task requests as Celery protocol v2 messages. */
import { encodeJson, formatIsoDate } from './kombu-json.js';
import type { MessageProperties, TaskMessage, TransportMessage } from './message.js';
import { pythonRepr } from './repr.js';

export const JSON_CONTENT_TYPE = 'application/json';
export const UTF8 = 'utf-8';

/**
 * Encodes a task request as a protocol v2 message: every v2 header present (null when unset),
 * `timelimit` as `[hard, soft]`, and the body `[args, kwargs, embed]` in kombu JSON.
 */
export function encodeTaskMessage(message: TaskMessage): TransportMessage {
  const headers: Record<string, unknown> = {
    lang: 'js',
    task: message.task,
    id: message.id,
    shadow: message.shadow,
    eta: message.eta ? formatIsoDate(message.eta) : null,
    expires: message.expires ? formatIsoDate(message.expires) : null,
    group: message.group,
    group_index: message.groupIndex,
    retries: message.retries,
    timelimit: message.timeLimit,
    root_id: message.rootId,
    parent_id: message.parentId,
    argsrepr: pythonRepr(message.args),
    kwargsrepr: pythonRepr(message.kwargs),
    origin: message.origin,
    ignore_result: message.ignoreResult,
    ...message.extraHeaders,
  };
  const properties: MessageProperties = {
    correlation_id: message.id,
    reply_to: message.replyTo ?? message.id,
    delivery_mode: 2,
  };
  if (message.priority !== null) properties.priority = message.priority;
  if (message.expires) {
    properties.expiration = String(Math.max(0, message.expires.getTime() - Date.now()));
  }
  const body = encodeJson([message.args, message.kwargs, message.embed]);
  return {
    headers,
    properties,
    contentType: JSON_CONTENT_TYPE,
    contentEncoding: UTF8,
    body: Buffer.from(body, 'utf8'),
  };
}
