import { TrustedRoot } from '@sigstore/protobuf-specs';
import { toTrustMaterial, type TrustMaterial } from '@sigstore/verify';
import { DefaultLimits, LimitError } from '../../api/limits.ts';
import { parseJSON } from '../../util/json.ts';
import { parseCertificate, type Cert } from '../x509/certs.ts';
import { tsaEKUProblem } from '../x509/timestamp.ts';
import { sha256Hex } from './encoding.ts';
import { publicGoodRootBytes, PublicGoodSource } from './public-good.ts';

/** A Fulcio CA or a timestamp authority of the trusted root, in the x509/ certificate type. */
export interface CertificateAuthority {
  /** Issuing certificate first (the TSA's signing certificate for a timestamp authority). */
  certChain: Cert[];
  validFor: { start: Date; end: Date };
}

/** Parsed Sigstore trust material (Fulcio CAs, Rekor logs, CT logs, TSAs) and its provenance. */
export interface TrustRoot {
  /** "public-good (embedded @sigstore/tuf seed)" or "secret ns/name key 'trusted_root.json'". */
  source: string;
  /** Hex SHA-256 of the trusted_root.json bytes. */
  digest: string;
  /**
   * For @sigstore/verify (bundles). Its timestamp authorities are only those whose signing certificate
   * may sign timestamps (tsaEKUProblem), as sigstore-go keeps them; @sigstore/verify does not check.
   */
  material: TrustMaterial;
  /** For the legacy `.sig` checks done here. */
  certificateAuthorities: CertificateAuthority[];
  /** Every TSA of the trusted root, usable or not (the legacy path names the problem of an unusable one). */
  timestampAuthorities: CertificateAuthority[];
}

type RootJSON = ReturnType<typeof TrustedRoot.fromJSON>;
type AuthorityJSON = RootJSON['certificateAuthorities'][number];

/** As @sigstore/verify's createCertAuthority: a missing start is the epoch, a missing end is "forever". */
function authority(a: AuthorityJSON): CertificateAuthority {
  return {
    certChain: (a.certChain?.certificates ?? []).map((c) => parseCertificate(c.rawBytes)),
    validFor: { start: a.validFor?.start ?? new Date(0), end: a.validFor?.end ?? new Date(8.64e15) },
  };
}

let publicGood: TrustRoot | undefined;

/** The public-good trusted root embedded in `@sigstore/tuf` (public-good.ts), parsed once. */
export function publicGoodTrustRoot(): TrustRoot {
  return (publicGood ??= parseTrustedRoot(publicGoodRootBytes(), PublicGoodSource));
}

/** Parses trusted_root.json bytes; throws an Error explaining what is wrong. */
export function parseTrustedRoot(bytes: Buffer, source: string): TrustRoot {
  let json: unknown;
  try {
    json = parseJSON(bytes, 'trusted_root.json', DefaultLimits.maxJSONDepth);
  } catch (err) {
    throw new Error(`not valid JSON: ${(err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('not a JSON object');
  const mediaType = (json as { mediaType?: unknown }).mediaType;
  if (typeof mediaType !== 'string' || !mediaType.startsWith('application/vnd.dev.sigstore.trustedroot')) {
    throw new Error(`unexpected mediaType ${JSON.stringify(mediaType)} (want application/vnd.dev.sigstore.trustedroot…)`);
  }
  let material: TrustMaterial;
  let certificateAuthorities: CertificateAuthority[];
  let timestampAuthorities: CertificateAuthority[];
  try {
    const root = TrustedRoot.fromJSON(json);
    // Counted before any certificate is parsed: parsing (and a chain attempt per authority) is what costs.
    const certs = [...root.certificateAuthorities, ...root.timestampAuthorities].reduce((n, a) => n + (a.certChain?.certificates.length ?? 0), 0);
    const max = DefaultLimits.maxTrustedCertificates;
    if (certs > max) throw new LimitError('maxTrustedCertificates', `its certificate and timestamp authorities hold ${certs} certificates, more than ${max}`);
    material = toTrustMaterial(root);
    certificateAuthorities = root.certificateAuthorities.map(authority);
    timestampAuthorities = root.timestampAuthorities.map(authority);
  } catch (err) {
    throw new Error(`invalid trust material: ${(err as Error).message}`);
  }
  if (material.certificateAuthorities.length === 0 && material.tlogs.length === 0) {
    throw new Error('no certificate authorities and no transparency logs');
  }
  // Same order in both lists: keep the bundle verifier's TSAs whose signing certificate is usable.
  const usable = material.timestampAuthorities.filter((_, i) => {
    const signer = timestampAuthorities[i]?.certChain[0];
    return signer !== undefined && tsaEKUProblem(signer) === undefined;
  });
  return { source, digest: sha256Hex(bytes), material: { ...material, timestampAuthorities: usable }, certificateAuthorities, timestampAuthorities };
}
