/**
 * The AMQP heartbeat relay, a worker thread (see heartbeat-relay.ts). For each connection the
 * main thread opens, it connects to RabbitMQ itself (TCP, or TLS for `amqps://`), then listens on
 * a private local socket for amqplib, and passes the bytes both ways. It owns the connection's
 * heartbeats, so they go on while the main thread's event loop is blocked by a task:
 *
 * - amqplib asks for no heartbeat; in its Connection.TuneOk the relay writes the interval amqplib
 *   would have agreed (the URL's `heartbeat`, or the server's if that is lower and not 0).
 * - When amqplib has sent nothing for half the interval, the relay sends RabbitMQ a heartbeat
 *   frame, between two of amqplib's frames (it follows their boundaries: a frame is never split).
 * - When RabbitMQ has sent nothing for two intervals, the relay closes both sockets, as amqplib's
 *   own check would have: amqplib sees the connection drop, and the session opens a new one.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls, type ConnectionOptions } from 'node:tls';
import { parentPort, workerData } from 'node:worker_threads';

/** Where one relayed connection goes. */
export interface RelayTarget {
  host: string;
  port: number;
  /** TLS options for `amqps://` (plain TCP when null). */
  tls: ConnectionOptions | null;
  connectTimeoutMs: number;
  /** The heartbeat interval asked for, in seconds (more than 0). */
  heartbeat: number;
}

/** Messages the relay thread takes. */
export type RelayCommand = { type: 'open'; id: number; target: RelayTarget } | { type: 'close' };
/** Messages the relay thread posts. */
export type RelayReport = { type: 'opened'; id: number; path: string } | { type: 'failed'; id: number; code: string | undefined; message: string };

const HEARTBEAT_FRAME = Buffer.from([8, 0, 0, 0, 0, 0, 0, 0xce]);
/** The bytes before the first frame a client sends: `AMQP` 0 0 9 1. */
const PROTOCOL_HEADER_BYTES = 8;
const FRAME_HEADER_BYTES = 7;
/** Where the heartbeat field sits in a Connection.Tune or Connection.TuneOk method frame. */
const HEARTBEAT_OFFSET = FRAME_HEADER_BYTES + 10;
/** A handshake frame larger than this is not AMQP as expected: the relay stops reading frames. */
const MAX_HANDSHAKE_FRAME = 1 << 20;

/**
 * Follows frame boundaries in a stream without copying: after the protocol header, each frame is
 * a 7-byte header (type, channel, size), `size` bytes of payload and one end byte.
 */
export class FrameCursor {
  /** Bytes left of the current frame's payload and end byte (or of the protocol header). */
  #skip: number;
  readonly #header = Buffer.alloc(FRAME_HEADER_BYTES);
  #have = 0;

  constructor(preamble = 0) {
    this.#skip = preamble;
  }

  /** True between two frames. */
  get atBoundary(): boolean {
    return this.#skip === 0 && this.#have === 0;
  }

  /** Moves past `chunk`. */
  scan(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - at);
        this.#skip -= n;
        at += n;
        continue;
      }
      if (this.#have === 0 && chunk.length - at >= FRAME_HEADER_BYTES) {
        this.#skip = chunk.readUInt32BE(at + 3) + 1;
        at += FRAME_HEADER_BYTES;
        continue;
      }
      this.#header[this.#have++] = chunk[at++]!;
      if (this.#have === FRAME_HEADER_BYTES) {
        this.#skip = this.#header.readUInt32BE(3) + 1;
        this.#have = 0;
      }
    }
  }
}

/**
 * Reads whole frames during the connection handshake, for a look at (and a change to) the
 * tuning methods. Hands on only whole frames; keeps a partial one until the rest comes.
 */
export class HandshakeReader {
  #pending: Buffer = Buffer.alloc(0);
  #preamble: number;
  #broken = false;

  constructor(preamble = 0) {
    this.#preamble = preamble;
  }

  /** True when the stream did not look like AMQP frames: read no further. */
  get broken(): boolean {
    return this.#broken;
  }

  /** What is held back: the start of a frame not yet whole. */
  get pending(): Buffer {
    return this.#pending;
  }

  /** Returns the bytes of `chunk` (and of what was held) that can go on, each whole frame shown to `onFrame` first. */
  feed(chunk: Buffer, onFrame: (frame: Buffer) => void): Buffer {
    const data = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk]) : chunk;
    let at = Math.min(this.#preamble, data.length);
    this.#preamble -= at;
    while (this.#preamble === 0 && data.length - at >= FRAME_HEADER_BYTES) {
      const size = data.readUInt32BE(at + 3);
      if (size > MAX_HANDSHAKE_FRAME) {
        this.#broken = true;
        this.#pending = Buffer.alloc(0);
        return data;
      }
      const end = at + FRAME_HEADER_BYTES + size + 1;
      if (end > data.length) break;
      onFrame(data.subarray(at, end));
      at = end;
    }
    this.#pending = data.subarray(at);
    return data.subarray(0, at);
  }
}

/** The Connection method (class 10) a frame carries, if it is one on channel 0. */
export function connectionMethod(frame: Buffer): number | undefined {
  if (frame[0] !== 1 || frame.readUInt16BE(1) !== 0 || frame.length < HEARTBEAT_OFFSET + 3) return undefined;
  return frame.readUInt16BE(FRAME_HEADER_BYTES) === 10 ? frame.readUInt16BE(FRAME_HEADER_BYTES + 2) : undefined;
}

const TUNE = 30;
const TUNE_OK = 31;

/** amqplib's negotiation of an interval the client wants (more than 0) with the server's offer. */
export function negotiateHeartbeat(server: number, wanted: number): number {
  return server === 0 ? wanted : Math.min(server, wanted);
}

/** Passes bytes between amqplib (`client`) and RabbitMQ (`server`), keeping the heartbeats. */
function relay(client: Socket, server: Socket, wanted: number): void {
  let serverHeartbeat: number | undefined;
  let serverHandshake: HandshakeReader | undefined = new HandshakeReader();
  let clientHandshake: HandshakeReader | undefined = new HandshakeReader(PROTOCOL_HEADER_BYTES);
  const cursor = new FrameCursor();
  let clientSent = false;
  let serverSent = false;
  const timers: NodeJS.Timeout[] = [];

  const toServer = (bytes: Buffer): void => {
    if (bytes.length > 0 && !server.write(bytes)) client.pause();
  };

  const startHeartbeats = (seconds: number): void => {
    timers.push(
      setInterval(() => {
        if (!clientSent && cursor.atBoundary && server.writableLength === 0) server.write(HEARTBEAT_FRAME);
        clientSent = false;
      }, seconds * 500),
    );
    let missed = 0;
    timers.push(
      setInterval(() => {
        missed = serverSent ? 0 : missed + 1;
        serverSent = false;
        if (missed >= 2) {
          client.destroy();
          server.destroy();
        }
      }, seconds * 1000),
    );
  };

  client.on('data', (chunk: Buffer) => {
    clientSent = true;
    if (!clientHandshake) {
      cursor.scan(chunk);
      toServer(chunk);
      return;
    }
    let tuned = false;
    const whole = clientHandshake.feed(chunk, (frame) => {
      if (connectionMethod(frame) !== TUNE_OK) return;
      const heartbeat = negotiateHeartbeat(serverHeartbeat ?? 0, wanted);
      frame.writeUInt16BE(heartbeat, HEARTBEAT_OFFSET);
      tuned = true;
      startHeartbeats(heartbeat);
    });
    toServer(whole);
    if (tuned || clientHandshake.broken) {
      const rest = clientHandshake.pending; // the cursor starts at the frame boundary before it
      clientHandshake = undefined;
      cursor.scan(rest);
      toServer(rest);
    }
  });
  server.on('drain', () => client.resume());

  server.on('data', (chunk: Buffer) => {
    serverSent = true;
    if (!serverHandshake) {
      client.write(chunk); // never paused: the relay must keep hearing RabbitMQ while amqplib is blocked
      return;
    }
    const whole = serverHandshake.feed(chunk, (frame) => {
      if (connectionMethod(frame) === TUNE) serverHeartbeat = frame.readUInt16BE(HEARTBEAT_OFFSET);
    });
    client.write(whole);
    if (serverHeartbeat !== undefined || serverHandshake.broken) {
      const rest = serverHandshake.pending;
      serverHandshake = undefined;
      if (rest.length > 0) client.write(rest);
    }
  });

  const closeBoth = (): void => {
    for (const timer of timers) clearInterval(timer);
    client.end();
    server.end();
    // What is still buffered gets a moment to go; then both are gone.
    setTimeout(() => (client.destroy(), server.destroy()), 1_000).unref();
  };
  client.on('close', closeBoth);
  server.on('close', closeBoth);
  client.on('error', () => undefined); // 'close' follows
  server.on('error', () => undefined);
}

/** The private directory for the local sockets (the process's user alone can open them). */
let socketDir: string | undefined;

function localPath(): string {
  if (process.platform === 'win32') return `\\\\?\\pipe\\celeriac-relay-${process.pid}-${randomUUID()}`;
  socketDir ??= mkdtempSync(join(tmpdir(), 'celeriac-relay-'));
  return join(socketDir, `${randomUUID().slice(0, 8)}.sock`);
}

/** Connects to the server, then waits on a fresh local socket for amqplib; resolves with its path. */
function open(target: RelayTarget): Promise<string> {
  return new Promise((resolve, reject) => {
    const server = target.tls
      ? connectTls({ host: target.host, port: target.port, ...target.tls })
      : createConnection({ host: target.host, port: target.port });
    server.setNoDelay(true);
    server.setTimeout(target.connectTimeoutMs, () => server.destroy(Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' })));
    let listener: Server | undefined;
    const failed = (error: Error): void => {
      listener?.close();
      reject(error);
    };
    server.once('error', failed);
    server.once(target.tls ? 'secureConnect' : 'connect', () => {
      server.setTimeout(0);
      let path: string;
      try {
        path = localPath();
      } catch (error) {
        server.destroy();
        reject(error as Error);
        return;
      }
      listener = createServer((client) => {
        listener?.close(); // one client per connection: nobody else gets in
        clearTimeout(unclaimed);
        server.off('error', failed);
        relay(client, server, target.heartbeat);
      });
      // Nobody came (the main thread gave up): drop the server connection.
      const unclaimed = setTimeout(() => (listener?.close(), server.destroy()), Math.max(target.connectTimeoutMs, 5_000));
      listener.once('error', (error) => (clearTimeout(unclaimed), server.destroy(), reject(error)));
      listener.listen(path, () => resolve(path));
    });
  });
}

/** The `workerData` the relay thread is started with. */
export const RELAY_THREAD = 'celeriac-amqp-heartbeat-relay';

if (parentPort && workerData === RELAY_THREAD) {
  const port = parentPort;
  port.on('message', (command: RelayCommand) => {
    if (command.type === 'close') {
      if (socketDir) rmSync(socketDir, { recursive: true, force: true });
      process.exit(0);
    }
    open(command.target).then(
      (path) => port.postMessage({ type: 'opened', id: command.id, path } satisfies RelayReport),
      (error: NodeJS.ErrnoException) => port.postMessage({ type: 'failed', id: command.id, code: error.code, message: error.message } satisfies RelayReport),
    );
  });
}
