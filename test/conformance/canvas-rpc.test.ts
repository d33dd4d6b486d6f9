/**
 * Canvas on the rpc:// result backend (results over RabbitMQ to the caller): it has no chord
 * join, as Celery's has none, so a chord is refused through its result with an error that says
 * which backends can run it; chains and groups need no join and still work.
 */
import { describe, expect, it } from 'vitest';
import { chain, chord, ConfigurationError, group } from '../../src/index.js';
import { canvasHarnesses, failureOf, single, WAIT } from './canvas-suite.js';

describe('canvas on rpc:// results', () => {
  const setup = canvasHarnesses({ broker: 'amqp://guest:guest@127.0.0.1:5672//', backend: 'rpc://' });

  it('refuses a chord through its result, naming the backends that join chords, and sends none of it', async () => {
    const { tasks, runs, quiesce } = await setup();
    const { add, tsum } = tasks;
    const refusal = await failureOf(chord([add.s(1, 1), add.s(2, 2)], tsum.s()).delay());
    expect(refusal).toBeInstanceOf(ConfigurationError);
    expect(refusal.message).toMatch(/cannot join chords.*use a redis:\/\/ or sqlite:\/\/ result backend/);
    await quiesce();
    expect(runs).toEqual([]);
  });

  it('runs chains, with their parents, and groups', async () => {
    const { tasks } = await setup();
    const { add, mul } = tasks;
    const result = chain(add.s(1, 2), add.s(3), mul.s(10)).delay();
    expect(await result.get(WAIT)).toBe(60);
    expect(await single(result.parent).get(WAIT)).toBe(6);
    expect(await group(add.s(1, 1), add.s(2, 2)).delay().get(WAIT)).toEqual([2, 4]);
  });
});
