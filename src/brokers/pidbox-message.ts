/**
 * Control ("pidbox") messages as kombu's Mailbox writes them: the body
 * `{method, arguments, destination, pattern, matcher, ticket?, reply_to?}` in JSON, the headers
 * `{clock, expires}` (expires in Unix seconds); replies `{"<node>": payload}` with the headers
 * `{ticket, clock}`. Shared by the brokers whose control channel Python Celery also uses.
 */
import { decodeJsonObject, encodeJson } from '../protocol/kombu-json.js';
import type { ControlCommand, ReplyAddress } from './broker.js';

/** Celery's control exchange. */
export const PIDBOX_EXCHANGE = 'celery.pidbox';
/** Celery's exchange for replies to control commands. */
export const PIDBOX_REPLY_EXCHANGE = 'reply.celery.pidbox';

/** A control message's headers and body. */
export interface ControlMessage {
  headers: Record<string, unknown>;
  body: Buffer;
}

/** Encodes a command; `clock` is the sender's Lamport clock. */
export function encodeControlCommand(command: ControlCommand, clock = 0): ControlMessage {
  const body: Record<string, unknown> = { method: command.method, arguments: command.arguments, destination: command.destination, pattern: null, matcher: null };
  if (command.ticket && command.replyTo) {
    body['ticket'] = command.ticket;
    body['reply_to'] = { exchange: command.replyTo.exchange, routing_key: command.replyTo.routingKey };
  }
  const headers: Record<string, unknown> = { clock };
  if (command.expiresAt !== undefined) headers['expires'] = command.expiresAt / 1000;
  return { headers, body: Buffer.from(encodeJson(body)) };
}

/** Larger control messages are not read. */
export const MAX_CONTROL_BYTES = 1024 * 1024;

/** The command in a control message; null for anything that is not one (or too large to read). */
export function decodeControlCommand(body: Buffer, headers: Record<string, unknown> = {}): ControlCommand | null {
  if (body.length > MAX_CONTROL_BYTES) return null;
  const decoded = decodeJsonObject(body);
  if (!decoded || typeof decoded['method'] !== 'string') return null;
  const { method, arguments: args, destination, ticket, reply_to: replyTo } = decoded;
  const command: ControlCommand = {
    method,
    arguments: typeof args === 'object' && args !== null && !Array.isArray(args) ? (args as Record<string, unknown>) : {},
    destination: Array.isArray(destination) ? destination.map(String) : null,
  };
  const address = replyAddress(replyTo);
  if (typeof ticket === 'string' && address) {
    command.ticket = ticket;
    command.replyTo = address;
  }
  if (typeof headers['expires'] === 'number') command.expiresAt = headers['expires'] * 1000;
  return command;
}

/** Encodes a worker's reply. */
export function encodeControlReply(ticket: string, body: Record<string, unknown>, clock = 0): ControlMessage {
  return { headers: { ticket, clock }, body: Buffer.from(encodeJson(body)) };
}

/** A reply's ticket and body; null for anything that is not a reply. */
export function decodeControlReply(body: Buffer, headers: Record<string, unknown>): { ticket: string; body: Record<string, unknown> } | null {
  const decoded = decodeJsonObject(body);
  const ticket = headers['ticket'];
  if (!decoded || typeof ticket !== 'string') return null;
  return { ticket, body: decoded };
}

function replyAddress(value: unknown): ReplyAddress | null {
  if (typeof value !== 'object' || value === null) return null;
  const { exchange, routing_key: routingKey } = value as Record<string, unknown>;
  return typeof exchange === 'string' && typeof routingKey === 'string' ? { exchange, routingKey } : null;
}
