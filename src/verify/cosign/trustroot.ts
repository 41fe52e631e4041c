import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { toTrustMaterial, type TrustMaterial } from '@sigstore/verify';
import { sha256Hex } from './encoding.ts';

/** Parsed Sigstore trust material (Fulcio CAs, Rekor logs, CT logs, TSAs) and its provenance. */
export interface TrustRoot {
  /** "public-good (embedded @sigstore/tuf seed)" or "secret ns/name key 'trusted_root.json'". */
  source: string;
  /** Hex SHA-256 of the trusted_root.json bytes. */
  digest: string;
  material: TrustMaterial;
}

export const TRUSTED_ROOT_KEY = 'trusted_root.json';
const TUF_MIRROR = 'https://tuf-repo-cdn.sigstore.dev';

let publicGood: TrustRoot | undefined;

/**
 * The public-good trusted root shipped inside the installed `@sigstore/tuf` package
 * (`seeds.json` → `targets/trusted_root.json`). Read from disk once; nothing is fetched.
 */
export function publicGoodTrustRoot(): TrustRoot {
  if (publicGood) return publicGood;
  const require = createRequire(import.meta.url);
  const seedsPath = require.resolve('@sigstore/tuf/seeds.json');
  const seeds = JSON.parse(readFileSync(seedsPath, 'utf8')) as Record<string, { targets?: Record<string, string> }>;
  const b64 = seeds[TUF_MIRROR]?.targets?.['trusted_root.json'];
  if (!b64) throw new Error(`${seedsPath}: no embedded trusted_root.json for ${TUF_MIRROR}`);
  publicGood = parseTrustedRoot(Buffer.from(b64, 'base64'), 'public-good (embedded @sigstore/tuf seed)');
  return publicGood;
}

/** Parses trusted_root.json bytes; throws an Error explaining what is wrong. */
export function parseTrustedRoot(bytes: Buffer, source: string): TrustRoot {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new Error(`not valid JSON: ${(err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('not a JSON object');
  const mediaType = (json as { mediaType?: unknown }).mediaType;
  if (typeof mediaType !== 'string' || !mediaType.startsWith('application/vnd.dev.sigstore.trustedroot')) {
    throw new Error(`unexpected mediaType ${JSON.stringify(mediaType)} (want application/vnd.dev.sigstore.trustedroot…)`);
  }
  let material: TrustMaterial;
  try {
    material = toTrustMaterial(TrustedRoot.fromJSON(json));
  } catch (err) {
    throw new Error(`invalid trust material: ${(err as Error).message}`);
  }
  if (material.certificateAuthorities.length === 0 && material.tlogs.length === 0) {
    throw new Error('no certificate authorities and no transparency logs');
  }
  return { source, digest: sha256Hex(bytes), material };
}
