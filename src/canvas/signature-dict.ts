/**
 * Checking untrusted signature dicts (Celery's canvas on the wire) before anything acts on them:
 * shape, known subtask types, nesting depth, size, and steps that would run the same task again.
 * Every refusal names where in the message the problem is.
 */
import { ProtocolError } from '../errors.js';
import type { Embed, SignatureDict } from '../protocol/message.js';

/** Deepest nesting of signatures inside one message's embed. */
export const MAX_SIGNATURE_DEPTH = 32;
/** Most signatures one message's embed may hold. */
export const MAX_SIGNATURES = 10_000;

/**
 * Subtask types a dict may declare: Celery's containers, and the names its map, starmap and
 * chunks classes register under (their dicts normally carry none and run as plain tasks).
 */
const SUBTASK_TYPES = new Set(['chain', 'group', 'chord', 'xmap', 'xstarmap', 'chunks']);

/** Options that hold signatures, and whether they hold one or a list. */
const SIGNATURE_OPTIONS: Record<string, 'one' | 'one-or-list' | 'list'> = {
  link: 'one-or-list',
  link_error: 'one-or-list',
  chord: 'one',
  chain: 'list',
};

/** How much of the budget a walk has used. */
interface Walk {
  count: number;
}

/**
 * Checks one message's embed. Also refuses a callback, errback, chain step or chord body that
 * carries the message's own task id, and two chain steps with one id: either would run a task
 * of that id again after it ended.
 *
 * @throws {@link ProtocolError} (`malformed`) naming the offending place, e.g. `embed.chain[1].kwargs.tasks[0]`.
 */
export function checkEmbed(embed: Embed, ownId: string): void {
  const walk: Walk = { count: 0 };
  const seen = new Map<string, string>([[ownId, 'the task itself']]);
  const direct = (sig: SignatureDict, path: string): void => {
    checkSignature(sig, path, 1, walk);
    const id = sig.options?.['task_id'];
    if (typeof id !== 'string') return;
    const earlier = seen.get(id);
    if (earlier !== undefined) {
      throw new ProtocolError('malformed', `${path} would run task id ${id} again (already used by ${earlier}): the workflow has a cycle`);
    }
    seen.set(id, path);
  };
  embed.chain?.forEach((sig, i) => direct(sig, `embed.chain[${i}]`));
  if (embed.chord) direct(embed.chord, 'embed.chord');
  for (const [field, list] of [['callbacks', embed.callbacks], ['errbacks', embed.errbacks]] as const) {
    list?.forEach((sig, i) => {
      const path = `embed.${field}[${i}]`;
      checkSignature(sig, path, 1, walk);
      if (sig.options?.['task_id'] === ownId) {
        throw new ProtocolError('malformed', `${path} carries the task's own id ${ownId}: the workflow has a cycle`);
      }
    });
  }
}

/**
 * Checks one untrusted signature dict and everything nested in it.
 *
 * @throws {@link ProtocolError} (`malformed`) naming the offending place.
 */
export function checkSignatureDict(value: unknown, path = 'signature'): SignatureDict {
  checkSignature(value, path, 1, { count: 0 });
  return value as SignatureDict;
}

function checkSignature(value: unknown, path: string, depth: number, walk: Walk): void {
  if (depth > MAX_SIGNATURE_DEPTH) {
    throw new ProtocolError('malformed', `${path}: signatures nest deeper than ${MAX_SIGNATURE_DEPTH} levels`);
  }
  if (++walk.count > MAX_SIGNATURES) {
    throw new ProtocolError('malformed', `${path}: the message holds more than ${MAX_SIGNATURES} signatures`);
  }
  if (!isRecord(value)) throw new ProtocolError('malformed', `${path} is not a signature (expected an object, got ${typeName(value)})`);
  if (typeof value['task'] !== 'string' || value['task'].length === 0) {
    throw new ProtocolError('malformed', `${path} has no task name (a signature needs "task": "<name>")`);
  }
  if (value['args'] != null && !Array.isArray(value['args'])) throw new ProtocolError('malformed', `${path}.args must be a list`);
  if (value['kwargs'] != null && !isRecord(value['kwargs'])) throw new ProtocolError('malformed', `${path}.kwargs must be an object`);
  if (value['options'] != null && !isRecord(value['options'])) throw new ProtocolError('malformed', `${path}.options must be an object`);
  if (value['immutable'] != null && typeof value['immutable'] !== 'boolean') throw new ProtocolError('malformed', `${path}.immutable must be true or false`);
  const type = value['subtask_type'];
  if (type != null && (typeof type !== 'string' || !SUBTASK_TYPES.has(type))) {
    throw new ProtocolError('malformed', `${path}.subtask_type ${JSON.stringify(type)} is not one of ${[...SUBTASK_TYPES].join(', ')}`);
  }
  const kwargs = (value['kwargs'] ?? {}) as Record<string, unknown>;
  if (type === 'chain' || type === 'group') {
    checkList(kwargs['tasks'], `${path}.kwargs.tasks`, depth, walk);
  } else if (type === 'chord') {
    const header = kwargs['header'];
    if (isRecord(header)) checkSignature(header, `${path}.kwargs.header`, depth + 1, walk);
    else checkList(header, `${path}.kwargs.header`, depth, walk);
    if (kwargs['body'] != null) checkSignature(kwargs['body'], `${path}.kwargs.body`, depth + 1, walk);
  }
  const options = (value['options'] ?? {}) as Record<string, unknown>;
  for (const [key, shape] of Object.entries(SIGNATURE_OPTIONS)) {
    const option = options[key];
    if (option == null) continue;
    if (Array.isArray(option) && shape !== 'one') checkList(option, `${path}.options.${key}`, depth, walk);
    else if (shape !== 'list') checkSignature(option, `${path}.options.${key}`, depth + 1, walk);
    else throw new ProtocolError('malformed', `${path}.options.${key} must be a list of signatures`);
  }
}

function checkList(value: unknown, path: string, depth: number, walk: Walk): void {
  if (!Array.isArray(value)) throw new ProtocolError('malformed', `${path} must be a list of signatures, got ${typeName(value)}`);
  value.forEach((item, i) => checkSignature(item, `${path}[${i}]`, depth + 1, walk));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
