/**
 * Decoding of untrusted task messages: protocol v2, v1 and the hybrid of the two, with a size
 * limit, a content-type check and a shape check on every field a worker relies on.
 */
import { inflateSync } from 'node:zlib';
import { ProtocolError } from '../errors.js';
import { JSON_CONTENT_TYPE } from './encode.js';
import { checkEmbed } from '../canvas/signature-dict.js';
import { decodeJson, parseIsoDate } from './kombu-json.js';
import { emptyEmbed, type Embed, type SignatureDict, type TaskMessage, type TransportMessage } from './message.js';

/** Messages larger than this are refused unless a worker sets its own limit. */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

const MODELLED_HEADERS = new Set([
  'lang', 'task', 'id', 'shadow', 'eta', 'expires', 'group', 'group_index', 'retries', 'timelimit',
  'root_id', 'parent_id', 'argsrepr', 'kwargsrepr', 'origin', 'ignore_result', 'meth',
  'compression', 'redelivered',
]);

/** Options for {@link decodeTaskMessage}. */
export interface DecodeOptions {
  /** Refuse bodies larger than this many bytes. Default {@link DEFAULT_MAX_MESSAGE_BYTES}. */
  maxBytes?: number;
}

/**
 * Turns a transport message into a task request.
 *
 * @throws {@link ProtocolError} naming exactly what is wrong: `oversized`,
 *   `unsupported-content-type`, `undecodable`, `malformed` or `unknown-protocol`.
 */
export function decodeTaskMessage(message: TransportMessage, options: DecodeOptions = {}): TaskMessage {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (message.body.length > maxBytes) {
    throw new ProtocolError('oversized', `message body is ${message.body.length} bytes, over the limit of ${maxBytes}`);
  }
  const body = decodeJson(bodyText(message));
  const headers = isRecord(message.headers) ? message.headers : {};
  if (typeof headers['task'] === 'string') return fromV2(headers, body, message);
  if (isRecord(body) && typeof body['task'] === 'string') return fromV1(body, message);
  throw new ProtocolError('unknown-protocol', 'message has no "task" header and its body is not a protocol v1 task');
}

function bodyText(message: TransportMessage): string {
  const contentType = message.contentType || JSON_CONTENT_TYPE;
  if (contentType !== JSON_CONTENT_TYPE) {
    throw new ProtocolError(
      'unsupported-content-type',
      `content type ${JSON.stringify(contentType)} is not accepted (only ${JSON_CONTENT_TYPE})`,
    );
  }
  const compression = message.headers['compression'];
  if (compression === undefined || compression === null) return message.body.toString('utf8');
  if (compression !== 'application/x-gzip' && compression !== 'zlib') {
    throw new ProtocolError('unsupported-content-type', `compression ${JSON.stringify(compression)} is not supported`);
  }
  try {
    return inflateSync(message.body).toString('utf8');
  } catch (error) {
    throw new ProtocolError('undecodable', `body does not inflate: ${(error as Error).message}`);
  }
}

function fromV2(headers: Record<string, unknown>, body: unknown, message: TransportMessage): TaskMessage {
  const id = requireId(headers['id']);
  let args: unknown;
  let kwargs: unknown;
  let embed: unknown;
  if (Array.isArray(body)) {
    if (body.length !== 3) {
      throw new ProtocolError('malformed', `task body must be [args, kwargs, embed]; got an array of ${body.length}`);
    }
    [args, kwargs, embed] = body;
  } else if (isRecord(body) && 'args' in body) {
    // Hybrid: v2 headers around a v1-style body.
    ({ args, kwargs } = body);
    embed = { callbacks: body['callbacks'], errbacks: body['errbacks'], chain: null, chord: body['chord'] };
  } else {
    throw new ProtocolError('malformed', 'task body must be a JSON array [args, kwargs, embed]');
  }
  const extraHeaders: Record<string, unknown> = {};
  for (const key of Object.keys(headers)) {
    if (!MODELLED_HEADERS.has(key)) extraHeaders[key] = headers[key];
  }
  return {
    id,
    task: headers['task'] as string,
    args: requireArgs(args),
    kwargs: requireKwargs(kwargs),
    embed: requireEmbed(embed, id),
    eta: optionalDate(headers['eta'], 'eta'),
    expires: optionalDate(headers['expires'], 'expires'),
    retries: optionalCount(headers['retries'], 'retries'),
    timeLimit: requireTimeLimit(headers['timelimit']),
    rootId: optionalString(headers['root_id'], 'root_id') ?? id,
    parentId: optionalString(headers['parent_id'], 'parent_id'),
    group: optionalString(headers['group'], 'group'),
    groupIndex: optionalInteger(headers['group_index'], 'group_index'),
    shadow: optionalString(headers['shadow'], 'shadow'),
    origin: optionalString(headers['origin'], 'origin'),
    ignoreResult: headers['ignore_result'] === true,
    replyTo: optionalString(message.properties['reply_to'], 'reply_to'),
    priority: optionalInteger(message.properties['priority'], 'priority'),
    extraHeaders,
  };
}

function fromV1(body: Record<string, unknown>, message: TransportMessage): TaskMessage {
  const id = requireId(body['id']);
  const group = optionalString(body['group'] ?? body['taskset'], 'group');
  return {
    id,
    task: body['task'] as string,
    args: requireArgs(body['args'] ?? []),
    kwargs: requireKwargs(body['kwargs'] ?? {}),
    embed: requireEmbed({ callbacks: body['callbacks'], errbacks: body['errbacks'], chain: null, chord: body['chord'] }, id),
    eta: optionalDate(body['eta'], 'eta'),
    expires: optionalDate(body['expires'], 'expires'),
    retries: optionalCount(body['retries'], 'retries'),
    timeLimit: requireTimeLimit(body['timelimit']),
    rootId: id,
    parentId: null,
    group,
    groupIndex: optionalInteger(body['group_index'], 'group_index'),
    shadow: null,
    origin: null,
    ignoreResult: false,
    replyTo: optionalString(message.properties['reply_to'], 'reply_to'),
    priority: optionalInteger(message.properties['priority'], 'priority'),
    extraHeaders: {},
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

function requireId(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new ProtocolError('malformed', 'task message has no "id"');
  }
  return value;
}

function requireArgs(value: unknown): unknown[] {
  if (!Array.isArray(value)) throw new ProtocolError('malformed', `task args must be an array; got ${typeName(value)}`);
  return value;
}

function requireKwargs(value: unknown): Record<string, unknown> {
  if (value === null || value === undefined) return {};
  if (!isRecord(value)) throw new ProtocolError('malformed', `task kwargs must be an object; got ${typeName(value)}`);
  return value;
}

/** The embed, every signature in it checked (see {@link checkEmbed}). */
function requireEmbed(value: unknown, id: string): Embed {
  if (value === null || value === undefined) return emptyEmbed();
  if (!isRecord(value)) throw new ProtocolError('malformed', `task embed must be an object or null; got ${typeName(value)}`);
  const embed: Embed = {
    callbacks: optionalList(value['callbacks'], 'callbacks'),
    errbacks: optionalList(value['errbacks'], 'errbacks'),
    chain: optionalList(value['chain'], 'chain'),
    chord: (value['chord'] ?? null) as SignatureDict | null,
  };
  checkEmbed(embed, id);
  return embed;
}

function optionalList(value: unknown, field: string): SignatureDict[] | null {
  if (value === null || value === undefined) return null;
  if (!Array.isArray(value)) throw new ProtocolError('malformed', `embed.${field} must be a list of signatures; got ${typeName(value)}`);
  return value as SignatureDict[];
}

function optionalDate(value: unknown, field: string): Date | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value;
  const date = typeof value === 'string' ? parseIsoDate(value) : null;
  if (!date) throw new ProtocolError('malformed', `header ${field} is not an ISO-8601 date: ${JSON.stringify(value)}`);
  return date;
}

function optionalString(value: unknown, field: string): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value !== 'string') throw new ProtocolError('malformed', `header ${field} must be a string; got ${typeName(value)}`);
  return value;
}

function optionalInteger(value: unknown, field: string): number | null {
  if (value === null || value === undefined) return null;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new ProtocolError('malformed', `header ${field} must be an integer; got ${JSON.stringify(value)}`);
  }
  return value;
}

function optionalCount(value: unknown, field: string): number {
  const count = optionalInteger(value, field) ?? 0;
  if (count < 0) throw new ProtocolError('malformed', `header ${field} must not be negative`);
  return count;
}

function requireTimeLimit(value: unknown): [number | null, number | null] {
  if (value === null || value === undefined) return [null, null];
  if (!Array.isArray(value) || value.length !== 2 || !value.every((v) => v === null || (typeof v === 'number' && v >= 0))) {
    throw new ProtocolError('malformed', `header timelimit must be [hard, soft] seconds; got ${JSON.stringify(value)}`);
  }
  return [value[0] as number | null, value[1] as number | null];
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
