import { describe, expect, it } from 'vitest';
import { createBackend } from '../../src/backends/index.js';
import { ConfigurationError } from '../../src/errors.js';
import type { RpcBackend } from '../../src/transports/amqp/rpc-backend.js';
import { describeBackendConformance } from './backend-suite.js';
import { describeBrokerConformance } from './broker-suite.js';
import { openBackend, openBroker } from './open.js';

const AMQP = 'amqp://guest:guest@127.0.0.1:5672//';

describeBrokerConformance('amqp://', () => openBroker(AMQP));
describeBrokerConformance('amqp:// with x-max-priority', () => openBroker(`${AMQP}?max_priority=10`));

// rpc:// sends each state to the reply queue of the client that sent the task, and that client
// reads only what it has heard: the suite's stores name the reader's queue and wait for it.
describeBackendConformance(
  'rpc://',
  () => openBackend('rpc://', { brokerUrl: AMQP }),
  "rpc:// stores nothing that could expire: a state lives in the memory of the client that heard it, and RabbitMQ drops an idle reply queue itself",
  {
    replyTo: (reader) => (reader as RpcBackend).replyTo,
    eventuallyReadable: true,
    savesNoGroups: 'rpc:// saves no groups: its states go only to the client that sent the task (its refusal is checked below)',
  },
);

// What rpc:// must refuse.
describe('rpc:// result backend', () => {
  it('has no chord join, and refuses groups naming the backends that can save them', async () => {
    const backend = await createBackend('rpc://', { brokerUrl: AMQP });
    expect(backend.chords).toBeUndefined();
    for (const attempt of [backend.saveGroup('g', [['g', null], []]), backend.restoreGroup('g'), backend.forgetGroup('g')]) {
      await expect(attempt).rejects.toThrow(ConfigurationError);
      await expect(attempt).rejects.toThrow(/cannot save or restore group g, nor join chords.*use a redis:\/\/ or sqlite:\/\/ result backend/);
    }
  });
});
