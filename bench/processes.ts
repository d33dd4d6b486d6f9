/**
 * Worker processes the benchmarks start as users start them (`celeriac worker ...`,
 * `python3 -m celery ... worker`), each in a process group of its own, killed on any way out of
 * the script; and the memory of a process tree, from /proc.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';

/** How a worker is started, and how the tables name it. */
export interface WorkerSpec {
  /** How the tables name it: `-c 50`, `prefork -c 2`... */
  label: string;
  command: string;
  args: string[];
  cwd?: string;
  env: NodeJS.ProcessEnv;
}

/** The processes this script started that still run (workers, Python producers), each with how to kill it. */
const running = new Map<ChildProcess, () => void>();

/** Kills `child` on any way out of the script while it runs (an error, a signal, exit). */
export function track(child: ChildProcess, kill: () => void): void {
  running.set(child, kill);
  child.once('exit', () => running.delete(child));
}

export const killAll = (): void => running.forEach((kill) => kill());

const onSignal = (signal: NodeJS.Signals): void => {
  killAll();
  process.exit(128 + constants.signals[signal]);
};

/**
 * Kills every tracked process when the script is interrupted or exits, until the returned
 * function is called (which kills what still runs).
 */
export function killOnExit(): () => void {
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', killAll);
  return () => {
    killAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', killAll);
  };
}

/** A worker in a process group of its own, its output kept for error messages. */
export class WorkerProcess {
  readonly exited: Promise<number | null>;
  #output = '';
  readonly #child: ChildProcess;

  /** `stopSeconds`: how long {@link stop} waits for a warm shutdown before SIGKILL. */
  constructor(
    readonly spec: WorkerSpec,
    private readonly stopSeconds = 10,
  ) {
    this.#child = spawn(spec.command, spec.args, { cwd: spec.cwd, env: spec.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const keep = (chunk: Buffer): void => void (this.#output = (this.#output + chunk.toString()).slice(-8000));
    this.#child.stdout!.on('data', keep);
    this.#child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) => this.#child.once('exit', (code) => resolve(code)));
    track(this.#child, () => this.kill());
  }

  get pid(): number {
    return this.#child.pid!;
  }

  /** The last 8,000 characters it wrote, stdout and stderr together. */
  get output(): string {
    return this.#output;
  }

  /** Rejects, with the worker's last output, if it exits before `work` settles. */
  guard<T>(work: Promise<T>, during: string): Promise<T> {
    const died = this.exited.then((code) => {
      throw new Error(`${this.spec.label} worker exited (code ${code}) ${during}; its last output:\n${this.#output}`);
    });
    return Promise.race([work, died]);
  }

  /**
   * Warm shutdown (SIGTERM), then SIGKILL to the process group: at once after the worker exits
   * (for anything it left behind), or after `stopSeconds` if it has not.
   */
  async stop(): Promise<void> {
    this.#signal('SIGTERM', false);
    const timer = setTimeout(() => this.kill(), this.stopSeconds * 1000);
    await this.exited;
    clearTimeout(timer);
    this.kill();
  }

  /** SIGKILL to the process group (a prefork pool's children included). */
  kill(): void {
    this.#signal('SIGKILL', true);
  }

  #signal(signal: NodeJS.Signals, group: boolean): void {
    try {
      process.kill(group ? -this.#child.pid! : this.#child.pid!, signal);
    } catch {
      // already gone
    }
  }
}

/** A process and its descendants, from /proc (the children of every thread, not only the main one's). */
export function processTree(pid: number): number[] {
  const children = readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
    try {
      return readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
    } catch {
      return []; // the thread ended meanwhile
    }
  });
  return [pid, ...children.flatMap(processTree)];
}

/**
 * Memory of a process tree in MB: `rss` sums each process's resident set (`VmRSS`), counting
 * pages processes share once per process; `pss` sums their proportional set size
 * (`smaps_rollup`), each shared page divided among the processes sharing it.
 */
export function treeMemory(pid: number): { processes: number; rss: number; pss: number } {
  const field = (path: string, name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(readFileSync(path, 'utf8'))?.[1] ?? NaN) / 1024;
  const pids = processTree(pid);
  return {
    processes: pids.length,
    rss: pids.reduce((sum, p) => sum + field(`/proc/${p}/status`, 'VmRSS'), 0),
    pss: pids.reduce((sum, p) => sum + field(`/proc/${p}/smaps_rollup`, 'Pss'), 0),
  };
}

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on Linux everywhere this runs). */
const TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat; 0 once it is gone. */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // from field 3 (state) on
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND; // fields 14 and 15: utime, stime
  } catch {
    return 0;
  }
}

/** CPU seconds the whole machine has spent busy so far (every core), from /proc/stat. */
export function machineBusySeconds(): number {
  const [, user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) / TICKS_PER_SECOND;
}

/** Where the CPU went during a measurement, in cores (CPU seconds per second of the measurement). */
export interface CpuShares {
  /** The worker's own process. */
  worker: number;
  /** Its pool children (celeriac `-P processes`, Celery prefork). */
  children: number;
  redis: number;
  /** The benchmark's own process (the producer and the result subscriber). */
  bench: number;
  /** Everything else on the machine: other users' load, which the figures suffer from. */
  others: number;
}

interface CpuSnapshot {
  at: number;
  machine: number;
  worker: number;
  children: Map<number, number>;
  redis: number;
  bench: number;
}

/** Takes the CPU times of a worker's tree, Redis, this process and the machine; `since` turns two into shares. */
export class CpuMeter {
  constructor(
    readonly workerPid: number,
    readonly redisPid: number | null,
  ) {}

  snapshot(): CpuSnapshot {
    const [, ...children] = processTree(this.workerPid);
    const { user, system } = process.cpuUsage();
    return {
      at: performance.now(),
      machine: machineBusySeconds(),
      worker: processCpuSeconds(this.workerPid),
      children: new Map(children.map((pid) => [pid, processCpuSeconds(pid)])),
      redis: this.redisPid === null ? 0 : processCpuSeconds(this.redisPid),
      bench: (user + system) / 1e6,
    };
  }

  /** The shares between `start` and now. */
  since(start: CpuSnapshot): CpuShares {
    const end = this.snapshot();
    const seconds = (end.at - start.at) / 1000;
    let children = 0;
    for (const [pid, cpu] of end.children) children += cpu - (start.children.get(pid) ?? 0);
    const worker = end.worker - start.worker;
    const redis = end.redis - start.redis;
    const bench = end.bench - start.bench;
    const others = Math.max(0, end.machine - start.machine - worker - children - redis - bench);
    return { worker: worker / seconds, children: children / seconds, redis: redis / seconds, bench: bench / seconds, others: others / seconds };
  }
}

/** What {@link waitForQuiet} saw. */
export interface Quiet {
  /** Seconds spent waiting. */
  waited: number;
  /** Cores busy in the last window. */
  busy: number;
  /** Whether the machine was quiet before `maxSeconds` ran out. */
  quiet: boolean;
}

/**
 * Waits until the whole machine has used less than `threshold` cores for `windows` windows of
 * `windowMs` in a row (the worker under test idle meanwhile), or until `maxSeconds` pass: on a
 * machine others use too, a measurement starts when their load has ebbed, if it does.
 */
export async function waitForQuiet({ threshold = 0.25, windowMs = 1000, windows = 2, maxSeconds = 60 } = {}): Promise<Quiet> {
  const started = performance.now();
  let calm = 0;
  let busy = NaN;
  for (;;) {
    const before = machineBusySeconds();
    const at = performance.now();
    await new Promise((resolve) => setTimeout(resolve, windowMs));
    busy = (machineBusySeconds() - before) / ((performance.now() - at) / 1000);
    calm = busy < threshold ? calm + 1 : 0;
    const waited = (performance.now() - started) / 1000;
    if (calm >= windows) return { waited, busy, quiet: true };
    if (waited >= maxSeconds) return { waited, busy, quiet: false };
  }
}
