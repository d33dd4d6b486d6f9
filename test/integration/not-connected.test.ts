/** Every broker and result backend refuses use before connect() with one error class. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createBackend, createBroker, NotConnectedError } from '../../src/index.js';
import { encodeTaskMessage } from '../../src/protocol/encode.js';
import { Celeriac } from '../../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'celeriac-not-connected-'));
const message = encodeTaskMessage(new Celeriac({ broker: 'memory://nc' }).buildMessage('nc.task', [], {}, {}));

describe.each([`sqlite://${join(dir, 'b.db')}`, 'redis://127.0.0.1:6379/5', 'amqp://guest:guest@127.0.0.1:5672/'])('the broker %s', (url) => {
  it('refuses a publish before connect() with NotConnectedError', async () => {
    const broker = await createBroker(url);
    await expect(broker.publish('nc', message)).rejects.toBeInstanceOf(NotConnectedError);
  });
});

describe.each([`sqlite://${join(dir, 'r.db')}`, 'redis://127.0.0.1:6379/5'])('the result backend %s', (url) => {
  it('refuses a read before connect() with NotConnectedError', async () => {
    const backend = await createBackend(url);
    await expect(backend.get('nc-id')).rejects.toBeInstanceOf(NotConnectedError);
  });
});
