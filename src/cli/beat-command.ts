/**
 * `celeriac beat`: runs the scheduler (`celeriac beat -A ./tasks.ts`), and manages the entries
 * kept in the store at run time (`celeriac beat list|add|remove|pause|resume`). Also what
 * `celeriac worker -B` starts inside a worker.
 */
import { Command, Option } from 'commander';
import type { Celeriac } from '../app.js';
import type { BeatEntryInfo, BeatSettings } from '../beat/beat.js';
import type { ScheduleDefinition } from '../beat/entry.js';
import { ConfigurationError } from '../errors.js';
import { createLogger, parseLogLevel, type Logger } from '../logger.js';
import { maskPassword } from '../url.js';
import { loadApp, type AppOptions } from './load-app.js';
import { parseJsonArray, parseJsonObject, positiveSeconds, priority } from './option-parsers.js';

/** Options every beat command takes. */
interface BeatOptions extends AppOptions {
  lock?: string;
  namespace?: string;
}

interface BeatRunOptions extends BeatOptions {
  lease?: number;
  maxInterval?: number;
  catchUp?: number;
  timezone?: string;
  loglevel: string;
}

const RUN_HELP = `
Any number of beat processes may run, on any machines sharing the store: one leads (sends due
runs) through a lease in the store, and if it dies another takes over within the lease (10 s by
default), sending every run it owes exactly once. Runs are ordinary task messages, so Python
Celery workers run them too.

The store is the broker when it is SQLite or Redis, else the result backend; with RabbitMQ and
rpc:// results, name one with --lock.

Examples:
  $ celeriac beat -A ./tasks.ts                        run the schedule in tasks.ts (app.schedule)
  $ celeriac beat -A ./tasks.ts --broker redis://127.0.0.1:6379/0
  $ celeriac beat -A ./tasks.ts --broker amqp://guest:guest@rabbit// --lock redis://redis:6379/0
  $ celeriac worker -A ./tasks.ts -B                   a worker that runs beat too
  $ celeriac beat list                                 every entry, its last and next run
  $ celeriac beat add nightly reports.build '["eu"]' --cron '30 2 * * *' --timezone Europe/Paris
  $ celeriac beat add poll feeds.poll --every 30       every 30 seconds
  $ celeriac beat add launch promo.start --at 2026-06-01T09:00:00Z
  $ celeriac beat pause nightly                        no runs until resumed
  $ celeriac beat resume nightly
  $ celeriac beat remove poll

Crontab fields: minute hour day-of-month month day-of-week, each *, N, A-B, */S, A-B/S or a
comma list; days 0-6 from Sunday or sun-sat, months 1-12 or jan-dec. As in Celery, a day must
match the day of month, the month and the day of week. A time a spring-forward jump skips runs
once, just after the jump; one a fall-back repeats runs once (hourly entries run in both hours).`;

/** Adds `celeriac beat` and its subcommands to the program. */
export function registerBeatCommand(program: Command, withConnection: (command: Command) => Command): void {
  const beat = withStore(withConnection(program.command('beat')))
    .description('Run the periodic task scheduler (beat), or manage the entries stored at run time.')
    .option('--lease <seconds>', 'lease length: a dead leader is replaced within it (default 10)', positiveSeconds)
    .option('--max-interval <seconds>', 'longest sleep between ticks: how soon a stored change is seen (default 1)', positiveSeconds)
    .option('--catch-up <seconds>', 'runs late by up to this are all sent; later ones were missed and follow the entry\'s policy (default: twice the lease)', positiveSeconds)
    .option('--timezone <zone>', 'IANA zone for crontabs that name none (default UTC)')
    .addOption(new Option('-l, --loglevel <level>', 'log level').choices(['debug', 'info', 'warning', 'error', 'critical']).default('info'))
    .addHelpText('after', RUN_HELP)
    .action(runBeat);

  withStore(withConnection(beat.command('list')))
    .description('List every entry: in code (with -A) and stored, paused or not, with its last and next run.')
    .option('--json', 'print JSON')
    .action(listEntries);

  withStore(withConnection(beat.command('add')))
    .description('Add an entry to the store, or change the stored entry of that name; every beat runs it from its next tick.')
    .argument('<name>', 'entry name, e.g. nightly-report')
    .argument('<task>', 'task name, e.g. reports.build (it may live in Python)')
    .argument('[args]', 'positional arguments as a JSON array, e.g. \'["eu", 3]\'', parseJsonArray)
    .option('--every <seconds>', 'run every this many seconds', positiveSeconds)
    .option('--cron <expression>', 'run at crontab times, e.g. \'30 2 * * mon-fri\'')
    .option('--timezone <zone>', 'with --cron: the IANA zone its times are read in, e.g. Europe/Paris')
    .option('--at <iso-date>', 'run once, at this time, e.g. 2026-06-01T09:00:00Z')
    .option('--kwargs <json>', 'keyword arguments as a JSON object', parseJsonObject)
    .option('-Q, --queue <name>', 'queue to send to')
    .option('--priority <0-9>', 'message priority', priority)
    .option('--expires <seconds>', 'a run not started this long after it was sent is discarded', positiveSeconds)
    .addOption(new Option('--missed <policy>', 'runs missed while no beat was sending: one run for them, or none').choices(['run-once', 'skip']).default('run-once'))
    .addHelpText(
      'after',
      `
Examples:
  $ celeriac beat add poll feeds.poll --every 30
  $ celeriac beat add nightly reports.build '["eu"]' --cron '30 2 * * *' --timezone Europe/Paris
  $ celeriac beat add launch promo.start --at 2026-06-01T09:00:00Z --queue promo`,
    )
    .action(addEntry);

  withStore(withConnection(beat.command('remove')))
    .description('Remove a stored entry (entries in code are removed from the code; pause them instead).')
    .argument('<name>', 'entry name')
    .action((name: string, options: BeatOptions) => change(options, (app) => app.beat.remove(name), (done) => (done ? `removed ${name}` : `no stored entry named ${name}`), true));

  withStore(withConnection(beat.command('pause')))
    .description('Pause an entry (stored or in code): no runs until resumed; runs due meanwhile are dropped.')
    .argument('<name>', 'entry name')
    .action((name: string, options: BeatOptions) => change(options, (app) => app.beat.pause(name), (done) => (done ? `paused ${name}` : `${name} was already paused`)));

  withStore(withConnection(beat.command('resume')))
    .description('Resume a paused entry: it runs again from its next scheduled time.')
    .argument('<name>', 'entry name')
    .action((name: string, options: BeatOptions) => change(options, (app) => app.beat.resume(name), (done) => (done ? `resumed ${name}` : `${name} was not paused`)));
}

function withStore(command: Command): Command {
  return command
    .option('--lock <url>', 'where the lease, last runs and stored entries live: sqlite://PATH or redis://... (default: the broker, else the result backend)')
    .option('--namespace <name>', 'separates beat groups sharing one store (default: default)');
}

/** Loads the app and configures its beat from the command line. */
async function beatApp(options: BeatOptions & Partial<Pick<BeatRunOptions, 'lease' | 'maxInterval' | 'catchUp' | 'timezone'>>): Promise<Celeriac> {
  const app = await loadApp(options);
  const settings: BeatSettings = {};
  if (options.lock !== undefined) settings.lock = options.lock;
  if (options.namespace !== undefined) settings.namespace = options.namespace;
  if (options.lease !== undefined) settings.lease = options.lease;
  if (options.maxInterval !== undefined) settings.maxInterval = options.maxInterval;
  if (options.catchUp !== undefined) settings.catchUp = options.catchUp;
  if (options.timezone !== undefined) settings.timezone = options.timezone;
  app.beat.configure(settings);
  return app;
}

/** `celeriac beat`: runs the scheduler until SIGINT/SIGTERM. */
async function runBeat(options: BeatRunOptions): Promise<void> {
  const logger = createLogger(parseLogLevel(options.loglevel));
  const app = await beatApp(options);
  const storeUrl = app.beat.storeUrl();
  if (storeUrl.startsWith('memory:')) {
    throw new ConfigurationError(`the beat store ${storeUrl} lives inside one process, so no other process would see its runs; use sqlite:// (the default) or redis://, or --lock`);
  }
  try {
    await runUntilSignal(app, logger);
  } finally {
    await app.close();
  }
}

async function runUntilSignal(app: Celeriac, logger: Logger): Promise<void> {
  const stop = await startBeat(app, logger);
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      logger.warning(`${signal}: stopping beat (the lease goes to another beat at once)`);
      void stop().finally(resolve);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/**
 * Starts beat in this process (also inside a worker, for `-B`) and logs what it runs; resolves
 * to the function that stops it.
 */
export async function startBeat(app: Celeriac, logger: Logger, lock?: string): Promise<() => Promise<void>> {
  if (lock !== undefined) app.beat.configure({ lock });
  const { lease, namespace } = app.beat.settings;
  logger.info(`celeriac beat: store ${maskPassword(app.beat.storeUrl())} (namespace ${namespace}), lease ${lease}s, sending to ${(await app.broker()).displayUrl}`);
  await app.beat.start({ logger });
  return () => app.beat.stop();
}

/** `celeriac beat list`. */
async function listEntries(options: BeatOptions & { json?: boolean }): Promise<void> {
  const app = await beatApp(options);
  try {
    const [entries, leader] = await Promise.all([app.beat.list(), app.beat.leader()]);
    if (options.json) {
      process.stdout.write(`${JSON.stringify({ leader, entries }, null, 2)}\n`);
      return;
    }
    process.stdout.write(`store: ${app.beat.storeUrl()}  leader: ${leader ? `${leader.holder} (epoch ${leader.epoch})` : 'none'}\n`);
    if (entries.length === 0) {
      process.stdout.write('no entries (define them with app.schedule(...) and pass -A, or add one: celeriac beat add --help)\n');
      return;
    }
    printTable(entries);
  } finally {
    await app.close();
  }
}

function printTable(entries: BeatEntryInfo[]): void {
  const time = (date: Date | null): string => (date ? date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');
  const rows = [
    ['NAME', 'SOURCE', 'TASK', 'SCHEDULE', 'STATE', 'LAST RUN', 'NEXT RUN', 'RUNS'],
    ...entries.map((entry) => [
      entry.name,
      entry.source,
      entry.task ?? '?',
      entry.description,
      entry.paused ? 'paused' : 'active',
      time(entry.lastRunAt),
      entry.paused ? '-' : time(entry.nextRunAt),
      String(entry.runs),
    ]),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  for (const row of rows) process.stdout.write(`${row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()}\n`);
}

interface AddOptions extends BeatOptions {
  every?: number;
  cron?: string;
  timezone?: string;
  at?: string;
  kwargs?: Record<string, unknown>;
  queue?: string;
  priority?: number;
  expires?: number;
  missed: 'run-once' | 'skip';
}

/** `celeriac beat add`. */
async function addEntry(name: string, task: string, args: unknown[] | undefined, options: AddOptions): Promise<void> {
  const given = [options.every !== undefined && '--every', options.cron !== undefined && '--cron', options.at !== undefined && '--at'].filter(Boolean);
  if (given.length !== 1) {
    throw new ConfigurationError(given.length === 0 ? 'say when it runs: --every SECONDS, --cron EXPRESSION or --at DATE' : `give one of ${given.join(', ')}, not both`);
  }
  if (options.timezone !== undefined && options.cron === undefined) throw new ConfigurationError('--timezone goes with --cron');
  const definition: ScheduleDefinition = {
    task,
    args: args ?? [],
    kwargs: options.kwargs ?? {},
    every: options.every ?? (options.cron !== undefined ? { cron: options.cron, ...(options.timezone ? { timezone: options.timezone } : {}) } : { at: options.at! }),
    missed: options.missed,
    options: {
      ...(options.queue !== undefined ? { queue: options.queue } : {}),
      ...(options.priority !== undefined ? { priority: options.priority } : {}),
      ...(options.expires !== undefined ? { expires: options.expires } : {}),
    },
  };
  await change(options, (app) => app.beat.add(name, definition), (outcome) => `${outcome} ${name}`);
}

/** Runs one change on the store and prints its outcome. */
async function change<T>(options: BeatOptions, run: (app: Celeriac) => Promise<T>, describe: (outcome: T) => string, failWhenFalse = false): Promise<void> {
  const app = await beatApp(options);
  try {
    const outcome = await run(app);
    process.stdout.write(`${describe(outcome)}\n`);
    if (failWhenFalse && outcome === false) process.exitCode = 1;
  } finally {
    await app.close();
  }
}
