/**
 * The AMQP heartbeat relay's reading of the byte stream: frame boundaries however the bytes are
 * cut into chunks (a heartbeat must never land inside a frame), and the tuning methods it reads
 * and rewrites during the handshake. The relay itself runs against RabbitMQ in
 * test/integration/blocked-loop.test.ts and the AMQP suites.
 */
import { describe, expect, it } from 'vitest';
import { connectionMethod, FrameCursor, HandshakeReader, negotiateHeartbeat } from '../../src/transports/amqp/heartbeat-relay-thread.js';

/** One AMQP frame: type, channel, payload, end byte. */
function frame(type: number, channel: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(7);
  header.writeUInt8(type, 0);
  header.writeUInt16BE(channel, 1);
  header.writeUInt32BE(payload.length, 3);
  return Buffer.concat([header, payload, Buffer.from([0xce])]);
}

/** A Connection.Tune (30) or TuneOk (31) method frame. */
function tuning(method: 30 | 31, heartbeat: number): Buffer {
  const payload = Buffer.alloc(12);
  payload.writeUInt16BE(10, 0);
  payload.writeUInt16BE(method, 2);
  payload.writeUInt16BE(2047, 4);
  payload.writeUInt32BE(131_072, 6);
  payload.writeUInt16BE(heartbeat, 10);
  return frame(1, 0, payload);
}

const PROTOCOL_HEADER = Buffer.from('AMQP\x00\x00\x09\x01', 'latin1');

/** Every way of cutting `bytes` in three. */
function* cuts(bytes: Buffer): Generator<Buffer[]> {
  for (let a = 0; a <= bytes.length; a++) {
    for (let b = a; b <= bytes.length; b += 3) yield [bytes.subarray(0, a), bytes.subarray(a, b), bytes.subarray(b)];
  }
}

describe('the frame cursor', () => {
  it('is between frames exactly at frame ends, however the stream is cut', () => {
    const frames = [frame(1, 1, Buffer.alloc(20, 1)), frame(2, 1, Buffer.alloc(0)), frame(3, 1, Buffer.alloc(300, 3)), frame(8, 0, Buffer.alloc(0))];
    const stream = Buffer.concat([PROTOCOL_HEADER, ...frames]);
    const ends = new Set<number>();
    let at = PROTOCOL_HEADER.length;
    for (const f of frames) ends.add((at += f.length));
    for (let cut = 0; cut <= stream.length; cut++) {
      const cursor = new FrameCursor(PROTOCOL_HEADER.length);
      cursor.scan(stream.subarray(0, cut));
      expect(cursor.atBoundary, `after ${cut} bytes`).toBe(ends.has(cut) || cut === PROTOCOL_HEADER.length);
      cursor.scan(stream.subarray(cut));
      expect(cursor.atBoundary).toBe(true);
    }
  });

  it('follows a stream fed a byte at a time', () => {
    const stream = Buffer.concat([frame(1, 1, Buffer.alloc(9)), frame(3, 1, Buffer.alloc(70_000))]);
    const cursor = new FrameCursor();
    for (let i = 0; i < stream.length; i++) {
      cursor.scan(stream.subarray(i, i + 1));
      expect(cursor.atBoundary).toBe(i + 1 === 17 || i + 1 === stream.length);
    }
  });
});

describe('the handshake reader', () => {
  it('hands on whole frames only, and shows each to the caller once, however the stream is cut', () => {
    const stream = Buffer.concat([PROTOCOL_HEADER, frame(1, 0, Buffer.alloc(40, 7)), tuning(31, 0), frame(1, 0, Buffer.alloc(5))]);
    for (const chunks of cuts(stream)) {
      const reader = new HandshakeReader(PROTOCOL_HEADER.length);
      const seen: number[] = [];
      const passed = chunks.map((chunk) => Buffer.from(reader.feed(chunk, (f) => seen.push(f.length))));
      expect(Buffer.concat(passed).equals(stream)).toBe(true);
      expect(seen).toEqual([48, 20, 13]);
      expect(reader.pending.length).toBe(0);
    }
  });

  it('lets the TuneOk heartbeat be rewritten in the bytes it hands on', () => {
    const stream = Buffer.concat([PROTOCOL_HEADER, tuning(31, 0)]);
    for (const chunks of cuts(stream)) {
      const reader = new HandshakeReader(PROTOCOL_HEADER.length);
      const passed = Buffer.concat(
        chunks.map((chunk) =>
          Buffer.from(
            reader.feed(Buffer.from(chunk), (f) => {
              if (connectionMethod(f) === 31) f.writeUInt16BE(15, 17);
            }),
          ),
        ),
      );
      expect(passed.equals(Buffer.concat([PROTOCOL_HEADER, tuning(31, 15)]))).toBe(true);
    }
  });

  it('gives up on a stream that is not AMQP frames, passing it on as it is', () => {
    const reader = new HandshakeReader();
    const junk = Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n');
    expect(reader.feed(junk, () => expect.fail('no frame')).equals(junk)).toBe(true);
    expect(reader.broken).toBe(true);
  });
});

describe('the tuning methods', () => {
  it('are recognised on channel 0 only', () => {
    expect(connectionMethod(tuning(30, 60))).toBe(30);
    expect(connectionMethod(tuning(31, 60))).toBe(31);
    const elsewhere = tuning(30, 60);
    elsewhere.writeUInt16BE(1, 1);
    expect(connectionMethod(elsewhere)).toBeUndefined();
    expect(connectionMethod(frame(8, 0, Buffer.alloc(0)))).toBeUndefined();
  });

  it("are negotiated as amqplib does: the lower of the two, or the client's when the server offers none", () => {
    expect(negotiateHeartbeat(60, 10)).toBe(10);
    expect(negotiateHeartbeat(5, 10)).toBe(5);
    expect(negotiateHeartbeat(0, 10)).toBe(10);
  });
});
