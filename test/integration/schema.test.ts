/**
 * Argument schemas (Standard Schema, here zod's): the handler's types come from the schema; a
 * worker refuses arguments the schema rejects, with the schema's own message, without retrying;
 * `validateOnCall` refuses them before anything is sent.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { Celeriac, createLogger, InvalidArguments, TaskFailedError } from '../../src/index.js';

const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function setup(): Promise<Celeriac> {
  const url = `memory://${randomUUID()}`;
  const app = new Celeriac({ broker: url, backend: url });
  closers.push(() => app.close());
  return app;
}

describe('argument schemas', () => {
  it('types the handler from the schema, parses arguments, and refuses bad ones in the worker', async () => {
    const app = await setup();
    let runs = 0;
    const scale = app.task(
      'schema.scale',
      (_ctx, value, factor) => {
        expectTypeOf(value).toEqualTypeOf<number>();
        expectTypeOf(factor).toEqualTypeOf<number>();
        runs++;
        return value * factor;
      },
      { schema: z.tuple([z.coerce.number(), z.number().int().positive()]), autoretryFor: [Error], maxRetries: 3 },
    );
    const worker = app.worker({ logger: createLogger('critical') });
    closers.push(() => worker.stop(1));
    await worker.start();
    // The schema's parsed output is what the handler gets: '4' is coerced to 4.
    expect(await app.sendTask<number>('schema.scale', ['4', 2]).get({ timeout: 5 })).toBe(8);
    const refused = app.sendTask('schema.scale', [3, -1]);
    const error = await refused.get({ timeout: 5 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskFailedError);
    expect((error as TaskFailedError).message).toMatch(/schema\.scale rejected its arguments: 1: Too small/);
    expect(runs).toBe(1);
    expect(worker.stats.retried).toBe(0);
    expect(worker.stats.rejected['invalid-arguments']).toBe(1);
    expect(await scale.delay(2, 5)).toBe(10);
  });

  it('with validateOnCall, refuses bad arguments before sending', async () => {
    const app = await setup();
    const greet = app.task('schema.greet', (_ctx, name) => `hi ${name}`, { schema: z.tuple([z.string().min(2)]), validateOnCall: true });
    const result = greet.applyAsync(['x']);
    await expect(result.sent).rejects.toBeInstanceOf(InvalidArguments);
    await expect(result.sent).rejects.toThrow(/schema\.greet rejected its arguments: 0: Too small/);
    expect(await (await app.broker()).queueLength('celery')).toBe(0);
  });
});
