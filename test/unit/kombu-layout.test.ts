import { describe, expect, it } from 'vitest';
import { envelopeText, fromEnvelope, toEnvelope, type Envelope } from '../../src/transports/redis/kombu-layout.js';
import type { TransportMessage } from '../../src/protocol/message.js';

function message(properties: TransportMessage['properties']): TransportMessage {
  return {
    headers: { task: 'x.task', id: 'quote " back \\ newline \n é 🙂', eta: null, timelimit: [null, 5] },
    properties,
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    body: Buffer.from(JSON.stringify([[1, 'two'], {}, { callbacks: null }])),
  };
}

/** The envelope with its delivery tag (fresh each time) set aside. */
function withoutTag(envelope: Envelope): { envelope: Envelope; tag: string } {
  const tag = envelope.properties.delivery_tag;
  return { envelope: { ...envelope, properties: { ...envelope.properties, delivery_tag: '' } }, tag };
}

describe("kombu's Redis envelope", () => {
  it.each([
    ['no properties', {}],
    ['the usual properties', { correlation_id: 'c', reply_to: 'r', delivery_mode: 2 }],
    ['properties that name the fields the envelope sets', { priority: 9, delivery_mode: 2, delivery_tag: 'old' }],
  ])('writes the same text as the envelope object, key for key (%s)', (_, properties) => {
    const text = envelopeText('queue "q"', message(properties as TransportMessage['properties']), 6);
    const written = withoutTag(JSON.parse(text) as Envelope);
    const built = withoutTag(toEnvelope('queue "q"', message(properties as TransportMessage['properties']), 6));
    expect(JSON.stringify(written.envelope)).toBe(JSON.stringify(built.envelope));
    expect(written.tag).toMatch(/^[0-9a-f-]{36}$/);
    for (const key of ['priority', 'delivery_tag', 'delivery_info']) expect(text.split(`"${key}":`)).toHaveLength(2); // once each
    expect(fromEnvelope(JSON.parse(text) as Envelope)).toEqual({ ...message(properties as TransportMessage['properties']), properties: fromEnvelope(built.envelope).properties });
  });
});
