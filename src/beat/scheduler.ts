/**
 * The beat service: one per beat process (or worker run with `-B`). Every beat keeps the merged
 * list of entries (in code, and stored ones, reloaded when the store's version moves) and tries
 * for the leader lease; the leader alone sends. Each tick it works out which runs are due from
 * the last runs in the store, confirms it still holds the lease (the fencing check), sends each
 * run as an ordinary task message through the app, and records the runs with the same token.
 *
 * A run's task id is derived from its entry and scheduled time, so a run sent by a leader killed
 * before it could record it, and sent again by the next, carries the same id.
 */
import type { Clock, ClockTimer } from '../clock.js';
import { TypedEmitter } from '../events.js';
import type { Logger } from '../logger.js';
import type { ApplyOptions } from '../task.js';
import { fromStored, runId, type MissedPolicy, type ScheduleEntry } from './entry.js';
import { LeaderLease } from './lock.js';
import { describeSchedule, nextRunAfter, specOf, type Schedule } from './schedule.js';
import { DAY } from './time-zone.js';
import type { BeatStore, RunRecord } from './store.js';

/** What the beat needs from the app: its task names (to warn about unknown ones) and its send path. */
export interface BeatHost {
  readonly tasks: ReadonlyMap<string, unknown>;
  sendTask(name: string, args: unknown[], kwargs: Record<string, unknown>, options: ApplyOptions): { readonly id: string; readonly sent: Promise<void> };
}

/** Settings of a {@link BeatService}. */
export interface BeatServiceSettings {
  store: BeatStore;
  host: BeatHost;
  /** The entries defined in code (read at start and at every reload). */
  entries: () => Iterable<ScheduleEntry>;
  clock: Clock;
  logger: Logger;
  /** This process in the store and in logs, e.g. `beat.123@host`. */
  holder: string;
  leaseMs: number;
  /** Longest sleep between ticks: how soon a change to stored entries (or a free lease) is seen. */
  maxIntervalMs: number;
  /** A run late by more than this is missed and follows its entry's policy; later runs are all sent. */
  catchUpMs: number;
  /** Zone for crontabs that name none. */
  timezone: string;
}

/** Events of a {@link BeatService}. */
export interface BeatEventMap {
  /** This process became the leader. */
  leader: { epoch: number };
  /** This process stopped leading. */
  follower: { reason: string };
  /** A run was sent. */
  sent: { entry: string; task: string; id: string; scheduledAt: number };
  /** Runs that fell due were not sent: missed (with the `skip` policy or collapsed by `run-once`) or paused. */
  skipped: { entry: string; from: number; through: number; reason: 'missed' | 'paused' };
  /** The entries changed (stored ones added, changed or removed; any paused or resumed). */
  changed: { version: number; added: string[]; changed: string[]; removed: string[]; paused: string[]; resumed: string[] };
  error: { error: unknown; during: string };
}

/** At most this many runs of one entry are sent in one tick; the rest follow at once. */
const RUNS_PER_TICK = 1_000;

/** What one tick does for one entry. */
export interface RunPlan {
  /** Scheduled times to send, in order. */
  send: number[];
  /** The latest scheduled time dealt with (sent or dropped): the entry's last run once done. */
  through: number;
  /** Runs dropped before the sends, as [first, last] scheduled times, and why. */
  dropped?: { from: number; through: number; reason: 'missed' | 'paused' };
}

/**
 * Works out which runs of a schedule are due at `now`, given the last one dealt with. Runs late
 * by at most `catchUpMs` are all sent, however many (a takeover or a restart sends every run it
 * owes, each once); when the first due run is later than that, runs were missed while no beat
 * was sending: `run-once` sends one run (the latest) for all of them, `skip` drops the missed
 * ones and sends only those still within the window. Null when nothing is due.
 */
export function planRuns(
  schedule: Schedule,
  last: number,
  now: number,
  policy: { missed: MissedPolicy; catchUpMs: number; zone: string; paused: boolean; limit?: number },
): RunPlan | null {
  const { zone, catchUpMs } = policy;
  const first = nextRunAfter(schedule, last, zone);
  if (first === null || first > now) return null;
  if (policy.paused) {
    const latest = latestRun(schedule, last, now, zone);
    return { send: [], through: latest, dropped: { from: first, through: latest, reason: 'paused' } };
  }
  const limit = policy.limit ?? RUNS_PER_TICK;
  if (now - first <= catchUpMs) {
    const send = runsBetween(schedule, last, -Infinity, now, zone, limit);
    return { send, through: send[send.length - 1]! };
  }
  const latest = latestRun(schedule, last, now, zone);
  if (policy.missed === 'run-once') {
    return { send: [latest], through: latest, ...(latest > first ? { dropped: { from: first, through: previousOf(schedule, last, latest, zone), reason: 'missed' as const } } : {}) };
  }
  const windowStart = now - catchUpMs;
  const send = runsBetween(schedule, last, windowStart - 1, now, zone, limit);
  const droppedThrough = send.length > 0 ? previousOf(schedule, last, send[0]!, zone) : latest;
  return { send, through: send.length > 0 ? send[send.length - 1]! : latest, dropped: { from: first, through: droppedThrough, reason: 'missed' } };
}

/** Runs after both `last` and `from`, up to `until`, at most `limit`. Intervals stay aligned to `last`. */
function runsBetween(schedule: Schedule, last: number, from: number, until: number, zone: string, limit: number): number[] {
  const runs: number[] = [];
  if (schedule.kind === 'interval') {
    const k = from > last ? Math.floor((from - last) / schedule.ms) + 1 : 1;
    for (let t = last + k * schedule.ms; t <= until && runs.length < limit; t += schedule.ms) runs.push(t);
    return runs;
  }
  for (let t = nextRunAfter(schedule, Math.max(last, from), zone); t !== null && t <= until && runs.length < limit; t = nextRunAfter(schedule, t, zone)) runs.push(t);
  return runs;
}

/** The latest run after `last` and at or before `now` (one is known to exist). */
function latestRun(schedule: Schedule, last: number, now: number, zone: string): number {
  if (schedule.kind === 'interval') return last + Math.floor((now - last) / schedule.ms) * schedule.ms;
  // Look back over growing windows, so a long gap of a frequent crontab is not walked run by run.
  for (const back of [DAY, 32 * DAY, 367 * DAY, 30 * 367 * DAY, Infinity]) {
    let latest: number | null = null;
    for (let t = nextRunAfter(schedule, Math.max(last, now - back), zone); t !== null && t <= now; t = nextRunAfter(schedule, t, zone)) latest = t;
    if (latest !== null) return latest;
  }
  return nextRunAfter(schedule, last, zone)!;
}

/** The run before `run` (and after `last`), else `last`... approximated by the latest before it. */
function previousOf(schedule: Schedule, last: number, run: number, zone: string): number {
  const before = run - 1;
  const first = nextRunAfter(schedule, last, zone);
  if (first === null || first > before) return last;
  return latestRun(schedule, last, before, zone);
}

interface Slot {
  entry: ScheduleEntry;
  /** Cached next run after `after`. */
  after?: number;
  next?: number | null;
}

/** Runs the schedule in this process: leads when it holds the lease, else waits to. */
export class BeatService extends TypedEmitter<BeatEventMap> {
  readonly lease: LeaderLease;
  readonly #s: BeatServiceSettings;
  #slots = new Map<string, Slot>();
  #paused = new Set<string>();
  #version: number | undefined;
  /** Last runs, authoritative while leading (re-read on each takeover). */
  #runs = new Map<string, RunRecord>();
  #timer: ClockTimer | undefined;
  #running: Promise<void> | undefined;
  #started = false;
  #stopped = false;
  #warned = new Set<string>();

  constructor(settings: BeatServiceSettings) {
    super();
    this.#s = settings;
    this.lease = new LeaderLease(settings.store, { holder: settings.holder, leaseMs: settings.leaseMs, clock: settings.clock, logger: settings.logger });
    this.lease.on('lost', ({ reason }) => {
      settings.logger.warning(`beat: no longer the leader: ${reason}`);
      this.emit('follower', { reason });
    });
  }

  /** The store this beat keeps its lease and state in. */
  get store(): BeatStore {
    return this.#s.store;
  }

  /** True while this process leads (sends). */
  get isLeader(): boolean {
    return this.lease.held;
  }

  /** The entries this beat runs (in code and stored), with whether each is paused. */
  get entries(): Array<{ entry: ScheduleEntry; paused: boolean }> {
    return [...this.#slots.values()].map(({ entry }) => ({ entry, paused: this.#paused.has(entry.name) }));
  }

  /** Connects to the store, loads the entries, warns about unknown tasks, and starts ticking. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    await this.#s.store.connect();
    await this.#reload(true);
    this.#schedule(0);
  }

  /** Stops ticking, waits for a tick in progress, and gives the lease up for another beat to take at once. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) this.#s.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    // A tick waiting on an unreachable store is not waited for longer than a lease.
    await waitAtMost(this.#running, this.#s.leaseMs);
    const leading = this.lease.held;
    await waitAtMost(this.lease.release(), this.#s.leaseMs);
    if (leading) this.#s.logger.info('beat: gave up the lease');
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    if (this.#timer) this.#s.clock.clearTimeout(this.#timer);
    this.#timer = this.#s.clock.setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#tick()
        .catch((error: unknown) => {
          this.#s.logger.error(`beat: tick failed: ${(error as Error).message ?? String(error)}`);
          if (this.listens('error')) this.emit('error', { error, during: 'tick' });
          return this.#s.maxIntervalMs;
        })
        .then((delay) => {
          this.#running = undefined;
          this.#schedule(delay);
        });
    }, Math.max(0, ms));
  }

  /** One tick; resolves to how long to sleep before the next. */
  async #tick(): Promise<number> {
    const { store, clock, maxIntervalMs } = this.#s;
    const now = clock.now(); // the moment the tick was due: runs up to it are sent
    if ((await store.version()) !== this.#version) await this.#reload(false);
    if (!this.lease.held) {
      const wait = await this.lease.tryAcquire();
      if (!this.lease.held) return Math.min(maxIntervalMs, wait + 5);
      this.#runs = new Map((await store.runs()).map((run) => [run.name, run]));
      for (const slot of this.#slots.values()) delete slot.after;
      this.#s.logger.info(`beat: leader now (epoch ${this.lease.epoch}, ${plural(this.#slots.size, 'entry', 'entries')}, lease ${this.#s.leaseMs / 1000}s, store ${store.displayUrl})`);
      this.emit('leader', { epoch: this.lease.epoch });
    }
    const records: RunRecord[] = [];
    const work: Array<{ slot: Slot; plan: RunPlan; last: number; runs: number }> = [];
    for (const slot of this.#slots.values()) {
      const { entry } = slot;
      const record = this.#runs.get(entry.name);
      let last = lastRunOf(entry, record);
      if (last === undefined) {
        last = anchor(entry.schedule, now);
        records.push({ name: entry.name, lastRunAt: last, runs: 0 });
      }
      const plan = planRuns(entry.schedule, last, now, { missed: entry.missed, catchUpMs: this.#s.catchUpMs, zone: this.#s.timezone, paused: this.#paused.has(entry.name) });
      if (plan) work.push({ slot, plan, last, runs: record?.runs ?? 0 });
    }
    if (work.length === 0 && records.length === 0) return this.#sleep(now);
    // The fencing check: renew with this tenure's token, or send nothing.
    if (!(await this.lease.confirm())) return 0;
    const token = this.lease.token!;
    const outcomes = await Promise.all(work.map((item) => this.#carryOut(item.slot.entry, item.plan)));
    work.forEach((item, i) => {
      const sent = outcomes[i]!;
      const through = sent.complete ? item.plan.through : sent.lastSent;
      if (through === undefined) return; // nothing went out: the same runs are due next tick
      const sentAt = sent.count > 0 ? clock.now() : this.#runs.get(item.slot.entry.name)?.sentAt;
      records.push({ name: item.slot.entry.name, lastRunAt: through, runs: item.runs + sent.count, ...(sentAt === undefined ? {} : { sentAt }) });
    });
    if (records.length === 0) return Math.min(maxIntervalMs, 1_000);
    if (!(await store.recordRuns(token, records))) {
      this.lease.abandon('another beat took the lease while this one was sending');
      this.#s.logger.warning(
        `beat: runs sent but not recorded (the lease was lost meanwhile): ${records.map((r) => r.name).join(', ')}; the next leader sends them again with the same task ids`,
      );
      return 0;
    }
    for (const record of records) this.#runs.set(record.name, record);
    const more = work.some((item, i) => outcomes[i]!.complete && item.plan.send.length >= RUNS_PER_TICK);
    return more ? 0 : this.#sleep(clock.now());
  }

  /** Sends one entry's planned runs in order, stopping at the first that fails. */
  async #carryOut(entry: ScheduleEntry, plan: RunPlan): Promise<{ complete: boolean; count: number; lastSent: number | undefined }> {
    const { logger, host } = this.#s;
    if (plan.dropped) {
      const { from, through, reason } = plan.dropped;
      const span = from === through ? iso(from) : `${iso(from)} to ${iso(through)}`;
      if (reason === 'paused') logger.debug(`beat: ${entry.name} is paused; not sending its run(s) of ${span}`);
      else logger.warning(`beat: ${entry.name}: runs due ${span} were missed (no beat was sending); ${entry.missed === 'skip' ? 'skipped' : 'sending one run for them'}`);
      this.emit('skipped', { entry: entry.name, from, through, reason });
    }
    let count = 0;
    let lastSent: number | undefined;
    for (const scheduledAt of plan.send) {
      const id = runId(entry.name, scheduledAt);
      try {
        const result = host.sendTask(entry.task, [...entry.args], { ...entry.kwargs }, sendOptions(entry, id, scheduledAt));
        await result.sent;
      } catch (error) {
        logger.error(`beat: could not send ${entry.name} (${entry.task}) due ${iso(scheduledAt)}: ${(error as Error).message}; trying again next tick`);
        if (this.listens('error')) this.emit('error', { error, during: `send ${entry.name}` });
        return { complete: false, count, lastSent };
      }
      count++;
      lastSent = scheduledAt;
      logger.info(`beat: sent ${entry.name}: ${entry.task}[${id}] due ${iso(scheduledAt)}`);
      this.emit('sent', { entry: entry.name, task: entry.task, id, scheduledAt });
    }
    return { complete: true, count, lastSent };
  }

  /** How long to sleep: until the next run of any entry, at most the max interval. */
  #sleep(now: number): number {
    let next = now + this.#s.maxIntervalMs;
    for (const slot of this.#slots.values()) {
      const last = lastRunOf(slot.entry, this.#runs.get(slot.entry.name));
      if (last === undefined) return 0;
      if (slot.after !== last) {
        slot.after = last;
        slot.next = nextRunAfter(slot.entry.schedule, last, this.#s.timezone);
      }
      if (slot.next !== null && slot.next !== undefined && slot.next < next) next = slot.next;
    }
    return Math.max(0, next - now);
  }

  /** Reads stored entries and pauses, merges them with the code's, and reports what changed. */
  async #reload(first: boolean): Promise<void> {
    const { store, logger, host } = this.#s;
    const snapshot = await store.snapshot();
    const slots = new Map<string, Slot>();
    for (const entry of this.#s.entries()) slots.set(entry.name, this.#slots.get(entry.name)?.entry === entry ? this.#slots.get(entry.name)! : { entry });
    for (const stored of snapshot.entries) {
      if (slots.has(stored.name)) {
        this.#warnOnce(`shadow:${stored.name}`, `beat: the stored entry ${stored.name} has the name of an entry in code; the code's runs`);
        continue;
      }
      const read = fromStored(stored);
      if ('error' in read) {
        this.#warnOnce(`bad:${stored.name}:${JSON.stringify(stored)}`, `beat: ignoring the stored entry ${stored.name}: ${read.error}`);
        continue;
      }
      const previous = this.#slots.get(stored.name);
      slots.set(stored.name, previous && sameEntry(previous.entry, read.entry) ? previous : { entry: read.entry });
    }
    for (const name of snapshot.unreadable ?? []) this.#warnOnce(`unreadable:${name}:${snapshot.version}`, `beat: ignoring the stored entry ${name}: its JSON cannot be read`);
    const paused = new Set(snapshot.paused);
    const change = {
      version: snapshot.version,
      added: [...slots.keys()].filter((name) => !this.#slots.has(name)),
      changed: [...slots.keys()].filter((name) => this.#slots.has(name) && this.#slots.get(name) !== slots.get(name)),
      removed: [...this.#slots.keys()].filter((name) => !slots.has(name)),
      paused: [...paused].filter((name) => !this.#paused.has(name)),
      resumed: [...this.#paused].filter((name) => !paused.has(name)),
    };
    this.#slots = slots;
    this.#paused = paused;
    this.#version = snapshot.version;
    for (const name of change.added) {
      const { entry } = slots.get(name)!;
      if (!host.tasks.has(entry.task)) {
        this.#warnOnce(
          `task:${name}:${entry.task}`,
          `beat: entry ${name} names the task ${entry.task}, which this app does not define; it is sent anyway (a worker elsewhere, in Python say, may run it)`,
        );
      }
    }
    if (first) {
      const lines = [...slots.values()].map(({ entry }) => `  ${entry.name}: ${entry.task} ${describeSchedule(entry.schedule, this.#s.timezone)}${paused.has(entry.name) ? ' (paused)' : ''}${entry.source === 'store' ? ' [stored]' : ''}`);
      logger.info(`beat: ${plural(slots.size, 'entry', 'entries')} (store version ${snapshot.version})${lines.length > 0 ? `\n${lines.join('\n')}` : ''}`);
      return;
    }
    const parts = (['added', 'changed', 'removed', 'paused', 'resumed'] as const).filter((key) => change[key].length > 0).map((key) => `${key} ${change[key].join(', ')}`);
    logger.info(`beat: entries changed (store version ${snapshot.version})${parts.length > 0 ? `: ${parts.join('; ')}` : ''}`);
    this.emit('changed', change);
  }

  #warnOnce(key: string, message: string): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#s.logger.warning(message);
  }
}

/**
 * The run an entry's next one comes after: its recorded last run; for a stored entry added or
 * changed since, the time of that change; undefined for a code entry never run.
 */
export function lastRunOf(entry: ScheduleEntry, record: RunRecord | undefined): number | undefined {
  if (entry.since === undefined) return record?.lastRunAt;
  const start = anchor(entry.schedule, entry.since);
  return record === undefined || record.lastRunAt < start ? start : record.lastRunAt;
}

/** The last run a never-run entry starts from: `from`, or just before a one-off date so a past one counts as missed. */
export function anchor(schedule: Schedule, from: number): number {
  return schedule.kind === 'once' ? Math.min(from, schedule.at - 1) : from;
}

function sameEntry(a: ScheduleEntry, b: ScheduleEntry): boolean {
  return (
    a.task === b.task &&
    a.missed === b.missed &&
    a.since === b.since &&
    JSON.stringify([a.args, a.kwargs, a.options, specOf(a.schedule)]) === JSON.stringify([b.args, b.kwargs, b.options, specOf(b.schedule)])
  );
}

function sendOptions(entry: ScheduleEntry, id: string, scheduledAt: number): ApplyOptions {
  const { headers, ...rest } = entry.options;
  return { ...rest, taskId: id, headers: { ...headers, beat_entry: entry.name, beat_scheduled_at: iso(scheduledAt) } };
}

/** Waits for `promise`, or `ms` of real time, whichever comes first. */
async function waitAtMost(promise: Promise<unknown> | undefined, ms: number): Promise<void> {
  if (!promise) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

function plural(count: number, one: string, many: string): string {
  return `${count} ${count === 1 ? one : many}`;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
