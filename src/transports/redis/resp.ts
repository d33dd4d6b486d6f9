/**
 * A minimal Redis client for the lease keeper thread (lease-keeper-thread.ts): one connection
 * over `node:net` or `node:tls`, commands sent one after another and their RESP2 replies read
 * back, and the Sentinel question that finds a master. The keeper sends a handful of commands
 * (AUTH, SELECT, ROLE, EVALSHA, EVAL); loading ioredis into its thread for them cost a worker
 * some 20 MB more than this does.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';

/** A reply: simple and bulk strings, integers, nil, arrays. Error replies reject instead. */
export type Reply = string | number | null | Reply[];

/** An error reply from the server (`-ERR ...`, `-NOSCRIPT ...`). */
export class RedisReplyError extends Error {}

/** Where to connect. */
export interface RespEndpoint {
  host: string;
  port: number;
  /** TLS options, for `rediss://`. */
  tls?: ConnectionOptions;
}

const INCOMPLETE = Symbol('incomplete');
type Parsed = { value: Reply | RedisReplyError; end: number } | typeof INCOMPLETE;

/** Reads one RESP2 value from `buffer` at `start`. */
function parse(buffer: Buffer, start: number): Parsed {
  const lineEnd = buffer.indexOf('\r\n', start);
  if (lineEnd < 0) return INCOMPLETE;
  const type = String.fromCharCode(buffer[start]!);
  const line = buffer.toString('utf8', start + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: new RedisReplyError(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null, end: next };
      if (buffer.length < next + length + 2) return INCOMPLETE;
      return { value: buffer.toString('utf8', next, next + length), end: next + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, end: next };
      const items: Reply[] = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const item = parse(buffer, at);
        if (item === INCOMPLETE) return INCOMPLETE;
        items.push(item.value instanceof RedisReplyError ? null : item.value);
        at = item.end;
      }
      return { value: items, end: at };
    }
    default:
      throw new Error(`unexpected RESP reply type ${JSON.stringify(type)}`);
  }
}

/** Writes a command as a RESP array of bulk strings. */
function encode(args: ReadonlyArray<string | number>): string {
  let out = `*${args.length}\r\n`;
  for (const arg of args) {
    const text = String(arg);
    out += `$${Buffer.byteLength(text)}\r\n${text}\r\n`;
  }
  return out;
}

/** One connection; a command that gets no reply within `timeoutMs` closes it. */
export class RespConnection {
  readonly #socket: Socket;
  readonly #timeoutMs: number;
  readonly #pending: Array<{ resolve: (reply: Reply) => void; reject: (error: Error) => void }> = [];
  #buffer: Buffer = Buffer.alloc(0);
  #timer: NodeJS.Timeout | undefined;
  #closed: Error | undefined;

  private constructor(socket: Socket, timeoutMs: number) {
    this.#socket = socket;
    this.#timeoutMs = timeoutMs;
    socket.on('data', (chunk: Buffer) => this.#read(chunk));
    socket.on('error', (error) => this.#fail(error));
    socket.on('close', () => this.#fail(new Error('connection closed')));
  }

  /** Connects; rejects after `timeoutMs` without a connection. */
  static open(endpoint: RespEndpoint, timeoutMs: number): Promise<RespConnection> {
    return new Promise((resolve, reject) => {
      const ready = endpoint.tls ? 'secureConnect' : 'connect';
      const socket = endpoint.tls
        ? tlsConnect({ ...endpoint.tls, host: endpoint.host, port: endpoint.port })
        : netConnect({ host: endpoint.host, port: endpoint.port });
      const timer = setTimeout(() => socket.destroy(new Error(`timed out connecting to ${endpoint.host}:${endpoint.port}`)), timeoutMs);
      const failed = (error: Error): void => {
        clearTimeout(timer);
        reject(error);
      };
      socket.once('error', failed);
      socket.once(ready, () => {
        clearTimeout(timer);
        socket.off('error', failed);
        socket.setNoDelay(true);
        resolve(new RespConnection(socket, timeoutMs));
      });
    });
  }

  /** Whether the connection is still usable. */
  get open(): boolean {
    return this.#closed === undefined;
  }

  /** Sends one command; resolves with its reply, rejects with {@link RedisReplyError} on an error reply. */
  command(args: ReadonlyArray<string | number>): Promise<Reply> {
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise((resolve, reject) => {
      this.#pending.push({ resolve, reject });
      this.#socket.write(encode(args));
      this.#timer ??= setTimeout(() => this.#fail(new Error(`no reply from Redis within ${this.#timeoutMs} ms`)), this.#timeoutMs);
    });
  }

  /** Closes the connection. */
  close(): void {
    this.#fail(new Error('connection closed'));
  }

  #read(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    let at = 0;
    for (;;) {
      let parsed: Parsed;
      try {
        parsed = parse(this.#buffer, at);
      } catch (error) {
        this.#fail(error as Error);
        return;
      }
      if (parsed === INCOMPLETE) break;
      at = parsed.end;
      const waiter = this.#pending.shift();
      clearTimeout(this.#timer);
      this.#timer = undefined;
      if (this.#pending.length > 0) this.#timer = setTimeout(() => this.#fail(new Error(`no reply from Redis within ${this.#timeoutMs} ms`)), this.#timeoutMs);
      if (!waiter) continue; // nothing asked for it
      if (parsed.value instanceof RedisReplyError) waiter.reject(parsed.value);
      else waiter.resolve(parsed.value);
    }
    this.#buffer = at === this.#buffer.length ? Buffer.alloc(0) : this.#buffer.subarray(at);
  }

  #fail(error: Error): void {
    if (this.#closed) return;
    this.#closed = error;
    clearTimeout(this.#timer);
    this.#socket.destroy();
    for (const waiter of this.#pending.splice(0)) waiter.reject(error);
  }
}

/**
 * Asks the Sentinels in turn where master `name` is (`SENTINEL get-master-addr-by-name`).
 *
 * @throws when none answers with an address, naming what each said.
 */
export async function askSentinels(
  sentinels: ReadonlyArray<{ host: string; port: number }>,
  name: string,
  options: { password?: string | undefined; tls?: ConnectionOptions | undefined; timeoutMs: number },
): Promise<{ host: string; port: number }> {
  const failures: string[] = [];
  for (const sentinel of sentinels) {
    let connection: RespConnection | undefined;
    try {
      connection = await RespConnection.open({ ...sentinel, ...(options.tls ? { tls: options.tls } : {}) }, options.timeoutMs);
      if (options.password) await connection.command(['AUTH', options.password]);
      const reply = await connection.command(['SENTINEL', 'get-master-addr-by-name', name]);
      if (Array.isArray(reply) && typeof reply[0] === 'string' && reply[1] !== undefined) return { host: reply[0], port: Number(reply[1]) };
      failures.push(`${sentinel.host}:${sentinel.port} knows no master ${name}`);
    } catch (error) {
      failures.push(`${sentinel.host}:${sentinel.port}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    } finally {
      connection?.close();
    }
  }
  throw new Error(`no Sentinel named master ${name} (${failures.join('; ')})`);
}
