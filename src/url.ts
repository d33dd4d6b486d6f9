/** Parsing of broker and backend URLs, with errors that say what to write instead. */
import { ConfigurationError } from './errors.js';

/** A URL split into what every transport needs; options come from the query string. */
export interface ParsedUrl {
  /** The scheme without `://`, e.g. `sqlite`, `redis`. */
  scheme: string;
  /** The parsed URL (for network transports); null for path-style URLs. */
  url: URL;
  /** Query parameters, e.g. `?visibility_timeout=30`. */
  options: URLSearchParams;
  /** The URL with any password replaced by `***`, safe to log. */
  display: string;
}

/**
 * Splits a transport URL.
 *
 * @throws {@link ConfigurationError} when the text is not a URL with a scheme.
 */
export function parseTransportUrl(text: string, kind: 'broker' | 'result backend'): ParsedUrl {
  const match = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text);
  if (!match) {
    throw new ConfigurationError(
      `bad ${kind} URL ${JSON.stringify(text)}: expected scheme://..., e.g. sqlite://.celeriac/celeriac.db, redis://127.0.0.1:6379/0 or amqp://guest:guest@127.0.0.1:5672//`,
    );
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigurationError(`bad ${kind} URL ${JSON.stringify(maskPassword(text))}: it does not parse as a URL`);
  }
  return { scheme: match[1]!.toLowerCase(), url, options: url.searchParams, display: maskPassword(text) };
}

/** Replaces the password in a URL with `***`. */
export function maskPassword(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*:)[^@/]*@/i, '$1***@');
}

/**
 * The file path of a path-style URL such as `sqlite://.celeriac/celeriac.db` (relative) or
 * `sqlite:///var/lib/app.db` (absolute): everything between `://` and any `?`.
 */
export function pathOf(text: string): string {
  const rest = text.slice(text.indexOf('://') + 3);
  const query = rest.indexOf('?');
  return decodeURIComponent(query === -1 ? rest : rest.slice(0, query));
}

/** Reads a numeric query option, rejecting anything that is not a number. */
export function numberOption(options: URLSearchParams, name: string, fallback: number): number {
  const raw = options.get(name);
  if (raw === null) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new ConfigurationError(`URL option ${name}=${raw} is not a number`);
  return value;
}
