/**
 * Opening ioredis connections from a `redis://` or `rediss://` URL, with a bounded first
 * connect.
 *
 * - `redis://[[user]:password@]host:port/db`; `rediss://` adds TLS (options in tls.ts).
 * - Sentinel: `?master_name=NAME` makes the URL's host:port a Sentinel, with more Sentinels
 *   in `?sentinels=host:port,host:port` and their password in `?sentinel_password=`; the
 *   password in the URL is the master's. The client asks the Sentinels for the master and
 *   follows it when it fails over.
 */
import { importOptional } from '../../optional-package.js';
import type { Redis as RedisClient, RedisOptions } from 'ioredis';
import type { ConnectionOptions } from 'node:tls';
import { ConfigurationError, ConnectionError } from '../../errors.js';
import { tlsOptionsOf } from '../../tls.js';
import type { ParsedUrl } from '../../url.js';

export type { RedisClient };

const FIRST_CONNECT_MS = 5_000;

/**
 * Connects to the Redis a URL names. The first connection must succeed within a few seconds or
 * this rejects with one line naming the server and the reason; after that the client
 * reconnects on its own, forever.
 *
 * Commands go out auto-pipelined (those of one event-loop turn in one write), except
 * `directCommands`: the caller batches those per turn itself, and sending them straight away
 * spares each the pipeline ioredis would build around it (measured on a worker's takes, acks and
 * result stores: about 20% more no-op tasks per second at concurrency 1, 10% at 50).
 */
export async function connectRedis(url: ParsedUrl, directCommands: readonly string[] = []): Promise<RedisClient> {
  const { Redis } = await importOptional('ioredis', `the Redis transport (${url.display})`, () => import('ioredis'));
  const { options, where } = addressOf(url);
  const clientOptions: RedisOptions = {
    ...options,
    lazyConnect: true,
    connectTimeout: FIRST_CONNECT_MS,
    maxRetriesPerRequest: null,
    enableAutoPipelining: true,
    autoPipeliningIgnoredCommands: [...directCommands],
    retryStrategy: (attempt: number) => Math.min(attempt * 100, 2_000),
  };
  // ioredis' constructor overloads reject RedisOptions under exactOptionalPropertyTypes.
  const client = new Redis(clientOptions as never);
  let lastError: Error | undefined;
  client.on('error', (error: Error) => (lastError = error));
  try {
    await Promise.race([
      client.connect(),
      new Promise((_, reject) => setTimeout(() => reject(lastError ?? new Error('timed out')), FIRST_CONNECT_MS).unref()),
    ]);
  } catch (error) {
    client.disconnect();
    // The socket's own error (ECONNREFUSED, ENOTFOUND...) says more than the client's wrapper.
    const cause = (lastError ?? error) as NodeJS.ErrnoException;
    const reason = cause.code ?? cause.message;
    throw new ConnectionError(`cannot reach Redis at ${where} (${url.display}): ${reason}`, { cause: error });
  }
  return client;
}

/**
 * Holds back what `client` writes from now until this tick's work is done (the code running and
 * the promise callbacks it queues), then sends it in one write, in order. For commands that must
 * go out before others on the connection without making the work at hand wait for the socket: a
 * write to a loopback socket took 50-100 µs on a 2-core machine, as long as a worker's path
 * from a message's arrival to its task's start.
 */
export function writeAtTickEnd(client: RedisClient): void {
  const { stream } = client;
  if (!stream || stream.writableCorked > 0) return;
  stream.cork();
  process.nextTick(() => stream.uncork());
}

/** The oldest Redis the broker runs on: it waits with `BLMOVE` and takes with `RPOP key count` (6.2). */
const MINIMUM_BROKER_VERSION = [6, 2] as const;

/**
 * Checks the `redis_version` line of `INFO server` against {@link MINIMUM_BROKER_VERSION}.
 *
 * @throws {@link ConfigurationError} naming the server's version and the one needed.
 */
export function requireBrokerVersion(info: string, display: string): void {
  const version = /^redis_version:([\d.]+)/m.exec(info)?.[1];
  if (!version) return; // a server that hides its version: let the first command speak
  const [major = 0, minor = 0] = version.split('.').map(Number);
  const [needMajor, needMinor] = MINIMUM_BROKER_VERSION;
  if (major > needMajor || (major === needMajor && minor >= needMinor)) return;
  throw new ConfigurationError(`${display} runs Redis ${version}; the celeriac broker needs Redis ${needMajor}.${needMinor} or later (BLMOVE, RPOP with a count)`);
}

/**
 * The database number in a Redis URL's path (0 when there is none).
 *
 * @throws {@link ConfigurationError} for anything but a non-negative integer.
 */
export function databaseOf(url: ParsedUrl): number {
  const text = url.url.pathname.replace(/^\//, '') || '0';
  const db = Number(text);
  if (!Number.isInteger(db) || db < 0) throw new ConfigurationError(`bad database number ${JSON.stringify(text)} in ${url.display}: expected redis://host:port/0`);
  return db;
}

/** The server, or the Sentinels and master name, a URL names (read by ioredis' options and the lease keeper's client). */
export interface RedisAddress {
  db: number;
  username?: string;
  password?: string;
  /** TLS options for `rediss://` (for the Sentinels too, with a master name). */
  tls?: ConnectionOptions;
  /** The server, without a master name. */
  server?: { host: string; port: number };
  /** The Sentinels to ask for master `master`, with their own password. */
  sentinel?: { master: string; sentinels: Array<{ host: string; port: number }>; password?: string };
  /** How errors name it. */
  where: string;
}

/** What a `redis://` or `rediss://` URL names. */
export function redisAddressOf(url: ParsedUrl): RedisAddress {
  const address: Omit<RedisAddress, 'where'> = { db: databaseOf(url) };
  if (url.url.username) address.username = decodeURIComponent(url.url.username);
  if (url.url.password) address.password = decodeURIComponent(url.url.password);
  if (url.scheme === 'rediss') address.tls = tlsOptionsOf(url);
  const host = url.url.hostname || '127.0.0.1';
  const master = url.options.get('master_name');
  if (!master) {
    const port = Number(url.url.port) || 6379;
    return { ...address, server: { host, port }, where: `${host}:${port}` };
  }
  const sentinels = [`${host}:${url.url.port || 26379}`, ...(url.options.get('sentinels')?.split(',').filter(Boolean) ?? [])].map((entry) => {
    const [name, port] = entry.split(':');
    return { host: name || '127.0.0.1', port: Number(port) || 26379 };
  });
  const sentinelPassword = url.options.get('sentinel_password');
  return {
    ...address,
    sentinel: { master, sentinels, ...(sentinelPassword ? { password: sentinelPassword } : {}) },
    where: `master ${master} via Sentinel ${sentinels.map((s) => `${s.host}:${s.port}`).join(',')}`,
  };
}

/** ioredis options for the server (or Sentinels) a URL names, and how to name it in errors. */
function addressOf(url: ParsedUrl): { options: RedisOptions; where: string } {
  const { db, username, password, tls, server, sentinel, where } = redisAddressOf(url);
  const common: RedisOptions = { db };
  if (username !== undefined) common.username = username;
  if (password !== undefined) common.password = password;
  if (tls) common.tls = tls;
  if (!sentinel) return { options: { ...common, ...server }, where };
  const options: RedisOptions = { ...common, sentinels: sentinel.sentinels, name: sentinel.master };
  if (sentinel.password) options.sentinelPassword = sentinel.password;
  if (tls) options.enableTLSForSentinelMode = true;
  return { options, where };
}
