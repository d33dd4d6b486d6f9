/** Opening ioredis connections from a `redis://` or `rediss://` URL, with a bounded first connect. */
import type { Redis as RedisClient } from 'ioredis';
import { ConnectionError } from '../errors.js';
import type { ParsedUrl } from '../url.js';

export type { RedisClient };

const FIRST_CONNECT_MS = 5_000;

/**
 * Connects to the Redis a URL names. The first connection must succeed within a few seconds or
 * this rejects with one line naming the server and the reason; after that the client
 * reconnects on its own, forever.
 */
export async function connectRedis(url: ParsedUrl, raw: string): Promise<RedisClient> {
  const { Redis } = await import('ioredis');
  const client = new Redis(raw, {
    lazyConnect: true,
    connectTimeout: FIRST_CONNECT_MS,
    maxRetriesPerRequest: null,
    enableAutoPipelining: true,
    retryStrategy: (attempt) => Math.min(attempt * 100, 2_000),
  });
  const where = `${url.url.hostname || '127.0.0.1'}:${url.url.port || 6379}`;
  let lastError: Error | undefined;
  client.on('error', (error: Error) => (lastError = error));
  try {
    await Promise.race([
      client.connect(),
      new Promise((_, reject) => setTimeout(() => reject(lastError ?? new Error('timed out')), FIRST_CONNECT_MS).unref()),
    ]);
  } catch (error) {
    client.disconnect();
    // The socket's own error (ECONNREFUSED, ENOTFOUND...) says more than the client's wrapper.
    const cause = (lastError ?? error) as NodeJS.ErrnoException;
    const reason = cause.code ?? cause.message;
    throw new ConnectionError(`cannot reach Redis at ${where} (${url.display}): ${reason}`, { cause: error });
  }
  return client;
}
