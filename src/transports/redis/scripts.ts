/**
 * The Lua scripts of the Redis broker. Each runs atomically on the server, which is what makes
 * "taken" and "recorded as unacked" one step, and a restore happen at most once per message.
 */
import type { RedisClient } from './client.js';

// Pops up to ARGV[1] messages across the list keys (in order) and records each as unacked in
// kombu's shape, and as held by the consumer, in the same step. Pops and records go in a few
// variadic calls, not one call per message: most of a script's time is per call.
// KEYS: list keys..., unacked, unacked_index, held. ARGV: limit, now (s), queue name per list key.
const TAKE = `
local n = #KEYS - 3
local limit = tonumber(ARGV[1])
local out = {}
local count = 0
local entries, scores, tags = {}, {}, {}
for i = 1, n do
  if count >= limit then break end
  local popped = redis.call('RPOP', KEYS[i], limit - count)
  if popped then
    local queue = cjson.encode(ARGV[2 + i])
    for _, raw in ipairs(popped) do
      -- The tag is in "properties", which kombu and celeriac both write last: the last match is
      -- it. A plain find per occurrence is much cheaper than a pattern scan or a decode.
      local tag = ''
      local at = string.find(raw, '"delivery_tag"', 1, true)
      while at do
        tag = string.match(raw, '^"delivery_tag"%s*:%s*"([^"]+)"', at) or tag
        at = string.find(raw, '"delivery_tag"', at + 14, true)
      end
      if tag ~= '' then
        entries[#entries + 1] = tag
        entries[#entries + 1] = '[' .. raw .. ', "", ' .. queue .. ']'
        scores[#scores + 1] = ARGV[2]
        scores[#scores + 1] = tag
        tags[#tags + 1] = tag
      end
      out[#out + 1] = ARGV[2 + i]
      out[#out + 1] = raw
      out[#out + 1] = tag
      count = count + 1
    end
  end
end
-- unpack has a stack limit: send the arguments a slice at a time.
local function each_slice(command, key, args)
  for first = 1, #args, 2000 do
    redis.call(command, key, unpack(args, first, math.min(first + 1999, #args)))
  end
end
each_slice('HSET', KEYS[n + 1], entries)
each_slice('ZADD', KEYS[n + 2], scores)
each_slice('SADD', KEYS[n + 3], tags)
return out
`;

// Puts one unacked message back at the head of its queue, if it is still unacked (so two
// restorers never both push it). The envelope (marked redelivered) is built by the caller.
// KEYS: unacked, unacked_index, queue list key, held set (or the unacked key again if none).
// ARGV: tag, envelope. Returns 1 when it restored the message.
const RESTORE_ONE = `
if KEYS[4] ~= KEYS[1] then redis.call('SREM', KEYS[4], ARGV[1]) end
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[2])
return 1
`;

// Records a message a consumer's blocking BLMOVE moved into its taking list as unacked and held,
// as TAKE records what it pops; a message no longer in the list (recorded already) is left
// alone. A message without a tag is only removed: the worker refuses it.
// KEYS: taking list, unacked, unacked_index, held. ARGV: now (s), queue, raw message, tag.
const ADOPT = `
if redis.call('LREM', KEYS[1], 1, ARGV[3]) == 0 then return 0 end
if ARGV[4] == '' then return 1 end
redis.call('HSET', KEYS[2], ARGV[4], '[' .. ARGV[3] .. ', "", ' .. cjson.encode(ARGV[2]) .. ']')
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[4])
redis.call('SADD', KEYS[4], ARGV[4])
return 1
`;

// Puts a message from a taking list back at the head of its queue, if it is still there.
// KEYS: taking list, queue list key. ARGV: raw message, what to push. Returns 1 when it did.
const RETURN_TAKEN = `
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1
`;

// Parks an unacked message until its ETA: out of the unacked records and the consumer's held
// set, into the list's delayed set, in one step. KEYS: unacked, unacked_index, held, delayed set.
// ARGV: tag, ETA (ms), raw message.
const POSTPONE = `
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[3])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
`;

// Moves up to ARGV[2] parked messages due by ARGV[1] (ms) from each delayed set to the head of
// its list, the earliest ETA taken first; returns the earliest ETA still parked in any, or nil.
// KEYS: delayed set, list, delayed set, list...
const MOVE_DUE = `
local earliest = nil
for k = 1, #KEYS, 2 do
  local due = redis.call('ZRANGEBYSCORE', KEYS[k], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
  for i = #due, 1, -1 do redis.call('RPUSH', KEYS[k + 1], due[i]) end
  for first = 1, #due, 1000 do
    redis.call('ZREM', KEYS[k], unpack(due, first, math.min(first + 999, #due)))
  end
  local next = redis.call('ZRANGE', KEYS[k], 0, 0, 'WITHSCORES')[2]
  if next and (earliest == nil or tonumber(next) < earliest) then earliest = tonumber(next) end
end
if earliest == nil then return nil end
return tostring(earliest)
`;

// Forgets acked messages, then takes as TAKE does, in one call: a consumer's acks carry the take
// that refills the slots they free. KEYS and ARGV as TAKE's, then the acked tags after the names.
const ACK_THEN_TAKE =
  `
local first_tag = #KEYS - 3 + 3
if #ARGV >= first_tag then
  redis.call('HDEL', KEYS[#KEYS - 2], unpack(ARGV, first_tag))
  redis.call('ZREM', KEYS[#KEYS - 1], unpack(ARGV, first_tag))
  redis.call('SREM', KEYS[#KEYS], unpack(ARGV, first_tag))
end
` + TAKE;

// Forgets acked messages, many per call. KEYS: unacked, unacked_index, held. ARGV: tags.
const ACK = `
redis.call('HDEL', KEYS[1], unpack(ARGV))
redis.call('ZREM', KEYS[2], unpack(ARGV))
redis.call('SREM', KEYS[3], unpack(ARGV))
`;

// Renews what consumers hold: each one's lease key, and the date in unacked_index of every tag
// in its held set, moved up to now (never down: an ETA message stays dated at its ETA), so
// neither the lease check nor the visibility restore (celeriac's or kombu's) gives them back.
// KEYS: unacked_index, then each consumer's lease key and held set. ARGV: now (s), lease (ms).
export const RENEW = `
for i = 2, #KEYS, 2 do
  redis.call('SET', KEYS[i], '1', 'PX', ARGV[2])
  local tags = redis.call('SMEMBERS', KEYS[i + 1])
  for first = 1, #tags, 1000 do
    local args = {}
    for j = first, math.min(first + 999, #tags) do
      args[#args + 1] = ARGV[1]
      args[#args + 1] = tags[j]
    end
    redis.call('ZADD', KEYS[1], 'XX', 'GT', unpack(args))
  end
end
`;

const RELEASE_MUTEX = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** A client with the broker's scripts defined on it. */
export type ScriptedClient = RedisClient & {
  celeriacTake(...args: Array<string | number>): Promise<string[]>;
  celeriacAck(unacked: string, index: string, held: string, ...tags: string[]): Promise<null>;
  celeriacAckThenTake(...args: Array<string | number>): Promise<string[]>;
  celeriacRestoreOne(unacked: string, index: string, list: string, held: string, tag: string, envelope: string): Promise<number>;
  celeriacAdopt(taking: string, unacked: string, index: string, held: string, now: number, queue: string, raw: string, tag: string): Promise<number>;
  celeriacReturnTaken(taking: string, list: string, raw: string, pushed: string): Promise<number>;
  celeriacPostpone(unacked: string, index: string, held: string, delayed: string, tag: string, eta: number, raw: string): Promise<null>;
  celeriacMoveDue(numberOfKeys: number, ...keysThenArgs: Array<string | number>): Promise<string | null>;
  celeriacReleaseMutex(key: string, token: string): Promise<number>;
  celeriacRenew(...args: Array<string | number>): Promise<null>;
};

/** Defines the scripts on a client (ioredis loads them with EVALSHA, falling back to EVAL). */
export function defineScripts(client: RedisClient): ScriptedClient {
  client.defineCommand('celeriacTake', { lua: TAKE });
  client.defineCommand('celeriacAck', { numberOfKeys: 3, lua: ACK });
  client.defineCommand('celeriacAckThenTake', { lua: ACK_THEN_TAKE });
  client.defineCommand('celeriacRestoreOne', { numberOfKeys: 4, lua: RESTORE_ONE });
  client.defineCommand('celeriacAdopt', { numberOfKeys: 4, lua: ADOPT });
  client.defineCommand('celeriacReturnTaken', { numberOfKeys: 2, lua: RETURN_TAKEN });
  client.defineCommand('celeriacPostpone', { numberOfKeys: 4, lua: POSTPONE });
  client.defineCommand('celeriacMoveDue', { lua: MOVE_DUE });
  client.defineCommand('celeriacReleaseMutex', { numberOfKeys: 1, lua: RELEASE_MUTEX });
  client.defineCommand('celeriacRenew', { lua: RENEW });
  return client as ScriptedClient;
}
