/**
 * Conformance of the monitoring transport: the event stream (`broker.events`) and control
 * requests with replies (`broker.control` with `reply` and `openInbox`). Every broker runs it
 * through a small test file that says how to reach past the port where a case needs it (putting
 * a malformed message on the stream, looking for what a closed inbox left behind); a case that
 * needs what a broker lacks is skipped with the reason.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker, CeleryEvent, ControlCommand, ReplyAddress, ReplyInbox } from '../../src/brokers/broker.js';
import { until } from '../helpers/wait.js';

/** What the suite may use of a broker beyond the port. */
export interface MonitorConformanceOptions {
  /**
   * Puts a message that is not an event on the stream under `routingKey`, as a foreign client
   * could; a string says why nothing malformed can reach this broker's stream.
   */
  sendMalformedEvent: ((routingKey: string) => Promise<void>) | string;
  /** True while anything of the inbox at `address` is left on the broker (queue, binding, rows). */
  inboxLeftovers: (address: ReplyAddress) => Promise<boolean>;
  /**
   * The broker keeps commands and replays the recent fire-and-forget ones to a late subscriber
   * (true); a string says why it does not (Celery's brokers do not keep commands).
   */
  replaysCommands: true | string;
}

/**
 * How long a case waits to be sure something does not arrive, after a message sent later has
 * arrived elsewhere: a window in which something must not happen.
 */
const QUIET_MS = 300;
const quiet = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, QUIET_MS));

/** An event in Celery's shape, marked so a case hears only its own. */
function event(type: string, marker: string, extra: Record<string, unknown> = {}): CeleryEvent {
  return { type, hostname: 'conformance@host', clock: 7, timestamp: 1_796_088_542.851703, utcoffset: 0, pid: 4242, marker, ...extra };
}

/** Runs the monitoring suite against the broker `open` returns (connected). */
export function describeMonitorConformance(name: string, open: () => Promise<Broker>, options: MonitorConformanceOptions): void {
  describe(`monitor transport conformance: ${name}`, () => {
    let broker: Broker;
    beforeAll(async () => {
      broker = await open();
    });
    afterAll(async () => {
      await broker.close();
    });

    /** A subscription collecting the events carrying `marker`. */
    async function collect(marker: string, pattern?: string) {
      const got: CeleryEvent[] = [];
      const subscription = await broker.events!.subscribe((e) => e['marker'] === marker && got.push(e), pattern);
      return { got, subscription };
    }

    describe('events', () => {
      it('delivers a published event to a # subscriber with every field intact', async () => {
        const marker = randomUUID();
        const { got, subscription } = await collect(marker, '#');
        const sent = event('worker-online', marker, { freq: 2.0, active: 0, processed: 12, loadavg: [0.5, 0.25, 0.125], sw_ident: 'py-celery', note: 'héllo ✓ 漢字 🙂', nested: { list: [1, 'two', null] } });
        await broker.events!.publish('worker.online', sent, 'conformance@host');
        await until(() => got.length === 1, 10_000, 'the event');
        expect(got[0]).toEqual(sent);
        await subscription.cancel();
        expect(subscription.dropped).toBe(0);
      });

      it('gives a worker.# subscriber the worker events only', async () => {
        const marker = randomUUID();
        const workers = await collect(marker, 'worker.#');
        const all = await collect(marker, '#');
        // The task event goes first: once the worker event has arrived, the task event would have.
        await broker.events!.publish('task.succeeded', event('task-succeeded', marker, { uuid: 'u1', result: '5', runtime: 0.01 }), 'conformance@host');
        await broker.events!.publish('task.multi', [event('task-started', marker, { uuid: 'u2' })], 'conformance@host');
        await broker.events!.publish('worker.heartbeat', event('worker-heartbeat', marker), 'conformance@host');
        await until(() => all.got.length === 3 && workers.got.length >= 1, 10_000, 'the events');
        await quiet();
        expect(workers.got.map((e) => e.type)).toEqual(['worker-heartbeat']);
        expect(all.got.map((e) => e.type)).toEqual(['task-succeeded', 'task-started', 'worker-heartbeat']);
        await Promise.all([workers.subscription.cancel(), all.subscription.cancel()]);
      });

      it('delivers a task.multi list as separate events, in order', async () => {
        const marker = randomUUID();
        const { got, subscription } = await collect(marker);
        const list = [
          event('task-received', marker, { uuid: 't', name: 'conformance.add', args: '[2, 3]', kwargs: '{}', retries: 0, eta: null, expires: null }),
          event('task-started', marker, { uuid: 't' }),
          event('task-succeeded', marker, { uuid: 't', result: '5', runtime: 0.002 }),
        ];
        await broker.events!.publish('task.multi', list, 'conformance@host');
        await until(() => got.length === 3, 10_000, 'the three events');
        expect(got).toEqual(list);
        await subscription.cancel();
      });

      it('counts a malformed message in dropped and still delivers the next event', async (context) => {
        if (typeof options.sendMalformedEvent === 'string') context.skip(options.sendMalformedEvent);
        const send = options.sendMalformedEvent as (routingKey: string) => Promise<void>;
        const marker = randomUUID();
        const { got, subscription } = await collect(marker);
        await send('worker.heartbeat');
        await broker.events!.publish('worker.heartbeat', event('worker-heartbeat', marker), 'conformance@host');
        await until(() => got.length === 1, 10_000, 'the event after the malformed one');
        expect(subscription.dropped).toBe(1);
        await subscription.cancel();
      });

      it('delivers only events published after the subscription', async () => {
        const marker = randomUUID();
        await broker.events!.publish('worker.heartbeat', event('worker-heartbeat', marker, { n: 'before' }), 'conformance@host');
        const { got, subscription } = await collect(marker);
        await broker.events!.publish('worker.heartbeat', event('worker-heartbeat', marker, { n: 'after' }), 'conformance@host');
        await until(() => got.length >= 1, 10_000, 'the event');
        await quiet();
        expect(got.map((e) => e['n'])).toEqual(['after']);
        await subscription.cancel();
      });

      it('delivers nothing more to a cancelled subscription', async () => {
        const marker = randomUUID();
        const cancelled = await collect(marker);
        const staying = await collect(marker);
        await cancelled.subscription.cancel();
        await broker.events!.publish('worker.heartbeat', event('worker-heartbeat', marker), 'conformance@host');
        await until(() => staying.got.length === 1, 10_000, 'the event at the other subscription');
        await quiet();
        expect(cancelled.got).toEqual([]);
        await staying.subscription.cancel();
      });
    });

    describe('control requests and replies', () => {
      const inboxes: ReplyInbox[] = [];
      afterAll(async () => {
        for (const inbox of inboxes) await inbox.close();
      });
      async function openInbox() {
        const inbox = await broker.control!.openInbox!();
        inboxes.push(inbox);
        const replies: Array<{ ticket: string; body: Record<string, unknown> }> = [];
        inbox.listen((ticket, body) => replies.push({ ticket, body }));
        return { inbox, replies };
      }

      it('delivers a command with its replyTo, ticket and expiresAt, and its reply reaches the inbox', async () => {
        const marker = randomUUID();
        const { inbox, replies } = await openInbox();
        const heard: ControlCommand[] = [];
        const subscription = await broker.control!.subscribe((command) => {
          if (command.arguments['marker'] !== marker) return;
          heard.push(command);
          // Answered as a worker answers: to the command's address, with its ticket.
          if (command.replyTo && command.ticket) void broker.control!.reply!(command.replyTo, command.ticket, { 'w1@host': { ok: 'pong', marker } });
        });
        const ticket = randomUUID();
        const expiresAt = Date.now() + 10_000;
        await broker.control!.broadcast({ method: 'ping', arguments: { marker }, destination: ['w1@host'], replyTo: inbox.address, ticket, expiresAt });
        await until(() => replies.length === 1, 10_000, 'the reply');
        expect(heard).toHaveLength(1);
        const command = heard[0]!;
        expect(command).toMatchObject({ method: 'ping', arguments: { marker }, destination: ['w1@host'], replyTo: inbox.address, ticket });
        expect(Math.abs(command.expiresAt! - expiresAt)).toBeLessThan(1); // sent in seconds, as kombu does
        expect(replies).toEqual([{ ticket, body: { 'w1@host': { ok: 'pong', marker } } }]);
        await subscription.cancel();
      });

      it('keeps each inbox to its own replies', async () => {
        const a = await openInbox();
        const b = await openInbox();
        expect(a.inbox.address.routingKey).not.toBe(b.inbox.address.routingKey);
        await broker.control!.reply!(b.inbox.address, 'ticket-b', { 'w@h': 'for b' });
        await broker.control!.reply!(a.inbox.address, 'ticket-a', { 'w@h': 'for a' });
        await until(() => a.replies.length === 1 && b.replies.length === 1, 10_000, 'both replies');
        await quiet();
        expect(a.replies).toEqual([{ ticket: 'ticket-a', body: { 'w@h': 'for a' } }]);
        expect(b.replies).toEqual([{ ticket: 'ticket-b', body: { 'w@h': 'for b' } }]);
      });

      it('delivers nothing more to a closed inbox, and leaves nothing of it behind', async () => {
        const closing = await openInbox();
        const staying = await openInbox();
        expect(await options.inboxLeftovers(closing.inbox.address)).toBe(true); // the probe sees an open one
        await closing.inbox.close();
        await broker.control!.reply!(closing.inbox.address, 'late', { 'w@h': 'too late' });
        await broker.control!.reply!(staying.inbox.address, 'on-time', { 'w@h': 'in time' });
        await until(() => staying.replies.length === 1, 10_000, 'the reply at the open inbox');
        await quiet();
        expect(closing.replies).toEqual([]);
        expect(await options.inboxLeftovers(closing.inbox.address)).toBe(false);
      });

      it('replays recent fire-and-forget commands to a late subscriber, not requests or expired ones', async (context) => {
        if (typeof options.replaysCommands === 'string') context.skip(options.replaysCommands);
        const marker = randomUUID();
        const { inbox } = await openInbox();
        const send = (method: string, extra: Partial<ControlCommand> = {}) => broker.control!.broadcast({ method, arguments: { marker }, destination: null, ...extra });
        await send('revoke');
        await send('ping', { replyTo: inbox.address, ticket: randomUUID(), expiresAt: Date.now() + 60_000 });
        await send('rate_limit', { expiresAt: Date.now() - 1 });
        await send('time_limit', { expiresAt: Date.now() + 60_000 });
        const heard: string[] = [];
        const subscription = await broker.control!.subscribe((command) => command.arguments['marker'] === marker && heard.push(command.method));
        await send('shutdown');
        await until(() => heard.includes('shutdown'), 10_000, 'the live command');
        expect(heard).toEqual(['revoke', 'time_limit', 'shutdown']);
        await subscription.cancel();
      });
    });
  });
}
