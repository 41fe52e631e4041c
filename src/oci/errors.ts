/** A registry call failed. `status` is the HTTP status (0 for network errors and timeouts). */
export class RegistryError extends Error {
  readonly status: number;
  /** Distribution-spec error code from the body (e.g. MANIFEST_UNKNOWN), when the registry sent one. */
  readonly code: string | undefined;
  /** The registry's Retry-After (429, 503), in ms: the next attempt must not come sooner. */
  readonly retryAfterMs: number | undefined;
  constructor(message: string, status = 0, code?: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'RegistryError';
    this.status = status;
    this.code = code;
    this.retryAfterMs = options?.retryAfterMs;
  }
  get isAuth(): boolean {
    return this.status === 401 || this.status === 403;
  }
  get isNotFound(): boolean {
    return this.status === 404;
  }
}

/** The longest Retry-After honoured: a registry cannot park an object for longer than this. */
export const MaxRetryAfterMs = 10 * 60_000;

/** Parses Retry-After (delta-seconds or an HTTP-date, RFC 9110 10.2.3), capped at MaxRetryAfterMs. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  const ms = /^\d+$/.test(v) ? Number(v) * 1000 : /^[A-Za-z]{3}, /.test(v) ? Date.parse(v) - now : NaN;
  if (!Number.isFinite(ms)) return undefined;
  return Math.min(Math.max(ms, 0), MaxRetryAfterMs);
}

/** The Retry-After a failure carries, wherever in its cause chain the registry's answer is. */
export function retryAfterOf(err: unknown): number | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof RegistryError && e.retryAfterMs !== undefined) return e.retryAfterMs;
  }
  return undefined;
}
