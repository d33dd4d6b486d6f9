/**
 * Rate limits shared by every worker on a Redis broker: one key per task (and rate key) holding
 * the earliest time the next run may start (GCRA with no burst: the same spacing as the
 * worker's own token bucket). One script call grants every slot due within the horizon, on
 * Redis's clock, so workers on machines whose clocks differ still share one rate.
 */
import { SLOT_HORIZON_MS, type SharedRateStore } from '../../worker/rate-gates.js';
import type { RedisClient } from './client.js';

/** Key prefix of the shared rates. */
const PREFIX = 'celeriac.rate.';

// KEYS: the rate's key. ARGV: microseconds between runs, runs wanted, the horizon (µs). Grants
// the slots, spaced at the rate from the next free one, that start within the horizon; returns
// {granted, ms to wait for the next slot when none was}. Times are whole microseconds, written
// with %.0f so large values keep every digit.
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local wanted = tonumber(ARGV[2])
local horizon = tonumber(ARGV[3])
local next_at = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
if next_at > now + horizon then return {0, math.ceil((next_at - now - horizon) / 1000)} end
local granted = math.min(wanted, math.floor((now + horizon - next_at) / interval) + 1)
redis.call('SET', KEYS[1], string.format('%.0f', next_at + granted * interval), 'PX', math.ceil(granted * interval / 1000) + 1000)
return {granted, 0}
`;

/** A Redis client able to run the acquire script. */
interface RateClient extends RedisClient {
  celeriacRateAcquire(key: string, intervalMicros: number, wanted: number, horizonMicros: number): Promise<[number, number]>;
}

/**
 * Defines the acquire script on the broker's client when it connects. Not on first use: a command
 * defined while an auto-pipelined batch of the same turn is open is missing from that batch, and
 * ioredis fails the whole batch (seen when a rate-limited task arrived with its unacked record).
 */
export function defineRateScript(client: RedisClient): void {
  client.defineCommand('celeriacRateAcquire', { numberOfKeys: 1, lua: ACQUIRE });
}

/** The shared rate store of one Redis broker. */
export class RedisRateLimits implements SharedRateStore {
  constructor(private readonly client: () => RedisClient) {}

  async acquire(key: string, perSecond: number, count: number): Promise<{ granted: number; waitMs: number }> {
    const client = this.client() as RateClient;
    const [granted, waitMs] = await client.celeriacRateAcquire(PREFIX + key, Math.max(1, Math.round(1_000_000 / perSecond)), count, SLOT_HORIZON_MS * 1000);
    return { granted: Number(granted), waitMs: Number(waitMs) };
  }
}
