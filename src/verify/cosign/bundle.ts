import { bundleFromJSON, type Bundle } from '@sigstore/bundle';
import { X509Certificate } from '@sigstore/core';
import { Verifier, VerificationError, PolicyError, toSignedEntity, type SignedEntity, type TrustMaterial } from '@sigstore/verify';
import type { CosignContext, SignatureResult, TlogInfo } from './context.ts';
import { CheckFailure, fail, errorText, type CosignFailureCode } from './errors.ts';
import { certIdentity, matchIdentity } from './identity.ts';
import { allowsCodeSigning } from './fulcio.ts';
import { timestampingAuthorities } from './timestamp.ts';
import type { VerificationKey } from './keys.ts';

export const BUNDLE_V03_MEDIA_TYPES = [
  'application/vnd.dev.sigstore.bundle.v0.3+json',
  'application/vnd.dev.sigstore.bundle+json;version=0.3',
];
export const BUNDLE_MEDIA_TYPE_PREFIX = 'application/vnd.dev.sigstore.bundle';
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

/** Parses and structurally validates a Sigstore bundle (any version). */
export function parseBundle(bytes: Buffer): Bundle {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    fail('malformed', 'bundle is not valid JSON');
  }
  try {
    return bundleFromJSON(json);
  } catch (err) {
    return fail('malformed', `invalid Sigstore bundle: ${errorText(err)}`);
  }
}

/** Maps @sigstore/verify errors to our failure codes. */
function mapVerifyError(err: unknown): CheckFailure {
  if (err instanceof CheckFailure) return err;
  if (err instanceof PolicyError) return new CheckFailure('identity-mismatch', err.message, { cause: err });
  if (!(err instanceof VerificationError)) {
    return new CheckFailure('malformed', `bundle verification error: ${errorText(err)}`, { cause: err });
  }
  const causeMsg = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  const msg = `${err.message}${causeMsg}`;
  let code: CosignFailureCode;
  switch (err.code) {
    case 'TLOG_INCLUSION_PROMISE_ERROR':
      code = 'rekor-set-invalid';
      break;
    case 'TLOG_BODY_ERROR':
      code = 'tlog-body-mismatch';
      break;
    case 'TLOG_ERROR':
    case 'TLOG_MISSING_INCLUSION_ERROR':
      code = /expected \d+ tlog entries, got 0/.test(err.message) ? 'tlog-missing' : 'tlog-invalid';
      break;
    case 'TLOG_INCLUSION_PROOF_ERROR':
      code = 'tlog-invalid';
      break;
    case 'CERTIFICATE_ERROR':
      if (/SCTs?, got 0/.test(err.message)) code = 'sct-missing';
      else if (/SCT/.test(err.message)) code = 'sct-invalid';
      else if (/expired|not valid .*date/.test(msg)) code = 'certificate-time-invalid';
      else code = 'chain-invalid';
      break;
    case 'PUBLIC_KEY_ERROR':
      code = 'key-mismatch';
      break;
    case 'SIGNATURE_ERROR':
      code = 'signature-invalid';
      break;
    case 'TIMESTAMP_ERROR':
      code = 'timestamp-invalid';
      break;
    default:
      code = 'malformed';
  }
  return new CheckFailure(code, msg, { cause: err });
}

function tlogInfo(bundle: Bundle): TlogInfo | undefined {
  const e = bundle.verificationMaterial.tlogEntries[0];
  if (!e) return undefined;
  return { logIndex: Number(e.logIndex), integratedTime: Number(e.integratedTime), logID: Buffer.from(e.logId.keyId).toString('hex') };
}

function leafCertificate(bundle: Bundle): X509Certificate | undefined {
  const c = bundle.verificationMaterial.content;
  switch (c.$case) {
    case 'certificate':
      return X509Certificate.parse(Buffer.from(c.certificate.rawBytes));
    case 'x509CertificateChain': {
      const first = c.x509CertificateChain.certificates[0];
      return first ? X509Certificate.parse(Buffer.from(first.rawBytes)) : undefined;
    }
    default:
      return undefined;
  }
}

function withKey(material: TrustMaterial, key: VerificationKey): TrustMaterial {
  return { ...material, publicKey: () => ({ publicKey: key.key, validFor: () => true }) };
}

export interface BundleVerifyOptions {
  /** The signed bytes for a messageSignature bundle (not needed for DSSE). */
  artifact?: Buffer;
}

/**
 * Bundle cryptography through @sigstore/verify: signature, tlog entries (SET / inclusion proof and
 * body binding), RFC 3161 timestamps, and in keyless mode the Fulcio chain at the verified time,
 * embedded SCTs and our identity rules (every SAN, issuer .1.8 then .1.1).
 * - Key mode: each configured key is tried; the bundle's own key or certificate is ignored (as
 *   `cosign verify --key`); tlog entries present are still verified against the trusted root.
 * - Keyless: one SCT, one tlog entry and one verified timestamp are required when the trusted
 *   root has CT logs / transparency logs.
 */
export function verifySigstoreBundle(bundle: Bundle, ctx: CosignContext, opts: BundleVerifyOptions = {}): SignatureResult {
  if (bundle.content.$case === 'dsseEnvelope' && bundle.content.dsseEnvelope.signatures.length !== 1) {
    fail('malformed', `DSSE envelope has ${bundle.content.dsseEnvelope.signatures.length} signatures; exactly one is supported`);
  }
  if (bundle.content.$case === 'messageSignature' && !opts.artifact) {
    fail('unsupported', 'bundle holds a message signature, not a DSSE envelope');
  }
  let entity: SignedEntity;
  try {
    entity = toSignedEntity(bundle, opts.artifact);
  } catch (err) {
    throw mapVerifyError(err);
  }
  // TSAs whose certificate lacks the timeStamping EKU cannot vouch for a time (sigstore-go).
  const material = { ...ctx.trust.material, timestampAuthorities: timestampingAuthorities(ctx.trust.material.timestampAuthorities) };
  const tlog = tlogInfo(bundle);

  if (ctx.mode.kind === 'key') {
    const keyEntity: SignedEntity = { ...entity, key: { $case: 'public-key', hint: '' } };
    let first: CheckFailure | undefined;
    for (const key of ctx.mode.keys) {
      try {
        new Verifier(withKey(material, key), { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 }).verify(keyEntity);
        return {
          format: 'bundle',
          key: { name: key.name, fingerprint: key.fingerprint, algorithm: key.algorithm },
          ...(tlog ? { tlog } : {}),
        };
      } catch (err) {
        const f = mapVerifyError(err);
        if (f.code !== 'signature-invalid') throw f; // not key-dependent: report it
        first ??= f;
      }
    }
    throw new CheckFailure(
      'signature-invalid',
      `bundle signature does not verify with any configured key (${ctx.mode.keys.map((k) => k.name).join(', ')})`,
      { cause: first },
    );
  }

  if (entity.key.$case !== 'certificate') {
    fail('key-mismatch', 'bundle is signed with a public key; keyless verification needs a Fulcio certificate');
  }
  const leaf = leafCertificate(bundle);
  if (!leaf) fail('malformed', 'bundle has no certificate');
  if (leaf.isCA) fail('chain-invalid', 'the signing certificate is a CA certificate');
  // Certificates after the leaf in an x509CertificateChain are never used as trust anchors:
  // @sigstore/verify builds the path from the trusted root only (as sigstore-go does).
  if (!allowsCodeSigning(leaf)) {
    fail('chain-invalid', 'the signing certificate lacks the code-signing extended key usage');
  }
  try {
    new Verifier(material, {
      ctlogThreshold: material.ctlogs.length > 0 ? 1 : 0,
      tlogThreshold: material.tlogs.length > 0 ? 1 : 0,
      timestampThreshold: 1,
    }).verify(entity);
  } catch (err) {
    throw mapVerifyError(err);
  }
  const id = certIdentity(leaf);
  const rule = matchIdentity(id, ctx.mode.rules);
  return {
    format: 'bundle',
    identity: { issuer: id.issuer, subjects: id.sans, matched: rule.source },
    ...(tlog ? { tlog } : {}),
  };
}

/**
 * The DSSE payload must be an in-toto statement with a subject whose sha256 is `digest`
 * ("sha256:<hex>"). Returns the predicateType.
 */
export function checkInTotoSubject(bundle: Bundle, digest: string): string {
  if (bundle.content.$case !== 'dsseEnvelope') fail('unsupported', 'bundle does not contain a DSSE envelope');
  const env = bundle.content.dsseEnvelope;
  if (env.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    fail('malformed', `DSSE payloadType is '${env.payloadType}', not ${IN_TOTO_PAYLOAD_TYPE}`);
  }
  let st: unknown;
  try {
    st = JSON.parse(Buffer.from(env.payload).toString('utf8'));
  } catch {
    fail('malformed', 'DSSE payload is not valid JSON');
  }
  const s = st as { _type?: unknown; subject?: unknown; predicateType?: unknown } | null;
  if (!s || !Array.isArray(s.subject)) fail('malformed', 'in-toto statement has no subject list');
  const [alg, hex] = digest.split(':');
  if (alg !== 'sha256' || !hex) fail('unsupported', `cannot match digest ${digest}`);
  const found = s.subject.some((sub: unknown) => {
    const d = (sub as { digest?: Record<string, unknown> } | null)?.digest;
    return typeof d?.sha256 === 'string' && d.sha256.toLowerCase() === hex;
  });
  if (!found) {
    const have = s.subject
      .map((sub: unknown) => (sub as { digest?: { sha256?: unknown } } | null)?.digest?.sha256)
      .filter((x: unknown) => typeof x === 'string')
      .map((x: unknown) => `sha256:${String(x)}`);
    fail('digest-mismatch', `in-toto statement subject is ${have.join(', ') || '(none)'}, not ${digest}`);
  }
  return typeof s.predicateType === 'string' ? s.predicateType : '';
}

export function isV03OrLater(bundle: Bundle): boolean {
  const mt = bundle.mediaType;
  if (BUNDLE_V03_MEDIA_TYPES.includes(mt)) return true;
  const m = /version=(\d+)\.(\d+)/.exec(mt) ?? /bundle\.v(\d+)\.(\d+)\+json/.exec(mt);
  if (!m) return false;
  const major = Number(m[1]);
  const minor = Number(m[2]);
  return major > 0 || minor >= 3;
}

/** A cosign v3 OCI bundle: v0.3+, DSSE in-toto statement about `digest`, then the cryptography. */
export function verifyOciBundle(bytes: Buffer, digest: string, ctx: CosignContext): SignatureResult & { predicateType: string } {
  const bundle = parseBundle(bytes);
  if (!isV03OrLater(bundle)) fail('unsupported', `bundle media type ${bundle.mediaType} is older than v0.3`);
  const predicateType = checkInTotoSubject(bundle, digest);
  const res = verifySigstoreBundle(bundle, ctx);
  return { ...res, predicateType };
}
