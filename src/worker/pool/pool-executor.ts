/**
 * The thread and process pools: tasks run one at a time in each of up to `max` slots, so
 * CPU-bound handlers use more than one core and never block the worker's event loop. While
 * tasks are short a slot is handed several runs, which it runs one after the other (the first
 * of a slot's runs is the one going on: the others start, and their time limits with them, as
 * those ahead of them end); once tasks take longer it gets one at a time, so no run waits behind
 * a long one while another slot could take it. Runs handed out in one turn go to a slot in one
 * message, and the runs a slot ends in one turn come back in one.
 *
 * A slot that must stop a running task (hard time limit, revoke with terminate) is killed and
 * replaced; a queued run is cancelled in its slot instead. A slot that dies on its own fails its
 * running task with {@link WorkerLostError}, and its queued runs, which never started, go to
 * another slot. One that ran `maxTasksPerChild` tasks or grew past `maxMemoryPerChild` takes no
 * more runs and is retired once its runs have ended. With autoscale the pool starts `min` slots,
 * grows to `max` while tasks wait, and retires slots idle for `keepaliveMs`.
 */
import type { ResultTuple } from '../../backends/backend.js';
import { ConfigurationError, SoftTimeLimitExceeded, TaskFailedError, TaskRevokedError, WorkerLostError } from '../../errors.js';
import { compileTypeScript, type CompiledModule } from '../../loading/compile-typescript.js';
import { isTypeScript } from '../../loading/app-module.js';
import { LOG_LEVELS, type Logger } from '../../logger.js';
import { decodeJson } from '../../protocol/kombu-json.js';
import type { Execution, Executor, RunOutcome, RunRequest } from '../executor.js';
import type { AbortCause, ChildMessage, EndedRun, RunOrder, ThrownError } from './pool-protocol.js';
import { runOrder } from './run-order.js';
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
  /** The slot it was handed to. */
  slot?: SlotState | undefined;
  /** Its slot started it (it is the first of that slot's runs). */
  started: boolean;
  /** Set when the pool ends the run itself (terminate): cancelled if queued, else its slot's death is expected. */
  stoppedWith?: Error;
  /** Signals fired so far: a slot it is handed to (again) fires them as it starts. */
  readonly aborts: AbortCause[];
}

interface SlotState {
  readonly slot: Slot;
  ready: boolean;
  /** Runs handed to it, in the order it runs them: the first is going on. */
  runs: PoolRun[];
  tasksRun: number;
  idleSince: number;
  /** Takes no more runs: retired (it exits once its runs have ended), killed, or the pool is closing. */
  retiring: boolean;
  /** Told to exit. */
  exiting: boolean;
}

/** How long a slot may take to exit when asked, before it is killed. */
const EXIT_GRACE_MS = 5_000;
/** A slot that failed to start is tried again after this, doubling up to the cap. */
const RESTART_BACKOFF_MS = [500, 30_000] as const;
/**
 * A slot holds at most this many runs (the one going on and those queued behind it). Short runs
 * reach it well within {@link QUEUE_BUDGET_MS}; deeper queues make every batch bigger (the runs
 * handed to a slot and ended by it in one message, the results stored and acked in one call):
 * no-ops through `-P processes -c 2` on Redis went from 13.8k to 20.6k/s at 64 instead of 16,
 * the worker's CPU per run from 60 to 42 µs and its socket writes per run from 0.17 to 0.04.
 */
const MAX_RUNS_PER_SLOT = 64;
/**
 * How long, at most, a run should wait behind those queued ahead of it in its slot: a slot
 * holds as many runs as, at the pool's recent time per run, take this long (one when runs
 * take longer).
 */
const QUEUE_BUDGET_MS = 4;
/** Weight of each run in the pool's recent time per run (an exponential moving average). */
const RUN_TIME_WEIGHT = 0.1;

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
  /** Recent time per run in its slot, in ms; it starts at one run per slot. */
  #runMs = QUEUE_BUDGET_MS;
  #handOutDue = false;

  constructor(
    kind: 'threads' | 'processes',
    private readonly options: PoolOptions,
  ) {
    this.kind = kind;
    this.#slotKind = kind === 'threads' ? 'thread' : 'process';
    this.#moduleForSlots = options.module;
    this.#autoscaled = options.min < options.max;
  }

  get concurrency(): number {
    return this.options.max;
  }

  get capacity(): number {
    return this.options.max * this.#runsPerSlot;
  }

  /** Runs a slot may hold now: as many as take {@link QUEUE_BUDGET_MS} at the recent time per run. */
  get #runsPerSlot(): number {
    return Math.max(1, Math.min(MAX_RUNS_PER_SLOT, Math.floor(QUEUE_BUDGET_MS / this.#runMs)));
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
      started: false,
      aborts: [],
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
    state = { slot, ready: false, runs: [], tasksRun: 0, idleSince: Date.now(), retiring: false, exiting: false };
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
        this.#runIn(state, message.run)?.request.onProgress(message.current, message.total, message.info);
        break;
      case 'log': {
        const run = this.#runIn(state, message.run);
        const base = run?.request.logger ?? this.options.logger;
        const logger = message.prefix ? base.child(message.prefix) : base;
        if (message.fields) logger[message.level](message.fields, message.message);
        else logger[message.level](message.message);
        break;
      }
      case 'ended':
        this.#onEnded(state, JSON.parse(message.runs) as EndedRun[], message.memoryKiB);
        break;
    }
  }

  #runIn(state: SlotState, id: number): PoolRun | undefined {
    return state.runs[0]?.id === id ? state.runs[0] : state.runs.find((run) => run.id === id);
  }

  /** Settles the runs a slot ended; the run after each starts there as it ends. */
  #onEnded(state: SlotState, reports: readonly EndedRun[], memoryKiB: number | null): void {
    for (const report of reports) {
      const index = state.runs.findIndex((run) => run.id === report.run);
      if (index === -1) continue;
      const run = state.runs.splice(index, 1)[0]!;
      if ('cancelled' in report) {
        run.settle({ kind: 'threw', error: run.stoppedWith ?? new TaskRevokedError('terminated'), retry: null, children: [] });
        continue;
      }
      state.tasksRun++;
      this.#runMs += RUN_TIME_WEIGHT * (report.ms - this.#runMs);
      run.settle({ ...decodeOutcome(run, report), trace: report.trace });
      if (index === 0) this.#startNext(state);
    }
    if (state.runs.length === 0) state.idleSince = Date.now();
    const { maxTasksPerChild, maxMemoryPerChild } = this.options;
    if (!state.retiring && maxTasksPerChild !== null && state.tasksRun >= maxTasksPerChild) {
      this.#retire(state, `after ${state.tasksRun} tasks (max tasks per child)`);
    } else if (!state.retiring && maxMemoryPerChild !== null && memoryKiB !== null && memoryKiB > maxMemoryPerChild) {
      this.#retire(state, `using ${memoryKiB} KiB, over the limit of ${maxMemoryPerChild} KiB (max memory per child)`);
    }
    if (state.retiring && state.runs.length === 0) void this.#exit(state);
    // A run terminated while queued, which its slot started before hearing the cancel.
    if (state.runs[0]?.stoppedWith && !state.exiting) this.#kill(state);
    this.#dispatch();
  }

  /** The slot's first run has started (its slot runs them in order). */
  #startNext(state: SlotState): void {
    const run = state.runs[0];
    if (!run || run.started) return;
    run.started = true;
    run.request.onStart();
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
    const [run, ...queued] = state.runs;
    state.runs = [];
    this.#giveBack(queued);
    if (run) {
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

  /**
   * Runs queued in a slot that died: they never started, so they go to the front of the line
   * for another slot (or, when the pool is closing, end as revoked by the shutdown).
   */
  #giveBack(queued: PoolRun[]): void {
    const again: PoolRun[] = [];
    for (const run of queued) {
      run.slot = undefined;
      if (this.#closing) run.settle({ kind: 'threw', error: new TaskRevokedError('shutdown'), retry: null, children: [] });
      else if (run.stoppedWith) run.settle({ kind: 'threw', error: run.stoppedWith, retry: null, children: [] });
      else again.push(run);
    }
    this.#waiting.unshift(...again);
  }

  /** Hands waiting runs out (at the end of the turn, so a slot gets them in one message), and starts slots the load calls for. */
  #dispatch(): void {
    if (this.#closing) return;
    if (this.#waiting.length > 0 && !this.#handOutDue) {
      this.#handOutDue = true;
      queueMicrotask(() => {
        this.#handOutDue = false;
        this.#handOut();
      });
    }
    if (this.#restartTimer) return; // starting slots is backing off after a failure
    let live = 0;
    let busy = 0;
    let queued = this.#waiting.length;
    for (const state of this.#slots) {
      if (state.retiring) continue;
      live++;
      if (state.runs.length > 0) busy++;
      queued += Math.max(0, state.runs.length - 1);
    }
    const wanted = Math.min(this.options.max, Math.max(this.options.min, busy + queued));
    if (wanted <= live) return;
    if (live >= this.options.min) this.options.logger.info(`the ${this.kind} pool grows to ${wanted} ${this.#plural(wanted)}`);
    for (let started = live; started < wanted; started++) this.#startSlot();
  }

  /** Hands each waiting run to the ready slot holding the fewest, up to {@link #runsPerSlot}; one message per slot. */
  #handOut(): void {
    if (this.#closing) return;
    const perSlot = this.#runsPerSlot;
    const orders = new Map<SlotState, RunOrder[]>();
    while (this.#waiting.length > 0) {
      const state = this.#leastBusy(perSlot);
      if (!state) break;
      const run = this.#waiting.shift()!;
      run.slot = state;
      state.runs.push(run);
      let batch = orders.get(state);
      if (!batch) orders.set(state, (batch = []));
      batch.push(runOrder(run.id, run.request, run.aborts));
    }
    for (const [state, batch] of orders) {
      state.slot.post({ type: 'runs', runs: JSON.stringify(batch) });
      this.#startNext(state);
    }
  }

  /** The ready slot with the fewest runs, under `perSlot` and its max tasks per child. */
  #leastBusy(perSlot: number): SlotState | undefined {
    const { maxTasksPerChild } = this.options;
    let least: SlotState | undefined;
    for (const state of this.#slots) {
      const held = state.runs.length;
      if (!state.ready || state.retiring || held >= perSlot || (least && least.runs.length <= held)) continue;
      if (maxTasksPerChild !== null && state.tasksRun + held >= maxTasksPerChild) continue;
      least = state;
    }
    return least;
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
    run.aborts.push(cause);
    run.slot?.slot.post({ type: 'abort', run: run.id, cause });
  }

  /** Drops a waiting run, cancels a queued one in its slot, kills the slot of a running one. */
  #terminate(run: PoolRun, reason: Error): void {
    if (!this.#runs.has(run) || run.stoppedWith) return;
    if (!run.slot) {
      this.#waiting.splice(this.#waiting.indexOf(run), 1);
      run.settle({ kind: 'threw', error: reason, retry: null, children: [] });
      return;
    }
    run.stoppedWith = reason;
    if (!run.started) run.slot.slot.post({ type: 'cancel', run: run.id });
    else this.#kill(run.slot);
  }

  /** Kills a slot; its running run ends as lost (or as its terminate said), its queued runs go to another. */
  #kill(state: SlotState): void {
    state.retiring = true;
    state.slot.kill();
  }

  /** Takes no more runs into `state`: it exits once those it holds have ended. */
  #retire(state: SlotState, why: string): void {
    this.options.logger.info(`replacing ${this.#slotKind} ${state.slot.id} of the ${this.kind} pool ${why}`);
    state.retiring = true;
  }

  /** Slots above `min` idle longer than the keepalive go. */
  #retireIdle(): void {
    const now = Date.now();
    const before = [...this.#slots].filter((state) => !state.retiring).length;
    let live = before;
    for (const state of this.#slots) {
      if (live <= this.options.min) break;
      if (state.retiring || state.runs.length > 0 || !state.ready) continue;
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
    const running = state.runs[0];
    if (running) {
      running.stoppedWith ??= new TaskRevokedError('shutdown');
      state.slot.kill();
      return exited;
    }
    if (state.exiting) return exited;
    state.exiting = true;
    state.slot.post({ type: 'exit' });
    const timer = setTimeout(() => state.slot.kill(), EXIT_GRACE_MS);
    timer.unref();
    return exited.finally(() => clearTimeout(timer));
  }
}

/** A slot's report as the worker's outcome: the result decoded, errors rebuilt with their stacks. */
function decodeOutcome(run: PoolRun, report: Exclude<EndedRun, { cancelled: true }>): RunOutcome {
  const children: ResultTuple[] = report.children ?? [];
  if ('result' in report) return { kind: 'returned', value: decodeJson(report.result), children };
  const thrown = report.error;
  const taskId = run.request.request.id;
  const retry = thrown.retry && { reason: thrown.retry.reason && remoteError(taskId, { exception: thrown.retry.reason, traceback: thrown.retry.reasonTraceback }), countdown: thrown.retry.countdown };
  return { kind: 'threw', error: remoteError(taskId, thrown), retry, children };
}

/** The error a slot reported, as one the worker stores unchanged: same exception form, same stack. */
function remoteError(taskId: string, thrown: Pick<ThrownError, 'exception' | 'traceback'>): TaskFailedError {
  const { exc_type, exc_module, exc_message } = thrown.exception;
  const error = new TaskFailedError(taskId, exc_type, exc_module, exc_message, thrown.traceback);
  if (thrown.traceback) error.stack = thrown.traceback;
  return error;
}
