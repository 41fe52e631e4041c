import { bundleFromJSON, type Bundle } from '@sigstore/bundle';
import { Verifier, VerificationError as SigstoreError, PolicyError, toSignedEntity, type SignedEntity, type TrustMaterial } from '@sigstore/verify';
import { LimitError, type Limits } from '../../api/limits.ts';
import { errorText, fail, VerificationError } from '../errors.ts';
import { parseJSON } from '../../util/json.ts';
import type { FailureCode } from '../types.ts';
import { certExtensions, parseCertificate, type Cert } from '../x509/certs.ts';
import type { CheckContext, CosignContext, SignatureResult, TlogInfo } from './context.ts';
import { allowsCodeSigning } from './fulcio.ts';
import { certIdentity, matchIdentity } from './identity.ts';
import type { VerificationKey } from './keys.ts';

export const BUNDLE_V03_MEDIA_TYPES = [
  'application/vnd.dev.sigstore.bundle.v0.3+json',
  'application/vnd.dev.sigstore.bundle+json;version=0.3',
];
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

/** Parses and structurally validates a Sigstore bundle (any version). */
export function parseBundle(bytes: Buffer, limits: Pick<Limits, 'maxJSONDepth'>): Bundle {
  let json: unknown;
  try {
    json = parseJSON(bytes, 'Sigstore bundle', limits.maxJSONDepth);
  } catch (err) {
    if (err instanceof LimitError) throw err;
    fail('malformed', 'bundle is not valid JSON');
  }
  try {
    return bundleFromJSON(json);
  } catch (err) {
    return fail('malformed', `invalid Sigstore bundle: ${errorText(err)}`);
  }
}

/** Maps @sigstore/verify errors to our failure codes. */
function mapVerifyError(err: unknown): VerificationError {
  if (err instanceof VerificationError) return err;
  if (err instanceof PolicyError) return new VerificationError('identity-mismatch', err.message, { cause: err });
  if (!(err instanceof SigstoreError)) {
    return new VerificationError('malformed', `bundle verification error: ${errorText(err)}`, { cause: err });
  }
  const causeMsg = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  const msg = `${err.message}${causeMsg}`;
  let code: FailureCode;
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
  return new VerificationError(code, msg, { cause: err });
}

function tlogInfo(bundle: Bundle): TlogInfo | undefined {
  const e = bundle.verificationMaterial.tlogEntries[0];
  if (!e) return undefined;
  return { logIndex: Number(e.logIndex), integratedTime: Number(e.integratedTime), logID: Buffer.from(e.logId.keyId).toString('hex') };
}

function leafCertificate(bundle: Bundle, limits: Pick<Limits, 'maxCertificates' | 'maxCertificateSize'>): Cert | undefined {
  const c = bundle.verificationMaterial.content;
  let raw: Uint8Array | undefined;
  if (c.$case === 'certificate') raw = c.certificate.rawBytes;
  else if (c.$case === 'x509CertificateChain') {
    const n = c.x509CertificateChain.certificates.length;
    if (n > limits.maxCertificates) throw new LimitError('maxCertificates', `the bundle's certificate chain has ${n} certificates, more than ${limits.maxCertificates}`);
    raw = c.x509CertificateChain.certificates[0]?.rawBytes;
  }
  if (!raw) return undefined;
  try {
    return parseCertificate(raw, limits);
  } catch (err) {
    if (err instanceof LimitError) throw err;
    return fail('malformed', `the bundle's certificate does not parse: ${errorText(err)}`);
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
export function verifySigstoreBundle(bundle: Bundle, ctx: CosignContext & { limits: Limits }, opts: BundleVerifyOptions = {}): SignatureResult {
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
  // Its TSAs are only those whose certificate may sign timestamps (trustroot.ts), as sigstore-go keeps them.
  const material = ctx.trust.material;
  const tlog = tlogInfo(bundle);

  if (ctx.mode.kind === 'key') {
    const keyEntity: SignedEntity = { ...entity, key: { $case: 'public-key', hint: '' } };
    let first: VerificationError | undefined;
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
    throw new VerificationError(
      'signature-invalid',
      `bundle signature does not verify with any configured key (${ctx.mode.keys.map((k) => k.name).join(', ')})`,
      { cause: first },
    );
  }

  if (entity.key.$case !== 'certificate') {
    fail('key-mismatch', 'bundle is signed with a public key; keyless verification needs a Fulcio certificate');
  }
  const leaf = leafCertificate(bundle, ctx.limits);
  if (!leaf) fail('malformed', 'bundle has no certificate');
  if (certExtensions(leaf).basicConstraints?.ca) fail('chain-invalid', 'the signing certificate is a CA certificate');
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
export function checkInTotoSubject(bundle: Bundle, digest: string, limits: Pick<Limits, 'maxJSONDepth'>): string {
  if (bundle.content.$case !== 'dsseEnvelope') fail('unsupported', 'bundle does not contain a DSSE envelope');
  const env = bundle.content.dsseEnvelope;
  if (env.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    fail('malformed', `DSSE payloadType is '${env.payloadType}', not ${IN_TOTO_PAYLOAD_TYPE}`);
  }
  let st: unknown;
  try {
    st = parseJSON(env.payload, 'DSSE payload', limits.maxJSONDepth);
  } catch (err) {
    if (err instanceof LimitError) throw err;
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
export function verifyOciBundle(bytes: Buffer, digest: string, ctx: CheckContext): SignatureResult & { predicateType: string } {
  const bundle = parseBundle(bytes, ctx.limits);
  if (!isV03OrLater(bundle)) fail('unsupported', `bundle media type ${bundle.mediaType} is older than v0.3`);
  const predicateType = checkInTotoSubject(bundle, digest, ctx.limits);
  const res = verifySigstoreBundle(bundle, ctx);
  return { ...res, predicateType };
}
