/**
 * The thread side of a lease keeper (see lease-keeper.ts): keeps the set of consumer ids the main
 * thread holds and renews them all at once when it starts, then every `intervalMs`, one renewal
 * at a time. A failed renewal is
 * reported once (until one succeeds again) and tried again on the next tick.
 */
import { parentPort } from 'node:worker_threads';
import type { KeeperCommand, KeeperReport } from './lease-keeper.js';

/** What one transport's keeper does. */
export interface KeeperWork {
  /** How often every held id is renewed. */
  intervalMs: number;
  /** Renews the given consumer ids (never called with none). */
  renew(ids: readonly string[]): unknown;
  /** Closes the keeper's connection. */
  close(): unknown;
}

/** Runs the keeper loop in this thread; tells the main thread it is ready. */
export function runKeeper(work: KeeperWork): void {
  const port = parentPort;
  if (!port) throw new Error('a lease keeper runs in a worker thread');
  const post = (report: KeeperReport): void => port.postMessage(report);
  const ids = new Set<string>();
  let running: Promise<void> | undefined;
  let failing = false;

  const renew = async (): Promise<void> => {
    try {
      await work.renew([...ids]);
      failing = false;
    } catch (error) {
      if (!failing) post({ type: 'warning', message: `renewing consumer leases failed (tried again every ${work.intervalMs} ms): ${(error as Error).message}` });
      failing = true;
    }
  };
  const tick = (): void => {
    if (running || ids.size === 0) return;
    running = renew().finally(() => (running = undefined));
  };
  const timer = setInterval(tick, work.intervalMs);

  let renewedOnce = false;
  port.on('message', (command: KeeperCommand) => {
    if (command.type === 'hold') {
      ids.add(command.id);
      // The main thread hands renewals over as this thread starts (a task may block it from now
      // on): the first is now, once the holds posted with the start are all in.
      if (!renewedOnce) setImmediate(tick);
      renewedOnce = true;
    } else if (command.type === 'release') {
      ids.delete(command.id);
      void (running ?? Promise.resolve()).then(() => post({ type: 'released', seq: command.seq }));
    } else {
      clearInterval(timer);
      ids.clear();
      void (async () => {
        await running;
        try {
          await work.close();
        } finally {
          process.exit(0);
        }
      })();
    }
  });
  post({ type: 'ready' });
}
