/**
 * One AMQP 0-9-1 connection that comes back by itself. The first connect is bounded and fails
 * with one line naming the server; after that a lost connection is reopened with backoff, and
 * every registered setup (declaring, consuming) runs again on the new connection before anyone
 * waiting in {@link AmqpSession.ready} is let through.
 *
 * Heartbeats: amqplib keeps them on the event loop, which a task can block for longer than two
 * heartbeat intervals; RabbitMQ then drops the connection and requeues what the worker held, and
 * another worker runs it again. A session opened with `relay` (the broker's consumers), unless
 * the URL says `?heartbeat_relay=off` (or `?heartbeat=0`), has its socket to RabbitMQ owned by a
 * relay thread that keeps the heartbeats (heartbeat-relay-thread.ts); amqplib talks to it over a
 * private local socket.
 */
import { importOptional } from '../../optional-package.js';
import type { ChannelModel, Options } from 'amqplib';
import { ConfigurationError, ConnectionError, NotConnectedError } from '../../errors.js';
import { tlsOptionsOf } from '../../tls.js';
import { numberOption, type ParsedUrl } from '../../url.js';
import { HeartbeatRelay, type RelayTarget } from './heartbeat-relay.js';

const FIRST_CONNECT_MS = 5_000;
const DEFAULT_HEARTBEAT_SECONDS = 60;
const BACKOFF_START_MS = 100;
const BACKOFF_MAX_MS = 5_000;

/** Work to redo on every fresh connection, in registration order. */
export type SessionSetup = (connection: ChannelModel) => Promise<void>;

/** A self-healing AMQP connection. */
export class AmqpSession {
  readonly displayUrl: string;
  readonly #url: ParsedUrl;
  readonly #setups = new Set<SessionSetup>();
  #connection: ChannelModel | undefined;
  #ready: Promise<ChannelModel> | undefined;
  #closed = false;
  #lastError: unknown;
  /** Where amqplib connects through the relay thread; undefined when connecting directly. */
  readonly #relayTarget: RelayTarget | undefined;
  #relay: HeartbeatRelay | undefined;
  /** Called when the connection drops (with the reason) and when it is back. */
  onLost: ((error: unknown) => void) | undefined;
  onRestored: (() => void) | undefined;

  /**
   * @param options.relay keep the heartbeats in the relay thread (a connection holding unacked
   *   deliveries), as the URL allows; the extra hop costs every round trip about 0.15 ms.
   */
  constructor(url: ParsedUrl, options: { relay?: boolean } = {}) {
    this.#url = url;
    this.displayUrl = url.display;
    this.#relayTarget = relayTargetOf(url, options.relay ?? false);
  }

  /** Opens the first connection; rejects with a {@link ConnectionError} that says why. */
  async connect(): Promise<void> {
    if (this.#ready) {
      await this.#ready;
      return;
    }
    this.#ready = this.#open().catch((error: unknown) => {
      this.#ready = undefined;
      if (error instanceof ConfigurationError) throw error;
      throw new ConnectionError(`cannot reach RabbitMQ at ${this.#where()} (${this.displayUrl}): ${describe(error)}`, { cause: error });
    });
    await this.#ready;
  }

  /** The live connection, waiting for a reconnect in progress; rejects once closed. */
  async ready(): Promise<ChannelModel> {
    if (this.#closed) throw new ConnectionError(`the AMQP connection to ${this.displayUrl} is closed`);
    if (!this.#ready) throw new NotConnectedError(`the AMQP connection to ${this.displayUrl}`);
    return this.#ready;
  }

  /**
   * The open connection without waiting for its setups (which may themselves need it, to
   * declare what they consume); while there is none, waits like {@link ready}.
   */
  async current(): Promise<ChannelModel> {
    return this.#connection ?? this.ready();
  }

  /** True while a connection is up. */
  get connected(): boolean {
    return this.#connection !== undefined;
  }

  /** Registers work to run now (if connected) and after every reconnect. */
  async addSetup(setup: SessionSetup): Promise<void> {
    this.#setups.add(setup);
    const connection = await this.ready();
    await setup(connection);
  }

  removeSetup(setup: SessionSetup): void {
    this.#setups.delete(setup);
  }

  async close(): Promise<void> {
    this.#closed = true;
    const connection = this.#connection;
    this.#connection = undefined;
    await connection?.close().catch(() => undefined);
    this.#relay?.release();
    this.#relay = undefined;
  }

  async #open(): Promise<ChannelModel> {
    const amqp = await importOptional('amqplib', `the RabbitMQ transport (${this.displayUrl})`, () => import('amqplib'));
    const connection = await this.#connect(amqp);
    connection.on('error', (error: unknown) => (this.#lastError = error));
    connection.on('close', () => this.#lost(connection));
    this.#connection = connection;
    for (const setup of this.#setups) await setup(connection);
    return connection;
  }

  /** Opens amqplib's connection: straight to the server, or through the relay thread. */
  async #connect(amqp: typeof import('amqplib')): Promise<ChannelModel> {
    const target = this.#relayTarget;
    if (!target) return amqp.connect(connectOptions(this.#url), socketOptions(this.#url));
    if (this.#closed) throw new ConnectionError(`the AMQP connection to ${this.displayUrl} is closed`);
    this.#relay ??= new HeartbeatRelay();
    let path: string;
    try {
      path = await this.#relay.open(target);
    } catch (error) {
      if (error instanceof ConfigurationError) throw new ConfigurationError(`${error.message}; or connect without the heartbeat relay: ?heartbeat_relay=off`);
      throw error;
    }
    // amqplib asks for no heartbeat; the relay puts the interval in its answer and keeps it.
    return amqp.connect({ ...connectOptions(this.#url), protocol: 'amqp', heartbeat: 0 }, { path, timeout: target.connectTimeoutMs });
  }

  #lost(connection: ChannelModel): void {
    if (this.#connection !== connection || this.#closed) return;
    this.#connection = undefined;
    this.onLost?.(this.#lastError ?? new Error('connection closed'));
    this.#ready = this.#reopen();
    this.#ready.catch(() => undefined);
  }

  /** Reopens with backoff until it works or the session is closed. */
  async #reopen(): Promise<ChannelModel> {
    for (let delay = BACKOFF_START_MS; ; delay = Math.min(delay * 2, BACKOFF_MAX_MS)) {
      await new Promise((resolve) => setTimeout(resolve, delay));
      if (this.#closed) throw new ConnectionError(`the AMQP connection to ${this.displayUrl} is closed`);
      try {
        const connection = await this.#open();
        this.onRestored?.();
        return connection;
      } catch (error) {
        this.#lastError = error;
        const stale = this.#connection;
        this.#connection = undefined;
        await stale?.close().catch(() => undefined);
      }
    }
  }

  #where(): string {
    return `${this.#url.url.hostname || '127.0.0.1'}:${this.#url.url.port || (this.#url.scheme === 'amqps' ? 5671 : 5672)}`;
  }
}

/** The server address and login a URL names; `//` or an empty path is the vhost `/`. */
function connectOptions(url: ParsedUrl): Options.Connect {
  const path = url.url.pathname;
  const vhost = path === '' || path === '/' || path === '//' ? '/' : decodeURIComponent(path.slice(1));
  return {
    protocol: url.scheme,
    hostname: url.url.hostname || '127.0.0.1',
    port: Number(url.url.port) || (url.scheme === 'amqps' ? 5671 : 5672),
    username: url.url.username ? decodeURIComponent(url.url.username) : 'guest',
    password: url.url.password ? decodeURIComponent(url.url.password) : 'guest',
    vhost,
    heartbeat: numberOption(url.options, 'heartbeat', DEFAULT_HEARTBEAT_SECONDS),
    frameMax: numberOption(url.options, 'frame_max', 131_072),
  };
}

/**
 * Where the relay thread connects for a URL, or undefined when amqplib connects itself: with
 * `?heartbeat_relay=off`, or with heartbeats off (`?heartbeat=0`), there is nothing to keep.
 */
function relayTargetOf(url: ParsedUrl, wanted: boolean): RelayTarget | undefined {
  const relay = (url.options.get('heartbeat_relay') ?? 'on').toLowerCase();
  if (!['on', 'off', 'true', 'false', '1', '0'].includes(relay)) {
    throw new ConfigurationError(`URL option heartbeat_relay=${url.options.get('heartbeat_relay')} in ${url.display}: use on or off`);
  }
  const heartbeat = numberOption(url.options, 'heartbeat', DEFAULT_HEARTBEAT_SECONDS);
  if (!wanted || ['off', 'false', '0'].includes(relay) || heartbeat <= 0) return undefined;
  const { hostname, port } = connectOptions(url);
  return {
    host: hostname!,
    port: port!,
    tls: url.scheme === 'amqps' ? tlsOptionsOf(url) : null,
    connectTimeoutMs: connectTimeoutOf(url),
    heartbeat: Math.max(1, Math.round(heartbeat)), // whole seconds on the wire
  };
}

function connectTimeoutOf(url: ParsedUrl): number {
  return numberOption(url.options, 'connect_timeout', FIRST_CONNECT_MS / 1000) * 1000;
}

/** Connect timeout, no Nagle delay, and for `amqps://` the TLS settings (see tls.ts). */
function socketOptions(url: ParsedUrl): Record<string, unknown> {
  const timeout = connectTimeoutOf(url);
  // Without noDelay, Nagle's algorithm holds small frames (an ack, a lone publish) for the
  // peer's delayed ACK: about 40 ms per round trip.
  const base = { timeout, noDelay: true };
  return url.scheme === 'amqps' ? { ...base, ...tlsOptionsOf(url) } : base;
}

function describe(error: unknown): string {
  const errno = error as NodeJS.ErrnoException;
  if (errno?.code) return errno.code;
  const message = error instanceof Error ? error.message : String(error);
  if (/ACCESS.REFUSED|403/.test(message)) return 'login refused (check the user and password)';
  if (/NOT.ALLOWED|530/.test(message)) return 'access to the vhost refused';
  return message;
}
