import { describe, expect, it } from 'vitest';
import { Celeriac, InvalidArguments } from '../../src/index.js';
import { fitArguments } from '../../src/worker/arguments.js';
import type { Task } from '../../src/task.js';

const app = new Celeriac({ broker: 'memory://arguments' });
const add = app.task('args.add', (_ctx, a: number, b: number) => a + b, { params: ['a', 'b'] }) as unknown as Task<never, unknown>;
const loose = app.task('args.loose', (_ctx, a: number, b: number = 2) => a + b) as unknown as Task<never, unknown>;
const checked = app.task('args.checked', (_ctx, n: number) => n, {
  validate: (args) => {
    if (typeof args[0] !== 'number') throw new TypeError('n must be a number');
    return [args[0]] as [number];
  },
}) as unknown as Task<never, unknown>;

describe('fitArguments', () => {
  it('maps keyword arguments onto declared parameter names', () => {
    expect(fitArguments(add, [1], { b: 2 }).args).toEqual([1, 2]);
    expect(fitArguments(add, [], { b: 2, a: 1 }).args).toEqual([1, 2]);
  });

  it('rejects unknown, duplicate and missing keyword arguments with the name', () => {
    expect(() => fitArguments(add, [1], { c: 2 })).toThrow(/unexpected keyword argument "c"/);
    expect(() => fitArguments(add, [1, 2], { a: 3 })).toThrow(/multiple values for argument "a"/);
    expect(() => fitArguments(add, [], { b: 2 })).toThrow(/missing argument "a"/);
    expect(() => fitArguments(add, [1, 2, 3], {})).toThrow(InvalidArguments);
  });

  it('counts required parameters from the handler, leaving defaults optional', () => {
    expect(fitArguments(loose, [1], {}).args).toEqual([1]);
    expect(() => fitArguments(loose, [], {})).toThrow(/needs 1 positional arguments but 0/);
    expect(fitArguments(loose, [1], { extra: true }).kwargs).toEqual({ extra: true });
  });

  it('runs the task validator and reports its message', () => {
    expect(fitArguments(checked, [4], {}).args).toEqual([4]);
    expect(() => fitArguments(checked, ['4'], {})).toThrow(/rejected its arguments: n must be a number/);
  });
});
