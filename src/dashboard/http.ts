/**
 * The little HTTP layer the dashboard and the worker's metrics endpoint stand on: `node:http`,
 * a router by method and path (`/tasks/:id`), form bodies (bounded), and responses that carry
 * the headers every page needs (a content security policy that allows no inline script, no
 * framing, no MIME sniffing).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { ConfigurationError } from '../errors.js';
import type { Html } from './html.js';

/** A request as handlers see it. */
export interface Request {
  readonly method: string;
  readonly url: URL;
  readonly params: Readonly<Record<string, string>>;
  readonly raw: IncomingMessage;
  /** The urlencoded form body of a POST (at most {@link MAX_FORM_BYTES}). */
  form(): Promise<URLSearchParams>;
}

export type Handler<R extends Request = Request> = (request: R, response: ServerResponse) => Promise<void> | void;

/** Form bodies larger than this are refused. */
export const MAX_FORM_BYTES = 64 * 1024;

/** An error a handler throws to answer with `status` and a one-line message. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface Route<R extends Request> {
  method: 'GET' | 'POST';
  parts: string[];
  handler: Handler<R>;
}

/** Routes by method and path; `:name` segments become params. */
export class Router<R extends Request = Request> {
  readonly #routes: Array<Route<R>> = [];

  get(pattern: string, handler: Handler<R>): this {
    this.#routes.push({ method: 'GET', parts: split(pattern), handler });
    return this;
  }

  post(pattern: string, handler: Handler<R>): this {
    this.#routes.push({ method: 'POST', parts: split(pattern), handler });
    return this;
  }

  /** The handler for a request, `405` when the path exists for another method, or undefined. */
  match(method: string, path: string): { handler: Handler<R>; params: Record<string, string> } | 405 | undefined {
    const parts = split(path);
    let otherMethod = false;
    for (const route of this.#routes) {
      const params = matchParts(route.parts, parts);
      if (!params) continue;
      if (route.method === method || (route.method === 'GET' && method === 'HEAD')) return { handler: route.handler, params };
      otherMethod = true;
    }
    return otherMethod ? 405 : undefined;
  }
}

function split(path: string): string[] {
  return path.split('/').filter(Boolean);
}

function matchParts(pattern: string[], parts: string[]): Record<string, string> | undefined {
  if (pattern.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const expected = pattern[i]!;
    const actual = parts[i]!;
    if (expected.startsWith(':')) {
      try {
        params[expected.slice(1)] = decodeURIComponent(actual);
      } catch {
        return undefined;
      }
    } else if (expected !== actual) {
      return undefined;
    }
  }
  return params;
}

/** Headers on every response. */
const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'same-origin',
};

export function sendHtml(response: ServerResponse, status: number, body: Html, headers: Record<string, string> = {}): void {
  send(response, status, 'text/html; charset=utf-8', body.text, { 'Cache-Control': 'no-store', ...headers });
}

export function sendText(response: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  send(response, status, 'text/plain; charset=utf-8', body, headers);
}

export function sendJson(response: ServerResponse, status: number, body: unknown): void {
  send(response, status, 'application/json; charset=utf-8', JSON.stringify(body), { 'Cache-Control': 'no-store' });
}

/** Redirects after a POST to the page to show next (303: the browser follows with a GET). */
export function redirect(response: ServerResponse, location: string, headers: Record<string, string> = {}): void {
  response.writeHead(303, { ...SECURITY_HEADERS, Location: location, 'Content-Length': '0', ...headers });
  response.end();
}

export function send(response: ServerResponse, status: number, contentType: string, body: string, headers: Record<string, string> = {}): void {
  const bytes = Buffer.from(body, 'utf8');
  response.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': contentType, 'Content-Length': String(bytes.length), ...headers });
  response.end(response.req.method === 'HEAD' ? undefined : bytes);
}

/** Starts a stream of server-sent events; the caller writes events and ends it. */
export function startEventStream(response: ServerResponse): void {
  response.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
  response.write('retry: 2000\n\n');
}

/** Reads a urlencoded form body, refusing other types and bodies over the limit. */
export async function readForm(request: IncomingMessage): Promise<URLSearchParams> {
  const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded' && type !== '') throw new HttpError(415, 'expected a form (application/x-www-form-urlencoded)');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw new HttpError(413, 'form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** A listening HTTP server, with what it takes to stop it at once. */
export interface Listening {
  readonly server: Server;
  /** `http://host:port`, with the port it got (port 0 picks a free one). */
  readonly url: string;
  readonly port: number;
  /** Stops listening and closes every connection, streams included. */
  close(): Promise<void>;
}

/**
 * Serves `handle` on `host:port`. Rejects with a {@link ConfigurationError} that says what to
 * do when the port is taken or the address cannot be had.
 */
export async function listen(host: string, port: number, handle: (request: IncomingMessage, response: ServerResponse) => void): Promise<Listening> {
  const server = createServer(handle);
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') reject(new ConfigurationError(`${host}:${port} is already in use; pick another port with --port (or stop what listens there)`));
      else if (error.code === 'EADDRNOTAVAIL' || error.code === 'ENOTFOUND') reject(new ConfigurationError(`cannot listen on ${host}: no such address on this machine`));
      else if (error.code === 'EACCES') reject(new ConfigurationError(`not allowed to listen on ${host}:${port}; ports below 1024 need privileges, pick another with --port`));
      else reject(error);
    });
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    server,
    port: address.port,
    url: `http://${shownHost}:${address.port}`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}

/** `host:port`, `port` or `host` into parts, for `--dashboard` and `--metrics-port`. */
export function parseAddress(value: string, defaults: { host: string; port: number }): { host: string; port: number } {
  const text = value.trim();
  const match = /^(?:\[([^\]]+)\]|([^:]*))(?::(\d+))?$/.exec(text);
  if (/^\d+$/.test(text)) return { host: defaults.host, port: checkPort(Number(text), value) };
  if (!match) throw new ConfigurationError(`expected a port, or host:port, got ${JSON.stringify(value)}`);
  const host = match[1] ?? match[2] ?? '';
  return { host: host || defaults.host, port: match[3] === undefined ? defaults.port : checkPort(Number(match[3]), value) };
}

function checkPort(port: number, value: string): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigurationError(`expected a port from 0 to 65535, got ${JSON.stringify(value)}`);
  return port;
}
