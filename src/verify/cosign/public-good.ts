// The public-good Sigstore trusted root shipped inside the installed `@sigstore/tuf` package
// (`seeds.json` → `targets/trusted_root.json`), as bytes: read from disk once, nothing fetched,
// nothing parsed here. Key-based verification needs only its digest (for the fingerprint) until a
// signature carries a Rekor entry; parsing it loads the Sigstore and X.509 stacks (trustroot.ts).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { sha256Hex } from './encoding.ts';

export const PublicGoodSource = 'public-good (embedded @sigstore/tuf seed)';
const TUF_MIRROR = 'https://tuf-repo-cdn.sigstore.dev';

let bytes: Buffer | undefined;
let digest: string | undefined;

export function publicGoodRootBytes(): Buffer {
  if (bytes) return bytes;
  const require = createRequire(import.meta.url);
  const seedsPath = require.resolve('@sigstore/tuf/seeds.json');
  const seeds = JSON.parse(readFileSync(seedsPath, 'utf8')) as Record<string, { targets?: Record<string, string> }>;
  const b64 = seeds[TUF_MIRROR]?.targets?.['trusted_root.json'];
  if (!b64) throw new Error(`${seedsPath}: no embedded trusted_root.json for ${TUF_MIRROR}`);
  return (bytes = Buffer.from(b64, 'base64'));
}

/** Hex SHA-256 of the embedded trusted_root.json, as TrustRoot.digest would give it. */
export function publicGoodRootDigest(): string {
  return (digest ??= sha256Hex(publicGoodRootBytes()));
}
