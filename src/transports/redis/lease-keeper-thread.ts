/**
 * The Redis broker's lease keeper thread (see ../lease-keeper.ts; it runs while the worker holds
 * deliveries): with a connection of its own, it renews the lease key of every consumer the main thread holds and dates the unacked
 * entries in its held set at now, so a task that blocks the event loop does not make them look
 * lost to other workers (celeriac's lease check, kombu's visibility restore).
 *
 * Its connection is the minimal client of resp.ts rather than ioredis, which would cost the
 * worker some 20 MB more for this thread: it sends AUTH, SELECT and the renewal script (EVALSHA,
 * EVAL when the server does not have it). With `?master_name=` it asks the Sentinels for the
 * master on every new connection and checks the server's ROLE, so it follows a failover; a
 * lost connection is opened again at the next renewal, whose failure is reported meanwhile.
 */
import { createHash } from 'node:crypto';
import { workerData } from 'node:worker_threads';
import { parseTransportUrl } from '../../url.js';
import { runKeeper } from '../keeper-thread.js';
import { redisAddressOf } from './client.js';
import { renewArguments } from './consumer-lease.js';
import { askSentinels, RedisReplyError, RespConnection } from './resp.js';
import { RENEW } from './scripts.js';

/** What the broker hands its keeper. */
export interface RedisKeeperSettings {
  /** The broker URL, password included. */
  url: string;
  leaseMs: number;
  intervalMs: number;
}

/** How long connecting may take; a reply may take this or the renewal interval, whichever is longer. */
const CONNECT_MS = 5_000;

const { url, leaseMs, intervalMs } = workerData as RedisKeeperSettings;
const address = redisAddressOf(parseTransportUrl(url, 'broker'));
const renewSha = createHash('sha1').update(RENEW).digest('hex');
const timeoutMs = Math.max(CONNECT_MS, intervalMs);
let current: RespConnection | undefined;

/** The open connection, or a new one (the master asked of the Sentinels again). */
async function connection(): Promise<RespConnection> {
  if (current?.open) return current;
  current = undefined;
  const { sentinel, tls } = address;
  const server = sentinel
    ? await askSentinels(sentinel.sentinels, sentinel.master, { password: sentinel.password, tls, timeoutMs: CONNECT_MS })
    : address.server!;
  const fresh = await RespConnection.open({ ...server, ...(tls ? { tls } : {}) }, timeoutMs);
  try {
    if (address.password !== undefined) {
      await fresh.command(address.username !== undefined ? ['AUTH', address.username, address.password] : ['AUTH', address.password]);
    }
    if (address.db !== 0) await fresh.command(['SELECT', address.db]);
    if (sentinel) {
      const role = await fresh.command(['ROLE']);
      const name = Array.isArray(role) ? role[0] : role;
      if (name !== 'master') throw new Error(`${server.host}:${server.port}, named master by the Sentinels, is a ${String(name)}`);
    }
  } catch (error) {
    fresh.close();
    throw error;
  }
  current = fresh;
  return fresh;
}

async function renew(ids: readonly string[]): Promise<void> {
  const args = renewArguments(ids, leaseMs);
  const client = await connection();
  try {
    await client.command(['EVALSHA', renewSha, ...args]);
  } catch (error) {
    if (!(error instanceof RedisReplyError)) throw error; // the connection is gone: a new one next time
    if (!error.message.startsWith('NOSCRIPT')) throw error;
    await client.command(['EVAL', RENEW, ...args]);
  }
}

runKeeper({
  intervalMs,
  renew,
  close: () => current?.close(),
});
