// Registry credentials: kubernetes.io/dockerconfigjson Secrets, WWW-Authenticate challenges,
// and the cache of Bearer tokens a Transport keeps (so steady-state reconciles reuse them).
import { DefaultLimits, LimitError } from '../api/limits.ts';
import { parseJSON } from '../util/json.ts';

export interface Credentials {
  username?: string;
  password?: string;
  /** OAuth2 refresh token ("identitytoken" in docker config). */
  identityToken?: string;
  /** Pre-issued bearer token ("registrytoken"). */
  registryToken?: string;
}

export class CredentialsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CredentialsError';
  }
}

/** Host keys as they appear in docker config: "https://index.docker.io/v1/", "host:port", "http://host". */
function normaliseHostKey(key: string): string {
  let k = key.trim().toLowerCase();
  k = k.replace(/^https?:\/\//, '');
  k = k.split('/')[0] ?? k;
  if (k === 'index.docker.io' || k === 'registry-1.docker.io') k = 'docker.io';
  return k;
}

/**
 * Finds credentials for `registry` in a `.dockerconfigjson` (or legacy `.dockercfg`) document.
 * Throws CredentialsError naming `source` when the document is malformed.
 */
export function credentialsFromDockerConfig(json: Buffer | string, registry: string, source: string): Credentials | undefined {
  let doc: unknown;
  try {
    doc = parseJSON(json.toString(), source, DefaultLimits.maxJSONDepth);
  } catch (err) {
    if (err instanceof LimitError) throw new CredentialsError(err.message);
    throw new CredentialsError(`${source}: invalid JSON: ${(err as Error).message}`);
  }
  // An array is an object to `typeof`: without the check, `[...]` read as a config listing no registry.
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new CredentialsError(`${source}: expected a JSON object`);
  const auths = ('auths' in doc ? (doc as { auths: unknown }).auths : doc) as Record<string, unknown>;
  if (typeof auths !== 'object' || auths === null || Array.isArray(auths)) throw new CredentialsError(`${source}: 'auths' must be an object`);
  const want = normaliseHostKey(registry);
  for (const [key, value] of Object.entries(auths)) {
    if (normaliseHostKey(key) !== want) continue;
    if (typeof value !== 'object' || value === null) throw new CredentialsError(`${source}: entry '${key}' must be an object`);
    const e = value as Record<string, unknown>;
    const creds: Credentials = {};
    if (typeof e.auth === 'string' && e.auth !== '') {
      const decoded = Buffer.from(e.auth, 'base64').toString();
      const i = decoded.indexOf(':');
      if (i < 0) throw new CredentialsError(`${source}: entry '${key}': 'auth' is not base64 of user:password`);
      creds.username = decoded.slice(0, i);
      creds.password = decoded.slice(i + 1);
    }
    if (typeof e.username === 'string') creds.username = e.username;
    if (typeof e.password === 'string') creds.password = e.password;
    if (typeof e.identitytoken === 'string') creds.identityToken = e.identitytoken;
    if (typeof e.registrytoken === 'string') creds.registryToken = e.registrytoken;
    return creds;
  }
  return undefined;
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses a WWW-Authenticate header (RFC 7235 auth-params, quoted or token values). */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*([A-Za-z][A-Za-z0-9_-]*)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?\s*/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2] ?? '')) !== null) {
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
  }
  return { scheme: m[1]!.toLowerCase(), params };
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Bearer tokens keyed by realm, service, scope and credential identity. */
export class TokenCache {
  #tokens = new Map<string, CachedToken>();
  readonly maxEntries: number;
  constructor(maxEntries = 1000) {
    this.maxEntries = maxEntries;
  }
  get(key: string, now = Date.now()): string | undefined {
    const t = this.#tokens.get(key);
    if (!t) return undefined;
    if (t.expiresAt <= now) {
      this.#tokens.delete(key);
      return undefined;
    }
    return t.token;
  }
  set(key: string, token: string, ttlSeconds: number, now = Date.now()): void {
    // Use 80% of the lifetime so a token never expires mid-request.
    const ttl = Math.max(1, ttlSeconds) * 800;
    if (this.#tokens.size >= this.maxEntries) {
      const oldest = this.#tokens.keys().next().value;
      if (oldest !== undefined) this.#tokens.delete(oldest);
    }
    this.#tokens.set(key, { token, expiresAt: now + ttl });
  }
  clear(): void {
    this.#tokens.clear();
  }
}
