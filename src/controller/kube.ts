// A small Kubernetes REST client. We make the requests ourselves so that watches are plain
// streams we control (resume, bookmarks, 410 relists) and status writes are exact merge
// patches; where the server is and how to authenticate comes from kubeconfig.ts.
import type { Agent } from 'node:http';
import https from 'node:https';
import { http } from '../util/node-http.ts';
import { loadRestConfig, type KubeOptions, type RestConfig } from './kubeconfig.ts';

export type { KubeOptions } from './kubeconfig.ts';

export class KubeError extends Error {
  readonly status: number;
  readonly reason: string | undefined;
  constructor(status: number, message: string, reason?: string) {
    super(message);
    this.name = 'KubeError';
    this.status = status;
    this.reason = reason;
  }
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export class Kube {
  readonly config: RestConfig;
  readonly server: URL;
  // One pool for requests; watches get a connection each (they are long-lived).
  readonly #agent: Agent;
  readonly #watchAgent: Agent;

  constructor(config: RestConfig) {
    this.config = config;
    this.server = config.server;
    const tls = this.server.protocol === 'https:';
    this.#agent = tls ? new https.Agent({ ...config.tls, keepAlive: true, maxSockets: 32 }) : new http.Agent({ keepAlive: true, maxSockets: 32 });
    this.#watchAgent = tls ? new https.Agent({ ...config.tls, keepAlive: false }) : new http.Agent({ keepAlive: false });
  }

  static load(opts: KubeOptions = {}): Kube {
    return new Kube(loadRestConfig(opts));
  }

  async #options(method: string, path: string, headers: Record<string, string>, agent: Agent): Promise<https.RequestOptions> {
    const base = this.server.pathname.replace(/\/+$/, '');
    const opts: https.RequestOptions = {
      headers,
      method,
      protocol: this.server.protocol,
      hostname: this.server.hostname.replace(/^\[|\]$/g, ''),
      port: this.server.port || (this.server.protocol === 'https:' ? 443 : 80),
      path: `${base}${path}`,
      agent,
    };
    await this.config.authenticate(opts);
    return opts;
  }

  #transport() {
    return this.server.protocol === 'https:' ? https : http;
  }

  /** One JSON request. Throws KubeError with the API's status and message on non-2xx. */
  async request<T = unknown>(method: string, path: string, body?: unknown, contentType = 'application/json', accept = 'application/json', signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const headers: Record<string, string> = { accept };
    if (payload) {
      headers['content-type'] = contentType;
      headers['content-length'] = String(payload.length);
    }
    const opts = await this.#options(method, path, headers, this.#agent);
    return new Promise<T>((resolve, reject) => {
      const req = this.#transport().request(opts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          const status = res.statusCode ?? 0;
          if (status < 200 || status >= 300) {
            let message = text;
            let reason: string | undefined;
            try {
              const s = JSON.parse(text) as { message?: string; reason?: string };
              message = s.message ?? text;
              reason = s.reason;
            } catch {
              // keep raw text
            }
            reject(new KubeError(status, `${method} ${path}: ${status} ${message}`, reason));
            return;
          }
          try {
            resolve((text ? JSON.parse(text) : undefined) as T);
          } catch (err) {
            reject(err);
          }
        });
      });
      req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${path}: timed out`)));
      const onAbort = () => req.destroy(new Error(`${method} ${path}: ${String(signal?.reason?.message ?? 'aborted')}`));
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('close', () => signal?.removeEventListener('abort', onAbort));
      req.on('error', reject);
      if (payload) req.write(payload);
      req.end();
    });
  }

  /**
   * Streams watch events until the server closes the stream, `signal` aborts, or the connection
   * drops. Resolves normally in all those cases (the caller decides whether to resume); rejects
   * only on a non-200 answer.
   */
  async watch<T>(path: string, onEvent: (e: WatchEvent<T>) => void, signal: AbortSignal, accept = 'application/json'): Promise<void> {
    const opts = await this.#options('GET', path, { accept }, this.#watchAgent);
    await new Promise<void>((resolve, reject) => {
      const req = this.#transport().request(opts, (res) => {
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => reject(new KubeError(res.statusCode ?? 0, `watch ${path}: ${res.statusCode} ${Buffer.concat(chunks).toString()}`)));
          return;
        }
        let buf = '';
        let failed = false;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (failed) return;
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line) continue;
            try {
              onEvent(JSON.parse(line) as WatchEvent<T>);
            } catch (err) {
              // Stop at the failed event: none after it may be seen before it is delivered again.
              failed = true;
              req.destroy(err as Error);
              return;
            }
          }
        });
        res.on('end', () => resolve());
        res.on('error', () => resolve());
        res.on('aborted', () => resolve());
      });
      const onAbort = () => req.destroy();
      signal.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) resolve();
        else reject(err);
      });
      req.on('close', () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
      req.end();
    });
  }

  close(): void {
    this.#agent.destroy();
    this.#watchAgent.destroy();
  }
}
