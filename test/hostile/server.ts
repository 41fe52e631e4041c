// The hostile registry: a reverse proxy in front of the real docker-registry that, per
// repository, answers what a real registry never would (malformed manifests, lying headers,
// endless pagination, redirect loops, one byte a second…). Until a case switches its repository
// to hostile, every request goes through to the real registry, so the good phase is real.
// Listens on 127.0.0.1 only; extra listeners (other "hosts") for auth and redirect cases, one of
// which speaks TLS and plain HTTP on the same port (to redirect https → http on the same host).
import { createHash } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { Duplex } from 'node:stream';
import type { Behaviour, HostileRequest } from './types.ts';

export class HostileServer {
  readonly upstream: URL;
  readonly #behaviours = new Map<string, Behaviour>();
  readonly #seen = new Map<string, HostileRequest[]>();
  readonly #servers: net.Server[] = [];
  readonly #sockets = new Set<net.Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  /** host:port of the main listener. */
  host = '';

  private constructor(upstream: string) {
    this.upstream = new URL(upstream);
  }

  static async start(upstream: string): Promise<HostileServer> {
    const s = new HostileServer(upstream);
    s.host = await s.listen();
    return s;
  }

  /** Sets (or clears) the behaviour for a repository (e.g. "hostile/tar-dotdot"). */
  set(repo: string, b: Behaviour | undefined): void {
    if (b) this.#behaviours.set(repo, b);
    else this.#behaviours.delete(repo);
  }

  /** Requests seen for a repository (including its custom /x/<id>/ routes). */
  seen(repo: string): HostileRequest[] {
    return this.#seen.get(repo) ?? [];
  }

  /** A timer stopped with the server (drips, delayed answers). */
  timer(fn: () => void, ms: number, repeat = false): NodeJS.Timeout {
    const t = repeat ? setInterval(fn, ms) : setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
    return t;
  }
  clearTimer(t: NodeJS.Timeout): void {
    clearInterval(t);
    this.#timers.delete(t);
  }

  /**
   * Another listener (another registry host as far as a client can tell). With `tls`, the port
   * also speaks TLS: the first byte of a connection picks the protocol.
   */
  async listen(tls?: { certPem: string; keyPem: string }): Promise<string> {
    const handler = (scheme: 'http' | 'https') => (req: IncomingMessage, res: ServerResponse) => {
      this.#handle(req, res, scheme).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500).end(String(err));
        else res.destroy();
      });
    };
    const plain = http.createServer(handler('http'));
    plain.keepAliveTimeout = 1000;
    let front: net.Server = plain;
    if (tls) {
      const secure = https.createServer({ cert: tls.certPem, key: tls.keyPem }, handler('https'));
      front = net.createServer((sock) => {
        // 0x16 opens a TLS handshake record. The first bytes are already read, so the chosen
        // server gets a stream that replays them (TLS and HTTP read a raw socket's handle directly).
        sock.once('data', (first: Buffer) => (first[0] === 0x16 ? secure : plain).emit('connection', replay(sock, first)));
      });
    }
    front.on('connection', (sock: net.Socket) => {
      this.#sockets.add(sock);
      sock.on('close', () => this.#sockets.delete(sock));
    });
    await new Promise<void>((resolve, reject) => {
      front.once('error', reject);
      front.listen(0, '127.0.0.1', () => resolve());
    });
    this.#servers.push(front);
    return `127.0.0.1:${(front.address() as net.AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    this.#timers.clear();
    for (const s of this.#sockets) s.destroy();
    await Promise.all(this.#servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }

  async #handle(req: IncomingMessage, res: ServerResponse, scheme: 'http' | 'https'): Promise<void> {
    const url = new URL(req.url ?? '/', `${scheme}://${req.headers.host ?? 'x'}`);
    const m = /^\/v2\/(.+?)\/(manifests|blobs|tags|referrers)\/(.*)$/.exec(url.pathname);
    const custom = /^\/x\/([^/]+)\/(.*)$/.exec(url.pathname);
    const repo = m ? m[1]! : custom ? `hostile/${custom[1]}` : undefined;
    if (repo) {
      const hr: HostileRequest = {
        method: req.method ?? 'GET',
        path: url.pathname + url.search,
        url,
        kind: m ? ({ manifests: 'manifest', blobs: 'blob', tags: 'tags', referrers: 'referrers' } as const)[m[2] as 'manifests' | 'blobs' | 'tags' | 'referrers'] : 'custom',
        ref: m ? m[3]! : custom![2]!,
        headers: req.headers,
        scheme,
        host: req.headers.host ?? '',
      };
      const list = this.#seen.get(repo) ?? [];
      if (list.length < 10_000) list.push(hr);
      this.#seen.set(repo, list);
      const b = this.#behaviours.get(repo);
      if (b) {
        req.resume();
        const r = await b(hr, res);
        if (r !== 'pass') return;
      } else if (custom) {
        res.writeHead(404).end();
        return;
      }
    }
    await this.#proxy(req, res);
  }

  #proxy(req: IncomingMessage, res: ServerResponse): Promise<void> {
    return new Promise((resolve) => {
      const headers = { ...req.headers, host: this.upstream.host };
      // The real registry has no auth; the hostile listener may have checked some.
      delete headers.authorization;
      const up = http.request({ host: this.upstream.hostname, port: this.upstream.port, path: req.url, method: req.method, headers }, (ur) => {
        // Location headers of the real registry name its own host: rewrite them to ours.
        const h = { ...ur.headers };
        if (typeof h.location === 'string') h.location = h.location.replace(this.upstream.origin, `http://${req.headers.host}`);
        res.writeHead(ur.statusCode ?? 502, h);
        ur.pipe(res);
        ur.on('end', () => resolve());
      });
      up.on('error', () => {
        if (!res.headersSent) res.writeHead(502).end();
        resolve();
      });
      req.pipe(up);
    });
  }
}

/** A duplex over `sock` that first yields `first` (bytes already read from it). */
function replay(sock: net.Socket, first: Buffer): Duplex {
  const d = new Duplex({
    read() {
      sock.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      sock.write(chunk, cb);
    },
    final(cb) {
      sock.end();
      cb();
    },
    destroy(err, cb) {
      sock.destroy();
      cb(err);
    },
  });
  // What http.Server and tls.Server call on a socket.
  Object.assign(d, { setTimeout: () => d, setNoDelay: () => d, setKeepAlive: () => d, remoteAddress: sock.remoteAddress, remotePort: sock.remotePort });
  d.push(first);
  sock.on('data', (c: Buffer) => {
    if (!d.push(c)) sock.pause();
  });
  sock.on('end', () => d.push(null));
  sock.on('close', () => d.destroy());
  sock.on('error', () => d.destroy());
  return d;
}

// ---------------------------------------------------------------------------------------------
// Answers

export const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export function send(res: ServerResponse, status: number, body: Buffer | string = '', headers: Record<string, string | number> = {}): void {
  const b = Buffer.from(body);
  res.writeHead(status, { 'content-length': b.length, ...headers });
  res.end(b);
}

/** A distribution-spec error answer. */
export function distError(res: ServerResponse, status: number, code: string, message: string): void {
  send(res, status, JSON.stringify({ errors: [{ code, message }] }), { 'content-type': 'application/json' });
}

/** A manifest for HEAD and GET, with the headers a registry sends (digest of `bytes` unless lied about). */
export function sendManifest(req: HostileRequest, res: ServerResponse, bytes: Buffer, mediaType: string, digest = sha256(bytes)): void {
  const headers = { 'content-type': mediaType, 'docker-content-digest': digest, 'content-length': bytes.length };
  res.writeHead(200, headers);
  res.end(req.method === 'HEAD' ? undefined : bytes);
}

/**
 * Writes `data` `chunk` bytes at a time, one chunk every `everyMs`, after the headers; stops when
 * the client goes away. `data` may be endless (a generator).
 */
export function drip(server: HostileServer, res: ServerResponse, data: Iterator<Buffer> | Buffer, headers: Record<string, string | number>, everyMs = 1000, chunk = 1): void {
  res.writeHead(200, headers);
  let buf = Buffer.isBuffer(data) ? data : Buffer.alloc(0);
  const it = Buffer.isBuffer(data) ? undefined : data;
  const t = server.timer(
    () => {
      if (res.destroyed || res.writableEnded) return server.clearTimer(t);
      while (buf.length < chunk && it) {
        const n = it.next();
        if (n.done) break;
        buf = Buffer.concat([buf, n.value]);
      }
      if (buf.length === 0) {
        server.clearTimer(t);
        res.end();
        return;
      }
      res.write(buf.subarray(0, chunk));
      buf = buf.subarray(chunk);
    },
    everyMs,
    true,
  );
  res.on('close', () => server.clearTimer(t));
}
