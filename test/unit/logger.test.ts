/**
 * Loggers: celeriac's own writes fields after the message; a real pino logger and `console`
 * stand in for it through `toLogger`, with levels mapped and children bound.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createLogger, toLogger } from '../../src/logger.js';

describe('celeriac logger', () => {
  it('writes a message, or fields after it, at or above its level', () => {
    const lines: string[] = [];
    const log = createLogger('info', (line) => lines.push(line));
    log.debug('hidden');
    log.info({ orderId: 7, note: 'two words' }, 'charged');
    log.warn('careful');
    log.child('tasks.add[1]').critical('down');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/INFO\/\d+\] charged orderId=7 note="two words"$/);
    expect(lines[1]).toMatch(/WARNING\/\d+\] careful$/);
    expect(lines[2]).toMatch(/CRITICAL\/\d+\] tasks\.add\[1\] down$/);
  });
});

describe('foreign loggers', () => {
  it('adapts pino: levels, fields, child bindings and what the level hides', () => {
    const records: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        records.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    const log = toLogger(pino({ level: 'info' }, sink));
    expect(log.enabled('debug')).toBe(false);
    expect(log.enabled('warning')).toBe(true);
    log.warning({ queue: 'q' }, 'stalled');
    log.child('tasks.add[1]').critical('down');
    log.debug('hidden');
    expect(records).toMatchObject([
      { level: 40, queue: 'q', msg: 'stalled' },
      { level: 60, task: 'tasks.add[1]', msg: 'down' },
    ]);
  });

  it('adapts a console-style logger, putting a child prefix in front of the message', () => {
    const calls: unknown[][] = [];
    const consoleLike = {
      info: (...args: unknown[]) => calls.push(['info', ...args]),
      warn: (...args: unknown[]) => calls.push(['warn', ...args]),
      error: (...args: unknown[]) => calls.push(['error', ...args]),
    };
    const log = toLogger(consoleLike);
    log.child('tasks.add[1]').warning('slow');
    log.critical({ code: 3 }, 'failed');
    log.debug('no debug method: goes to info');
    expect(calls).toEqual([
      ['warn', 'tasks.add[1] slow'],
      ['error', { code: 3 }, 'failed'],
      ['info', 'no debug method: goes to info'],
    ]);
  });
});
