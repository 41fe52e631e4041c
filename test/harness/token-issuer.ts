// A small Docker registry token issuer (distribution "token" auth, RFC-ish docker token spec):
//   GET  /token?service=…&scope=repository:<name>:pull,push&scope=…   (Basic credentials optional)
//   POST /token  (form: grant_type=password|refresh_token, username, password, refresh_token, scope, service)
// It signs ES256 JWTs whose header carries `x5c` = the issuer's self-signed certificate, which is
// the registry's `auth.token.rootcertbundle`. It grants every requested action to a client with
// the right Basic credentials, only `pull` to anonymous clients when `anonymousPull`, and nothing
// otherwise (an empty access list, as the spec asks); wrong credentials get 401.
import { createPrivateKey, randomBytes, sign, timingSafeEqual, type KeyObject } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { LOOPBACK } from './ports.ts';
import { onExit } from './proc.ts';

export interface TokenIssuerOptions {
  /** PEM certificate whose key signs the tokens (goes into x5c; trust anchor for the registry). */
  signingCertPem: string;
  signingKeyPem: string;
  /** `iss` claim; must equal the registry's auth.token.issuer. */
  issuer: string;
  /** Expected `service` (the registry's auth.token.service); used as `aud`. */
  service: string;
  username: string;
  password: string;
  /** Grant `pull` to clients without credentials (default false). */
  anonymousPull?: boolean;
  /** Token lifetime in seconds (default 300). */
  expiresInSeconds?: number;
  /** Serve over https with this server certificate (e.g. the registry's). */
  tls?: { certPem: string; keyPem: string };
}

export interface TokenGrant {
  /** Authenticated user name, or '' for anonymous. */
  account: string;
  /** Scopes as requested. */
  scopes: string[];
  /** Access actually granted, per resource. */
  access: Array<{ type: string; name: string; actions: string[] }>;
  /** How the token was requested. */
  via: 'GET' | 'POST';
}

export interface TokenIssuer {
  /** Base URL, e.g. https://127.0.0.1:41234 */
  url: string;
  /** Realm URL for the registry (url + '/token'). */
  realm: string;
  /** Number of tokens issued so far (successful responses). */
  tokenRequests(): number;
  /** Details of every token issued so far, in order. */
  grants(): TokenGrant[];
  /** Number of requests rejected with 401 (bad credentials). */
  rejectedRequests(): number;
  close(): Promise<void>;
}

function b64url(buf: Buffer | string): string {
  return Buffer.from(buf).toString('base64url');
}

function pemToDerBase64(pem: string): string {
  const m = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem);
  if (!m || m[1] === undefined) throw new Error('no certificate in PEM');
  return m[1].replace(/\s+/g, '');
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Parses "repository:foo/bar:pull,push" (names may contain ':' only before the last one). */
export function parseScope(scope: string): { type: string; name: string; actions: string[] } | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last <= first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope.slice(last + 1).split(',').filter((a) => a !== ''),
  };
}

export function signJwt(key: KeyObject, header: Record<string, unknown>, claims: Record<string, unknown>): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const alg = header['alg'];
  let sig: Buffer;
  if (alg === 'ES256') sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  else if (alg === 'RS256') sig = sign('sha256', Buffer.from(input), key);
  else throw new Error(`unsupported alg ${String(alg)}`);
  return `${input}.${b64url(sig)}`;
}

export async function startTokenIssuer(opts: TokenIssuerOptions): Promise<TokenIssuer> {
  const key = createPrivateKey(opts.signingKeyPem);
  const keyType = key.asymmetricKeyType;
  const alg = keyType === 'ec' ? 'ES256' : keyType === 'rsa' ? 'RS256' : undefined;
  if (!alg) throw new Error(`token issuer: unsupported key type ${keyType}`);
  const x5c = [pemToDerBase64(opts.signingCertPem)];
  const lifetime = opts.expiresInSeconds ?? 300;
  const grants: TokenGrant[] = [];
  let rejected = 0;
  const refreshTokens = new Map<string, string>(); // refresh token -> account

  const issue = (account: string, scopes: string[], via: 'GET' | 'POST') => {
    const access: TokenGrant['access'] = [];
    for (const s of scopes) {
      const parsed = parseScope(s);
      if (!parsed) continue;
      let actions = parsed.actions;
      if (account === '') actions = opts.anonymousPull ? actions.filter((a) => a === 'pull') : [];
      if (actions.length > 0) access.push({ type: parsed.type, name: parsed.name, actions });
    }
    const now = Math.floor(Date.now() / 1000);
    const token = signJwt(
      key,
      { typ: 'JWT', alg, x5c },
      {
        iss: opts.issuer,
        sub: account,
        aud: opts.service,
        exp: now + lifetime,
        nbf: now - 60,
        iat: now,
        jti: randomBytes(12).toString('hex'),
        access,
      },
    );
    grants.push({ account, scopes, access, via });
    return { token, access_token: token, expires_in: lifetime, issued_at: new Date(now * 1000).toISOString() };
  };

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const send = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/token') {
      send(404, { errors: [{ code: 'NOT_FOUND', message: 'not found' }] });
      return;
    }
    const unauthorized = (): void => {
      rejected++;
      send(401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }, {
        'www-authenticate': 'Basic realm="osc-test-token-issuer"',
      });
    };
    // Basic credentials, when present, must be right.
    let account = '';
    const authz = req.headers.authorization;
    if (authz !== undefined) {
      const m = /^Basic\s+(.+)$/i.exec(authz);
      const decoded = m?.[1] ? Buffer.from(m[1], 'base64').toString('utf8') : '';
      const i = decoded.indexOf(':');
      const user = i >= 0 ? decoded.slice(0, i) : '';
      const pass = i >= 0 ? decoded.slice(i + 1) : '';
      if (!m || !safeEqual(user, opts.username) || !safeEqual(pass, opts.password)) {
        unauthorized();
        return;
      }
      account = user;
    }
    if (req.method === 'GET') {
      const service = url.searchParams.get('service');
      if (service !== null && service !== opts.service) {
        send(400, { errors: [{ code: 'INVALID_REQUEST', message: `unknown service ${service}` }] });
        return;
      }
      send(200, issue(account, url.searchParams.getAll('scope'), 'GET'));
      return;
    }
    if (req.method === 'POST') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        const scopes = (form.get('scope') ?? '').split(' ').filter((s) => s !== '');
        const grant = form.get('grant_type');
        let who: string | undefined;
        if (grant === 'password') {
          if (safeEqual(form.get('username') ?? '', opts.username) && safeEqual(form.get('password') ?? '', opts.password)) {
            who = opts.username;
          }
        } else if (grant === 'refresh_token') {
          who = refreshTokens.get(form.get('refresh_token') ?? '');
        } else {
          send(400, { error: 'unsupported_grant_type' });
          return;
        }
        if (who === undefined) {
          unauthorized();
          return;
        }
        const body: Record<string, unknown> = issue(who, scopes, 'POST');
        if (form.get('access_type') === 'offline' || grant === 'password') {
          const rt = randomBytes(16).toString('hex');
          refreshTokens.set(rt, who);
          body['refresh_token'] = rt;
        }
        send(200, body);
      });
      return;
    }
    send(405, { errors: [{ code: 'UNSUPPORTED', message: 'method not allowed' }] });
  };

  const server = opts.tls
    ? https.createServer({ cert: opts.tls.certPem, key: opts.tls.keyPem }, handler)
    : http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => resolve());
  });
  server.unref();
  const unregister = onExit(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const url = `${opts.tls ? 'https' : 'http'}://${LOOPBACK}:${port}`;
  return {
    url,
    realm: `${url}/token`,
    tokenRequests: () => grants.length,
    grants: () => grants.slice(),
    rejectedRequests: () => rejected,
    close: () =>
      new Promise<void>((resolve) => {
        unregister();
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
