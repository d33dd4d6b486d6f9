/**
 * The SQLite broker's lease keeper (a worker thread; see ../lease-keeper.ts): with a connection
 * of its own to the broker's file, it dates the heartbeat of every consumer the main thread holds
 * and extends the leases of the messages they hold, so a task that blocks the event loop does not
 * make them look lost to the other workers' sweeps.
 */
import { workerData } from 'node:worker_threads';
import { runKeeper } from '../keeper-thread.js';
import { openDatabase, type Synchronous } from './connection.js';
import { prepareBrokerStatements } from './schema.js';

/** What the broker hands its keeper. */
export interface SqliteKeeperSettings {
  path: string;
  synchronous: Synchronous;
  visibilityMs: number;
  intervalMs: number;
}

const { path, synchronous, visibilityMs, intervalMs } = workerData as SqliteKeeperSettings;
const db = await openDatabase(path, synchronous);
const sql = prepareBrokerStatements(db);
const renew = db.transaction((ids: readonly string[]) => {
  const now = Date.now();
  for (const id of ids) {
    sql.heartbeat.run(now, id);
    sql.renewLeases.run(now + visibilityMs, id);
  }
});

runKeeper({ intervalMs, renew: (ids) => renew(ids), close: () => db.close() });
