/**
 * `redis://` results on Celery's keys: `celery-task-meta-<id>`, stored with an expiry and
 * published on a channel of the same name, so Python clients read and wait on them as on their
 * own. A stored SUCCESS is never replaced (checked inside a Lua script, which takes the stores
 * of one event-loop turn together). Waiting is push-based: one subscriber connection per
 * backend, one channel per watched id, unsubscribed when the last watcher leaves. The key is read
 * again once a subscription is confirmed (a store that lands before it is not missed) and, as a
 * fallback for writers that do not publish, every `poll_interval` seconds (5 by default).
 * Saved groups and the chord join use Celery's `celery-taskset-meta-<gid>` keys (chord-join.ts).
 */
import { NotConnectedError } from '../../errors.js';
import { decodeJson, encodeJson } from '../../protocol/kombu-json.js';
import { connectRedis, type RedisClient } from './client.js';
import { numberOption, type ParsedUrl } from '../../url.js';
import { DEFAULT_RESULT_EXPIRES_SECONDS, type GroupTuple, type ResultBackend, type ResultMeta, type Unwatch } from '../../backends/backend.js';
import { Batcher } from '../batcher.js';
import { WatcherRegistry } from '../../backends/watchers.js';
import { defineChordScript, groupKey, RedisChordJoin } from './chord-join.js';

/** Keys read per MGET when re-reading watched results. */
const READ_CHUNK = 500;

/** Celery's key (and channel) for a task's result. */
export function resultKey(taskId: string): string {
  return `celery-task-meta-${taskId}`;
}

// Stores results, never replacing a stored SUCCESS, and publishes each one stored. The current
// values are read with one MGET per slice of keys (a call per key costs more than the read).
// KEYS: result keys. ARGV: expiry (s), then one JSON meta per key.
const STORE_SCRIPT = `
for first = 1, #KEYS, 1000 do
  local last = math.min(first + 999, #KEYS)
  local current = redis.call('MGET', unpack(KEYS, first, last))
  for i = first, last do
    local stored = current[i - first + 1]
    local keep = false
    if stored then
      local ok, meta = pcall(cjson.decode, stored)
      keep = ok and type(meta) == 'table' and meta['status'] == 'SUCCESS'
    end
    if not keep then
      redis.call('SETEX', KEYS[i], ARGV[1], ARGV[i + 1])
      redis.call('PUBLISH', KEYS[i], ARGV[i + 1])
    end
  end
end
`;

type StoringClient = RedisClient & { celeriacStoreResults(...args: Array<string | number>): Promise<null> };

/** Results in Redis, laid out as Celery's Redis backend lays them out. */
export class RedisBackend implements ResultBackend {
  readonly displayUrl: string;
  /** Celery's native join, on the `.j`/`.s`/`.t` keys beside the saved group's. */
  readonly chords: RedisChordJoin;
  readonly #expires: number;
  readonly #pollIntervalMs: number;
  #client: RedisClient | undefined;
  #subscriber: RedisClient | undefined;
  #poller: NodeJS.Timeout | undefined;
  readonly #watchers = new WatcherRegistry();
  /** The stored text last told to each watched id's watchers: reads repeat what a publish told. */
  readonly #told = new Map<string, string>();
  /** Subscriptions asked for in one event-loop turn go out as one SUBSCRIBE, then one read. */
  readonly #subscriptions = new Batcher<string>((_, taskIds) => this.#subscribeAndRead(taskIds));
  /** Unsubscriptions of one turn go out as one UNSUBSCRIBE, leaving out ids watched again since. */
  readonly #unsubscriptions = new Batcher<string>(async (_, taskIds) => {
    const unwatched = taskIds.filter((id) => !this.#watchers.has(id));
    if (unwatched.length > 0 && this.#subscriber) await this.#subscriber.unsubscribe(...unwatched.map(resultKey));
  });
  /** Stores of one event-loop turn go to Redis in one script call. */
  readonly #stores = new Batcher<{ key: string; json: string }>((_, items) =>
    (this.#connected() as StoringClient)
      .celeriacStoreResults(items.length, ...items.map((item) => item.key), this.#expires, ...items.map((item) => item.json))
      .then(() => undefined),
  );
  /** Reads of one turn go out as one MGET (waiting on a group reads every member at once). */
  readonly #reads = new Batcher<string, string | null>((_, keys) => this.#connected().mget(...keys), true);

  constructor(private readonly url: ParsedUrl) {
    this.displayUrl = url.display;
    this.#expires = Math.max(1, Math.round(numberOption(url.options, 'expires', DEFAULT_RESULT_EXPIRES_SECONDS)));
    this.#pollIntervalMs = Math.max(100, numberOption(url.options, 'poll_interval', 5) * 1000);
    this.chords = new RedisChordJoin(() => this.#connected(), this.#expires);
  }

  async connect(): Promise<void> {
    if (this.#client) return;
    const client = await connectRedis(this.url, ['celeriacStoreResults']); // stores are batched per turn (#stores)
    client.defineCommand('celeriacStoreResults', { lua: STORE_SCRIPT });
    defineChordScript(client);
    const subscriber = client.duplicate();
    subscriber.on('error', () => undefined); // reconnects on its own; watchers re-subscribe below
    subscriber.on('message', (_channel: string, text: string) => this.#notify(text));
    subscriber.on('ready', () => {
      // Publishes sent while the connection was down are gone: subscribe again, then read.
      for (const id of this.#watchers.ids()) this.#subscribe(id);
    });
    this.#client = client;
    this.#subscriber = subscriber;
    this.#poller = setInterval(() => void this.#readAndNotify(this.#watchers.ids()), this.#pollIntervalMs).unref();
  }

  /** The turn's batch's promise, no async function around it: a worker stores once per task. */
  store(meta: ResultMeta): Promise<void> {
    let json: string;
    try {
      json = encodeJson(meta);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return this.#stores.add('', { key: resultKey(meta.task_id), json });
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    this.#connected(); // fail now, not in the batch, when not connected
    const text = await this.#reads.add('', resultKey(taskId));
    return text === null ? null : (decodeJson(text) as ResultMeta);
  }

  async forget(taskId: string): Promise<void> {
    await this.#connected().del(resultKey(taskId));
  }

  /** Celery's `_save_group`: SETEX of `{"result": tuple}` (Celery also PUBLISHes it; nobody listens). */
  async saveGroup(groupId: string, tuple: GroupTuple): Promise<void> {
    await this.#connected().setex(groupKey(groupId), this.#expires, encodeJson({ result: tuple }));
  }

  async restoreGroup(groupId: string): Promise<GroupTuple | null> {
    const text = await this.#connected().get(groupKey(groupId));
    if (text === null) return null;
    const saved = decodeJson(text) as { result?: GroupTuple } | null;
    return saved?.result ?? null;
  }

  async forgetGroup(groupId: string): Promise<void> {
    await this.#connected().del(groupKey(groupId));
  }

  watch(taskId: string, onChange: (meta: ResultMeta) => void): Unwatch {
    const first = !this.#watchers.has(taskId);
    const unwatch = this.#watchers.add(taskId, onChange);
    if (first) this.#subscribe(taskId);
    return () => {
      unwatch();
      if (this.#watchers.has(taskId)) return;
      this.#told.delete(taskId);
      this.#unsubscriptions.add('', taskId).catch(() => undefined); // a lost unsubscribe only costs messages we ignore
    };
  }

  #subscribe(taskId: string): void {
    this.#subscriptions.add('', taskId).catch(() => undefined); // the poll covers a failed subscribe
  }

  /**
   * Subscribes, then reads: the subscription is on another connection than reads and stores, so
   * only a read after Redis confirms it is sure to see a store that no publish will announce.
   */
  async #subscribeAndRead(taskIds: string[]): Promise<void> {
    const watched = taskIds.filter((id) => this.#watchers.has(id));
    if (watched.length === 0 || !this.#subscriber) return;
    await this.#subscriber.subscribe(...watched.map(resultKey));
    await this.#readAndNotify(watched);
  }

  /** Reads the given results and tells their watchers of those that are stored. */
  async #readAndNotify(taskIds: string[]): Promise<void> {
    const client = this.#client;
    if (!client) return;
    for (let start = 0; start < taskIds.length; start += READ_CHUNK) {
      const chunk = taskIds.slice(start, start + READ_CHUNK);
      const texts = await client.mget(...chunk.map(resultKey)).catch(() => []);
      for (const text of texts) if (text !== null) this.#notify(text);
    }
  }

  /** Tells the watchers of a stored result about it, unless they were told this very text. */
  #notify(storedText: string): void {
    let meta: ResultMeta;
    try {
      meta = decodeJson(storedText) as ResultMeta;
    } catch {
      return; // not a result we can read; Celery would not store one either
    }
    if (!this.#watchers.has(meta.task_id) || this.#told.get(meta.task_id) === storedText) return;
    this.#told.set(meta.task_id, storedText);
    this.#watchers.notify(meta);
  }

  async cleanup(): Promise<number> {
    return 0; // Redis expires the keys itself
  }

  async close(): Promise<void> {
    const client = this.#client;
    const subscriber = this.#subscriber;
    this.#client = undefined;
    this.#subscriber = undefined;
    clearInterval(this.#poller);
    subscriber?.disconnect();
    await client?.quit().catch(() => client.disconnect());
  }

  #connected(): RedisClient {
    if (!this.#client) throw new NotConnectedError(`the Redis result backend ${this.displayUrl}`);
    return this.#client;
  }
}
