// One HTTPS exchange with a cloud identity endpoint, and the error every failure becomes.
// Failures name the step ("Entra ID token", "ECR GetAuthorizationToken", …), carry the cloud's
// own error code and text, and say what to fix; token-shaped strings never reach a message.
import type { Dispatcher } from 'undici';
import { undici } from '../undici.ts';

/** A failed step of getting registry credentials from a cloud: FetchFailed/AuthenticationFailed. */
export class CloudAuthError extends Error {
  readonly step: string;
  constructor(step: string, message: string) {
    super(redact(`${step}: ${message}`));
    this.name = 'CloudAuthError';
    this.step = step;
  }
}

// JWTs (ours, the apiserver's, Entra's, ACR's) and long opaque secrets such as AWS session tokens.
const JWT = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g;
const OPAQUE = /[A-Za-z0-9+/=_-]{120,}/g;

/** Removes anything that looks like a token from text that goes into conditions, events or logs. */
export function redact(text: string): string {
  return text.replace(JWT, '[redacted token]').replace(OPAQUE, '[redacted]');
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  text: string;
}

export interface HttpRequest {
  method: 'GET' | 'POST';
  url: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
}

const PerRequestTimeoutMs = 10_000;
const MaxBody = 1 << 20;

/** The connection pool for cloud endpoints; owned by CloudIdentity and closed with it. */
export class CloudHttp {
  /** Given, or made on the first request. */
  #dispatcher: Dispatcher | undefined;
  /** Requests sent, per host: what tests count to prove the cache works. */
  readonly sent = new Map<string, number>();

  constructor(dispatcher?: Dispatcher) {
    this.#dispatcher = dispatcher;
  }

  /** Sends one request; network errors become CloudAuthError for `step`. Never throws on HTTP status. */
  async send(step: string, req: HttpRequest): Promise<HttpResponse> {
    const u = new URL(req.url);
    this.sent.set(u.host, (this.sent.get(u.host) ?? 0) + 1);
    const timeout = AbortSignal.timeout(PerRequestTimeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
    try {
      const { Agent, request } = await undici();
      this.#dispatcher ??= new Agent({ connections: 8, keepAliveTimeout: 30_000, connect: { timeout: PerRequestTimeoutMs } });
      const res = await request(u, {
        method: req.method,
        headers: { 'user-agent': 'oci-source-controller', ...req.headers },
        ...(req.body !== undefined ? { body: req.body } : {}),
        dispatcher: this.#dispatcher,
        signal,
        headersTimeout: PerRequestTimeoutMs,
        bodyTimeout: PerRequestTimeoutMs,
      });
      const chunks: Buffer[] = [];
      let n = 0;
      for await (const c of res.body) {
        n += (c as Buffer).length;
        if (n > MaxBody) {
          res.body.destroy();
          throw new CloudAuthError(step, `response from ${u.host} exceeds ${MaxBody} bytes`);
        }
        chunks.push(c as Buffer);
      }
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
      return { status: res.statusCode, headers, text: Buffer.concat(chunks).toString('utf8') };
    } catch (err) {
      if (err instanceof CloudAuthError) throw err;
      const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
      const why = signal.aborted ? (timeout.aborted ? `no answer within ${PerRequestTimeoutMs / 1000} s` : 'the reconcile timed out') : (e.cause?.message ?? e.message ?? String(err));
      throw new CloudAuthError(step, `request to ${u.origin}${u.pathname} failed: ${why}`);
    }
  }

  async close(): Promise<void> {
    await this.#dispatcher?.close().catch(() => undefined);
  }
}

/** JSON body or undefined (error bodies are not always JSON). */
export function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Short, single-line excerpt of an error body for messages. */
export function excerpt(text: string, max = 500): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

/** The `exp` claim of a JWT (seconds → ms), read without verification: only to schedule refresh. */
export function jwtExpiry(token: string): number | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
