/**
 * Call options in the two spellings they travel in: {@link ApplyOptions} (camelCase, what
 * TypeScript callers write) and Celery's `apply_async` options dict (snake_case, what signature
 * dicts carry on the wire). Options neither side knows pass through the dict untouched.
 */
import { parseIsoDate } from '../protocol/kombu-json.js';
import type { SignatureDict } from '../protocol/message.js';
import type { ApplyOptions, PublishRetryPolicy } from '../task.js';

/** Celery's `apply_async` options, as a signature dict's `options` holds them. */
export type WireOptions = Record<string, unknown>;

/** What the app needs to build a message, beyond what a caller may set. */
export interface SendOptions extends Omit<ApplyOptions, 'link' | 'linkError'> {
  /** Success callbacks (`embed.callbacks`). */
  link?: SignatureDict[];
  /** Error callbacks (`embed.errbacks`). */
  linkError?: SignatureDict[];
  /** The group (or chord header) this task belongs to. */
  groupId?: string;
  /** Its position in that group. */
  groupIndex?: number;
  /** The chord body to count this task toward (`embed.chord`). */
  chord?: SignatureDict;
  /** The rest of its chain, last step first (`embed.chain`). */
  chain?: SignatureDict[];
  /** The `reply_to` property. */
  replyTo?: string;
  /** The `shadow` header: the name logs show. */
  shadow?: string;
}

/** camelCase option → Celery's name, for the options whose value needs no conversion. */
const PLAIN: ReadonlyArray<readonly [keyof SendOptions, string]> = [
  ['taskId', 'task_id'],
  ['countdown', 'countdown'],
  ['queue', 'queue'],
  ['exchange', 'exchange'],
  ['routingKey', 'routing_key'],
  ['priority', 'priority'],
  ['timeLimit', 'time_limit'],
  ['softTimeLimit', 'soft_time_limit'],
  ['ignoreResult', 'ignore_result'],
  ['retry', 'retry'],
  ['headers', 'headers'],
  ['parentId', 'parent_id'],
  ['rootId', 'root_id'],
  ['groupId', 'group_id'],
  ['groupIndex', 'group_index'],
  ['replyTo', 'reply_to'],
  ['shadow', 'shadow'],
];

const RETRY_POLICY: ReadonlyArray<readonly [keyof PublishRetryPolicy, string]> = [
  ['maxRetries', 'max_retries'],
  ['intervalStart', 'interval_start'],
  ['intervalStep', 'interval_step'],
  ['intervalMax', 'interval_max'],
];

/** Anything that turns into a signature dict: a {@link Signature} or a dict already. */
export interface ToSignatureDict {
  toDict(): SignatureDict;
}

/** A signature, or a dict of one, as options accept them. */
export type SignatureLike = ToSignatureDict | SignatureDict;

/** The dict of a signature or of a dict. */
export function signatureDictOf(value: SignatureLike): SignatureDict {
  return typeof (value as ToSignatureDict).toDict === 'function' ? (value as ToSignatureDict).toDict() : (value as SignatureDict);
}

function dictList(value: SignatureLike | readonly SignatureLike[]): SignatureDict[] {
  return (Array.isArray(value) ? value : [value]).map((item: SignatureLike) => signatureDictOf(item));
}

/** The send options for a caller's options: signatures in `link`/`linkError` become dicts. */
export function sendOptionsOf(options: ApplyOptions): SendOptions {
  const { link, linkError, ...rest } = options;
  const send: SendOptions = rest;
  if (link) send.link = dictList(link as SignatureLike | SignatureLike[]);
  if (linkError) send.linkError = dictList(linkError as SignatureLike | SignatureLike[]);
  return send;
}

/** Celery's options dict for camelCase call options (signatures inside become dicts). */
export function toWireOptions(options: Omit<ApplyOptions, 'kwargs'> | SendOptions): WireOptions {
  const wire: WireOptions = {};
  const source = options as Record<string, unknown>;
  for (const [name, wireName] of PLAIN) if (source[name] !== undefined) wire[wireName] = source[name];
  if (options.eta !== undefined) wire['eta'] = options.eta;
  if (options.expires !== undefined) wire['expires'] = options.expires;
  if (options.retryPolicy) {
    const policy: Record<string, number> = {};
    for (const [name, wireName] of RETRY_POLICY) if (options.retryPolicy[name] !== undefined) policy[wireName] = options.retryPolicy[name]!;
    wire['retry_policy'] = policy;
  }
  if (options.link) wire['link'] = dictList(options.link as SignatureLike | SignatureLike[]);
  if (options.linkError) wire['link_error'] = dictList(options.linkError as SignatureLike | SignatureLike[]);
  const canvas = options as SendOptions;
  if (canvas.chord) wire['chord'] = canvas.chord;
  if (canvas.chain) wire['chain'] = canvas.chain;
  return wire;
}

/**
 * camelCase send options for Celery's options dict, as a worker reads them from a signature
 * (so values are checked: a wrong type is dropped rather than trusted).
 */
export function fromWireOptions(wire: WireOptions): SendOptions {
  const options: Record<string, unknown> = {};
  for (const [name, wireName] of PLAIN) {
    const value = wire[wireName];
    if (value !== undefined && value !== null) options[name] = value;
  }
  const send = options as SendOptions;
  for (const key of ['taskId', 'queue', 'exchange', 'routingKey', 'parentId', 'rootId', 'groupId', 'replyTo', 'shadow'] as const) {
    if (send[key] !== undefined && typeof send[key] !== 'string') delete send[key];
  }
  for (const key of ['countdown', 'priority', 'timeLimit', 'softTimeLimit', 'groupIndex'] as const) {
    if (send[key] !== undefined && typeof send[key] !== 'number') delete send[key];
  }
  if (send.headers !== undefined && (typeof send.headers !== 'object' || Array.isArray(send.headers))) delete send.headers;
  const eta = dateOf(wire['eta']);
  if (eta) send.eta = eta;
  const expires = typeof wire['expires'] === 'number' ? wire['expires'] : dateOf(wire['expires']);
  if (expires !== undefined) send.expires = expires;
  const link = signaturesIn(wire['link']);
  if (link.length > 0) send.link = link;
  const linkError = signaturesIn(wire['link_error']);
  if (linkError.length > 0) send.linkError = linkError;
  if (isDict(wire['chord'])) send.chord = wire['chord'] as SignatureDict;
  const chain = signaturesIn(wire['chain']);
  if (chain.length > 0) send.chain = chain;
  return send;
}

function dateOf(value: unknown): Date | undefined {
  if (value instanceof Date) return value;
  return typeof value === 'string' ? (parseIsoDate(value) ?? undefined) : undefined;
}

/** The signature dicts an option holds: one, or a list (anything else holds none). */
export function signaturesIn(value: unknown): SignatureDict[] {
  if (isDict(value)) return [value as SignatureDict];
  return Array.isArray(value) ? (value.filter(isDict) as SignatureDict[]) : [];
}

/** An option's value when it is a non-empty string. */
export function stringIn(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** True for a plain object (a signature dict, an options dict). */
export function isDict(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}
