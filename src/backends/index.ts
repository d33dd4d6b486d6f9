/** Opens a result backend from its URL. Drivers load only for the scheme in use. */
import { ConfigurationError } from '../errors.js';
import { parseTransportUrl, type ParsedUrl } from '../url.js';
import type { ResultBackend } from './backend.js';

type BackendFactory = (url: ParsedUrl, raw: string) => Promise<ResultBackend>;

const FACTORIES: Record<string, BackendFactory> = {
  memory: async (url) => new (await import('./memory/memory-backend.js')).MemoryBackend(url),
  sqlite: async (url, raw) => new (await import('./sqlite/sqlite-backend.js')).SqliteBackend(url, raw),
  redis: async (url, raw) => new (await import('./redis/redis-backend.js')).RedisBackend(url, raw),
  rediss: async (url, raw) => new (await import('./redis/redis-backend.js')).RedisBackend(url, raw),
};

/** The URL schemes {@link createBackend} understands. */
export const BACKEND_SCHEMES = Object.keys(FACTORIES);

/**
 * Creates (but does not connect) the result backend a URL names.
 *
 * @throws {@link ConfigurationError} for a malformed URL or an unknown scheme.
 */
export async function createBackend(raw: string): Promise<ResultBackend> {
  const url = parseTransportUrl(raw, 'result backend');
  const factory = FACTORIES[url.scheme];
  if (!factory) {
    throw new ConfigurationError(
      `unknown result backend scheme ${JSON.stringify(url.scheme + '://')} in ${url.display}; use one of ${BACKEND_SCHEMES.map((s) => s + '://').join(', ')}`,
    );
  }
  return factory(url, raw);
}
