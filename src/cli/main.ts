/** The `celeriac` command line. */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { CeleriacError } from '../errors.js';
import { runCall, runPurge, runQueues, runResult, runRevoke } from './commands.js';
import { runDemo } from './demo.js';
import { registerMonitorCommands } from './monitor-commands.js';
import { runWorker } from './worker-command.js';
import { registerBeatCommand } from './beat-command.js';
import { registerDashboardCommand } from './dashboard-command.js';
import { VERSION } from '../version.js';
import { nonNegative, parseDate, parseJsonArray, parseJsonObject, positiveInt, priority, splitList } from './option-parsers.js';

/** Runs the CLI with `argv` (without `node` and the script); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    const verbose = argv.includes('--verbose');
    process.stderr.write(`celeriac: error: ${describe(error)}\n`);
    if (verbose && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    else if (!(error instanceof CeleriacError)) process.stderr.write('(run again with --verbose for the stack trace)\n');
    return 2;
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? ` (${error.cause.message})` : '';
    return error.message + (error.message.includes(cause.slice(2, -1)) ? '' : cause);
  }
  return String(error);
}

const APP_HELP = 'module exporting the Celeriac app (TypeScript or JavaScript), e.g. ./tasks.ts';

function withConnection(command: Command): Command {
  return command
    .option('-A, --app <module>', APP_HELP)
    .option('-b, --broker <url>', 'broker URL (default: the app\'s, $CELERIAC_BROKER_URL, or sqlite://.celeriac/celeriac.db)')
    .option('--backend <url>', 'result backend URL (default: the broker URL; rpc:// for an amqp:// broker)')
    .option('--verbose', 'print stack traces on errors');
}

function buildProgram(): Command {
  const program = new Command('celeriac')
    .description('Distributed task queue for TypeScript, wire-compatible with Python Celery.')
    .version(VERSION)
    .exitOverride()
    // Options after a subcommand's name are that subcommand's (`beat list -A x` is list's -A, not beat's).
    .enablePositionalOptions()
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      `
Examples:
  $ celeriac worker -A ./tasks.ts -c 20           run a worker for the tasks in tasks.ts
  $ celeriac call tasks.add '[2, 3]' --wait        send a task and print its result
  $ celeriac result 5f1c...                        show a task's state and result
  $ celeriac queues                                show how many messages wait
  $ celeriac status                                list the workers online
  $ celeriac inspect active                        ask every worker what it runs
  $ celeriac control rate_limit tasks.fetch 10/m   change workers at run time
  $ celeriac events                                watch workers and tasks live
  $ celeriac dashboard -A ./tasks.ts               the web dashboard on http://127.0.0.1:5555
  $ celeriac beat -A ./tasks.ts                    send the periodic tasks in tasks.ts when due
  $ celeriac demo                                  run the demo on the embedded broker

With no broker configured, everything uses the embedded SQLite file .celeriac/celeriac.db.
Broker URLs: sqlite://PATH, redis://host:6379/0 (rediss:// for TLS, ?master_name= for
Sentinel), amqp://user:pass@host:5672/vhost (amqps:// for TLS), memory://.
Result backends: the same, plus rpc:// (results over the broker's RabbitMQ).`,
    );

  withConnection(program.command('worker'))
    .description('Run a worker: take tasks from the broker and run them.')
    .option('-Q, --queues <names>', 'comma-separated queues to consume, most preferred first', splitList)
    .addOption(new Option('-P, --pool <kind>', 'where tasks run: event (the event loop, for I/O-bound tasks), threads or processes (for CPU-bound tasks)').choices(['event', 'threads', 'processes']).default('event'))
    .option('-c, --concurrency <n>', 'slots of the pool: tasks at once on the event loop (default 10), threads or child processes (default: the number of CPUs)', positiveInt)
    .option('--autoscale <max,min>', 'threads or processes: start min slots, grow to max while tasks wait, shrink when idle', parseAutoscale)
    .option('--autoscale-idle <seconds>', 'with --autoscale, how long a slot above min may sit idle before it goes (default 30)', nonNegative)
    .option('--max-tasks-per-child <n>', 'threads or processes: replace a slot after it ran n tasks', positiveInt)
    .option('--max-memory-per-child <KiB>', 'processes (threads: heap): replace a slot after a task left it above this many KiB', positiveInt)
    .option('--threads <n>', "threads for tasks with runIn: 'thread' when --pool is not threads (default: the number of CPUs)", positiveInt)
    .option('--processes <n>', "child processes for tasks with runIn: 'process' when --pool is not processes (default: the number of CPUs)", positiveInt)
    .option('--prefetch <n>', 'messages taken ahead of time (default: 4 x concurrency, as Celery)', positiveInt)
    .addOption(new Option('-l, --loglevel <level>', 'log level').choices(['debug', 'info', 'warning', 'error', 'critical']).default('info'))
    .option('-n, --hostname <name>', 'node name (default: celeriac.<pid>@<host>)')
    .option('--grace <seconds>', 'on SIGINT/SIGTERM, how long running tasks may finish', nonNegative, 30)
    .option('-E, --task-events', 'send task events for monitors (celery events, Flower, celeriac events), as Celery\'s -E')
    .option('--without-mingle', "don't ask the other workers for revoked tasks at start-up")
    .option('--no-track-children', "don't follow handlers across await to record the tasks they send as children (faster)")
    .option('-B, --beat', 'also run beat (the periodic task scheduler) in this worker; see celeriac beat --help')
    .option('--lock <url>', 'with -B: where beat keeps its lease and last runs (default: the broker, else the result backend)')
    .option('--dashboard [address]', 'also serve the web dashboard, on port or host:port (default 127.0.0.1:5555); see celeriac dashboard --help')
    .option('--metrics-port <address>', 'serve this worker\'s Prometheus metrics at /metrics on port or host:port (127.0.0.1 unless given); beyond loopback set CELERIAC_DASHBOARD_AUTH or CELERIAC_DASHBOARD_TOKEN')
    .addHelpText(
      'after',
      `
Pools: the event loop suits tasks that wait (HTTP, databases); a CPU-bound task blocks it and
everything else with it. Run such tasks in threads or child processes, for the whole worker
(-P processes -c 4) or per task (the task option runIn: 'process'); a hard time limit or
revoke --terminate then kills the slot and replaces it.

Shutdown: the first SIGINT/SIGTERM stops taking work, hands back what has not started, and lets
running tasks finish within --grace seconds; a second signal stops at once (the broker
redelivers whatever was not acked).`,
    )
    .action(runWorker);

  withConnection(program.command('call'))
    .description('Send a task by name and print its id (with --wait, its result).')
    .argument('<task>', 'task name, e.g. tasks.add')
    .argument('[args]', 'positional arguments as a JSON array, e.g. \'[2, 3]\'', parseJsonArray, [])
    .option('--kwargs <json>', 'keyword arguments as a JSON object', parseJsonObject)
    .option('--countdown <seconds>', 'run no earlier than this many seconds from now', nonNegative)
    .option('--eta <iso-date>', 'run no earlier than this time', parseDate)
    .option('--expires <seconds>', 'revoke if not started within this many seconds', nonNegative)
    .option('-Q, --queue <name>', 'queue to send to (default: celery)')
    .option('--priority <0-9>', 'message priority', priority)
    .option('--wait', 'wait for the result and print it')
    .option('--timeout <seconds>', 'with --wait, give up after this long', nonNegative)
    .action(runCall);

  withConnection(program.command('result'))
    .description('Show the state and result of a task.')
    .argument('<task-id>', 'the id printed by `call`')
    .option('--wait', 'wait until the task is done')
    .option('--timeout <seconds>', 'with --wait, give up after this long', nonNegative)
    .action(runResult);

  withConnection(program.command('revoke'))
    .description('Revoke tasks: they will not start (with --terminate, running ones are signalled).')
    .argument('<task-ids...>', 'ids to revoke')
    .option('--terminate', 'also fire the AbortSignal of tasks already running')
    .action(runRevoke);

  registerMonitorCommands(program, withConnection);

  withConnection(program.command('purge'))
    .description('Delete every waiting message from queues.')
    .option('-Q, --queues <names>', 'comma-separated queues (default: celery)', splitList)
    .option('-f, --force', 'do not ask for confirmation')
    .action(runPurge);

  withConnection(program.command('queues'))
    .description('Show how many messages wait in each queue.')
    .option('-Q, --queues <names>', 'comma-separated queues (default: every queue the broker knows)', splitList)
    .action(runQueues);

  registerBeatCommand(program, withConnection);

  registerDashboardCommand(program, withConnection);

  program
    .command('demo')
    .description('Run the demo: seed workloads through a real worker process on the embedded broker.')
    .argument('[urls...]', 'pages whose titles to fetch (default: pages from a local server the demo starts)')
    .option('-b, --broker <url>', 'broker URL for the demo', 'sqlite://.celeriac/demo.db')
    .action(runDemo);

  return program;
}

/** `--autoscale 10,3`: at most 10 slots, at least 3 (`10` alone: 0 to 10). */
function parseAutoscale(value: string): [number, number] {
  const [max, min = 0, ...rest] = value.split(',').map((part) => Number(part.trim()));
  if (rest.length > 0 || !Number.isInteger(max) || !Number.isInteger(min) || max! < 1 || min < 0 || min > max!) {
    throw new InvalidArgumentError('expected max,min with 0 <= min <= max, e.g. 8,2');
  }
  return [max!, min];
}
