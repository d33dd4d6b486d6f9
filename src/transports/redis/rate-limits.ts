/**
 * Rate limits shared by every worker on a Redis broker: one key per task (and rate key) holding
 * the earliest time the next run may start (GCRA with no burst: the same spacing as the
 * worker's own token bucket). One script call per run, on Redis's clock, so workers on machines
 * whose clocks differ still share one rate.
 */
import type { SharedRateStore } from '../../worker/rate-gates.js';
import type { RedisClient } from './client.js';

/** Key prefix of the shared rates. */
const PREFIX = 'celeriac.rate.';

// KEYS: the rate's key. ARGV: microseconds between runs. Returns 0 when a run may start now
// (and records it), else the milliseconds until one may. Times are whole microseconds, written
// with %.0f so large values keep every digit.
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local next_at = tonumber(redis.call('GET', KEYS[1]) or '0')
if next_at > now then return math.ceil((next_at - now) / 1000) end
redis.call('SET', KEYS[1], string.format('%.0f', now + interval), 'PX', math.ceil(interval / 1000) + 1000)
return 0
`;

/** A Redis client able to run the acquire script. */
interface RateClient extends RedisClient {
  celeriacRateAcquire(key: string, intervalMicros: number): Promise<number>;
}

/** The shared rate store of one Redis broker. */
export class RedisRateLimits implements SharedRateStore {
  constructor(private readonly client: () => RedisClient) {}

  async acquire(key: string, perSecond: number): Promise<number> {
    const client = this.client() as RateClient;
    if (typeof client.celeriacRateAcquire !== 'function') client.defineCommand('celeriacRateAcquire', { numberOfKeys: 1, lua: ACQUIRE });
    return Number(await client.celeriacRateAcquire(PREFIX + key, Math.round(1_000_000 / perSecond)));
  }
}
