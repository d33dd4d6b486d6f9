/** Opening connected brokers and backends from URLs, for the conformance files. */
import { createBackend, type BackendContext } from '../../src/backends/index.js';
import { createBroker, type BrokerContext } from '../../src/brokers/index.js';
import type { Broker } from '../../src/brokers/broker.js';
import type { ResultBackend } from '../../src/backends/backend.js';

export async function openBroker(url: string, context?: BrokerContext): Promise<Broker> {
  const broker = await createBroker(url, context);
  await broker.connect();
  return broker;
}

export async function openBackend(url: string, context?: BackendContext): Promise<ResultBackend> {
  const backend = await createBackend(url, context);
  await backend.connect();
  return backend;
}
