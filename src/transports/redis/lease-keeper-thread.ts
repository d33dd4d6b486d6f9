/**
 * The Redis broker's lease keeper (a worker thread; see ../lease-keeper.ts): with a connection of
 * its own, it renews the lease key of every consumer the main thread holds and dates the unacked
 * entries in its held set at now, so a task that blocks the event loop does not make them look
 * lost to other workers (celeriac's lease check, kombu's visibility restore).
 */
import { workerData } from 'node:worker_threads';
import { parseTransportUrl } from '../../url.js';
import { runKeeper } from '../keeper-thread.js';
import { connectRedis } from './client.js';
import { aliveKeyOf, heldKeyOf } from './consumer-lease.js';
import { UNACKED_INDEX } from './kombu-layout.js';
import { defineScripts } from './scripts.js';

/** What the broker hands its keeper. */
export interface RedisKeeperSettings {
  /** The broker URL, password included. */
  url: string;
  leaseMs: number;
  intervalMs: number;
}

const { url, leaseMs, intervalMs } = workerData as RedisKeeperSettings;
const client = defineScripts(await connectRedis(parseTransportUrl(url, 'broker')));
client.on('error', () => undefined); // ioredis reconnects; a renewal meanwhile fails and is reported

runKeeper({
  intervalMs,
  renew: (ids) => client.celeriacRenew(1 + 2 * ids.length, UNACKED_INDEX, ...ids.flatMap((id) => [aliveKeyOf(id), heldKeyOf(id)]), Date.now() / 1000, leaseMs),
  close: () => client.quit().catch(() => client.disconnect()),
});
