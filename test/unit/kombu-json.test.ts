import { describe, expect, it } from 'vitest';
import { decodeJson, decodeJsonObject, encodeJson, formatIsoDate, parseIsoDate } from '../../src/protocol/kombu-json.js';

describe('kombu JSON', () => {
  it('decodes kombu >= 5.3 typed envelopes', () => {
    const text = JSON.stringify([
      { __type__: 'datetime', __value__: '2024-01-02T03:04:05.123456+00:00' },
      { __type__: 'date', __value__: '2024-01-02' },
      { __type__: 'time', __value__: '01:02:03' },
      { __type__: 'decimal', __value__: '1.50' },
      { __type__: 'uuid', __value__: { hex: '12345678123456781234567812345678' } },
      { __type__: 'bytes', __value__: 'hé' },
      { __type__: 'base64', __value__: 'AP9hYmM=' },
    ]);
    const [dt, date, time, dec, uuid, bytes, b64] = decodeJson(text) as unknown[];
    expect((dt as Date).toISOString()).toBe('2024-01-02T03:04:05.123Z');
    expect((date as Date).toISOString()).toBe('2024-01-02T00:00:00.000Z');
    expect([time, dec, uuid]).toEqual(['01:02:03', '1.50', '12345678-1234-5678-1234-567812345678']);
    expect((bytes as Buffer).toString('utf8')).toBe('hé');
    expect([...(b64 as Buffer)]).toEqual([0, 255, 97, 98, 99]);
  });

  it('leaves objects with other keys alone, and drops __proto__ keys', () => {
    const decoded = decodeJson('{"a": {"__type__": "datetime", "__value__": "x", "extra": 1}, "__proto__": {"polluted": true}}') as Record<string, unknown>;
    expect(decoded['a']).toEqual({ __type__: 'datetime', __value__: 'x', extra: 1 });
    expect(Object.keys(decoded)).toEqual(['a']);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('encodes bytes as kombu does and dates as ISO strings every version reads', () => {
    expect(encodeJson([Buffer.from('hi'), Buffer.from([0xff]), new Date('2024-01-02T03:04:05Z'), 10n])).toBe(
      '[{"__type__":"bytes","__value__":"hi"},{"__type__":"base64","__value__":"/w=="},"2024-01-02T03:04:05.000Z",10]',
    );
    expect(decodeJson(encodeJson({ raw: Buffer.from([1, 2]) }))).toEqual({ raw: Buffer.from([1, 2]) });
  });

  it('parses the ISO forms Python writes, treating naive times as UTC', () => {
    expect(parseIsoDate('2024-01-02T03:04:05.123456+00:00')?.toISOString()).toBe('2024-01-02T03:04:05.123Z');
    expect(parseIsoDate('2024-01-02T03:04:05Z')?.toISOString()).toBe('2024-01-02T03:04:05.000Z');
    expect(parseIsoDate('2024-01-02T03:04:05')?.toISOString()).toBe('2024-01-02T03:04:05.000Z');
    expect(parseIsoDate('2024-01-02T05:04:05+02:00')?.toISOString()).toBe('2024-01-02T03:04:05.000Z');
    expect(parseIsoDate('2024-01-02 03:04:05')?.toISOString()).toBe('2024-01-02T03:04:05.000Z');
    expect(parseIsoDate('yesterday')).toBeNull();
    expect(formatIsoDate(new Date('2024-01-02T03:04:05.123Z'))).toBe('2024-01-02T03:04:05.123000+00:00');
  });
});

describe('decodeJsonObject', () => {
  it('returns the object a body holds, and null for bad JSON or any other value', () => {
    expect(decodeJsonObject(Buffer.from('{"method": "revoke", "when": {"__type__": "datetime", "__value__": "2026-01-02T03:04:05"}}'))).toEqual({
      method: 'revoke',
      when: new Date('2026-01-02T03:04:05Z'),
    });
    expect(decodeJsonObject(Buffer.from('{{{'))).toBeNull();
    expect(decodeJsonObject(Buffer.from('[1, 2]'))).toBeNull();
    expect(decodeJsonObject(Buffer.from('"text"'))).toBeNull();
    expect(decodeJsonObject(Buffer.from('null'))).toBeNull();
  });
});
