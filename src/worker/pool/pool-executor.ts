/**
 * The thread and process pools: tasks run one at a time in each of up to `max` slots, so
 * CPU-bound handlers use more than one core and never block the worker's event loop. A slot
 * that must stop a task (hard time limit, revoke with terminate) is killed and replaced; one
 * that dies on its own fails its task with {@link WorkerLostError}; one that ran
 * `maxTasksPerChild` tasks or grew past `maxMemoryPerChild` is retired after its task. With
 * autoscale the pool starts `min` slots, grows to `max` while tasks wait, and retires slots idle
 * for `keepaliveMs`.
 */
import type { ResultTuple } from '../../backends/backend.js';
import { ConfigurationError, SoftTimeLimitExceeded, TaskFailedError, TaskRevokedError, WorkerLostError } from '../../errors.js';
import { compileTypeScript, type CompiledModule } from '../../loading/compile-typescript.js';
import { isTypeScript } from '../../loading/app-module.js';
import { LOG_LEVELS, type Logger } from '../../logger.js';
import { decodeJson } from '../../protocol/kombu-json.js';
import type { Execution, Executor, RunOutcome, RunRequest } from '../executor.js';
import type { AbortCause, ChildMessage, ThrownError } from './pool-protocol.js';
import { startSlot, type Slot, type SlotKind } from './slot.js';

/** Options of a {@link PoolExecutor}. */
export interface PoolOptions {
  /** Slots at most. */
  max: number;
  /** Slots kept even when idle. */
  min: number;
  /** The app's module, loaded by every slot. */
  module: string;
  overrides: { broker?: string | undefined; backend?: string | undefined };
  trackChildren: boolean;
  maxTasksPerChild: number | null;
  maxMemoryPerChild: number | null;
  /** An idle slot above `min` is retired after this long. */
  keepaliveMs: number;
  logger: Logger;
}

/** A run accepted by the pool. */
interface PoolRun {
  readonly id: number;
  readonly request: RunRequest;
  readonly settle: (outcome: RunOutcome) => void;
  slot?: SlotState;
  /** Set when the pool ends the run itself (terminate): the slot's death is then expected. */
  stoppedWith?: Error;
  /** Signals fired before the run reached a slot. */
  pendingAborts: AbortCause[];
}

interface SlotState {
  readonly slot: Slot;
  ready: boolean;
  run: PoolRun | null;
  tasksRun: number;
  idleSince: number;
  /** Told to exit (retired, or the pool is closing): takes no more runs. */
  retiring: boolean;
}

/** How long a slot may take to exit when asked, before it is killed. */
const EXIT_GRACE_MS = 5_000;
/** A slot that failed to start is tried again after this, doubling up to the cap. */
const RESTART_BACKOFF_MS = [500, 30_000] as const;

/** A pool of threads or child processes. */
export class PoolExecutor implements Executor {
  readonly kind: 'threads' | 'processes';
  readonly #slotKind: SlotKind;
  readonly #slots = new Set<SlotState>();
  readonly #waiting: PoolRun[] = [];
  readonly #runs = new Set<PoolRun>();
  #nextRunId = 1;
  #moduleForSlots: string;
  #compiled: CompiledModule | null = null;
  #closing = false;
  #reaper: NodeJS.Timeout | undefined;
  #restartDelayMs = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #autoscaled: boolean;
  readonly #exited = new Map<SlotState, () => void>();

  constructor(
    kind: 'threads' | 'processes',
    private readonly options: PoolOptions,
  ) {
    this.kind = kind;
    this.#slotKind = kind === 'threads' ? 'thread' : 'process';
    this.#moduleForSlots = options.module;
    this.#autoscaled = options.min < options.max;
  }

  get capacity(): number {
    return this.options.max;
  }

  get busy(): number {
    return this.#runs.size;
  }

  /** Grows or shrinks the pool by `by` slots (the minimum too, unless autoscaled). */
  resize(by: number): boolean {
    const max = Math.max(1, this.options.max + by);
    const min = this.#autoscaled ? Math.min(this.options.min, max) : max;
    return this.autoscale(max, min, false);
  }

  /** Sets the bounds the pool grows and shrinks within. */
  autoscale(max: number, min: number, autoscaled = true): boolean {
    this.options.max = max;
    this.options.min = min;
    this.#autoscaled ||= autoscaled;
    if (min < max && !this.#reaper) {
      this.#reaper = setInterval(() => this.#retireIdle(), Math.max(100, this.options.keepaliveMs / 2));
      this.#reaper.unref();
    }
    this.#retireIdle();
    this.#dispatch();
    return true;
  }

  slotIds(): number[] {
    return [...this.#slots].filter((state) => !state.retiring).map((state) => state.slot.id);
  }

  /**
   * Compiles a TypeScript module once for every slot, then starts the first slots and waits
   * until they have loaded it.
   *
   * @throws {@link ConfigurationError} with the module's own error when a slot cannot load it.
   */
  async start(): Promise<void> {
    if (isTypeScript(this.options.module.replace(/^file:\/\//, ''))) {
      this.#compiled = compileTypeScript(this.options.module.startsWith('file:') ? new URL(this.options.module).pathname : this.options.module);
      if (this.#compiled) this.#moduleForSlots = this.#compiled.path;
    }
    const first = Array.from({ length: this.options.min }, () => this.#startSlot());
    try {
      await Promise.all(first.map((state) => this.#whenReady(state)));
    } catch (error) {
      await this.close();
      throw error;
    }
    if (this.options.min < this.options.max) {
      this.#reaper = setInterval(() => this.#retireIdle(), Math.max(100, this.options.keepaliveMs / 2));
      this.#reaper.unref();
    }
  }

  run(request: RunRequest): Execution {
    let settle!: (outcome: RunOutcome) => void;
    const outcome = new Promise<RunOutcome>((resolve) => (settle = resolve));
    const run: PoolRun = {
      id: this.#nextRunId++,
      request,
      pendingAborts: [],
      settle: (result) => {
        if (!this.#runs.delete(run)) return;
        settle(result);
      },
    };
    this.#runs.add(run);
    this.#waiting.push(run);
    this.#dispatch();
    return {
      outcome,
      signal: (reason) => this.#signal(run, reason),
      terminate: (reason) => this.#terminate(run, reason),
    };
  }

  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#reaper);
    clearTimeout(this.#restartTimer);
    for (const run of this.#waiting.splice(0)) run.settle({ kind: 'threw', error: new TaskRevokedError('shutdown'), retry: null, children: [] });
    const exits = [...this.#slots].map((state) => this.#exit(state));
    await Promise.all(exits);
    this.#compiled?.remove();
    this.#compiled = null;
  }

  #startSlot(): SlotState {
    let state!: SlotState;
    const slot = startSlot(this.#slotKind, {
      onMessage: (message) => this.#onMessage(state, message),
      onExit: (how) => this.#onExit(state, how),
    });
    state = { slot, ready: false, run: null, tasksRun: 0, idleSince: Date.now(), retiring: false };
    this.#slots.add(state);
    slot.post({
      type: 'init',
      module: this.#moduleForSlots,
      overrides: this.options.overrides,
      trackChildren: this.options.trackChildren,
      logLevels: LOG_LEVELS.filter((level) => this.options.logger.enabled(level)),
      reportMemory: this.options.maxMemoryPerChild !== null,
    });
    return state;
  }

  /** Resolves once `state` has loaded the module; rejects with why it could not. */
  #whenReady(state: SlotState): Promise<void> {
    return new Promise((resolve, reject) => {
      const pending = this.#starting.get(state);
      if (pending) pending.push({ resolve, reject });
      else this.#starting.set(state, [{ resolve, reject }]);
    });
  }

  readonly #starting = new Map<SlotState, { resolve: () => void; reject: (error: Error) => void }[]>();

  #onMessage(state: SlotState, message: ChildMessage): void {
    switch (message.type) {
      case 'ready':
        state.ready = true;
        state.idleSince = Date.now();
        this.#restartDelayMs = 0;
        for (const waiter of this.#starting.get(state) ?? []) waiter.resolve();
        this.#starting.delete(state);
        this.#dispatch();
        break;
      case 'failed': {
        const error = new ConfigurationError(`a ${this.#slotKind} of the ${this.kind} pool could not load ${this.options.module}: ${message.error}`);
        for (const waiter of this.#starting.get(state) ?? []) waiter.reject(error);
        if (!this.#starting.has(state)) this.options.logger.error(error.message);
        this.#starting.delete(state);
        break;
      }
      case 'progress':
        if (state.run?.id === message.runId) state.run.request.onProgress(message.current, message.total, message.info);
        break;
      case 'log': {
        const run = state.run?.id === message.runId ? state.run : undefined;
        const base = run?.request.logger ?? this.options.logger;
        const logger = message.prefix ? base.child(message.prefix) : base;
        if (message.fields) logger[message.level](message.fields, message.message);
        else logger[message.level](message.message);
        break;
      }
      case 'done':
        this.#onDone(state, message);
        break;
    }
  }

  #onDone(state: SlotState, message: Extract<ChildMessage, { type: 'done' }>): void {
    const run = state.run;
    if (!run || run.id !== message.runId) return;
    state.run = null;
    state.tasksRun++;
    state.idleSince = Date.now();
    run.settle({ ...decodeOutcome(run, message.outcome, message.children), trace: message.trace });
    const { maxTasksPerChild, maxMemoryPerChild } = this.options;
    if (maxTasksPerChild !== null && state.tasksRun >= maxTasksPerChild) {
      this.#retire(state, `after ${state.tasksRun} tasks (max tasks per child)`);
    } else if (maxMemoryPerChild !== null && message.memoryKiB !== null && message.memoryKiB > maxMemoryPerChild) {
      this.#retire(state, `using ${message.memoryKiB} KiB, over the limit of ${maxMemoryPerChild} KiB (max memory per child)`);
    }
    this.#dispatch();
  }

  #onExit(state: SlotState, how: string): void {
    this.#slots.delete(state);
    this.#exited.get(state)?.();
    this.#exited.delete(state);
    const starting = this.#starting.get(state);
    if (starting) {
      const error = new ConfigurationError(`a ${this.#slotKind} of the ${this.kind} pool ended while loading ${this.options.module} (${how})`);
      for (const waiter of starting) waiter.reject(error);
      this.#starting.delete(state);
      if (!this.#closing) this.#backOff();
    }
    const run = state.run;
    if (run) {
      state.run = null;
      if (run.stoppedWith) {
        run.settle({ kind: 'threw', error: run.stoppedWith, retry: null, children: [] });
      } else {
        const error = new WorkerLostError(`${this.#slotKind === 'thread' ? 'Thread' : 'Worker'} ${state.slot.id} exited prematurely (${how}) while running ${run.request.request.task}[${run.request.request.id}]`);
        this.options.logger.error(error.message);
        run.settle({ kind: 'lost', error, children: [] });
      }
    } else if (!state.retiring && !this.#closing && state.ready) {
      this.options.logger.warning(`${this.#slotKind} ${state.slot.id} of the ${this.kind} pool exited (${how}); replacing it`);
    }
    this.#dispatch();
  }

  /** Hands waiting runs to ready idle slots, and starts slots the load calls for. */
  #dispatch(): void {
    if (this.#closing) return;
    for (const state of this.#slots) {
      if (this.#waiting.length === 0) break;
      if (!state.ready || state.retiring || state.run) continue;
      const run = this.#waiting.shift()!;
      run.slot = state;
      state.run = run;
      state.slot.post({ type: 'run', runId: run.id, message: run.request.message, trace: run.request.trace });
      for (const cause of run.pendingAborts.splice(0)) state.slot.post({ type: 'abort', runId: run.id, cause });
    }
    if (this.#restartTimer) return; // starting slots is backing off after a failure
    let live = 0;
    let free = 0;
    for (const state of this.#slots) {
      if (state.retiring) continue;
      live++;
      if (!state.run) free++;
    }
    const wanted = Math.min(this.options.max, Math.max(this.options.min, live - free + this.#waiting.length));
    if (wanted <= live) return;
    if (live >= this.options.min) this.options.logger.info(`the ${this.kind} pool grows to ${wanted} ${this.#plural(wanted)}`);
    for (let started = live; started < wanted; started++) this.#startSlot();
  }

  /** A slot failed to start: wait before starting another, longer each time. */
  #backOff(): void {
    const [first, cap] = RESTART_BACKOFF_MS;
    this.#restartDelayMs = this.#restartDelayMs === 0 ? first : Math.min(cap, this.#restartDelayMs * 2);
    this.options.logger.error(`the ${this.kind} pool will try to start a ${this.#slotKind} again in ${this.#restartDelayMs} ms`);
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      this.#dispatch();
    }, this.#restartDelayMs);
    this.#restartTimer.unref();
  }

  #signal(run: PoolRun, reason: Error): void {
    const cause: AbortCause =
      reason instanceof SoftTimeLimitExceeded ? { kind: 'soft-time-limit', seconds: reason.seconds } : { kind: 'revoked', reason: reason instanceof TaskRevokedError ? reason.reason : 'shutdown' };
    if (run.slot) run.slot.slot.post({ type: 'abort', runId: run.id, cause });
    else run.pendingAborts.push(cause);
  }

  #terminate(run: PoolRun, reason: Error): void {
    if (!this.#runs.has(run)) return;
    if (!run.slot) {
      this.#waiting.splice(this.#waiting.indexOf(run), 1);
      run.settle({ kind: 'threw', error: reason, retry: null, children: [] });
      return;
    }
    run.stoppedWith = reason;
    run.slot.retiring = true;
    run.slot.slot.kill();
  }

  #retire(state: SlotState, why: string): void {
    this.options.logger.info(`replacing ${this.#slotKind} ${state.slot.id} of the ${this.kind} pool ${why}`);
    void this.#exit(state);
  }

  /** Slots above `min` idle longer than the keepalive go. */
  #retireIdle(): void {
    const now = Date.now();
    const before = [...this.#slots].filter((state) => !state.retiring).length;
    let live = before;
    for (const state of this.#slots) {
      if (live <= this.options.min) break;
      if (state.retiring || state.run || !state.ready) continue;
      // Above the maximum (the pool was shrunk) a slot goes as soon as it is idle.
      if (live <= this.options.max && now - state.idleSince < this.options.keepaliveMs) continue;
      void this.#exit(state);
      live--;
    }
    if (live < before) this.options.logger.info(`the ${this.kind} pool shrinks to ${live} ${this.#plural(live)} (idle)`);
  }

  #plural(count: number): string {
    return count === 1 ? this.#slotKind : this.#slotKind === 'thread' ? 'threads' : 'processes';
  }

  /** Asks a slot to exit (killing it if it does not within {@link EXIT_GRACE_MS}); resolves once it has. */
  #exit(state: SlotState): Promise<void> {
    if (!this.#slots.has(state)) return Promise.resolve();
    state.retiring = true;
    const exited = new Promise<void>((resolve) => {
      const previous = this.#exited.get(state);
      this.#exited.set(state, () => {
        previous?.();
        resolve();
      });
    });
    if (state.run) {
      state.run.stoppedWith ??= new TaskRevokedError('shutdown');
      state.slot.kill();
      return exited;
    }
    state.slot.post({ type: 'exit' });
    const timer = setTimeout(() => state.slot.kill(), EXIT_GRACE_MS);
    timer.unref();
    return exited.finally(() => clearTimeout(timer));
  }
}

/** A child's report as the worker's outcome: the result decoded, errors rebuilt with their stacks. */
function decodeOutcome(run: PoolRun, outcome: Extract<ChildMessage, { type: 'done' }>['outcome'], children: ResultTuple[]): RunOutcome {
  if (outcome.kind === 'returned') return { kind: 'returned', value: decodeJson(outcome.json), children };
  const taskId = run.request.request.id;
  const retry = outcome.retry && { reason: outcome.retry.reason && remoteError(taskId, { exception: outcome.retry.reason, traceback: outcome.retry.reasonTraceback }), countdown: outcome.retry.countdown };
  return { kind: 'threw', error: remoteError(taskId, outcome), retry, children };
}

/** The error a slot reported, as one the worker stores unchanged: same exception form, same stack. */
function remoteError(taskId: string, thrown: Pick<ThrownError, 'exception' | 'traceback'>): TaskFailedError {
  const { exc_type, exc_module, exc_message } = thrown.exception;
  const error = new TaskFailedError(taskId, exc_type, exc_module, exc_message, thrown.traceback);
  if (thrown.traceback) error.stack = thrown.traceback;
  return error;
}
