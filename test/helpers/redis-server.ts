/** A Redis server owned by one test (its own port and data dir), to stop and start at will. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestRedis {
  readonly port: number;
  url(db?: number): string;
  /** Shuts the server down (it writes its append-only file first). */
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Stops it for good and removes its data. */
  destroy(): Promise<void>;
}

/**
 * Starts `redis-server` on `port` with append-only persistence (fsync on every write).
 * `extraArgs` come last and override (`--port 0 --tls-port N` serves only TLS on N).
 */
export async function startTestRedis(port: number, extraArgs: string[] = []): Promise<TestRedis> {
  return startServer(port, (dir) => ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', ...extraArgs]);
}

/** Starts a Sentinel on `port` watching the master `name` at 127.0.0.1:`masterPort`. */
export async function startTestSentinel(port: number, name: string, masterPort: number): Promise<TestRedis> {
  return startServer(port, (dir) => {
    const config = join(dir, 'sentinel.conf');
    writeFileSync(config, `port ${port}\nbind 127.0.0.1\nsentinel monitor ${name} 127.0.0.1 ${masterPort} 1\nsentinel down-after-milliseconds ${name} 1000\n`);
    return [config, '--sentinel'];
  });
}

async function startServer(port: number, argsFor: (dir: string) => string[]): Promise<TestRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'celeriac-redis-'));
  let child: ChildProcess | undefined;
  const args = argsFor(dir);
  const server: TestRedis = {
    port,
    url: (db = 0) => `redis://127.0.0.1:${port}/${db}`,
    async start() {
      child = spawn('redis-server', args, { stdio: 'ignore' });
      await waitForPort(port, true);
    },
    async stop() {
      const running = child;
      if (!running || running.exitCode !== null) return;
      running.kill('SIGTERM');
      await new Promise((resolve) => running.once('exit', resolve));
      await waitForPort(port, false);
    },
    async destroy() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}

/** Waits until the port accepts connections (`open`) or refuses them. */
async function waitForPort(port: number, open: boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const accepting = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port });
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (accepting === open) return;
    if (Date.now() > deadline) throw new Error(`port ${port} did not ${open ? 'open' : 'close'} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the poll interval
  }
}
