/**
 * Logging: a small leveled logger writing Celery-style lines to stderr, and an adapter that lets
 * a pino, winston or `console` logger stand in for it.
 */

/** Log levels, most verbose first. */
export const LOG_LEVELS = ['debug', 'info', 'warning', 'error', 'critical'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Structured fields logged with a message, pino-style: `log.info({ orderId }, 'charged')`. */
export type LogFields = Record<string, unknown>;

/** One log method: a message, or fields and then a message. */
export interface LogMethod {
  (message: string): void;
  (fields: LogFields, message?: string): void;
}

/** The logging surface handed to tasks (`ctx.log`) and used by the worker. */
export interface Logger {
  debug: LogMethod;
  info: LogMethod;
  /** Also spelled `warn`, as pino and `console` spell it. */
  warning: LogMethod;
  warn: LogMethod;
  error: LogMethod;
  critical: LogMethod;
  /** A logger whose lines are prefixed with `prefix` (a child with that binding, for pino). */
  child(prefix: string): Logger;
  /** True when `level` would be written. */
  enabled(level: LogLevel): boolean;
}

/**
 * A logger of another library that {@link toLogger} adapts: pino and winston (`info(fields,
 * message)`, `warn`, `child(bindings)`, `isLevelEnabled`), or `console`.
 */
export interface ForeignLogger {
  debug?(...args: unknown[]): unknown;
  info(...args: unknown[]): unknown;
  warn(...args: unknown[]): unknown;
  error(...args: unknown[]): unknown;
  fatal?(...args: unknown[]): unknown;
  child?(bindings: Record<string, unknown>): ForeignLogger;
  isLevelEnabled?(level: string): boolean;
}

/** Where log lines go; tests may capture them. */
export type LogSink = (line: string) => void;

/** Parses a `--loglevel` value; throws a message listing the valid levels. */
export function parseLogLevel(text: string): LogLevel {
  const level = text.toLowerCase() === 'warn' ? 'warning' : text.toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new Error(`unknown log level ${JSON.stringify(text)}; use one of ${LOG_LEVELS.join(', ')}`);
  }
  return level as LogLevel;
}

/** Creates a logger writing lines at or above `level`; fields follow the message as `key=value`. */
export function createLogger(level: LogLevel = 'info', sink: LogSink = (line) => process.stderr.write(line + '\n'), prefix = ''): Logger {
  const threshold = LOG_LEVELS.indexOf(level);
  const method = (lineLevel: LogLevel): LogMethod =>
    ((first: string | LogFields, message?: string): void => {
      if (LOG_LEVELS.indexOf(lineLevel) < threshold) return;
      const stamp = new Date().toISOString().replace('T', ' ').replace('Z', '');
      const text = typeof first === 'string' ? first : [message ?? '', ...Object.entries(first).map(([key, value]) => `${key}=${formatField(value)}`)].join(' ').trim();
      sink(`[${stamp}: ${lineLevel.toUpperCase()}/${process.pid}] ${prefix}${text}`);
    }) as LogMethod;
  return assembleLogger(
    method,
    (childPrefix) => createLogger(level, sink, `${prefix}${childPrefix} `),
    (lineLevel) => LOG_LEVELS.indexOf(lineLevel) >= threshold,
  );
}

/** A {@link Logger} from its method for each level, its children and its level test. */
export function assembleLogger(method: (level: LogLevel) => LogMethod, child: Logger['child'], enabled: Logger['enabled']): Logger {
  const warning = method('warning');
  return { debug: method('debug'), info: method('info'), warning, warn: warning, error: method('error'), critical: method('critical'), child, enabled };
}

function formatField(value: unknown): string {
  if (typeof value === 'string') return /\s/.test(value) ? JSON.stringify(value) : value;
  if (value instanceof Error) return JSON.stringify(value.message);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** True for celeriac's own {@link Logger} (as opposed to one to adapt). */
function isLogger(value: Logger | ForeignLogger): value is Logger {
  return typeof (value as Logger).warning === 'function' && typeof (value as Logger).enabled === 'function';
}

// The foreign level each of ours maps to, and the pino level name `isLevelEnabled` knows.
const FOREIGN_LEVEL: Record<LogLevel, 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = {
  debug: 'debug',
  info: 'info',
  warning: 'warn',
  error: 'error',
  critical: 'fatal',
};

/**
 * celeriac's {@link Logger} over a pino, winston or `console` logger (a celeriac logger passes
 * through). Fields go first, as pino takes them; a child is the library's child with a `task`
 * binding where it has one, else the prefix goes in front of the message.
 */
export function toLogger(logger: Logger | ForeignLogger, prefix = ''): Logger {
  if (isLogger(logger)) return prefix ? logger.child(prefix.trim()) : logger;
  const call = (level: LogLevel): LogMethod =>
    ((first: string | LogFields, message?: string): void => {
      const args = typeof first === 'string' ? [prefix + first] : [first, prefix + (message ?? '')];
      const name = FOREIGN_LEVEL[level];
      if (name === 'debug' || name === 'fatal') {
        const method = logger[name] ? name : name === 'fatal' ? 'error' : 'info';
        logger[method]!(...args);
      } else {
        logger[name](...args);
      }
    }) as LogMethod;
  return assembleLogger(
    call,
    (childPrefix) => (logger.child ? toLogger(logger.child({ task: childPrefix })) : toLogger(logger, `${prefix}${childPrefix} `)),
    (level) => logger.isLevelEnabled?.(FOREIGN_LEVEL[level]) ?? true,
  );
}
