/**
 * The beat store in Redis. The lease is one key taken with `SET NX PX` (inside a script that
 * also counts the epoch and names the holder), renewed and released by scripts that compare the
 * token first; last runs are written by a script that checks the token in the same step
 * (fencing). Lease times are Redis's own (PX), so beats on machines whose clocks differ agree.
 *
 * Keys, under `celeriac.beat.<namespace>.`: `lock` (the token), `epoch`, `leader` (hash: holder,
 * epoch, token), `runs` (hash: entry → JSON), `entries` (hash: entry → JSON), `paused` (set),
 * `version` (counter).
 */
import { randomUUID } from 'node:crypto';
import { readEntry, type StoredEntry } from '../../beat/entry.js';
import type { BeatStore, LeaderInfo, LeaseGrant, LeaseRefusal, RunRecord, StoreContext, StoreSnapshot } from '../../beat/store.js';
import { NotConnectedError } from '../../errors.js';
import type { ParsedUrl } from '../../url.js';
import { connectRedis, type RedisClient } from './client.js';

// KEYS: lock, epoch, leader. ARGV: holder, lease (ms), random part of the token.
// Returns {1, token, epoch} when taken, else {0, holder, pttl}.
const ACQUIRE = `
local pttl = redis.call('PTTL', KEYS[1])
if pttl ~= -2 then
  return {0, redis.call('HGET', KEYS[3], 'holder') or '', pttl}
end
local epoch = redis.call('INCR', KEYS[2])
local token = epoch .. '.' .. ARGV[3]
redis.call('SET', KEYS[1], token, 'NX', 'PX', ARGV[2])
redis.call('HSET', KEYS[3], 'holder', ARGV[1], 'epoch', epoch, 'token', token)
return {1, token, epoch}
`;

// Compare-and-renew. KEYS: lock. ARGV: token, lease (ms). Returns 1 when renewed.
const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

// Compare-and-delete. KEYS: lock. ARGV: token.
const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`;

// Fenced write of last runs. KEYS: lock, runs. ARGV: token, then name, JSON pairs.
const RECORD = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2000 do
  redis.call('HSET', KEYS[2], unpack(ARGV, i, math.min(i + 1999, #ARGV)))
end
return 1
`;

// KEYS: entries, version. ARGV: name, JSON. Returns 1 when it replaced an entry.
const PUT = `
local existed = redis.call('HEXISTS', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
return existed
`;

// KEYS: entries, paused, runs, version. ARGV: name. Returns 1 when there was an entry.
const REMOVE = `
local existed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if existed == 1 then redis.call('INCR', KEYS[4]) end
return existed
`;

// KEYS: paused, version. ARGV: name, '1' to pause or '0' to resume. Returns 1 when it changed.
const SET_PAUSED = `
local changed
if ARGV[2] == '1' then changed = redis.call('SADD', KEYS[1], ARGV[1]) else changed = redis.call('SREM', KEYS[1], ARGV[1]) end
if changed == 1 then redis.call('INCR', KEYS[2]) end
return changed
`;

interface BeatClient extends RedisClient {
  celeriacBeatAcquire(lock: string, epoch: string, leader: string, holder: string, leaseMs: number, random: string): Promise<[number, string, number]>;
  celeriacBeatRenew(lock: string, token: string, leaseMs: number): Promise<number>;
  celeriacBeatRelease(lock: string, token: string): Promise<number>;
  celeriacBeatRecord(lock: string, runs: string, token: string, ...pairs: string[]): Promise<number>;
  celeriacBeatPut(entries: string, version: string, name: string, json: string): Promise<number>;
  celeriacBeatRemove(entries: string, paused: string, runs: string, version: string, name: string): Promise<number>;
  celeriacBeatSetPaused(paused: string, version: string, name: string, flag: string): Promise<number>;
}

/** Beat's lease, last runs and stored entries in Redis. */
export class RedisBeatStore implements BeatStore {
  readonly displayUrl: string;
  readonly #url: ParsedUrl;
  readonly #keys: { lock: string; epoch: string; leader: string; runs: string; entries: string; paused: string; version: string };
  #client: BeatClient | undefined;

  constructor(url: ParsedUrl, context: StoreContext) {
    this.displayUrl = url.display;
    this.#url = url;
    const prefix = `celeriac.beat.${context.namespace}.`;
    this.#keys = {
      lock: `${prefix}lock`,
      epoch: `${prefix}epoch`,
      leader: `${prefix}leader`,
      runs: `${prefix}runs`,
      entries: `${prefix}entries`,
      paused: `${prefix}paused`,
      version: `${prefix}version`,
    };
  }

  async connect(): Promise<void> {
    if (this.#client) return;
    const client = (await connectRedis(this.#url)) as BeatClient;
    client.defineCommand('celeriacBeatAcquire', { numberOfKeys: 3, lua: ACQUIRE });
    client.defineCommand('celeriacBeatRenew', { numberOfKeys: 1, lua: RENEW });
    client.defineCommand('celeriacBeatRelease', { numberOfKeys: 1, lua: RELEASE });
    client.defineCommand('celeriacBeatRecord', { numberOfKeys: 2, lua: RECORD });
    client.defineCommand('celeriacBeatPut', { numberOfKeys: 2, lua: PUT });
    client.defineCommand('celeriacBeatRemove', { numberOfKeys: 4, lua: REMOVE });
    client.defineCommand('celeriacBeatSetPaused', { numberOfKeys: 2, lua: SET_PAUSED });
    this.#client = client;
  }

  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (!client) return;
    try {
      await client.quit();
    } catch {
      client.disconnect();
    }
  }

  #redis(): BeatClient {
    if (!this.#client) throw new NotConnectedError(`the beat store ${this.displayUrl}`);
    return this.#client;
  }

  async acquire(holder: string, leaseMs: number): Promise<LeaseGrant | LeaseRefusal> {
    const k = this.#keys;
    const [taken, second, third] = await this.#redis().celeriacBeatAcquire(k.lock, k.epoch, k.leader, holder, Math.ceil(leaseMs), randomUUID());
    if (Number(taken) === 1) return { acquired: true, token: String(second), epoch: Number(third) };
    const pttl = Number(third);
    return { acquired: false, holder: second ? String(second) : undefined, expiresInMs: pttl >= 0 ? pttl : leaseMs };
  }

  async renew(token: string, leaseMs: number): Promise<boolean> {
    return Number(await this.#redis().celeriacBeatRenew(this.#keys.lock, token, Math.ceil(leaseMs))) === 1;
  }

  async release(token: string): Promise<void> {
    await this.#redis().celeriacBeatRelease(this.#keys.lock, token);
  }

  async leader(): Promise<LeaderInfo | null> {
    const k = this.#keys;
    const results = replies(await this.#redis().multi().get(k.lock).pttl(k.lock).hmget(k.leader, 'holder', 'epoch', 'token').exec());
    const [token, pttl, fields] = results as [string | null, number, Array<string | null>];
    if (!token || fields[2] !== token) return null;
    return { holder: fields[0] ?? '', epoch: Number(fields[1]), expiresInMs: Math.max(0, Number(pttl)) };
  }

  async runs(): Promise<RunRecord[]> {
    const all = await this.#redis().hgetall(this.#keys.runs);
    return Object.entries(all).flatMap(([name, json]) => {
      try {
        const { lastRunAt, runs, sentAt } = JSON.parse(json) as { lastRunAt: number; runs: number; sentAt?: number };
        return [{ name, lastRunAt, runs, ...(sentAt === undefined ? {} : { sentAt }) }];
      } catch {
        return [];
      }
    });
  }

  async recordRuns(token: string, runs: readonly RunRecord[]): Promise<boolean> {
    const pairs = runs.flatMap((run) => [run.name, JSON.stringify({ lastRunAt: run.lastRunAt, runs: run.runs, ...(run.sentAt === undefined ? {} : { sentAt: run.sentAt }) })]);
    if (pairs.length === 0) return this.#holds(token);
    return Number(await this.#redis().celeriacBeatRecord(this.#keys.lock, this.#keys.runs, token, ...pairs)) === 1;
  }

  /** True when `token` holds the lock (nothing to write). */
  async #holds(token: string): Promise<boolean> {
    return (await this.#redis().get(this.#keys.lock)) === token;
  }

  async version(): Promise<number> {
    return Number((await this.#redis().get(this.#keys.version)) ?? 0);
  }

  async snapshot(): Promise<StoreSnapshot> {
    const k = this.#keys;
    const results = replies(await this.#redis().multi().get(k.version).hgetall(k.entries).smembers(k.paused).exec());
    const [version, hash, paused] = results as [string | null, Record<string, string>, string[]];
    const entries: StoredEntry[] = [];
    const unreadable: string[] = [];
    for (const [name, json] of Object.entries(hash).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const entry = readEntry(json);
      if (entry) entries.push(entry);
      else unreadable.push(name);
    }
    return { version: Number(version ?? 0), entries, paused, ...(unreadable.length > 0 ? { unreadable } : {}) };
  }

  async putEntry(entry: StoredEntry): Promise<boolean> {
    return Number(await this.#redis().celeriacBeatPut(this.#keys.entries, this.#keys.version, entry.name, JSON.stringify(entry))) === 1;
  }

  async removeEntry(name: string): Promise<boolean> {
    const k = this.#keys;
    return Number(await this.#redis().celeriacBeatRemove(k.entries, k.paused, k.runs, k.version, name)) === 1;
  }

  async setPaused(name: string, paused: boolean): Promise<boolean> {
    return Number(await this.#redis().celeriacBeatSetPaused(this.#keys.paused, this.#keys.version, name, paused ? '1' : '0')) === 1;
  }
}

/** The replies of a MULTI, throwing its first error. */
function replies(results: Array<[Error | null, unknown]> | null): unknown[] {
  if (!results) throw new Error('the Redis transaction was aborted');
  return results.map(([error, value]) => {
    if (error) throw error;
    return value;
  });
}
