// Fault injection between the controller and the real servers it talks to, all on 127.0.0.1:
//
// - startFaultProxy: an HTTP proxy in front of a plain-HTTP docker-registry (and, for token-auth
//   registries, its token realm, which it rewrites to itself). Each request is classified by kind
//   (manifest, tag list, referrers, cosign signature tag, blob, token) and repository; rules turn
//   matching requests into 5xx/429 storms, a one-byte-a-second drip, a hang, a connection reset,
//   or a stall that the test later resumes or cuts. Everything else passes through unchanged.
// - startTcpProxy: a byte-level TCP relay (used in front of the kube-apiserver; TLS passes through
//   untouched) that can drop every open connection and refuse new ones for a while.
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { LOOPBACK } from './ports.ts';

export type RequestKind = 'ping' | 'manifest' | 'tags' | 'referrers' | 'signature' | 'blob' | 'token' | 'other';
export const RequestKinds: readonly RequestKind[] = ['ping', 'manifest', 'tags', 'referrers', 'signature', 'blob', 'token', 'other'];

export interface Classified {
  kind: RequestKind;
  /** Repository name for /v2/<name>/… paths. */
  repo?: string;
  /** Tag, digest or `sha256-<hex>[.sig]` for manifests; digest for blobs and referrers. */
  ref?: string;
}

const DistributionPath = /^\/v2\/(.+)\/(manifests|blobs|referrers)\/([^/]+)$/;
const TagListPath = /^\/v2\/(.+)\/tags\/list$/;
export const TokenPath = '/__token';

/** What a request to a registry is, from its path alone (the registry API is path-typed). */
export function classify(pathname: string): Classified {
  if (pathname === '/v2/' || pathname === '/v2') return { kind: 'ping' };
  if (pathname === TokenPath) return { kind: 'token' };
  const tags = TagListPath.exec(pathname);
  if (tags) return { kind: 'tags', repo: tags[1]! };
  const m = DistributionPath.exec(pathname);
  if (!m) return { kind: 'other' };
  const [, repo, what, ref] = m as unknown as [string, string, string, string];
  if (what === 'blobs') return { kind: ref === 'uploads' ? 'other' : 'blob', repo, ref };
  if (what === 'referrers') return { kind: 'referrers', repo, ref };
  // cosign's signature tag, and the OCI referrers tag schema (registries without the API).
  if (/^sha256-[a-f0-9]{64}\.sig$/.test(ref)) return { kind: 'signature', repo, ref };
  if (/^sha256-[a-f0-9]{64}$/.test(ref)) return { kind: 'referrers', repo, ref };
  return { kind: 'manifest', repo, ref };
}

export interface Matcher {
  kind?: RequestKind | readonly RequestKind[];
  /** Repository name, exactly (e.g. "faults/storm"). */
  repo?: string;
  /** Tag or digest the request names (exactly). */
  ref?: string;
  method?: 'GET' | 'HEAD';
}

export type Fault =
  /** Answer every matching request with this status and a distribution error body. */
  | { type: 'status'; status: number; retryAfterSeconds?: number }
  /** Headers at once, then the upstream body one byte per `intervalMs` (default 1000). */
  | { type: 'drip'; intervalMs?: number }
  /** Never answer; the connection stays open until the rule is cleared or the proxy stops. */
  | { type: 'hang' }
  /** TCP reset: at once, or after forwarding the headers and `afterBytes` bytes of the body. */
  | { type: 'reset'; afterBytes?: number }
  /** Forward the headers and `afterBytes` bytes of the body, then hold until resume() or cut(). */
  | { type: 'stall'; afterBytes: number };

export interface RequestRecord {
  /** Date.now() when the request arrived. */
  at: number;
  method: string;
  path: string;
  kind: RequestKind;
  repo?: string;
  ref?: string;
  /** The fault applied, if any. */
  fault?: Fault['type'];
}

export interface ActiveFault {
  readonly matcher: Matcher;
  readonly fault: Fault;
  /** Requests this rule has taken so far. */
  hits(): number;
  /** Records of the requests this rule took. */
  records(): RequestRecord[];
  /** Resolves on the first matching request (for stall: once `afterBytes` were forwarded). */
  readonly firstHit: Promise<void>;
  /** Removes the rule; hanging and dripping connections are closed, stalled ones resumed. */
  clear(): void;
  /** stall only: forward the rest of every held response and remove the rule. */
  resume(): void;
  /** stall only: close every held connection abruptly (what the controller sees when the registry dies) and remove the rule. */
  cut(): void;
}

export interface FaultProxy {
  /** host:port of the proxy (what goes into the OCIRepository URL). */
  host: string;
  url: string;
  /** host:port of the registry behind it. */
  upstream: string;
  /** Adds a rule; the newest matching rule wins. */
  add(matcher: Matcher, fault: Fault): ActiveFault;
  /** Clears every rule. */
  clearAll(): void;
  /** Requests seen, by kind (optionally for one repository). */
  counts(repo?: string): Record<RequestKind, number>;
  /** Every request seen, in order. */
  records(): readonly RequestRecord[];
  stop(): Promise<void>;
}

function matches(m: Matcher, method: string, c: Classified): boolean {
  if (m.kind !== undefined && !(typeof m.kind === 'string' ? [m.kind] : m.kind).includes(c.kind)) return false;
  if (m.repo !== undefined && m.repo !== c.repo) return false;
  if (m.ref !== undefined && m.ref !== c.ref) return false;
  if (m.method !== undefined && m.method !== method) return false;
  return true;
}

/** Distribution-spec error codes for the statuses a storm uses. */
function errorBody(status: number): string {
  const code = status === 429 ? 'TOOMANYREQUESTS' : status === 503 ? 'UNAVAILABLE' : 'UNKNOWN';
  return JSON.stringify({ errors: [{ code, message: `fault injected by the test proxy: HTTP ${status}`, detail: null }] });
}

/** RST rather than FIN, as a crashed peer or a middlebox would send. */
function reset(socket: net.Socket | null | undefined): void {
  if (!socket || socket.destroyed) return;
  socket.resetAndDestroy();
}

interface Rule {
  matcher: Matcher;
  fault: Fault;
  hits: RequestRecord[];
  /** Connections held by this rule (hang, drip, stall). */
  held: Set<{ end(): void; cut(): void; resume(): void }>;
  onHit: () => void;
  active: boolean;
}

export async function startFaultProxy(opts: { upstream: string }): Promise<FaultProxy> {
  const [upHost, upPortStr] = opts.upstream.split(':') as [string, string];
  const upPort = Number(upPortStr);
  const rules: Rule[] = [];
  const log: RequestRecord[] = [];
  const sockets = new Set<net.Socket>();
  /** The token realm the registry announced (rewritten to ours in WWW-Authenticate). */
  let tokenRealm: URL | undefined;
  let host = '';

  const upstreamRequest = (req: http.IncomingMessage, c: Classified): http.ClientRequest => {
    const incoming = new URL(req.url ?? '/', 'http://proxy');
    const headers = { ...req.headers };
    delete headers['connection'];
    if (c.kind === 'token' && tokenRealm) {
      const target = new URL(tokenRealm);
      for (const [k, v] of incoming.searchParams) target.searchParams.append(k, v);
      headers.host = target.host;
      return http.request(target, { method: req.method, headers, agent: false });
    }
    headers.host = opts.upstream;
    // A new connection per request: a SIGKILLed registry leaves no stale pooled sockets behind.
    return http.request({ host: upHost, port: upPort, path: req.url, method: req.method, headers, agent: false });
  };

  /** Rewrites the token realm to ours, so token requests pass through the proxy too. */
  const rewriteHeaders = (h: http.IncomingHttpHeaders): http.OutgoingHttpHeaders => {
    const out: http.OutgoingHttpHeaders = { ...h };
    delete out['connection'];
    delete out['keep-alive'];
    const wa = h['www-authenticate'];
    if (typeof wa === 'string') {
      const m = /realm="([^"]+)"/i.exec(wa);
      if (m && /^bearer /i.test(wa)) {
        tokenRealm = new URL(m[1]!);
        out['www-authenticate'] = wa.replace(m[0], `realm="http://${host}${TokenPath}"`);
      }
    }
    return out;
  };

  const forward = (req: http.IncomingMessage, res: http.ServerResponse, c: Classified, rule: Rule | undefined): void => {
    const up = upstreamRequest(req, c);
    up.on('error', () => reset(res.socket));
    up.on('response', (ur) => {
      ur.on('error', () => reset(res.socket));
      const fault = rule?.fault;
      res.writeHead(ur.statusCode ?? 502, rewriteHeaders(ur.headers));
      if (!fault) {
        ur.pipe(res);
        return;
      }
      if (fault.type === 'reset') {
        let sent = 0;
        const limit = fault.afterBytes ?? 0;
        ur.on('data', (chunk: Buffer) => {
          if (sent >= limit) return;
          const part = chunk.subarray(0, limit - sent);
          sent += part.length;
          res.write(part);
          if (sent >= limit) {
            ur.destroy();
            // Let the bytes leave before the RST (a reset discards unsent data).
            res.socket?.once('drain', () => reset(res.socket));
            setTimeout(() => reset(res.socket), 50);
          }
        });
        ur.on('end', () => reset(res.socket));
        return;
      }
      if (fault.type === 'drip') {
        const chunks: Buffer[] = [];
        ur.on('data', (c2: Buffer) => chunks.push(c2));
        ur.on('end', () => {
          const body = Buffer.concat(chunks);
          let i = 0;
          const t = setInterval(() => {
            if (res.destroyed) return done();
            if (i >= body.length) {
              res.end();
              return done();
            }
            res.write(body.subarray(i, i + 1));
            i++;
          }, fault.intervalMs ?? 1000);
          const held = { end: () => { clearInterval(t); reset(res.socket); }, cut: () => held.end(), resume: () => held.end() };
          const done = (): void => {
            clearInterval(t);
            rule!.held.delete(held);
          };
          rule!.held.add(held);
          res.on('close', done);
        });
        return;
      }
      if (fault.type === 'stall') {
        let sent = 0;
        let stalled = false;
        const queued: Buffer[] = [];
        let upstreamEnded = false;
        const held = {
          end: () => held.resume(),
          cut: () => {
            rule!.held.delete(held);
            ur.destroy();
            reset(res.socket);
          },
          resume: () => {
            rule!.held.delete(held);
            for (const q of queued.splice(0)) res.write(q);
            stalled = false;
            if (upstreamEnded) res.end();
            else ur.resume();
          },
        };
        ur.on('data', (chunk: Buffer) => {
          if (stalled) {
            queued.push(chunk);
            return;
          }
          const room = fault.afterBytes - sent;
          if (room > chunk.length || !rule!.active) {
            sent += chunk.length;
            res.write(chunk);
            return;
          }
          res.write(chunk.subarray(0, room));
          sent += room;
          queued.push(chunk.subarray(room));
          stalled = true;
          ur.pause();
          rule!.held.add(held);
          rule!.onHit();
        });
        ur.on('end', () => {
          upstreamEnded = true;
          if (!stalled) res.end();
        });
        return;
      }
      ur.pipe(res);
    });
    req.pipe(up);
  };

  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://proxy');
    const c = classify(u.pathname);
    const method = req.method ?? 'GET';
    const rec: RequestRecord = { at: Date.now(), method, path: u.pathname + u.search, kind: c.kind, ...(c.repo ? { repo: c.repo } : {}), ...(c.ref ? { ref: c.ref } : {}) };
    log.push(rec);
    let rule: Rule | undefined;
    for (let i = rules.length - 1; i >= 0; i--) {
      if (rules[i]!.active && matches(rules[i]!.matcher, method, c)) {
        rule = rules[i];
        break;
      }
    }
    if (!rule) return forward(req, res, c, undefined);
    rec.fault = rule.fault.type;
    rule.hits.push(rec);
    const fault = rule.fault;
    if (fault.type !== 'stall') rule.onHit();
    switch (fault.type) {
      case 'status': {
        req.resume();
        const body = errorBody(fault.status);
        const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'docker-distribution-api-version': 'registry/2.0' };
        if (fault.retryAfterSeconds !== undefined) headers['retry-after'] = String(fault.retryAfterSeconds);
        res.writeHead(fault.status, headers);
        res.end(method === 'HEAD' ? undefined : body);
        return;
      }
      case 'hang': {
        req.resume();
        const r = rule;
        const held = { end: () => { r.held.delete(held); reset(res.socket); }, cut: () => held.end(), resume: () => held.end() };
        r.held.add(held);
        res.on('close', () => r.held.delete(held));
        return;
      }
      case 'reset':
        if (!fault.afterBytes) {
          req.resume();
          reset(req.socket);
          return;
        }
        return forward(req, res, c, rule);
      default:
        return forward(req, res, c, rule);
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, LOOPBACK, resolve));
  host = `${LOOPBACK}:${(server.address() as AddressInfo).port}`;

  const makeRule = (matcher: Matcher, fault: Fault): ActiveFault => {
    let onHit!: () => void;
    const firstHit = new Promise<void>((r) => (onHit = r));
    const rule: Rule = { matcher, fault, hits: [], held: new Set(), onHit, active: true };
    rules.push(rule);
    const remove = (): void => {
      rule.active = false;
      const i = rules.indexOf(rule);
      if (i >= 0) rules.splice(i, 1);
    };
    return {
      matcher,
      fault,
      hits: () => rule.hits.length,
      records: () => [...rule.hits],
      firstHit,
      clear: () => {
        remove();
        for (const h of [...rule.held]) h.end();
      },
      resume: () => {
        remove();
        for (const h of [...rule.held]) h.resume();
      },
      cut: () => {
        remove();
        for (const h of [...rule.held]) h.cut();
      },
    };
  };
  const active: ActiveFault[] = [];

  return {
    host,
    url: `http://${host}`,
    upstream: opts.upstream,
    add(matcher, fault) {
      const f = makeRule(matcher, fault);
      active.push(f);
      return f;
    },
    clearAll() {
      for (const f of active.splice(0)) f.clear();
    },
    counts(repo?: string) {
      const out = Object.fromEntries(RequestKinds.map((k) => [k, 0])) as Record<RequestKind, number>;
      for (const r of log) if (repo === undefined || r.repo === repo) out[r.kind]++;
      return out;
    },
    records: () => log,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const f of active.splice(0)) f.clear();
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface TcpProxy {
  host: string;
  port: number;
  /** Open client connections. */
  connections(): number;
  /** Connections accepted so far (including refused ones). */
  accepted(): number;
  /** Resets every open connection (a dropped watch, a dead load balancer). */
  dropAll(): void;
  /** Drops every open connection and resets new ones until unblock(). */
  block(): void;
  unblock(): void;
  stop(): Promise<void>;
}

/** A TCP relay to 127.0.0.1:`upstreamPort`. */
export async function startTcpProxy(opts: { upstreamPort: number }): Promise<TcpProxy> {
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  let blocked = false;
  let accepted = 0;
  const server = net.createServer((client) => {
    accepted++;
    client.on('error', () => undefined);
    if (blocked) {
      reset(client);
      return;
    }
    const upstream = net.connect({ host: LOOPBACK, port: opts.upstreamPort });
    const pair = { client, upstream };
    pairs.add(pair);
    const close = (): void => {
      pairs.delete(pair);
      reset(client);
      reset(upstream);
    };
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, LOOPBACK, resolve));
  const port = (server.address() as AddressInfo).port;
  const dropAll = (): void => {
    for (const p of [...pairs]) {
      pairs.delete(p);
      reset(p.client);
      reset(p.upstream);
    }
  };
  return {
    host: `${LOOPBACK}:${port}`,
    port,
    connections: () => pairs.size,
    accepted: () => accepted,
    dropAll,
    block() {
      blocked = true;
      dropAll();
    },
    unblock() {
      blocked = false;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        dropAll();
        server.close(() => resolve());
      }),
  };
}
