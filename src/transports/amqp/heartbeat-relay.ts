/**
 * The main thread's side of the AMQP heartbeat relay (heartbeat-relay-thread.ts): one worker
 * thread per process, shared by every AMQP session that uses it, started when the first of them
 * connects and stopped when the last closes. A session asks it for a relayed connection to
 * RabbitMQ and gets the path of a local socket to hand amqplib instead of the server's address.
 *
 * Why: amqplib sends and checks heartbeats on the event loop. A task that blocks the loop for
 * longer than two heartbeat intervals makes RabbitMQ close the connection and requeue what the
 * worker held, and another worker runs it again. The relay thread keeps the heartbeats going
 * whatever the loop does (DESIGN.md: nothing the worker must keep doing can be blocked by a task).
 */
import type { Worker } from 'node:worker_threads';
import { startThread } from '../thread.js';
import { RELAY_THREAD, type RelayCommand, type RelayReport, type RelayTarget } from './heartbeat-relay-thread.js';

export type { RelayTarget };

interface Waiter {
  resolve: (path: string) => void;
  reject: (error: Error) => void;
}

/** The relay thread, and the opens waiting for its answer. */
class RelayThread {
  readonly #worker: Worker;
  readonly #waiting = new Map<number, Waiter>();
  #nextId = 0;
  #failure: Error | undefined;
  exited = false;

  constructor() {
    this.#worker = startThread('transports/amqp/heartbeat-relay-thread.js', { workerData: RELAY_THREAD });
    this.#worker.unref();
    this.#worker.on('message', (report: RelayReport) => {
      const waiter = this.#waiting.get(report.id);
      this.#waiting.delete(report.id);
      if (report.type === 'opened') waiter?.resolve(report.path);
      else waiter?.reject(Object.assign(new Error(report.message), { code: report.code }));
    });
    this.#worker.on('error', (error) => (this.#failure = error));
    this.#worker.on('exit', (code) => {
      this.exited = true;
      // Relayed connections died with the thread; their sessions reconnect and start another.
      for (const waiter of this.#waiting.values()) waiter.reject(new Error(`the AMQP heartbeat relay thread stopped: ${this.#failure?.message ?? `exit code ${code}`}`));
      this.#waiting.clear();
    });
  }

  open(target: RelayTarget): Promise<string> {
    const id = ++this.#nextId;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      this.#worker.postMessage({ type: 'open', id, target } satisfies RelayCommand);
    });
  }

  close(): void {
    this.#worker.postMessage({ type: 'close' } satisfies RelayCommand);
  }
}

let shared: RelayThread | undefined;
let users = 0;

/** One session's use of the shared relay thread. */
export class HeartbeatRelay {
  #released = false;

  constructor() {
    users++;
  }

  /** Connects to `target` through the relay; resolves with the local socket path for amqplib. */
  open(target: RelayTarget): Promise<string> {
    if (this.#released) return Promise.reject(new Error('the AMQP heartbeat relay was released'));
    if (!shared || shared.exited) shared = new RelayThread();
    return shared.open(target);
  }

  /** This session is done with the relay; the thread stops when no session uses it. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    if (--users > 0) return;
    shared?.close();
    shared = undefined;
  }
}
