/** Opens a result backend from its URL. Drivers load only for the scheme in use. */
import { ConfigurationError } from '../errors.js';
import { parseTransportUrl, type ParsedUrl } from '../url.js';
import type { ResultBackend } from './backend.js';

/** What a backend may need besides its own URL. */
export interface BackendContext {
  /** The broker's URL: `rpc://` sends results over the broker's RabbitMQ. */
  brokerUrl?: string;
  /** The app's reply address (the `reply_to` of what it sends), where `rpc://` hears results. */
  replyTo?: string;
}

type BackendFactory = (url: ParsedUrl, raw: string, context: BackendContext) => Promise<ResultBackend>;

const FACTORIES: Record<string, BackendFactory> = {
  memory: async (url) => new (await import('../transports/memory/memory-backend.js')).MemoryBackend(url),
  sqlite: async (url, raw) => new (await import('../transports/sqlite/sqlite-backend.js')).SqliteBackend(url, raw),
  redis: async (url) => new (await import('../transports/redis/redis-backend.js')).RedisBackend(url),
  rediss: async (url) => new (await import('../transports/redis/redis-backend.js')).RedisBackend(url),
  rpc: async (url, _raw, context) => new (await import('../transports/amqp/rpc-backend.js')).RpcBackend(url, rpcBrokerUrl(url, context), context.replyTo),
  amqp: async (url, _raw, context) => new (await import('../transports/amqp/rpc-backend.js')).RpcBackend(url, url, context.replyTo),
  amqps: async (url, _raw, context) => new (await import('../transports/amqp/rpc-backend.js')).RpcBackend(url, url, context.replyTo),
};

/** True when the backend a URL names sends states to each task's `reply_to` (`rpc://`). */
export function repliesToSender(raw: string): boolean {
  return /^(rpc|amqps?):/i.test(raw.trim());
}

/** The URL schemes {@link createBackend} understands. */
export const BACKEND_SCHEMES = Object.keys(FACTORIES);

/**
 * Creates (but does not connect) the result backend a URL names.
 *
 * @throws {@link ConfigurationError} for a malformed URL or an unknown scheme.
 */
export async function createBackend(raw: string, context: BackendContext = {}): Promise<ResultBackend> {
  const url = parseTransportUrl(raw, 'result backend');
  const factory = FACTORIES[url.scheme];
  if (!factory) {
    throw new ConfigurationError(
      `unknown result backend scheme ${JSON.stringify(url.scheme + '://')} in ${url.display}; use one of ${BACKEND_SCHEMES.map((s) => s + '://').join(', ')}`,
    );
  }
  return factory(url, raw, context);
}

/** `rpc://` rides on the broker, which must then be RabbitMQ. */
function rpcBrokerUrl(url: ParsedUrl, context: BackendContext): ParsedUrl {
  const broker = context.brokerUrl ? parseTransportUrl(context.brokerUrl, 'broker') : undefined;
  if (!broker || (broker.scheme !== 'amqp' && broker.scheme !== 'amqps')) {
    throw new ConfigurationError(
      `the result backend ${url.display} sends results over the broker's RabbitMQ, but the broker is ${broker?.display ?? 'not set'}; use an amqp:// broker, or a redis:// or sqlite:// result backend`,
    );
  }
  return broker;
}
