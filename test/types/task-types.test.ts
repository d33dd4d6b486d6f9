/**
 * Type tests: argument and result types flow from a task's definition to `delay`, `applyAsync`
 * and the awaited result. The `@ts-expect-error` lines fail `npm run typecheck` if a wrong call
 * ever starts compiling.
 */
import { describe, expectTypeOf, it } from 'vitest';
import { AsyncResult, Celeriac, gather, type TaskArgs, type TaskContext, type TaskResult } from 'celeriac';

const app = new Celeriac({ broker: 'memory://types', backend: 'memory://types' });
const add = app.task('types.add', (_ctx, a: number, b: number) => a + b);
const greet = app.task('types.greet', async (_ctx: TaskContext, name: string, excited?: boolean) => `hi ${name}${excited ? '!' : ''}`);
const noArgs = app.task('types.none', () => ({ ok: true as const }));

// These calls never run: the function exists only to be type-checked.
function wrongCalls(): void {
  // @ts-expect-error a string where a number is expected
  add.delay(1, '2');
  // @ts-expect-error too few arguments
  add.delay(1);
  // @ts-expect-error too many arguments
  add.delay(1, 2, 3);
  // @ts-expect-error applyAsync takes the arguments as a tuple
  add.applyAsync(1, 2);
  // @ts-expect-error wrong type inside the tuple
  add.applyAsync([1, 'x']);
  // @ts-expect-error unknown option
  add.applyAsync([1, 2], { countdwn: 5 });
  // @ts-expect-error noArgs takes nothing
  noArgs.delay(1);
}
void wrongCalls;

describe('task types', () => {
  it('carries argument types to delay and applyAsync', () => {
    expectTypeOf(add.delay).parameters.toEqualTypeOf<[number, number]>();
    expectTypeOf<TaskArgs<typeof greet>>().toEqualTypeOf<[name: string, excited?: boolean | undefined]>();
    expectTypeOf(add.applyAsync).parameter(0).toEqualTypeOf<[number, number]>();
  });

  it('carries result types to the future, unwrapping promises', () => {
    expectTypeOf(add.delay).returns.toEqualTypeOf<AsyncResult<number>>();
    expectTypeOf(greet.delay).returns.toEqualTypeOf<AsyncResult<string>>();
    expectTypeOf<TaskResult<typeof noArgs>>().toEqualTypeOf<{ ok: true }>();
    expectTypeOf<Awaited<ReturnType<typeof add.delay>>>().toEqualTypeOf<number>();
  });

  it('types gather as a tuple of the results', () => {
    const typed = (a: AsyncResult<number>, b: AsyncResult<string>) => gather([a, b] as const);
    expectTypeOf(typed).returns.toEqualTypeOf<Promise<[number, string]>>();
    const settled = (a: AsyncResult<number>) => gather([a] as const, { returnExceptions: true });
    expectTypeOf(settled).returns.toEqualTypeOf<Promise<[number | Error]>>();
  });

  it('lets sendTask name the result type of a task defined elsewhere', () => {
    const call = () => app.sendTask<number>('py.tasks.mul', [2, 3]);
    expectTypeOf(call).returns.toEqualTypeOf<AsyncResult<number>>();
  });

  it('gives handlers a typed context', () => {
    app.task('types.ctx', (ctx) => {
      expectTypeOf(ctx.id).toEqualTypeOf<string>();
      expectTypeOf(ctx.retries).toEqualTypeOf<number>();
      expectTypeOf(ctx.signal).toEqualTypeOf<AbortSignal>();
      expectTypeOf(ctx.retry).returns.toEqualTypeOf<never>();
    });
  });
});
