// What the test suite needs besides Node, checked in a few seconds before any test runs: one
// line per missing piece, with the command that provides it. `npm run provision` provides all.
import { execFile } from 'node:child_process';
import { connect } from 'node:net';

const PROVISION = 'npm run provision';

/** Resolves true when something accepts TCP connections on 127.0.0.1:port within a second. */
function listening(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, timeout: 1000 });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}

/**
 * Resolves true when the command exits 0 within 30 seconds. Asynchronous on purpose: a blocking
 * spawn (a cold Chromium can take seconds to start) would hold the event loop past the port
 * checks' timers, which then fire before their sockets' connect events and report a running
 * service as missing.
 */
function runs(command, args) {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 30_000 }, (error) => resolve(error === null));
  });
}

const checks = [
  ['Redis on 127.0.0.1:6379', () => listening(6379), `${PROVISION} (or: redis-server --daemonize yes --port 6379 --save "")`],
  ['RabbitMQ on 127.0.0.1:5672 (guest/guest)', () => listening(5672), `${PROVISION} (or: rabbitmq-server -detached)`],
  [
    "Python Celery for the interop tests (/usr/bin/python3 with celery, redis, amqp)",
    () => runs('/usr/bin/python3', ['-c', 'import celery, redis, amqp']),
    `${PROVISION} (or: apt-get install -y python3-celery python3-redis python3-amqp)`,
  ],
  ['openssl, for the TLS tests', () => runs('openssl', ['version']), `${PROVISION} (or: apt-get install -y openssl)`],
  ["Chromium at /usr/bin/chromium, for the dashboard's browser tests", () => runs('/usr/bin/chromium', ['--headless', '--no-sandbox', '--version']), `${PROVISION} (or: apt-get install -y chromium)`],
];

const results = await Promise.all(checks.map(async ([name, check, fix]) => ({ name, fix, ok: await check() })));
const missing = results.filter((result) => !result.ok);
for (const { name, fix } of missing) console.error(`missing: ${String(name)} -> ${String(fix)}`);
if (missing.length > 0) {
  console.error(`The tests need ${missing.length === 1 ? 'this' : 'these'}; \`${PROVISION}\` installs and starts everything (Debian, as root).`);
  process.exit(1);
}
