// A counting HTTP(S) relay on loopback: the controller talks to the apiserver or the registry
// through it, so the benchmark counts exactly the requests the controller makes (by verb and
// resource), not those of kubectl, the pusher or the apiserver's own loops. Bodies are streamed
// both ways, so watches work. The relay runs in the benchmark process: its CPU is not the
// controller's.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

export interface Relay {
  /** Base URL of the relay, e.g. https://127.0.0.1:1234 */
  url: string;
  host: string;
  /** Requests seen so far by class ("GET secrets", "HEAD manifests", …). */
  counts(): Map<string, number>;
  /** TCP connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

export interface RelayOptions {
  /** Where requests go, e.g. https://127.0.0.1:6443 or http://127.0.0.1:5000. */
  target: string;
  /** Serve TLS with this certificate (the apiserver relay); plain HTTP otherwise. */
  tls?: { cert: string; key: string };
  /** CA to verify the target's certificate. */
  targetCa?: string;
  /** Request class used for counting. */
  classify(method: string, url: string): string;
}

export async function startRelay(o: RelayOptions): Promise<Relay> {
  const target = new URL(o.target);
  const mod = target.protocol === 'https:' ? https : http;
  const agent = new mod.Agent({ keepAlive: true, maxSockets: 64, ...(o.targetCa ? { ca: o.targetCa } : {}) });
  const counts = new Map<string, number>();
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const cls = o.classify(req.method ?? 'GET', req.url ?? '/');
    counts.set(cls, (counts.get(cls) ?? 0) + 1);
    const headers = { ...req.headers, host: target.host };
    const up = mod.request({ protocol: target.protocol, hostname: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  };
  const server = o.tls ? https.createServer({ cert: o.tls.cert, key: o.tls.key }, handler) : http.createServer(handler);
  server.keepAliveTimeout = 120_000;
  let connections = 0;
  server.on(o.tls ? 'secureConnection' : 'connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${o.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    counts: () => new Map(counts),
    connections: () => connections,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      agent.destroy();
    },
  };
}

/** "GET secrets", "WATCH ocirepositories", "PATCH ocirepositories/status", "LIST secrets", … */
export function classifyKube(method: string, url: string): string {
  const u = new URL(url, 'http://x');
  const parts = u.pathname.split('/').filter(Boolean);
  // /api/v1/... or /apis/<group>/<version>/...
  const rest = parts[0] === 'api' ? parts.slice(2) : parts[0] === 'apis' ? parts.slice(3) : null;
  if (!rest) return `${method} ${u.pathname}`;
  if (rest[0] === 'namespaces' && rest.length >= 3) rest.splice(0, 2);
  // Discovery (e.g. /apis/<group>/<version>): no resource.
  if (!rest.length) return `${method} ${u.pathname}`;
  const [resource, name, sub] = rest;
  let verb = method;
  if (method === 'GET') verb = u.searchParams.get('watch') === '1' || u.searchParams.get('watch') === 'true' ? 'WATCH' : name ? 'GET' : 'LIST';
  return `${verb} ${resource ?? ''}${sub ? `/${sub}` : ''}`;
}

/** "HEAD manifests", "GET blobs", "GET tags", "GET /v2/", … */
export function classifyRegistry(method: string, url: string): string {
  const p = new URL(url, 'http://x').pathname;
  const m = /\/(manifests|blobs|tags|referrers)\//.exec(p);
  return `${method} ${m ? m[1] : p}`;
}

export function diffCounts(a: Map<string, number>, b: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of b) {
    const d = v - (a.get(k) ?? 0);
    if (d) out.set(k, d);
  }
  return out;
}

export const sum = (m: Map<string, number>): number => [...m.values()].reduce((x, y) => x + y, 0);
