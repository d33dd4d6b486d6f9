/**
 * A TCP proxy to a local server that fails the way networks do. `freeze` stops bytes both ways
 * on the open connections without closing a socket, like a half-open connection after a network
 * failure (connections made later flow normally). `delayToServer` makes one connection's
 * requests arrive late, so a test can order what two connections of one client do.
 */
import { createConnection, createServer, type Socket } from 'node:net';

export interface FaultProxy {
  readonly port: number;
  /** Stops every open connection, both ways, leaving the sockets open. */
  freeze(): void;
  /** From now on, bytes from the `index`-th accepted connection (0-based) reach the server `ms` later. */
  delayToServer(index: number, ms: number): void;
  /** `host:port` of each open connection's upstream side: how the server names its clients. */
  upstreamAddresses(): string[];
  close(): Promise<void>;
}

export async function startFaultProxy(targetPort: number): Promise<FaultProxy> {
  const pairs = new Set<[Socket, Socket]>();
  const accepted: Array<[Socket, Socket]> = [];
  const frozen: Socket[] = [];
  const server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    accepted.push(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const drop = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('proxy has no port');
  return {
    port: address.port,
    freeze() {
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
        frozen.push(client, upstream);
      }
      pairs.clear();
    },
    delayToServer(index, ms) {
      const pair = accepted[index];
      if (!pair) throw new Error(`the proxy has accepted ${accepted.length} connections, not ${index + 1}`);
      const [client, upstream] = pair;
      client.unpipe(upstream);
      client.on('data', (chunk: Buffer) => setTimeout(() => upstream.destroyed || upstream.write(chunk), ms));
      client.resume(); // unpipe left it paused
    },
    upstreamAddresses() {
      return [...pairs].map(([, upstream]) => `${upstream.localAddress}:${upstream.localPort}`);
    },
    async close() {
      for (const socket of frozen) socket.destroy();
      for (const [client, upstream] of pairs) {
        client.destroy();
        upstream.destroy();
      }
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
