/**
 * The typed event map: the one surface logs, metrics, the dashboard and tests read a worker
 * through. Names follow Celery's event types.
 */
import { EventEmitter } from 'node:events';

/** Why a message was refused before it could run. */
export type RejectReason = 'oversized' | 'undecodable' | 'unsupported-content-type' | 'malformed' | 'unknown-protocol' | 'unknown-task' | 'invalid-arguments';

/** Events a worker emits, with their payloads. */
export interface WorkerEventMap {
  'worker-online': { hostname: string; queues: string[] };
  'worker-offline': { hostname: string };
  'task-received': {
    id: string;
    name: string;
    args: unknown[];
    kwargs: Record<string, unknown>;
    eta: Date | null;
    expires: Date | null;
    retries: number;
    rootId: string;
    parentId: string | null;
  };
  'task-started': { id: string; name: string };
  'task-progress': { id: string; name: string; current: number; total: number | null };
  'task-succeeded': { id: string; name: string; result: unknown; runtime: number };
  'task-failed': { id: string; name: string; error: unknown; runtime: number };
  'task-retried': { id: string; name: string; error: unknown; countdown: number; retries: number };
  'task-revoked': { id: string; name: string; reason: 'revoked' | 'terminated' | 'expired' | 'shutdown' };
  'task-rejected': { id: string | null; name: string | null; reason: RejectReason; detail: string };
  'task-handed-back': { id: string; name: string };
  error: { error: unknown; during: string };
}

/** Events a broker emits. */
export interface BrokerEventMap {
  /** Something a user should know that fails no call; `message` says what and what happens next. */
  warning: { message: string };
}

/** An EventEmitter whose `on`/`emit` are checked against an event map. */
export class TypedEmitter<Events extends { [K in keyof Events]: unknown }> {
  readonly #emitter = new EventEmitter({ captureRejections: false });

  on<K extends keyof Events & string>(event: K, listener: (payload: Events[K]) => void): this {
    this.#emitter.on(event, listener);
    return this;
  }

  once<K extends keyof Events & string>(event: K, listener: (payload: Events[K]) => void): this {
    this.#emitter.once(event, listener);
    return this;
  }

  off<K extends keyof Events & string>(event: K, listener: (payload: Events[K]) => void): this {
    this.#emitter.off(event, listener);
    return this;
  }

  /** True when anyone listens; lets hot paths skip building payloads nobody reads. */
  listens(event: keyof Events & string): boolean {
    return this.#emitter.listenerCount(event) > 0;
  }

  emit<K extends keyof Events & string>(event: K, payload: Events[K]): void {
    this.#emitter.emit(event, payload);
  }
}
