/**
 * Type tests for schedules: an entry's `args` are checked against its task's arguments when the
 * task itself is given (by name, anything goes). The `@ts-expect-error` lines fail
 * `npm run typecheck` if a wrong entry ever starts compiling.
 */
import { describe, expectTypeOf, it } from 'vitest';
import { Celeriac, crontab, type ScheduleEntry } from 'celeriac';

const app = new Celeriac({ broker: 'memory://beat-types', backend: 'memory://beat-types' });
const cleanup = app.task('types.cleanup', (_ctx, days: number, dryRun?: boolean) => ({ days, dryRun }));

// These definitions never run: the function exists only to be type-checked.
function wrongEntries(): void {
  // @ts-expect-error a string where the task takes a number
  app.schedule('a', { task: cleanup, args: ['30'], every: 60 });
  // @ts-expect-error too many arguments for the task
  app.schedule('b', { task: cleanup, args: [30, true, 'x'], every: 60 });
  // @ts-expect-error every is required
  app.schedule('c', { task: cleanup, args: [30] });
  // @ts-expect-error unknown missed policy
  app.schedule('d', { task: 'x', every: 60, missed: 'later' });
  // @ts-expect-error unknown send option
  app.schedule('e', { task: 'x', every: 60, options: { qeue: 'q' } });
}

describe('schedule types', () => {
  it('takes typed arguments for a task, anything for a task by name', () => {
    expectTypeOf(app.schedule).toBeFunction();
    const typed = (): ScheduleEntry => app.schedule('ok', { task: cleanup, args: [30, true], every: crontab('0 3 * * *', 'Europe/Paris') });
    const byName = (): ScheduleEntry => app.schedule('py', { task: 'billing.tasks.total', args: [1, 'two', { three: 3 }], every: { minutes: 5 } });
    expectTypeOf(typed).returns.toEqualTypeOf<ScheduleEntry>();
    expectTypeOf(byName).returns.toEqualTypeOf<ScheduleEntry>();
    expectTypeOf(wrongEntries).toBeFunction();
  });
});
