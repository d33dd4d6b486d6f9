/** Opens a broker from its URL. Drivers load only for the scheme in use. */
import type { Clock } from '../clock.js';
import { ConfigurationError } from '../errors.js';
import { parseTransportUrl, type ParsedUrl } from '../url.js';
import type { Broker } from './broker.js';

/** What a broker may take besides its URL. */
export interface BrokerContext {
  /** The clock for ETA holds (the in-process memory:// broker; the others keep time on their server). */
  clock?: Clock;
}

type BrokerFactory = (url: ParsedUrl, raw: string, context: BrokerContext) => Promise<Broker>;

const FACTORIES: Record<string, BrokerFactory> = {
  memory: async (url, _raw, context) => new (await import('../transports/memory/memory-broker.js')).MemoryBroker(url, context.clock),
  sqlite: async (url, raw) => new (await import('../transports/sqlite/sqlite-broker.js')).SqliteBroker(url, raw),
  redis: async (url) => new (await import('../transports/redis/redis-broker.js')).RedisBroker(url),
  rediss: async (url) => new (await import('../transports/redis/redis-broker.js')).RedisBroker(url),
  amqp: async (url) => new (await import('../transports/amqp/amqp-broker.js')).AmqpBroker(url),
  amqps: async (url) => new (await import('../transports/amqp/amqp-broker.js')).AmqpBroker(url),
};

/** The URL schemes {@link createBroker} understands. */
export const BROKER_SCHEMES = Object.keys(FACTORIES);

/**
 * Creates (but does not connect) the broker a URL names.
 *
 * @throws {@link ConfigurationError} for a malformed URL or an unknown scheme.
 */
export async function createBroker(raw: string, context: BrokerContext = {}): Promise<Broker> {
  const url = parseTransportUrl(raw, 'broker');
  const factory = FACTORIES[url.scheme];
  if (!factory) {
    throw new ConfigurationError(
      `unknown broker scheme ${JSON.stringify(url.scheme + '://')} in ${url.display}; use one of ${BROKER_SCHEMES.map((s) => s + '://').join(', ')}`,
    );
  }
  return factory(url, raw, context);
}
