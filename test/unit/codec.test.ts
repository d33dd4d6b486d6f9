/** The codec's handling of untrusted input: each bad message is refused with a specific reason. */
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../src/errors.js';
import { decodeTaskMessage } from '../../src/protocol/decode.js';
import { encodeTaskMessage } from '../../src/protocol/encode.js';
import { emptyEmbed, type TaskMessage, type TransportMessage } from '../../src/protocol/message.js';

const base: TaskMessage = {
  id: 'c-1', task: 't.x', args: [1], kwargs: { a: 1 }, embed: emptyEmbed(), eta: null, expires: null, retries: 0,
  timeLimit: [null, null], rootId: 'c-1', parentId: null, group: null, groupIndex: null, shadow: null, origin: null,
  ignoreResult: false, replyTo: null, priority: null, extraHeaders: { stamps: { s: 1 } },
};

function wire(patch: (w: TransportMessage) => void = () => undefined): TransportMessage {
  const w = encodeTaskMessage(base);
  patch(w);
  return w;
}

function reasonOf(message: TransportMessage, maxBytes?: number): string {
  try {
    decodeTaskMessage(message, maxBytes === undefined ? {} : { maxBytes });
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError);
    return `${(error as ProtocolError).reason}: ${(error as ProtocolError).message}`;
  }
  return 'accepted';
}

const body = (text: string) => (w: TransportMessage) => void (w.body = Buffer.from(text));

describe('decodeTaskMessage', () => {
  it('round-trips what encodeTaskMessage writes, passing unknown headers through', () => {
    const decoded = decodeTaskMessage(wire());
    expect(decoded).toMatchObject({ id: 'c-1', task: 't.x', args: [1], kwargs: { a: 1 }, rootId: 'c-1', extraHeaders: { stamps: { s: 1 } } });
  });

  it('refuses each kind of bad message with its reason', () => {
    expect(reasonOf(wire(), 10)).toMatch(/^oversized: message body is \d+ bytes, over the limit of 10/);
    expect(reasonOf(wire((w) => (w.contentType = 'application/x-python-serialize')))).toMatch(/^unsupported-content-type/);
    expect(reasonOf(wire((w) => (w.headers['compression'] = 'application/x-bz2')))).toMatch(/^unsupported-content-type: compression/);
    expect(reasonOf(wire(body('{nope')))).toMatch(/^undecodable: body is not valid JSON/);
    expect(reasonOf(wire(body('[[1], {}]')))).toMatch(/^malformed: .*got an array of 2/);
    expect(reasonOf(wire(body('"text"')))).toMatch(/^malformed: task body must be a JSON array/);
    expect(reasonOf(wire(body('[1, {}, null]')))).toMatch(/^malformed: task args must be an array; got a number/);
    expect(reasonOf(wire(body('[[], [], null]')))).toMatch(/^malformed: task kwargs must be an object; got an array/);
    expect(reasonOf(wire(body('[[], {}, 5]')))).toMatch(/^malformed: task embed must be an object or null/);
    expect(reasonOf(wire(body('[[], {}, {"chain": [1]}]')))).toMatch(/^malformed: embed.chain\[0\] is not a signature \(expected an object, got a number\)/);
    expect(reasonOf(wire((w) => delete w.headers['id']))).toMatch(/^malformed: task message has no "id"/);
    expect(reasonOf(wire((w) => (w.headers['eta'] = 'tomorrow')))).toMatch(/^malformed: header eta is not an ISO-8601 date/);
    expect(reasonOf(wire((w) => (w.headers['timelimit'] = [1])))).toMatch(/^malformed: header timelimit must be \[hard, soft\]/);
    expect(reasonOf(wire((w) => (w.headers['retries'] = -1)))).toMatch(/^malformed: header retries must not be negative/);
    expect(reasonOf(wire((w) => (w.headers['retries'] = '2')))).toMatch(/^malformed: header retries must be an integer/);
    expect(reasonOf(wire((w) => delete w.headers['task']))).toMatch(/^unknown-protocol/);
    expect(reasonOf(wire(body('[[{"__type__": "pickle", "__value__": "x"}], {}, null]')))).toMatch(/^undecodable: unknown kombu JSON type "pickle"/);
  });

  it('inflates zlib-compressed bodies', () => {
    const compressed = wire((w) => {
      w.body = deflateSync(w.body);
      w.headers['compression'] = 'application/x-gzip';
    });
    expect(decodeTaskMessage(compressed).args).toEqual([1]);
  });

  it('accepts protocol v1 bodies and hybrid v2 headers around a v1 body', () => {
    const v1 = wire((w) => {
      w.headers = {};
      w.body = Buffer.from(JSON.stringify({ task: 't.v1', id: 'v1-id', args: [1, 2], kwargs: {}, retries: 2, eta: '2030-01-01T00:00:00Z', taskset: 'grp', timelimit: [3, 2] }));
    });
    expect(decodeTaskMessage(v1)).toMatchObject({ task: 't.v1', id: 'v1-id', args: [1, 2], retries: 2, group: 'grp', timeLimit: [3, 2], rootId: 'v1-id' });
    expect(decodeTaskMessage(v1).eta?.toISOString()).toBe('2030-01-01T00:00:00.000Z');
    const hybrid = wire(body(JSON.stringify({ args: [9], kwargs: { k: 1 } })));
    expect(decodeTaskMessage(hybrid)).toMatchObject({ task: 't.x', args: [9], kwargs: { k: 1 } });
  });

  it('treats a missing embed or kwargs as empty', () => {
    expect(decodeTaskMessage(wire(body('[[], null, null]'))).kwargs).toEqual({});
    expect(decodeTaskMessage(wire(body('[[], {}, null]'))).embed).toEqual(emptyEmbed());
  });
});
