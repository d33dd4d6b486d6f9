/**
 * `app.beat`: the periodic tasks of an app. Entries defined in code (`app.schedule`), entries
 * kept in the store and changed at run time (`add`, `remove`, `pause`, `resume`, `list`), and
 * the scheduler itself (`start`), which `celeriac beat` and `celeriac worker -B` run.
 */
import { hostname } from 'node:os';
import type { Clock } from '../clock.js';
import { ConfigurationError } from '../errors.js';
import { createLogger, toLogger, type ForeignLogger, type Logger } from '../logger.js';
import { checkTimeZone } from './time-zone.js';
import { checkEntryName, defineEntry, fromStored, toStored, type MissedPolicy, type ScheduleDefinition, type ScheduleEntry, type ScheduleSendOptions } from './entry.js';
import { describeSchedule, nextRunAfter, specOf, type ScheduleSpec } from './schedule.js';
import { anchor, BeatService, lastRunOf, type BeatHost } from './scheduler.js';
import { createBeatStore, storeUrlFor, type BeatStore, type LeaderInfo } from './store.js';

/** What `app.beat` needs from the app. */
export interface BeatAppHost extends BeatHost {
  readonly brokerUrl: string;
  readonly backendUrl: string;
  readonly clock: Clock;
}

/** How beat runs. Every field has a default. */
export interface BeatSettings {
  /**
   * Where the leader lease, last runs and stored entries live: `sqlite://PATH`, `redis://...`
   * or `memory://NAME`. Default: the broker when it is one of these, else the result backend;
   * with a RabbitMQ broker and `rpc://` results, name one.
   */
  lock?: string;
  /** Lease length in seconds (default 10): a dead leader is replaced within it. */
  lease?: number;
  /** Longest sleep between ticks in seconds (default 1): how soon each beat sees a change to stored entries. */
  maxInterval?: number;
  /**
   * Runs late by up to this many seconds are all sent, each once (a takeover or a quick
   * restart owes them); a run later than that was missed and follows its entry's `missed`
   * policy. Default: twice the lease.
   */
  catchUp?: number;
  /** Zone for crontabs that name none (default UTC). */
  timezone?: string;
  /** Separates beat groups sharing one store (default `default`). */
  namespace?: string;
}

/** Options of {@link Beat.start}: settings, and where it logs. */
export interface BeatStartOptions extends BeatSettings {
  /** A celeriac, pino, winston or `console` logger. Default: lines on stderr at `info`. */
  logger?: Logger | ForeignLogger;
  /** This process's name in the store and in logs. Default `beat.<pid>@<host>`. */
  holder?: string;
}

/** One entry as {@link Beat.list} shows it. */
export interface BeatEntryInfo {
  name: string;
  /** `code` (defined with `app.schedule` in a loaded module), `store` (added at run time), or `unknown` (run by a beat, but its module is not loaded here). */
  source: 'code' | 'store' | 'unknown';
  task: string | null;
  args: unknown[];
  kwargs: Record<string, unknown>;
  options: ScheduleSendOptions;
  schedule: ScheduleSpec | null;
  /** `every 30s`, `cron 30 2 * * * (Europe/Paris)`, `once at ...`. */
  description: string;
  missed: MissedPolicy | null;
  paused: boolean;
  /** The scheduled time of the last run sent (or skipped). */
  lastRunAt: Date | null;
  /** When it runs next (null: never again, or unknown). */
  nextRunAt: Date | null;
  /** Runs sent so far. */
  runs: number;
}

const DEFAULT_LEASE = 10;
const DEFAULT_MAX_INTERVAL = 1;

/** The periodic tasks of an app: `app.beat`. */
export class Beat {
  readonly #host: BeatAppHost;
  readonly #code = new Map<string, ScheduleEntry>();
  #settings: BeatSettings = {};
  #service: BeatService | undefined;
  #stopping: Promise<void> | undefined;

  constructor(host: BeatAppHost) {
    this.#host = host;
  }

  /**
   * Sets how beat runs (lock URL, lease, zone...): before {@link start}, and before the
   * management calls, which use the lock URL too.
   *
   * @throws {@link ConfigurationError} for a bad value, naming it.
   */
  configure(settings: BeatSettings): void {
    this.#settings = { ...this.#settings, ...checkSettings(settings) };
  }

  /** The settings in force, defaults filled in. */
  get settings(): Required<Omit<BeatSettings, 'lock'>> & { lock: string | undefined } {
    const lease = this.#settings.lease ?? DEFAULT_LEASE;
    return {
      lock: this.#settings.lock,
      lease,
      maxInterval: this.#settings.maxInterval ?? DEFAULT_MAX_INTERVAL,
      catchUp: this.#settings.catchUp ?? 2 * lease,
      timezone: this.#settings.timezone ?? 'UTC',
      namespace: this.#settings.namespace ?? 'default',
    };
  }

  /**
   * Defines an entry in code (what `app.schedule` does): every beat process that loads the
   * module runs it. Checked now: a bad crontab, interval, time zone or option throws here.
   *
   * @throws {@link ConfigurationError} naming the entry and the bad field, or a name defined twice.
   */
  define<A extends unknown[]>(name: string, definition: ScheduleDefinition<A>): ScheduleEntry {
    checkEntryName(name);
    if (this.#code.has(name)) throw new ConfigurationError(`schedule ${JSON.stringify(name)} is already defined`);
    const entry = defineEntry(name, definition, 'code');
    this.#code.set(name, entry);
    return entry;
  }

  /** The entries defined in code, by name. */
  get definitions(): ReadonlyMap<string, ScheduleEntry> {
    return this.#code;
  }

  /** The running scheduler of this process, if {@link start} was called. */
  get service(): BeatService | undefined {
    return this.#service;
  }

  /**
   * Runs the scheduler in this process until {@link stop}: it leads (sends due runs) while it
   * holds the lease, and waits to take over otherwise. Start as many as you like, anywhere.
   */
  async start(options: BeatStartOptions = {}): Promise<BeatService> {
    if (this.#service) throw new ConfigurationError('beat is already running in this process');
    const { logger, holder, ...settings } = options;
    this.configure(settings);
    const { lease, maxInterval, catchUp, timezone } = this.settings;
    const store = await this.#openStore();
    const service = new BeatService({
      store,
      host: this.#host,
      entries: () => this.#code.values(),
      clock: this.#host.clock,
      logger: logger ? toLogger(logger) : createLogger('info'),
      holder: holder ?? `beat.${process.pid}@${hostname()}`,
      leaseMs: lease * 1000,
      maxIntervalMs: maxInterval * 1000,
      catchUpMs: catchUp * 1000,
      timezone,
    });
    this.#service = service;
    try {
      await service.start();
    } catch (error) {
      this.#service = undefined;
      await store.close().catch(() => undefined);
      throw error;
    }
    return service;
  }

  /**
   * Stops the scheduler this process runs (giving the lease up) and closes its store. Calls made
   * while it stops wait for the same stop.
   */
  stop(): Promise<void> {
    const service = this.#service;
    if (!service) return this.#stopping ?? Promise.resolve();
    this.#service = undefined;
    this.#stopping = (async () => {
      await service.stop();
      await service.store.close();
    })().finally(() => (this.#stopping = undefined));
    return this.#stopping;
  }

  /** Every entry (in code and stored) with its schedule, pause, last and next run. */
  async list(): Promise<BeatEntryInfo[]> {
    const { timezone } = this.settings;
    return this.#withStore(async (store) => {
      const [snapshot, runs] = await Promise.all([store.snapshot(), store.runs()]);
      const paused = new Set(snapshot.paused);
      const runsByName = new Map(runs.map((run) => [run.name, run]));
      const infos: BeatEntryInfo[] = [];
      const seen = new Set<string>();
      const stored = snapshot.entries.flatMap((raw) => {
        const read = fromStored(raw);
        return 'entry' in read ? [read.entry] : [];
      });
      for (const entry of [...this.#code.values(), ...stored]) {
        if (seen.has(entry.name)) continue;
        seen.add(entry.name);
        const run = runsByName.get(entry.name);
        const from = lastRunOf(entry, run) ?? anchor(entry.schedule, this.#host.clock.now());
        const next = nextRunAfter(entry.schedule, from, timezone);
        infos.push({
          name: entry.name,
          source: entry.source,
          task: entry.task,
          args: [...entry.args],
          kwargs: { ...entry.kwargs },
          options: { ...entry.options },
          schedule: specOf(entry.schedule),
          description: describeSchedule(entry.schedule, timezone),
          missed: entry.missed,
          paused: paused.has(entry.name),
          lastRunAt: run && run.runs > 0 ? new Date(run.lastRunAt) : null,
          nextRunAt: next === null ? null : new Date(next),
          runs: run?.runs ?? 0,
        });
      }
      for (const run of runs) {
        if (seen.has(run.name)) continue;
        seen.add(run.name);
        infos.push({
          name: run.name,
          source: 'unknown',
          task: null,
          args: [],
          kwargs: {},
          options: {},
          schedule: null,
          description: 'defined in a module not loaded here (pass -A to see it)',
          missed: null,
          paused: paused.has(run.name),
          lastRunAt: run.runs > 0 ? new Date(run.lastRunAt) : null,
          nextRunAt: null,
          runs: run.runs,
        });
      }
      return infos.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    });
  }

  /**
   * Adds an entry to the store, or changes the stored entry of that name: every beat runs it
   * from its next tick, first after one interval (or at the next crontab time) from now.
   *
   * @returns `'added'` or `'changed'`.
   * @throws {@link ConfigurationError} for a bad definition, naming the field, or a name defined in code.
   */
  async add<A extends unknown[]>(name: string, definition: ScheduleDefinition<A>): Promise<'added' | 'changed'> {
    if (this.#code.has(name)) {
      throw new ConfigurationError(`schedule ${JSON.stringify(name)} is defined in code; change it there, or pause it with beat.pause()`);
    }
    const entry = defineEntry(name, definition, 'store');
    return this.#withStore(async (store) => ((await store.putEntry(toStored(entry, this.#host.clock.now()))) ? 'changed' : 'added'));
  }

  /**
   * Removes a stored entry (with its pause and last run).
   *
   * @returns false when there was no stored entry of that name.
   * @throws {@link ConfigurationError} for an entry defined in code.
   */
  async remove(name: string): Promise<boolean> {
    if (this.#code.has(name)) {
      throw new ConfigurationError(`schedule ${JSON.stringify(name)} is defined in code; remove it there, or pause it with beat.pause()`);
    }
    return this.#withStore((store) => store.removeEntry(name));
  }

  /**
   * Pauses an entry (stored, or in code): no run is sent until {@link resume}, and runs that
   * fall due meanwhile are dropped, not sent on resuming.
   *
   * @returns false when it was already paused.
   * @throws {@link ConfigurationError} for a name no beat knows.
   */
  async pause(name: string): Promise<boolean> {
    return this.#withStore(async (store) => {
      await this.#requireKnown(store, name);
      return store.setPaused(name, true);
    });
  }

  /**
   * Resumes a paused entry: it runs again from its next scheduled time.
   *
   * @returns false when it was not paused.
   */
  async resume(name: string): Promise<boolean> {
    return this.#withStore(async (store) => {
      await this.#requireKnown(store, name);
      return store.setPaused(name, false);
    });
  }

  /** Which beat process leads now, or null. */
  async leader(): Promise<LeaderInfo | null> {
    return this.#withStore((store) => store.leader());
  }

  /** The URL of the store the lease, runs and stored entries are kept in. */
  storeUrl(): string {
    return storeUrlFor(this.#host.brokerUrl, this.#host.backendUrl, this.#settings.lock);
  }

  async #requireKnown(store: BeatStore, name: string): Promise<void> {
    if (this.#code.has(name)) return;
    const [snapshot, runs] = await Promise.all([store.snapshot(), store.runs()]);
    if (snapshot.entries.some((entry) => entry.name === name) || runs.some((run) => run.name === name) || snapshot.paused.includes(name)) return;
    throw new ConfigurationError(`no schedule entry named ${JSON.stringify(name)}: not in code here, not stored, and never run by a beat`);
  }

  async #openStore(): Promise<BeatStore> {
    const store = await createBeatStore(this.storeUrl(), { clock: this.#host.clock, namespace: this.settings.namespace });
    await store.connect();
    return store;
  }

  /** Runs `fn` on the running scheduler's store, or on a connection opened for the call. */
  async #withStore<T>(fn: (store: BeatStore) => Promise<T>): Promise<T> {
    if (this.#service) return fn(this.#service.store);
    const store = await this.#openStore();
    try {
      return await fn(store);
    } finally {
      await store.close();
    }
  }
}

function checkSettings(settings: BeatSettings): BeatSettings {
  const checked: BeatSettings = {};
  for (const [key, value] of Object.entries(settings) as Array<[keyof BeatSettings, unknown]>) {
    if (value === undefined) continue;
    switch (key) {
      case 'lock':
      case 'namespace':
        if (typeof value !== 'string' || value === '') throw new ConfigurationError(`beat ${key}: expected text, got ${JSON.stringify(value)}`);
        checked[key] = value;
        break;
      case 'lease':
      case 'maxInterval':
      case 'catchUp':
        if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new ConfigurationError(`beat ${key}: expected a positive number of seconds, got ${JSON.stringify(value)}`);
        checked[key] = value;
        break;
      case 'timezone':
        checked.timezone = checkTimeZone(value, 'beat timezone');
        break;
      default:
        throw new ConfigurationError(`beat: unknown setting ${JSON.stringify(key)}`);
    }
  }
  return checked;
}
