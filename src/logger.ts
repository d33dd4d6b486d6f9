/** A small leveled logger writing Celery-style lines to stderr. */

/** Log levels, most verbose first. */
export const LOG_LEVELS = ['debug', 'info', 'warning', 'error', 'critical'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The logging surface handed to tasks and used by the worker. */
export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warning(message: string): void;
  error(message: string): void;
  /** A logger whose lines are prefixed with `prefix`. */
  child(prefix: string): Logger;
  /** True when `level` would be written. */
  enabled(level: LogLevel): boolean;
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

/** Creates a logger writing lines at or above `level`. */
export function createLogger(level: LogLevel = 'info', sink: LogSink = (line) => process.stderr.write(line + '\n'), prefix = ''): Logger {
  const threshold = LOG_LEVELS.indexOf(level);
  const write = (lineLevel: LogLevel, message: string): void => {
    if (LOG_LEVELS.indexOf(lineLevel) < threshold) return;
    const stamp = new Date().toISOString().replace('T', ' ').replace('Z', '');
    sink(`[${stamp}: ${lineLevel.toUpperCase()}/${process.pid}] ${prefix}${message}`);
  };
  return {
    debug: (message) => write('debug', message),
    info: (message) => write('info', message),
    warning: (message) => write('warning', message),
    error: (message) => write('error', message),
    child: (childPrefix) => createLogger(level, sink, `${prefix}${childPrefix} `),
    enabled: (lineLevel) => LOG_LEVELS.indexOf(lineLevel) >= threshold,
  };
}
