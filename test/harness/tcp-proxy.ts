// A TCP relay on loopback that can be frozen: while frozen, bytes stop flowing in both directions
// and new connections are accepted but never connected, which is how an apiserver behind a dead
// network path looks to a client (no reset, no answer).
import net from 'node:net';
import { LOOPBACK } from './ports.ts';

export interface TcpProxy {
  port: number;
  freeze(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = LOOPBACK): Promise<TcpProxy> {
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    if (frozen) {
      client.pause();
      return;
    }
    const upstream = net.connect(targetPort, targetHost);
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('data', (b) => {
      if (!frozen) upstream.write(b);
    });
    upstream.on('data', (b) => {
      if (!frozen) client.write(b);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, LOOPBACK, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze: () => {
      frozen = true;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
