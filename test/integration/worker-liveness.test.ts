/**
 * A worker SIGKILLed sends no worker-offline: a State counts it offline once its heartbeats stop
 * for longer than the window (twice their 2 s interval), as Celery's monitors do.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Celeriac, State } from '../../src/index.js';
import { startWorkerProcess } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

const BROKER = 'redis://127.0.0.1:6379/13';

describe('a worker killed without warning', () => {
  it('shows offline in a State within the heartbeat window', async () => {
    const app = new Celeriac({ broker: BROKER });
    const stream = await app.events.receive({ pattern: 'worker.#' });
    const state = new State();
    const reading = (async () => {
      for await (const event of stream) state.event(event);
    })();
    const node = `kill-${randomUUID().slice(0, 8)}@test`;
    const worker = startWorkerProcess(BROKER, ['-n', node, '-Q', `kill-${randomUUID()}`]);
    try {
      await until(() => state.workers.has(node) && state.isAlive(state.workers.get(node)!), 20_000, 'the worker alive');
      await until(() => (state.workers.get(node)?.lastHeartbeat ?? 0) > 0, 5_000, 'a heartbeat');
      worker.child.kill('SIGKILL');
      await worker.exited;
      const killedAt = Date.now();
      await until(() => !state.isAlive(state.workers.get(node)!), 8_000, 'the worker offline');
      expect(Date.now() - killedAt).toBeLessThan(5_500); // two 2 s intervals after the last heartbeat, at most
      expect(state.workers.get(node)!.online).toBe(true); // it never said goodbye: only the window tells
    } finally {
      if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
      await stream.close();
      await reading;
      await app.close();
    }
  });
});
