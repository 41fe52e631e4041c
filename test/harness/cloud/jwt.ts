// JWT checks the cloud stand-ins make, as the real services do: signature against the issuer's
// key (the test apiserver's service-account signing key, or the stand-in's own), then issuer,
// audience, subject and validity window. Each failure says which check failed.
import { createPublicKey, verify, type KeyObject } from 'node:crypto';

export interface Claims {
  iss?: string;
  sub?: string;
  aud?: string | string[];
  exp?: number;
  nbf?: number;
  iat?: number;
  [k: string]: unknown;
}

export type JwtCheck = { ok: true; claims: Claims } | { ok: false; why: 'malformed' | 'signature' | 'issuer' | 'audience' | 'expired' | 'not-yet-valid'; claims?: Claims };

export function decodeJwt(token: string): { header: Record<string, unknown>; claims: Claims } | undefined {
  const [h, c] = token.split('.');
  if (!h || !c) return undefined;
  try {
    return { header: JSON.parse(Buffer.from(h, 'base64url').toString()) as Record<string, unknown>, claims: JSON.parse(Buffer.from(c, 'base64url').toString()) as Claims };
  } catch {
    return undefined;
  }
}

export function checkJwt(token: string, key: KeyObject | string, want: { issuer?: string; audience?: string }, now = Date.now() / 1000): JwtCheck {
  const parts = token.split('.');
  const d = decodeJwt(token);
  if (parts.length !== 3 || !d) return { ok: false, why: 'malformed' };
  const k = typeof key === 'string' ? createPublicKey(key) : key;
  const alg = d.header.alg;
  const input = Buffer.from(`${parts[0]}.${parts[1]}`);
  const sig = Buffer.from(parts[2]!, 'base64url');
  const good = alg === 'RS256' ? verify('sha256', input, k, sig) : alg === 'ES256' ? verify('sha256', input, { key: k, dsaEncoding: 'ieee-p1363' }, sig) : false;
  if (!good) return { ok: false, why: 'signature', claims: d.claims };
  const c = d.claims;
  if (want.issuer !== undefined && c.iss !== want.issuer) return { ok: false, why: 'issuer', claims: c };
  const auds = Array.isArray(c.aud) ? c.aud : c.aud !== undefined ? [c.aud] : [];
  if (want.audience !== undefined && !auds.includes(want.audience)) return { ok: false, why: 'audience', claims: c };
  if (typeof c.exp !== 'number' || c.exp <= now) return { ok: false, why: 'expired', claims: c };
  if (typeof c.nbf === 'number' && c.nbf > now + 60) return { ok: false, why: 'not-yet-valid', claims: c };
  return { ok: true, claims: c };
}
