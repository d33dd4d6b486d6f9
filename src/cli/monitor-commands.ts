/**
 * The monitoring commands: `inspect` and `control` (Celery's remote control, answered by
 * celeriac and Python workers alike), `status` (who is online), and `events` (a live view of
 * workers and tasks, or with --dump every event as a line).
 */
import type { Command } from 'commander';
import type { CeleryEvent } from '../brokers/broker.js';
import type { Replies } from '../control.js';
import { ConfigurationError } from '../errors.js';
import { State, type TaskInfo } from '../monitor/state.js';
import { withApp } from './commands.js';
import type { AppOptions } from './load-app.js';
import { positiveSeconds } from './option-parsers.js';

interface ReplyCommandOptions extends AppOptions {
  destination?: string[];
  timeout: number;
  json?: boolean;
}

/** Inspect commands and the arguments they take. */
const INSPECT: Record<string, (args: string[]) => Record<string, unknown>> = {
  ping: () => ({}),
  active: () => ({}),
  reserved: () => ({}),
  scheduled: () => ({}),
  revoked: () => ({}),
  registered: () => ({ taskinfoitems: [] }),
  active_queues: () => ({}),
  stats: () => ({}),
  conf: () => ({ with_defaults: false }),
  query_task: (args) => ({ ids: args }),
  report: () => ({}),
  clock: () => ({}),
};

/** Control commands and how their positional arguments map to Celery's. */
const CONTROL: Record<string, (args: string[]) => Record<string, unknown>> = {
  revoke: (args) => ({ task_id: args, terminate: false, signal: 'SIGTERM' }),
  terminate: (args) => ({ task_id: args, signal: 'SIGTERM' }),
  rate_limit: ([task, rate]) => ({ task_name: required(task, 'a task name'), rate_limit: required(rate, "a rate such as '10/s' (0 lifts it)") }),
  time_limit: ([task, hard, soft]) => ({ task_name: required(task, 'a task name'), hard: seconds(hard), soft: seconds(soft) }),
  shutdown: () => ({ msg: 'Got shutdown from remote' }),
  pool_grow: ([n]) => ({ n: Number(n ?? 1) }),
  pool_shrink: ([n]) => ({ n: Number(n ?? 1) }),
  autoscale: ([max, min]) => ({ max: Number(required(max, 'max')), min: Number(required(min, 'min')) }),
  add_consumer: ([queue]) => ({ queue: required(queue, 'a queue') }),
  cancel_consumer: ([queue]) => ({ queue: required(queue, 'a queue') }),
  enable_events: () => ({}),
  disable_events: () => ({}),
  heartbeat: () => ({}),
};

/** Names of the inspect and control commands, for `--help`. */
export const INSPECT_COMMANDS = Object.keys(INSPECT);
export const CONTROL_COMMANDS = Object.keys(CONTROL);

/** Adds inspect, control, status and events to the program. */
export function registerMonitorCommands(program: Command, withConnection: (command: Command) => Command): void {
  const replyOptions = (command: Command): Command =>
    withConnection(command)
      .option('-d, --destination <nodes>', 'comma-separated node names to ask (default: every worker)', (value: string) => value.split(',').map((part) => part.trim()).filter(Boolean))
      .option('-t, --timeout <seconds>', 'how long to wait for replies', positiveSeconds, 1)
      .option('-j, --json', 'print the replies as one JSON object');

  replyOptions(program.command('inspect'))
    .description('Ask the workers (celeriac and Python) what they are doing; each answers for itself.')
    .argument('<command>', INSPECT_COMMANDS.join(', '))
    .argument('[args...]', 'query_task: task ids')
    .addHelpText('after', '\nExamples:\n  $ celeriac inspect ping\n  $ celeriac inspect active -d w1@host\n  $ celeriac inspect query_task 5f1c... -j')
    .action((command: string, args: string[], options: ReplyCommandOptions) => runReplyCommand('inspect', INSPECT, command, args, options));

  replyOptions(program.command('control'))
    .description('Change the workers (celeriac and Python) at run time.')
    .argument('<command>', CONTROL_COMMANDS.join(', '))
    .argument('[args...]', 'the command\'s arguments, e.g. rate_limit tasks.add 10/s')
    .addHelpText(
      'after',
      '\nExamples:\n  $ celeriac control rate_limit tasks.fetch 10/m\n  $ celeriac control time_limit tasks.render 60 50\n  $ celeriac control add_consumer images -d w1@host\n  $ celeriac control pool_grow 2\n  $ celeriac control shutdown -d w1@host',
    )
    .action((command: string, args: string[], options: ReplyCommandOptions) => runReplyCommand('control', CONTROL, command, args, options));

  replyOptions(program.command('status'))
    .description('List the workers online (those that answer a ping).')
    .action((options: ReplyCommandOptions) => runStatus(options));

  withConnection(program.command('events'))
    .description('Watch workers and tasks live (task events need workers started with -E, or `celeriac control enable_events`).')
    .option('--dump', 'print every event as a line instead of the live view')
    .option('--for <seconds>', 'stop after this long', positiveSeconds)
    .action((options: AppOptions & { dump?: boolean; for?: number }) => runEvents(options));
}

async function runReplyCommand(kind: string, table: Record<string, (args: string[]) => Record<string, unknown>>, command: string, args: string[], options: ReplyCommandOptions): Promise<void> {
  const build = Object.hasOwn(table, command) ? table[command] : undefined;
  if (!build) throw new ConfigurationError(`unknown ${kind} command ${JSON.stringify(command)}; use one of ${Object.keys(table).join(', ')}`);
  const celeryArgs = build(args);
  await withApp(options, async (app) => {
    if (UNANSWERED.has(command)) {
      // Workers do not answer these (as in Celery): say it went out rather than wait for replies.
      await app.control.broadcast(command, celeryArgs, options.destination ? { destination: options.destination } : {});
      process.stdout.write(`${command} sent to ${options.destination ? options.destination.join(', ') : 'every worker'}\n`);
      return;
    }
    const replies = await app.control.request(command, celeryArgs, { timeout: options.timeout, ...(options.destination ? { destination: options.destination, limit: options.destination.length } : {}) });
    printReplies(replies, options.json === true);
  });
}

/** Control commands workers carry out without replying. */
const UNANSWERED = new Set(['shutdown', 'heartbeat']);

async function runStatus(options: ReplyCommandOptions): Promise<void> {
  await withApp(options, async (app) => {
    const replies = await app.control.ping({ timeout: options.timeout, ...(options.destination ? { destination: options.destination } : {}) });
    if (options.json) {
      process.stdout.write(`${JSON.stringify(Object.keys(replies))}\n`);
      return;
    }
    for (const node of Object.keys(replies).sort()) process.stdout.write(`${node}: OK\n`);
    process.stdout.write(`\n${count(Object.keys(replies).length, 'node')} online.\n`);
    if (Object.keys(replies).length === 0) process.exitCode = 1;
  });
}

function printReplies(replies: Replies<unknown>, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(replies)}\n`);
    return;
  }
  const nodes = Object.keys(replies).sort();
  for (const node of nodes) {
    const reply = replies[node];
    const failed = typeof reply === 'object' && reply !== null && 'error' in reply;
    process.stdout.write(`-> ${node}: ${failed ? 'ERROR' : 'OK'}\n${indent(describeReply(reply))}\n`);
  }
  if (nodes.length === 0) {
    process.stderr.write('Error: no nodes replied within the time limit.\n');
    process.exitCode = 1;
    return;
  }
  process.stdout.write(`\n${count(nodes.length, 'node')} online.\n`);
}

/** A reply as Celery's CLI shows it: the message of ok/error, list items, or JSON. */
function describeReply(reply: unknown): string {
  if (typeof reply === 'object' && reply !== null && !Array.isArray(reply)) {
    const { ok, error } = reply as { ok?: unknown; error?: unknown };
    if (typeof ok === 'string') return ok;
    if (typeof error === 'string') return error;
  }
  if (Array.isArray(reply)) return reply.length === 0 ? '- empty -' : reply.map((item) => `* ${typeof item === 'string' ? item : JSON.stringify(item)}`).join('\n');
  return JSON.stringify(reply, null, 2);
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');
}

async function runEvents(options: AppOptions & { dump?: boolean; for?: number }): Promise<void> {
  await withApp(options, async (app) => {
    const controller = new AbortController();
    const stop = (): void => controller.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const timer = options.for === undefined ? undefined : setTimeout(stop, options.for * 1000);
    try {
      const stream = await app.events.receive({ signal: controller.signal });
      if (options.dump) {
        for await (const event of stream) process.stdout.write(`${dumpLine(event)}\n`);
        return;
      }
      await liveView(stream, controller.signal);
    } finally {
      clearTimeout(timer);
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  });
}

/** One event as a line: `node [time] type: field=value, ...`, as `celery events --dump` prints. */
function dumpLine(event: CeleryEvent): string {
  const { hostname, timestamp, type, ...fields } = event;
  const when = typeof timestamp === 'number' ? new Date(timestamp * 1000).toISOString() : '?';
  const rest = Object.entries(fields)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(', ');
  return `${String(hostname)} [${when}] ${type}: ${rest}`;
}

const COLOURS: Record<string, string> = { SUCCESS: '32', FAILURE: '31', RETRY: '33', REVOKED: '35', REJECTED: '31', STARTED: '36', RECEIVED: '34' };

/** Redraws workers and the latest tasks once a second until `signal` fires. */
async function liveView(stream: AsyncIterable<CeleryEvent>, signal: AbortSignal): Promise<void> {
  const state = new State();
  const colour = process.stdout.isTTY === true && !process.env['NO_COLOR'];
  const paint = (code: string | undefined, text: string): string => (colour && code ? `\x1b[${code}m${text}\x1b[0m` : text);
  const draw = (): void => {
    const now = Date.now() / 1000;
    const lines = [`celeriac events — ${state.eventCount} events (Ctrl-C to stop)`, '', 'WORKERS'];
    for (const worker of [...state.workers.values()].sort((a, b) => a.hostname.localeCompare(b.hostname))) {
      const alive = state.isAlive(worker);
      const age = worker.lastHeartbeat === null ? '-' : `${Math.max(0, now - worker.lastHeartbeat).toFixed(0)}s ago`;
      lines.push(`  ${paint(alive ? '32' : '31', alive ? 'online ' : 'offline')} ${worker.hostname.padEnd(36)} heartbeat ${age.padEnd(8)} active ${String(worker.active ?? '-').padEnd(4)} processed ${worker.processed ?? '-'}  ${worker.software ?? ''}`);
    }
    lines.push('', 'TASKS (latest first)');
    for (const task of state.tasksByTime().slice(0, 20)) lines.push(`  ${paint(COLOURS[task.state], task.state.padEnd(8))} ${taskLine(task)}`);
    if (colour) process.stdout.write('\x1b[2J\x1b[H');
    process.stdout.write(`${lines.join('\n')}\n`);
  };
  const redraw = setInterval(draw, 1_000);
  signal.addEventListener('abort', () => clearInterval(redraw), { once: true });
  try {
    for await (const event of stream) state.event(event);
  } finally {
    clearInterval(redraw);
    draw();
  }
}

function taskLine(task: TaskInfo): string {
  const runtime = task.runtime === null ? '' : ` ${task.runtime.toFixed(3)}s`;
  const outcome = task.exception ?? task.result ?? '';
  return `${(task.name ?? '?').padEnd(28)} ${task.uuid}  ${task.worker ?? ''}${runtime} ${outcome.slice(0, 60)}`;
}

function required(value: string | undefined, what: string): string {
  if (value === undefined || value === '') throw new ConfigurationError(`missing ${what}`);
  return value;
}

function seconds(value: string | undefined): number | null {
  if (value === undefined) return null;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new ConfigurationError(`expected seconds, got ${JSON.stringify(value)}`);
  return n;
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
