/** The crontab parser: every field form of Celery's syntax, and refusals that name the field. */
import { describe, expect, test } from 'vitest';
import { ConfigurationError } from '../../src/errors.js';
import { cronExpression, parseCrontab } from '../../src/beat/crontab.js';
import { crontab } from '../../src/beat/schedule.js';

const range = (from: number, to: number, step = 1): number[] => Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step);

describe('crontab fields', () => {
  test('* expands to the whole range of each field', () => {
    const fields = parseCrontab('* * * * *');
    expect(fields.minute).toEqual(range(0, 59));
    expect(fields.hour).toEqual(range(0, 23));
    expect(fields.dayOfMonth).toEqual(range(1, 31));
    expect(fields.month).toEqual(range(1, 12));
    expect(fields.dayOfWeek).toEqual(range(0, 6));
  });

  test('numbers, lists, ranges and steps (Celery: */15, 1,13,30-45,50-59/2, 0,8-17/2)', () => {
    expect(parseCrontab('*/15 * * * *').minute).toEqual([0, 15, 30, 45]);
    expect(parseCrontab('1,13,30-45,50-59/2 * * * *').minute).toEqual([1, 13, ...range(30, 45), 50, 52, 54, 56, 58]);
    expect(parseCrontab('0 0,8-17/2 * * *').hour).toEqual([0, 8, 10, 12, 14, 16]);
    expect(parseCrontab('0 0 */3 * *').dayOfMonth).toEqual([1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31]);
    expect(parseCrontab('0 0 2-30/2 * *').dayOfMonth).toEqual(range(2, 30, 2));
    expect(parseCrontab('0 0 1-7,15-21 * *').dayOfMonth).toEqual([...range(1, 7), ...range(15, 21)]);
    expect(parseCrontab('0 0 * */2 *').month).toEqual([1, 3, 5, 7, 9, 11]);
    expect(parseCrontab('0 0 * 2-12/2 *').month).toEqual([2, 4, 6, 8, 10, 12]);
    expect(parseCrontab('0 0 * * */2').dayOfWeek).toEqual([0, 2, 4, 6]);
    expect(parseCrontab('5 * * * *').minute).toEqual([5]);
  });

  test('A/S runs from A to the end of the field', () => {
    expect(parseCrontab('10/20 * * * *').minute).toEqual([10, 30, 50]);
  });

  test('ranges that end before they start wrap past the end, as in Celery', () => {
    expect(parseCrontab('0 22-2 * * *').hour).toEqual([0, 1, 2, 22, 23]);
    expect(parseCrontab('0 0 * * fri-mon').dayOfWeek).toEqual([0, 1, 5, 6]);
    expect(parseCrontab('0 0 * nov-feb *').month).toEqual([1, 2, 11, 12]);
  });

  test('day names (sun-sat, full or abbreviated, any case) and 7 as Sunday', () => {
    expect(parseCrontab('0 9 * * mon-fri').dayOfWeek).toEqual([1, 2, 3, 4, 5]);
    expect(parseCrontab('0 9 * * Monday,WED,friday').dayOfWeek).toEqual([1, 3, 5]);
    expect(parseCrontab('0 9 * * sun').dayOfWeek).toEqual([0]);
    expect(parseCrontab('0 9 * * 7').dayOfWeek).toEqual([0]);
    expect(parseCrontab('0 9 * * 1-7').dayOfWeek).toEqual(range(0, 6));
  });

  test('month names (jan-dec, full or abbreviated)', () => {
    expect(parseCrontab('0 0 1 jan,apr,jul,oct *').month).toEqual([1, 4, 7, 10]);
    expect(parseCrontab('0 0 1 March-May *').month).toEqual([3, 4, 5]);
  });

  test('whitespace between fields may be any run of spaces and tabs', () => {
    expect(parseCrontab('  30\t2  *   * *  ').hour).toEqual([2]);
  });

  test('fields by name build the same expression, lists and numbers included', () => {
    expect(cronExpression({ minute: 0, hour: [8, 12], dayOfWeek: 'mon-fri' })).toBe('0 8,12 * * mon-fri');
    expect(crontab({ minute: '*/30', hour: '9-17', timezone: 'Europe/Paris' })).toMatchObject({ expression: '*/30 9-17 * * *', timezone: 'Europe/Paris' });
  });
});

describe('bad crontabs are refused, naming the field', () => {
  const refuses = (expression: string, message: RegExp): void => {
    expect(() => parseCrontab(expression)).toThrow(ConfigurationError);
    expect(() => parseCrontab(expression)).toThrow(message);
  };

  test('a wrong number of fields', () => {
    refuses('* * * *', /expected 5 fields .* got 4/);
    refuses('0 0 * * * *', /got 6/);
    refuses('', /got 0/);
  });

  test('values out of range', () => {
    refuses('60 * * * *', /minute field "60": 60 is out of range 0-59/);
    refuses('0 24 * * *', /hour field "24": 24 is out of range 0-23/);
    refuses('0 0 0 * *', /day of month field "0": 0 is out of range 1-31/);
    refuses('0 0 32 * *', /day of month field "32"/);
    refuses('0 0 * 13 *', /month field "13": 13 is out of range 1-12/);
    refuses('0 0 * * 8', /day of week field "8": 8 is out of range 0-6/);
    refuses('0 0-30 * * *', /hour field "0-30": 30 is out of range 0-23/);
  });

  test('bad steps, names and syntax', () => {
    refuses('*/0 * * * *', /minute field "\*\/0": the step after "\/" must be a whole number of at least 1/);
    refuses('*/x * * * *', /minute field/);
    refuses('1-5/2/3 * * * *', /more than one "\/"/);
    refuses('0 0 * * mon-', /day of week field "mon-"/);
    refuses('0 0 * * funday', /day of week field "funday": "funday" is not a day/);
    refuses('0 0 * smarch *', /month field "smarch": "smarch" is not a month/);
    refuses('mon * * * *', /minute field "mon": "mon" is not a number 0-59/);
    refuses('1,,2 * * * *', /minute field "1,,2": empty list item/);
    refuses('-5 * * * *', /minute field "-5"/);
  });

  test('a day that never comes (30 February)', () => {
    refuses('0 0 30 2 *', /day of month 30 never occurs in month 2/);
    refuses('0 0 31 4,6,9,11 *', /never occurs/);
  });

  test('an empty list in the object form', () => {
    expect(() => crontab({ hour: [] })).toThrow(/crontab hour: an empty list would never run/);
  });

  test('an unknown time zone', () => {
    expect(() => crontab('0 0 * * *', 'Mars/Olympus_Mons')).toThrow(/timezone: "Mars\/Olympus_Mons" is not a time zone/);
  });
});
