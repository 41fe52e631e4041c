import { LimitError, type Limits } from '../../api/limits.ts';
import { fail } from '../errors.ts';
import { parseJSON } from '../../util/json.ts';

export const SIMPLESIGNING_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';

export interface SimpleSigningClaims {
  dockerManifestDigest: string;
  dockerReference?: string;
}

/**
 * Reads `critical.image.docker-manifest-digest` from the simple-signing payload bytes (never
 * re-serialised). Like cosign's `SimpleClaimVerifier` (Go JSON decoding is case-insensitive for
 * field names), keys are matched case-insensitively; `critical.type` is not checked.
 */
export function parseSimpleSigning(bytes: Buffer, limits: Pick<Limits, 'maxJSONDepth'>): SimpleSigningClaims {
  let v: unknown;
  try {
    v = parseJSON(bytes, 'signature payload', limits.maxJSONDepth);
  } catch (err) {
    if (err instanceof LimitError) throw err;
    fail('malformed', 'signature payload is not valid JSON');
  }
  const critical = field(v, 'critical');
  const image = field(critical, 'image');
  const digest = field(image, 'docker-manifest-digest');
  if (typeof digest !== 'string') fail('malformed', 'signature payload has no critical.image.docker-manifest-digest');
  const ref = field(field(critical, 'identity'), 'docker-reference');
  return { dockerManifestDigest: digest, ...(typeof ref === 'string' ? { dockerReference: ref } : {}) };
}

function field(obj: unknown, name: string): unknown {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return undefined;
  const rec = obj as Record<string, unknown>;
  if (Object.hasOwn(rec, name)) return rec[name];
  const lower = name.toLowerCase();
  for (const k of Object.keys(rec)) if (k.toLowerCase() === lower) return rec[k];
  return undefined;
}

export function checkDigestClaim(claims: SimpleSigningClaims, digest: string): void {
  if (claims.dockerManifestDigest !== digest) {
    fail('digest-mismatch', `signature payload is for ${claims.dockerManifestDigest}, not ${digest}`);
  }
}
