/**
 * `redis://` results on Celery's keys: `celery-task-meta-<id>`, stored with an expiry and
 * published on a channel of the same name, so Python clients read and wait on them as on their
 * own. A stored SUCCESS is never replaced (checked inside a Lua script, which takes the stores
 * of one event-loop turn together). Waiting is push-based:
 * one subscriber connection per backend, one channel per watched id, unsubscribed when the last
 * watcher leaves.
 */
import { decodeJson, encodeJson } from '../../protocol/kombu-json.js';
import { connectRedis, type RedisClient } from '../../redis/client.js';
import { numberOption, type ParsedUrl } from '../../url.js';
import { DEFAULT_RESULT_EXPIRES_SECONDS, type ResultBackend, type ResultMeta, type Unwatch } from '../backend.js';
import { Batcher } from '../../batcher.js';
import { WatcherRegistry } from '../watchers.js';

/** Celery's key (and channel) for a task's result. */
export function resultKey(taskId: string): string {
  return `celery-task-meta-${taskId}`;
}

// Stores results, never replacing a stored SUCCESS, and publishes each one stored.
// KEYS: result keys. ARGV: expiry (s), then one JSON meta per key.
const STORE_SCRIPT = `
for i = 1, #KEYS do
  local current = redis.call('GET', KEYS[i])
  local keep = false
  if current then
    local ok, meta = pcall(cjson.decode, current)
    keep = ok and type(meta) == 'table' and meta['status'] == 'SUCCESS'
  end
  if not keep then
    redis.call('SETEX', KEYS[i], ARGV[1], ARGV[i + 1])
    redis.call('PUBLISH', KEYS[i], ARGV[i + 1])
  end
end
`;

type StoringClient = RedisClient & { celeriacStoreResults(...args: Array<string | number>): Promise<null> };

/** Results in Redis, laid out as Celery's Redis backend lays them out. */
export class RedisBackend implements ResultBackend {
  readonly displayUrl: string;
  readonly #expires: number;
  #client: RedisClient | undefined;
  #subscriber: RedisClient | undefined;
  readonly #watchers = new WatcherRegistry();
  /** Stores of one event-loop turn go to Redis in one script call. */
  readonly #stores = new Batcher<{ key: string; json: string }>((_, items) =>
    (this.#connected() as StoringClient).celeriacStoreResults(items.length, ...items.map((item) => item.key), this.#expires, ...items.map((item) => item.json)),
  );

  constructor(private readonly url: ParsedUrl) {
    this.displayUrl = url.display;
    this.#expires = Math.max(1, Math.round(numberOption(url.options, 'expires', DEFAULT_RESULT_EXPIRES_SECONDS)));
  }

  async connect(): Promise<void> {
    if (this.#client) return;
    const client = await connectRedis(this.url);
    client.defineCommand('celeriacStoreResults', { lua: STORE_SCRIPT });
    const subscriber = client.duplicate();
    subscriber.on('error', () => undefined); // reconnects on its own; watchers re-subscribe below
    subscriber.on('message', (_channel: string, text: string) => {
      try {
        this.#watchers.notify(decodeJson(text) as ResultMeta);
      } catch {
        // Not a result we can read; Celery would not store one either.
      }
    });
    subscriber.on('ready', () => {
      // After a reconnect ioredis restores subscriptions itself; read once in case we missed a publish.
      for (const id of this.#watchers.ids()) void this.#readAndNotify(id);
    });
    this.#client = client;
    this.#subscriber = subscriber;
  }

  async store(meta: ResultMeta): Promise<void> {
    await this.#stores.add('', { key: resultKey(meta.task_id), json: encodeJson(meta) });
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    const text = await this.#connected().get(resultKey(taskId));
    return text === null ? null : (decodeJson(text) as ResultMeta);
  }

  async forget(taskId: string): Promise<void> {
    await this.#connected().del(resultKey(taskId));
  }

  watch(taskId: string, onChange: (meta: ResultMeta) => void): Unwatch {
    const first = !this.#watchers.has(taskId);
    const unwatch = this.#watchers.add(taskId, onChange);
    if (first) void this.#subscriber?.subscribe(resultKey(taskId)).catch(() => undefined);
    return () => {
      unwatch();
      if (!this.#watchers.has(taskId)) void this.#subscriber?.unsubscribe(resultKey(taskId)).catch(() => undefined);
    };
  }

  async #readAndNotify(taskId: string): Promise<void> {
    const meta = await this.get(taskId).catch(() => null);
    if (meta) this.#watchers.notify(meta);
  }

  async cleanup(): Promise<number> {
    return 0; // Redis expires the keys itself
  }

  async close(): Promise<void> {
    const client = this.#client;
    const subscriber = this.#subscriber;
    this.#client = undefined;
    this.#subscriber = undefined;
    subscriber?.disconnect();
    await client?.quit().catch(() => client.disconnect());
  }

  #connected(): RedisClient {
    if (!this.#client) throw new Error(`the Redis result backend ${this.displayUrl} is not connected (call connect() first)`);
    return this.#client;
  }
}
