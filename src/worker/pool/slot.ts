/**
 * One slot of a pool: a worker thread or a child process running `child-main`, behind one
 * interface (post a message, hear messages and the exit, kill).
 */
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker as Thread } from 'node:worker_threads';
import type { ChildMessage, ParentMessage } from './pool-protocol.js';

/** The kind of slot. */
export type SlotKind = 'thread' | 'process';

/** What a slot tells its pool. */
export interface SlotListener {
  onMessage(message: ChildMessage): void;
  /** It ended; `how` says how (`exit code 1`, `signal SIGKILL`, the thread's uncaught error). */
  onExit(how: string): void;
}

/** A started thread or child process. */
export interface Slot {
  readonly kind: SlotKind;
  /** The child's pid, or the thread's id. */
  readonly id: number;
  post(message: ParentMessage): void;
  /** Ends it at once (thread terminated, process SIGKILLed); `onExit` follows. */
  kill(): void;
}

const ENTRY = fileURLToPath(new URL('./child-main.js', import.meta.url));
/** Running from the TypeScript sources (the project's own tests): the entry needs the tsx loader. */
const FROM_SOURCES = !existsSync(ENTRY);
const SOURCE_ENTRY = ENTRY.replace(/\.js$/, '.ts');
const LOADER_ARGS = FROM_SOURCES ? ['--import', 'tsx'] : [];

/** Starts a slot of `kind`; the pool then sends it `init`. */
export function startSlot(kind: SlotKind, listener: SlotListener): Slot {
  return kind === 'thread' ? startThread(listener) : startProcess(listener);
}

function startThread(listener: SlotListener): Slot {
  const thread = new Thread(FROM_SOURCES ? SOURCE_ENTRY : ENTRY, { execArgv: LOADER_ARGS });
  let error: unknown;
  thread.on('message', (message: ChildMessage) => listener.onMessage(message));
  thread.on('error', (thrown) => (error = thrown));
  thread.on('exit', (code) => listener.onExit(error ? `an uncaught ${describe(error)}` : `exit code ${code}`));
  return {
    kind: 'thread',
    id: thread.threadId,
    post: (message) => thread.postMessage(message),
    kill: () => void thread.terminate(),
  };
}

function startProcess(listener: SlotListener): Slot {
  const child = fork(FROM_SOURCES ? SOURCE_ENTRY : ENTRY, [], { serialization: 'advanced', execArgv: LOADER_ARGS, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  child.on('message', (message) => listener.onMessage(message as ChildMessage));
  child.on('exit', (code, signal) => listener.onExit(signal ? `signal ${signal}` : `exit code ${code}`));
  // A message to a child that just died fails; its exit is reported on its own.
  child.on('error', () => undefined);
  return {
    kind: 'process',
    id: child.pid ?? 0,
    post: (message) => {
      if (child.connected) child.send(message);
    },
    kill: () => void child.kill('SIGKILL'),
  };
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
