import { describe, expect, it } from 'vitest';
import { createBackend } from '../../src/backends/index.js';
import { ConfigurationError } from '../../src/errors.js';
import { describeBrokerConformance } from './broker-suite.js';
import { openBroker } from './open.js';

const AMQP = 'amqp://guest:guest@127.0.0.1:5672//';

describeBrokerConformance('amqp://', () => openBroker(AMQP));
describeBrokerConformance('amqp:// with x-max-priority', () => openBroker(`${AMQP}?max_priority=10`));

// The backend suite does not run on rpc://: its results reach only the client that sent the
// task, so no other instance can get, watch or expire them. What it must refuse is checked here.
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
