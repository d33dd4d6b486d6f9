/**
 * Celery's native chord join on Redis (`RedisBackend.on_chord_part_return`, with
 * `result_chord_ordered` on, its default), so Python and TypeScript workers finish the members
 * of one chord together. Per chord group `<gid>`:
 *
 * - `celery-taskset-meta-<gid>.j`: a ZSET of the ended members, each `[1, taskId, state, result]`
 *   in kombu JSON, scored by the member's `group_index` (`+inf` when it has none);
 * - `celery-taskset-meta-<gid>.s`: the header's size, set before the first member runs;
 * - `celery-taskset-meta-<gid>.t`: an adjustment Celery's `add_to_chord` INCRs (read only here).
 *
 * **Exactly once, with Python workers on the same chord.** Celery records a part with one
 * MULTI/EXEC (ZADD, ZCOUNT, GET .t, GET .s, EXPIREs) and, when the count it read equals
 * `.s + .t`, later reads the ZSET, sends the body and DELs the keys, outside any transaction.
 * Ours is one Lua script doing the same reads and, on completion, the ZRANGE and DEL too. Both
 * are atomic, so Redis runs every recording one after another, and the ZSET grows by exactly one
 * each time a recording adds a member it did not hold. So exactly one recording, Python's or
 * ours, adds the member that makes the count reach the total, and only that one sends the body:
 * - our script completes only when its own ZADD added a member. A repeat of a member already
 *   held (a redelivered part that ended the same way) leaves the count where it was, so it
 *   cannot complete a join again while a Python worker that completed it has not yet DELeted
 *   the keys (Celery's own check, `count == total` alone, would; a repeat recorded by Python in
 *   that window can still send the body twice, as between two Python workers);
 * - once either side has completed a join, `.s` is gone, so every later part (a late repeat)
 *   reads no size and completes nothing; its ZADD re-creates `.j`, which expires.
 *
 * Repeats count once only when they are the same bytes: the same task ending the same way on a
 * worker of the same language. A repeat with another result, or written by the other language
 * (Python's JSON spaces its separators and escapes non-ASCII), is a second member: if it lands
 * before the last member ends, the join completes one member early, with both copies and
 * without the last; Celery's join behaves the same.
 */
import { decodeJson, encodeJson } from '../../protocol/kombu-json.js';
import type { ExceptionDict } from '../../protocol/exceptions.js';
import type { RedisClient } from './client.js';
import { FAILURE } from '../../states.js';
import type { ChordJoin, ChordPart } from '../../backends/backend.js';

/** Celery's key for a saved group, and the stem of its chord join's keys. */
export function groupKey(groupId: string): string {
  return `celery-taskset-meta-${groupId}`;
}

// Records one part and, when it is the last, hands back every part and deletes the join.
// KEYS: .j, .t, .s. ARGV: member, score, expiry (s).
// Replies nil, or the members with their scores (ZRANGE WITHSCORES), in score order.
const ADD_PART_SCRIPT = `
local added = redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local count = redis.call('ZCOUNT', KEYS[1], '-inf', '+inf')
local adjustment = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local size = tonumber(redis.call('GET', KEYS[3]) or '')
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
if added == 0 or size == nil or count ~= size + adjustment then return false end
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return members
`;

type JoiningClient = RedisClient & {
  celeriacAddChordPart(joinKey: string, adjustmentKey: string, sizeKey: string, member: string, score: string, expires: number): Promise<string[] | null>;
};

/** Defines the join's script on a client (ioredis loads it with EVALSHA, falling back to EVAL). */
export function defineChordScript(client: RedisClient): void {
  client.defineCommand('celeriacAddChordPart', { numberOfKeys: 3, lua: ADD_PART_SCRIPT });
}

/** The join on Celery's keys; every key it touches expires after `expires` seconds. */
export class RedisChordJoin implements ChordJoin {
  /**
   * @param client the connected client, with {@link defineChordScript} run on it
   * @param expires the result expiry (s), which Celery also gives the join's keys
   */
  constructor(
    private readonly client: () => RedisClient,
    private readonly expires: number,
  ) {}

  /** Celery's `set_chord_size`: SETEX of `.s` (Celery also PUBLISHes it; nobody listens). */
  async setSize(groupId: string, size: number): Promise<void> {
    await this.client().setex(`${groupKey(groupId)}.s`, this.expires, size);
  }

  async addPart(part: ChordPart): Promise<ChordPart[] | null> {
    const key = groupKey(part.groupId);
    const member = encodeJson([1, part.taskId, part.state, part.result]);
    const score = part.groupIndex === null ? '+inf' : String(part.groupIndex);
    const client = this.client() as JoiningClient;
    const reply = await client.celeriacAddChordPart(`${key}.j`, `${key}.t`, `${key}.s`, member, score, this.expires);
    if (!reply) return null;
    const parts: ChordPart[] = [];
    for (let i = 0; i < reply.length; i += 2) parts.push(decodeMember(part.groupId, reply[i]!, reply[i + 1]!));
    return parts;
  }
}

/**
 * One ZSET member as a part. The keys are gone by now, so a member that is not Celery's
 * `[1, taskId, state, result]` (corrupt, or written by something else) must not throw: it
 * becomes a FAILURE carrying Celery's ChordError, and the body fails, as Celery fails it when a
 * member does not decode.
 */
function decodeMember(groupId: string, member: string, score: string): ChordPart {
  const groupIndex = score === 'inf' ? null : Number(score);
  let decoded: unknown;
  try {
    decoded = decodeJson(member);
  } catch {
    decoded = undefined;
  }
  if (Array.isArray(decoded) && decoded.length === 4 && typeof decoded[1] === 'string' && typeof decoded[2] === 'string') {
    return { groupId, taskId: decoded[1], groupIndex, state: decoded[2], result: decoded[3] };
  }
  const error: ExceptionDict = {
    exc_type: 'ChordError',
    exc_message: [`chord ${groupId} holds a member that is not a Celery chord result: ${member.slice(0, 200)}`],
    exc_module: 'celery.exceptions',
  };
  return { groupId, taskId: '', groupIndex, state: FAILURE, result: error };
}
