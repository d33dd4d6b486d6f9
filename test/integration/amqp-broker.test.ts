/**
 * The RabbitMQ broker against the real RabbitMQ: Celery's entities as RabbitMQ reports them,
 * poison messages dead-lettered with a reason while the worker keeps serving, a channel closed
 * by RabbitMQ reopened, the delay path, a clear error for an unreachable server, and a restart
 * of RabbitMQ in the middle of 20,000 tasks.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createConnection, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import amqplib from 'amqplib';
import { afterAll, describe, expect, it } from 'vitest';
import { Celeriac, ConnectionError, createBroker, createLogger, gather } from '../../src/index.js';
import type { Broker, Delivery } from '../../src/brokers/broker.js';
import { delayedRoutingKey } from '../../src/transports/amqp/topology.js';
import { encodeTaskMessage } from '../../src/protocol/encode.js';
import { startWorkerProcess, tempSqlite, type WorkerProcess } from '../helpers/cli.js';
import { selfSignedCertificate } from '../helpers/tls.js';
import { until } from '../helpers/wait.js';

const URL = 'amqp://guest:guest@127.0.0.1:5672//';
const run = promisify(execFile);
const opened: Array<{ close(): Promise<unknown> }> = [];

afterAll(async () => {
  for (const item of opened.reverse()) await item.close().catch(() => undefined);
});

async function broker(url = URL): Promise<Broker> {
  const b = await createBroker(url);
  await b.connect();
  opened.push(b);
  return b;
}

function app(options: { backend?: string } = {}): Celeriac {
  const celeriac = new Celeriac({ broker: URL, backend: options.backend ?? 'memory://' });
  opened.push(celeriac);
  return celeriac;
}

/** Rows of `rabbitmqctl list_<what>` for the given columns, as objects. */
function rabbitmqctl(what: string, columns: string[]): Array<Record<string, string>> {
  // The server may hold thousands of entities left by other runs: allow a large listing.
  const out = execFileSync('rabbitmqctl', ['-q', '--formatter', 'json', `list_${what}`, ...columns], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  return JSON.parse(out) as Array<Record<string, string>>;
}

describe('AmqpBroker on Celery\'s entities', () => {
  it('acks a turn\'s finished deliveries together without covering one still running', async () => {
    const queue = `acks-${randomUUID()}`;
    const b = await broker();
    const celeriac = app();
    await b.publishMany(Array.from({ length: 10 }, (_, i) => ({ queue, message: encodeTaskMessage(celeriac.buildMessage('x.task', [i], {}, {})) })));
    const got: Delivery[] = [];
    const consumer = await b.consume([queue], (d) => got.push(d), { prefetch: 10 });
    await until(() => got.length === 10);
    const running = got[3]!; // finishes last: acks of the others must not take it along
    await Promise.all(got.filter((d) => d !== running).map((d) => d.ack()));
    await until(() => Number(rabbitmqctl('queues', ['name', 'messages_unacknowledged']).find((q) => q['name'] === queue)?.['messages_unacknowledged']) === 1, 5_000, 'one message unacked');
    await running.reject(true);
    await until(() => got.length === 11, 5_000, 'the running one to come back');
    expect(got[10]!.redelivered).toBe(true);
    expect(got[10]!.message.headers['id']).toBe(running.message.headers['id']);
    await got[10]!.ack();
    await until(() => Number(rabbitmqctl('queues', ['name', 'messages']).find((q) => q['name'] === queue)?.['messages']) === 0, 5_000, 'the queue empty');
    await consumer.cancel();
  });

  it('declares the queue, its direct exchange and binding as Celery does, and publishes persistent messages', async () => {
    const queue = `topology-${randomUUID()}`;
    const b = await broker();
    await b.publish(queue, encodeTaskMessage(app().buildMessage('x.task', [1], {}, {})));
    const declared = rabbitmqctl('queues', ['name', 'durable', 'auto_delete', 'arguments', 'messages']).find((q) => q['name'] === queue);
    expect(declared).toMatchObject({ durable: true, auto_delete: false, arguments: {}, messages: 1 });
    const exchange = rabbitmqctl('exchanges', ['name', 'type', 'durable']).find((e) => e['name'] === queue);
    expect(exchange).toMatchObject({ type: 'direct', durable: true });
    const bindings = rabbitmqctl('bindings', ['source_name', 'destination_name', 'routing_key']).filter((r) => r['destination_name'] === queue);
    expect(bindings).toContainEqual({ source_name: queue, destination_name: queue, routing_key: queue });
    const connection = await amqplib.connect(URL);
    const channel = await connection.createChannel();
    const message = await channel.get(queue, { noAck: true });
    expect(message && message.properties.deliveryMode).toBe(2);
    expect(message && message.properties.headers?.['task']).toBe('x.task');
    await connection.close();
  });

  it('binds declared queues to their own exchanges and routes calls through them', async () => {
    const id = randomUUID().slice(0, 8);
    const [queue, exchange] = [`images-${id}`, `media-${id}`];
    const celeriac = new Celeriac({
      broker: URL,
      backend: 'memory://',
      queues: [{ name: queue, exchange, exchangeType: 'topic', routingKey: 'image.#' }],
      routes: { 'img.*': { queue, routingKey: 'image.resize' } },
    });
    opened.push(celeriac);
    const resize = celeriac.task('img.resize', (_ctx, size: number) => size * 2);
    const worker = celeriac.worker({ queues: [queue], logger: createLogger('critical') });
    await worker.start();
    opened.unshift({ close: () => worker.stop(1) });
    expect(await resize.delay(21).get({ timeout: 10 })).toBe(42);
    expect(rabbitmqctl('exchanges', ['name', 'type', 'durable']).filter((e) => e['name'] === exchange || e['name'] === queue)).toEqual([{ name: exchange, type: 'topic', durable: true }]);
    const bindings = rabbitmqctl('bindings', ['source_name', 'destination_name', 'routing_key']).filter((b) => b['source_name'] === exchange);
    expect(bindings).toEqual([{ source_name: exchange, destination_name: queue, routing_key: 'image.#' }]);
    // A call that names only the exchange and a key reaches the queue through the binding.
    celeriac.task('raw.double', (_ctx, n: number) => n * 2);
    expect(await celeriac.sendTask<number>('raw.double', [5], {}, { exchange, routingKey: 'image.thumb' }).get({ timeout: 10 })).toBe(10);
  });

  it('fans a message out to every queue bound to a fanout exchange', async () => {
    const id = randomUUID().slice(0, 8);
    const [left, right, exchange] = [`fan-a-${id}`, `fan-b-${id}`, `fan-${id}`];
    const b = await broker();
    b.declareQueues!([left, right].map((name) => ({ name, exchange, exchangeType: 'fanout' as const })));
    const got: Delivery[] = [];
    const consumers = await Promise.all([left, right].map((queue) => b.consume([queue], (d) => got.push(d), { prefetch: 5 })));
    await b.publish(left, encodeTaskMessage(app().buildMessage('x.task', [], {}, {})), { exchange, routingKey: 'ignored' });
    await until(() => got.length === 2, 5_000, 'a copy in each queue');
    expect(got.map((d) => d.queue).sort()).toEqual([left, right].sort());
    await Promise.all(got.map((d) => d.ack()));
    await Promise.all(consumers.map((c) => c.cancel()));
  });

  it('stores results in SQLite or Redis when the broker is RabbitMQ', async () => {
    const { url: sqlite, cleanup } = tempSqlite();
    try {
      for (const backend of [sqlite, 'redis://127.0.0.1:6379/8']) {
        const celeriac = app({ backend });
        const queue = `backend-${randomUUID()}`;
        const triple = celeriac.task('x.triple', (_ctx, n: number) => n * 3, { queue });
        const worker = celeriac.worker({ queues: [queue], logger: createLogger('critical') });
        await worker.start();
        opened.unshift({ close: () => worker.stop(1) });
        const result = triple.delay(4);
        expect(await result.get({ timeout: 10 })).toBe(12);
        expect((await (await celeriac.backend()).get(result.id))?.status).toBe('SUCCESS');
        expect((await celeriac.backend()).displayUrl).toBe(backend);
      }
    } finally {
      cleanup();
    }
  });

  it('uses a queue declared with other arguments as it is, with a warning', async () => {
    const queue = `foreign-${randomUUID()}`;
    const connection = await amqplib.connect(URL);
    const channel = await connection.createChannel();
    await channel.assertQueue(queue, { durable: true, arguments: { 'x-max-priority': 5 } });
    const b = await broker();
    const warnings: string[] = [];
    b.on('warning', ({ message }) => warnings.push(message));
    await b.publish(queue, encodeTaskMessage(app().buildMessage('x.task', [], {}, {})));
    expect(await b.queueLength(queue)).toBe(1);
    expect(warnings.join('\n')).toMatch(new RegExp(`queue ${queue} exists with other arguments`));
    await channel.deleteQueue(queue);
    await connection.close();
  });

  it('routes a delayed message through the delay levels to its queue, not before its time', async () => {
    expect(delayedRoutingKey('q', 250)).toBe(`${'0.'.repeat(30)}1.1.q`);
    const queue = `delay-${randomUUID()}`;
    const b = await broker();
    const sent = Date.now();
    await b.publish(queue, encodeTaskMessage(app().buildMessage('x.task', [], {}, {})), { notBefore: sent + 1_300 });
    const got: Delivery[] = [];
    const consumer = await b.consume([queue], (d) => got.push(d), { prefetch: 1 });
    await until(() => got.length === 1, 5_000);
    expect(Date.now() - sent).toBeGreaterThanOrEqual(1_290);
    expect(Object.keys(got[0]!.message.headers).filter((h) => h.startsWith('x-'))).toEqual([]); // x-death is the broker's
    await got[0]!.ack();
    await consumer.cancel();
  });

  it('reopens a consumer channel RabbitMQ closed, and keeps delivering', async () => {
    const queue = `reopen-${randomUUID()}`;
    const b = await broker();
    const got: Delivery[] = [];
    const consumer = await b.consume([queue], (d) => got.push(d), { prefetch: 5 });
    const celeriac = app();
    await b.publish(queue, encodeTaskMessage(celeriac.buildMessage('x.task', [], {}, {})));
    await until(() => got.length === 1);
    // Acking an unknown delivery tag is a channel error: RabbitMQ closes the channel.
    const channel = (got[0] as unknown as { acks: { channel: amqplib.Channel } }).acks.channel;
    channel.ack({ fields: { deliveryTag: 999_999 } } as amqplib.Message);
    await until(() => got.length === 2, 10_000, 'the unacked message to come back on a new channel');
    expect(got[1]!.redelivered).toBe(true);
    await got[1]!.ack();
    await b.publish(queue, encodeTaskMessage(celeriac.buildMessage('x.task', [], {}, {})));
    await until(() => got.length === 3);
    await got[2]!.ack();
    await consumer.cancel();
  });

  it('dead-letters poison messages with a reason while the worker keeps serving', async () => {
    const queue = `poison-${randomUUID()}`;
    const celeriac = app();
    celeriac.task('ok.echo', (_ctx, value: number) => value);
    const worker = celeriac.worker({ queues: [queue], logger: createLogger('critical') });
    await worker.start();
    const connection = await amqplib.connect(URL);
    const channel = await connection.createConfirmChannel();
    const poison: Array<[string, Buffer, amqplib.Options.Publish]> = [
      ['not JSON', Buffer.from('{{{'), { contentType: 'application/json', headers: { id: randomUUID(), task: 'ok.echo' } }],
      ['2-element body', Buffer.from('[[1], {}]'), { contentType: 'application/json', headers: { id: randomUUID(), task: 'ok.echo' } }],
      ['no task header', Buffer.from('[[1], {}, {}]'), { contentType: 'application/json', headers: { id: randomUUID() } }],
      ['unknown task', Buffer.from('[[1], {}, {}]'), { contentType: 'application/json', headers: { id: randomUUID(), task: 'no.such' } }],
      ['pickle', Buffer.from('\x80\x04'), { contentType: 'application/x-python-serialize', headers: { id: randomUUID(), task: 'ok.echo' } }],
    ];
    for (const [, body, options] of poison) channel.publish('', queue, body, options);
    await channel.waitForConfirms();
    expect(await celeriac.sendTask<number>('ok.echo', [7], {}, { queue }).get({ timeout: 10 })).toBe(7);
    const b = await celeriac.broker();
    await until(async () => (await b.listDeadLetters!(100)).filter((d) => d.queue === queue).length === poison.length, 10_000, 'all poison dead-lettered');
    const reasons = (await b.listDeadLetters!(100)).filter((d) => d.queue === queue).map((d) => d.reason.split(':')[0]);
    expect(reasons.toSorted((a, b) => String(a).localeCompare(String(b)))).toEqual(['malformed', 'undecodable', 'unknown-protocol', 'unknown-task', 'unsupported-content-type']);
    expect(worker.stats.rejected).toEqual({ undecodable: 1, malformed: 1, 'unknown-protocol': 1, 'unknown-task': 1, 'unsupported-content-type': 1 });
    await worker.stop(1);
    await connection.close();
  });

  it('connects over TLS (amqps://) and checks the server certificate', async () => {
    const { cert, key, remove } = selfSignedCertificate();
    // A TLS front for the local RabbitMQ: what it tests is celeriac's side of the handshake.
    const front = createTlsServer({ cert: readFileSync(cert), key: readFileSync(key) }, (socket) => {
      const upstream = createConnection({ host: '127.0.0.1', port: 5672 });
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    const { port } = front.address() as AddressInfo;
    try {
      const untrusted = await createBroker(`amqps://guest:guest@127.0.0.1:${port}//`);
      await expect(untrusted.connect()).rejects.toThrow(/cannot reach RabbitMQ at 127\.0\.0\.1:\d+ .*(SELF_SIGNED|self.signed)/i);
      const b = await broker(`amqps://guest:guest@127.0.0.1:${port}//?ssl_ca_certs=${cert}`);
      const queue = `tls-${randomUUID()}`;
      await b.publish(queue, encodeTaskMessage(app().buildMessage('x.tls', [], {}, {})));
      const got: Delivery[] = [];
      const consumer = await b.consume([queue], (d) => got.push(d), { prefetch: 1 });
      await until(() => got.length === 1);
      expect(got[0]!.message.headers['task']).toBe('x.tls');
      await got[0]!.ack();
      await consumer.cancel();
      await b.close();
    } finally {
      front.close();
      remove();
    }
  });

  it('declares quorum queues when asked', async () => {
    const queue = `quorum-${randomUUID()}`;
    const b = await broker(`${URL}?queue_type=quorum`);
    await b.publish(queue, encodeTaskMessage(app().buildMessage('x.quorum', [], {}, {})));
    const declared = rabbitmqctl('queues', ['name', 'type']).find((q) => q['name'] === queue);
    expect(declared?.['type']).toBe('quorum');
    const got: Delivery[] = [];
    const consumer = await b.consume([queue], (d) => got.push(d), { prefetch: 1 });
    await until(() => got.length === 1);
    await got[0]!.ack();
    await consumer.cancel();
  });

  it('negotiates the heartbeat the URL asks for (60 s by default)', async () => {
    await broker();
    await broker(`${URL}?heartbeat=17`);
    const timeouts = rabbitmqctl('connections', ['timeout']).map((c) => Number(c['timeout']));
    expect(timeouts).toContain(17);
    expect(timeouts).toContain(60);
  });

  it('explains an unreachable server and a refused login in one line', async () => {
    const down = await createBroker('amqp://guest:guest@127.0.0.1:1//');
    await expect(down.connect()).rejects.toThrow(new ConnectionError('cannot reach RabbitMQ at 127.0.0.1:1 (amqp://guest:***@127.0.0.1:1//): ECONNREFUSED'));
    const refused = await createBroker('amqp://guest:wrong@127.0.0.1:5672//');
    await expect(refused.connect()).rejects.toThrow(/cannot reach RabbitMQ at 127\.0\.0\.1:5672 .*login refused/);
  });
});

describe('a RabbitMQ restart in the middle of 20,000 tasks', () => {
  const ensureRunning = (): void => {
    spawnSync('rabbitmqctl', ['start_app'], { stdio: 'ignore' });
  };
  afterAll(ensureRunning);

  it('producers and a worker process reconnect and resume on their own; nothing is lost', async () => {
    const total = 20_000;
    const queue = `restart-${randomUUID()}`;
    const { dir, cleanup } = tempSqlite();
    const log = join(dir, 'runs.log');
    writeFileSync(log, '');
    const backend = 'redis://127.0.0.1:6379/8';
    const celeriac = app({ backend });
    const worker: WorkerProcess = startWorkerProcess(URL, ['-c', '50', '-Q', queue, '--backend', backend, '-l', 'info'], { FIXTURE_LOG: log });
    await worker.waitFor('ready');
    let restarted = false;
    let restart: Promise<void> | undefined;
    const failures: unknown[] = [];
    for (let start = 0; start < total; start += 500) {
      const args = Array.from({ length: 500 }, (_, i) => [`t${start + i}`, 0]);
      const results = celeriac.sendMany<string>('fx.record', args, { queue }, {});
      await results[0]!.sent.catch((error: unknown) => failures.push(error));
      if (start >= 4_000 && !restarted) {
        restarted = true;
        restart = (async () => {
          await run('rabbitmqctl', ['stop_app']);
          await new Promise((resolve) => setTimeout(resolve, 1_000)); // fixed: paces the scenario (RabbitMQ stays down for a second)
          await run('rabbitmqctl', ['start_app']);
        })();
      }
    }
    await restart;
    expect(failures).toEqual([]); // every publish was confirmed, some after the restart
    const ran = (): Set<string> => new Set(readFileSync(log, 'utf8').trim().split('\n'));
    await until(() => ran().size >= total, 180_000, 'every task to run');
    expect(ran().size).toBe(total);
    const last = celeriac.sendTask<number>('fx.add', [1, 2], {}, { queue });
    expect(await gather([last], { timeout: 30 })).toEqual([3]);
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    cleanup();
  }, 300_000);
});
