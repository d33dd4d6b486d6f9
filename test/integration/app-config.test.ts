/**
 * An app built from instances rather than URLs, and sends that never wait on the result backend.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Celeriac, createBackend, createBroker, createLogger } from '../../src/index.js';

describe('app configuration', () => {
  it('takes a broker and a result backend instance of its own, connecting them on first use', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'celeriac-instances-'));
    const broker = await createBroker(`sqlite://${join(dir, 'broker.db')}`);
    const backend = await createBackend(`sqlite://${join(dir, 'results.db')}`);
    const app = new Celeriac({ broker, backend });
    try {
      expect(app.brokerUrl).toBe(broker.displayUrl);
      expect(app.backendUrl).toBe(backend.displayUrl);
      app.task('cfg.add', (_ctx, a: number, b: number) => a + b);
      const worker = app.worker({ logger: createLogger('critical') });
      await worker.start();
      expect(await app.sendTask<number>('cfg.add', [2, 3]).get({ timeout: 10 })).toBe(5);
      expect(await app.broker()).toBe(broker);
      expect(await app.backend()).toBe(backend);
      await worker.stop(1);
    } finally {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sends without waiting on the result backend, with its own reply address in reply_to', async () => {
    const app = new Celeriac({ broker: 'memory://no-backend-wait', backend: 'redis://127.0.0.1:1/0?connect_timeout=3' });
    try {
      let backendSettled = false;
      app.backend().then(
        () => (backendSettled = true),
        () => (backendSettled = true),
      );
      const result = app.sendTask('cfg.nobody', [1]);
      await result.sent;
      expect(backendSettled).toBe(false); // the send did not wait for the backend's connection attempt
      const [delivery] = await new Promise<import('../../src/index.js').Delivery[]>((resolve) => {
        void app.broker().then((broker) => broker.consume(['celery'], (d) => resolve([d]), { prefetch: 1 }));
      });
      expect(delivery!.message.properties.reply_to).toBe(app.replyTo);
    } finally {
      await app.close();
    }
  });
});
