/**
 * A TCP proxy to a local server that can freeze its open connections: bytes stop flowing both
 * ways but no socket closes, like a half-open connection after a network failure. Connections
 * made after a freeze flow normally.
 */
import { createConnection, createServer, type Socket } from 'node:net';

export interface FreezingProxy {
  readonly port: number;
  freeze(): void;
  close(): Promise<void>;
}

export async function startFreezingProxy(targetPort: number): Promise<FreezingProxy> {
  const pairs = new Set<[Socket, Socket]>();
  const frozen: Socket[] = [];
  const server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
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
    async close() {
      for (const socket of frozen) socket.destroy();
      for (const [client, upstream] of pairs) (client.destroy(), upstream.destroy());
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
