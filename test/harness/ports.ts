// Free TCP ports on 127.0.0.1 and waiting for a port to accept connections.
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export const LOOPBACK = '127.0.0.1';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago (listen on port 0, read it back, close).
 * There is a small window in which another process may take it; harness starters retry on
 * "address already in use".
 */
export async function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, LOOPBACK, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('could not read back a free port'));
        return;
      }
      const { port } = addr;
      srv.close(() => resolve(port));
    });
  });
}

/** `n` distinct free ports. */
export async function freePorts(n: number): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < n) out.add(await freePort());
  return [...out];
}

/** True when something accepts TCP connections on host:port. */
export async function isPortOpen(port: number, host: string = LOOPBACK): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const sock = net.connect({ port, host });
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** Polls until host:port accepts connections; throws after `timeoutMs`. */
export async function waitForPort(port: number, opts: { host?: string; timeoutMs?: number } = {}): Promise<void> {
  const host = opts.host ?? LOOPBACK;
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  while (Date.now() < deadline) {
    if (await isPortOpen(port, host)) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${host}:${port} to accept connections`);
}
