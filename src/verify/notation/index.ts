// Notation (Notary Project) signature provider.
//
// prepare(): reads `trustpolicy.oci.json` or `trustpolicy.json` and the certificate keys from the
// Secret, validates them with notation-go's rules, and returns a PreparedVerifier.
// verify(): selects the trust policy statement for `<registry>/<repository>`, discovers the signatures
// (Referrers API or `sha256-<hex>` tag through the RegistryReader), and verifies up to
// `opts.maxSignatures` of them; the first that passes wins.

import { createHash } from 'node:crypto';
import type { Descriptor, ImageManifest } from '../../oci/types.ts';
import { MediaTypes } from '../../oci/types.ts';
import {
  VerifyConfigError,
  type PreparedVerifier,
  type Provider,
  type SignatureAttempt,
  type VerificationOutcome,
  type VerifyConfig,
  type VerifyOptions,
  type VerifyTarget,
} from '../types.ts';
import { RevocationCache, type HttpFetcher } from '../x509/revocation.ts';
import { SIGNATURE_ARTIFACT_TYPE } from './envelope.ts';
import {
  getVerificationLevel,
  normalizeTrustPolicy,
  parseTrustPolicy,
  selectStatement,
  TrustPolicyError,
  validateTrustPolicy,
  type TrustPolicyDocument,
} from './trustpolicy.ts';
import { loadTrustStores } from './truststore.ts';
import { failure, verifySignature, type VerifierContext } from './verifier.ts';

export const MAX_SIGNATURE_MANIFEST_BYTES = 4 * 1024 * 1024;
export const MAX_SIGNATURE_ENVELOPE_BYTES = 32 * 1024 * 1024;
const LEGACY_ARTIFACT_MANIFEST = 'application/vnd.oci.artifact.manifest.v1+json';
const POLICY_KEYS = ['trustpolicy.oci.json', 'trustpolicy.json'];

export interface NotationOptions {
  /** HTTP client for OCSP/CRL (tests inject a local one). Default: node fetch. */
  fetch?: HttpFetcher;
  /** Per-request revocation timeout, default 2000 ms. */
  revocationTimeoutMs?: number;
  /** Shared revocation cache; default one per process. */
  revocationCache?: RevocationCache;
}

const sharedCache = new RevocationCache();

/** Builds a provider; `notationProvider` is the default instance. */
export function createNotationProvider(options: NotationOptions = {}): Provider {
  return {
    name: 'notation',
    async prepare(config: VerifyConfig): Promise<PreparedVerifier> {
      return prepareNotation(config, options);
    },
  };
}

export const notationProvider: Provider = createNotationProvider();

export function prepareNotation(config: VerifyConfig, options: NotationOptions = {}): PreparedVerifier {
  const secret = config.secret;
  if (!secret) throw new VerifyConfigError('missing-secret', 'notation verification needs verify.secretRef: a Secret with trustpolicy.json and the trusted certificates');
  const policyKey = POLICY_KEYS.find((k) => secret.data[k] !== undefined);
  if (!policyKey) {
    throw new VerifyConfigError('no-policy', `secret ${secret.name}: 'trustpolicy.json' not found in secret '${secret.name}' (a key 'trustpolicy.oci.json' is also accepted)`);
  }
  let policy: TrustPolicyDocument;
  try {
    policy = parseTrustPolicy(secret.data[policyKey]!);
    validateTrustPolicy(policy);
  } catch (e) {
    throw new VerifyConfigError(e instanceof TrustPolicyError && e.message.startsWith('malformed') ? 'malformed-policy' : 'invalid-policy', `secret ${secret.name}: key '${policyKey}': ${(e as Error).message}`);
  }
  const stores = loadTrustStores(secret.name, secret.data);
  const needsCerts = policy.trustPolicies.some((s) => s.signatureVerification.level !== 'skip');
  if (needsCerts && stores.keys.length === 0) {
    throw new VerifyConfigError('no-certificates', `secret ${secret.name}: no certificates found in secret: add keys named '<ca|signingAuthority|tsa>.<store>.pem' (or any '*.pem' / '*.crt' key, trusted for every store)`);
  }
  const notes: string[] = [];
  const globalKeys = [...new Set(stores.global.map((g) => g.key))];
  for (const k of globalKeys) {
    notes.push(`certificates in key '${k}' are trusted for every trust store the policy names; name the key '<ca|signingAuthority|tsa>.<store>.pem' to bind it to one store`);
  }
  if (globalKeys.length === 0) {
    for (const st of policy.trustPolicies) {
      for (const ref of st.trustStores) {
        if (!stores.named.has(ref)) notes.push(`trust policy statement '${st.name}' names trust store '${ref}', but the secret has no key '${ref.replace(':', '.')}.pem' or '.crt'; signatures checked against it will fail`);
      }
    }
  }
  if (policyKey === 'trustpolicy.oci.json' && secret.data['trustpolicy.json'] !== undefined) {
    notes.push(`both 'trustpolicy.oci.json' and 'trustpolicy.json' are present; 'trustpolicy.oci.json' is used`);
  }

  const h = createHash('sha256');
  h.update('notation\0').update(normalizeTrustPolicy(policy)).update('\0');
  for (const k of stores.keys) {
    h.update(k.key).update('\0');
    for (const c of k.certs) h.update(c.der);
    h.update('\0');
  }
  const ctx: VerifierContext = {
    stores,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    revocationCache: options.revocationCache ?? sharedCache,
    ...(options.revocationTimeoutMs ? { revocationTimeoutMs: options.revocationTimeoutMs } : {}),
  };
  return {
    provider: 'notation',
    fingerprint: h.digest('hex'),
    notes,
    verify: (target, opts) => verifyArtifact(ctx, policy, target, opts),
  };
}

function isSignatureManifest(m: ImageManifest & { blobs?: Descriptor[] }, mediaType: string): boolean {
  if (mediaType === LEGACY_ARTIFACT_MANIFEST) return m.artifactType === SIGNATURE_ARTIFACT_TYPE;
  if (m.artifactType !== undefined) return m.artifactType === SIGNATURE_ARTIFACT_TYPE;
  return m.config?.mediaType === SIGNATURE_ARTIFACT_TYPE;
}

async function discover(target: VerifyTarget): Promise<Descriptor[]> {
  const { registry, descriptor } = target;
  const seen = new Set<string>();
  const out: Descriptor[] = [];
  const add = (d: Descriptor) => {
    if (seen.has(d.digest)) return;
    seen.add(d.digest);
    out.push(d);
  };
  for (const d of await registry.referrers(descriptor.digest, SIGNATURE_ARTIFACT_TYPE)) add(d);
  if (out.length === 0) {
    // Referrers tag indexes written by some tools omit artifactType: look at unlabelled entries too.
    for (const d of await registry.referrers(descriptor.digest)) if (d.artifactType === undefined) add(d);
  }
  return out;
}

async function verifyArtifact(ctx: VerifierContext, policy: TrustPolicyDocument, target: VerifyTarget, opts: VerifyOptions): Promise<VerificationOutcome> {
  const now = opts.now ?? new Date();
  const { registry, descriptor } = target;
  const ref = `${registry.registry}/${registry.repository}@${descriptor.digest}`;
  const shown = target.tag ? `${registry.registry}/${registry.repository}:${target.tag}@${descriptor.digest}` : ref;
  const log = opts.log;

  let statement;
  try {
    statement = selectStatement(policy, ref);
  } catch (e) {
    return { status: 'failed', code: 'no-policy', message: `notation verification of ${shown} failed: ${(e as Error).message}`, details: { reference: ref }, warnings: [], attempts: [] };
  }
  const level = getVerificationLevel(statement.signatureVerification);
  if (level.name === 'skip') {
    return {
      status: 'skipped',
      message: `signature verification skipped by trust policy statement '${statement.name}' (level "skip") for ${ref}`,
      details: { reference: ref, policyStatement: statement.name, level: 'skip' },
      warnings: [],
      attempts: [],
    };
  }

  const max = opts.maxSignatures > 0 ? opts.maxSignatures : 10;
  const descriptors = await discover(target);
  const attempts: SignatureAttempt[] = [];
  let limitReached = false;
  for (const d of descriptors) {
    opts.signal?.throwIfAborted();
    if (attempts.length >= max) {
      limitReached = true;
      break;
    }
    const fetched = await registry.fetchManifest(d.digest, {
      maxBytes: MAX_SIGNATURE_MANIFEST_BYTES,
      accept: [MediaTypes.ociManifest, LEGACY_ARTIFACT_MANIFEST],
    });
    if (!fetched) {
      attempts.push({ signature: d.digest, failure: failure('envelope-invalid', `signature manifest ${d.digest} is listed as a referrer but cannot be found`) });
      continue;
    }
    let manifest: ImageManifest & { blobs?: Descriptor[] };
    try {
      manifest = JSON.parse(fetched.bytes.toString('utf8')) as ImageManifest & { blobs?: Descriptor[] };
    } catch (e) {
      attempts.push({ signature: d.digest, failure: failure('envelope-invalid', `signature manifest ${d.digest} is not valid JSON: ${(e as Error).message}`) });
      continue;
    }
    const mt = manifest.mediaType ?? fetched.descriptor.mediaType ?? d.mediaType;
    if (!isSignatureManifest(manifest, mt)) {
      log?.debug({ digest: d.digest }, 'referrer is not a notation signature manifest; ignored');
      continue;
    }
    if (mt !== MediaTypes.ociManifest && mt !== LEGACY_ARTIFACT_MANIFEST) {
      attempts.push({ signature: d.digest, failure: failure('envelope-invalid', `signature manifest ${d.digest} has unsupported media type "${mt}"`) });
      continue;
    }
    const layers = mt === LEGACY_ARTIFACT_MANIFEST ? (manifest.blobs ?? []) : (manifest.layers ?? []);
    if (layers.length !== 1) {
      attempts.push({ signature: d.digest, failure: failure('envelope-invalid', `signature manifest ${d.digest} must have exactly one layer holding the envelope, found ${layers.length}`) });
      continue;
    }
    const layer = layers[0]!;
    if (layer.size > MAX_SIGNATURE_ENVELOPE_BYTES) {
      attempts.push({ signature: d.digest, failure: failure('envelope-invalid', `signature envelope ${layer.digest} is ${layer.size} bytes, more than the ${MAX_SIGNATURE_ENVELOPE_BYTES}-byte limit`) });
      continue;
    }
    let blob: Buffer;
    try {
      blob = await registry.fetchBlob(layer, { maxBytes: MAX_SIGNATURE_ENVELOPE_BYTES });
    } catch (e) {
      attempts.push({ signature: d.digest, failure: failure('envelope-invalid', `cannot fetch signature envelope ${layer.digest}: ${(e as Error).message}`) });
      continue;
    }
    const r = await verifySignature(ctx, {
      mediaType: layer.mediaType,
      envelope: blob,
      target: descriptor,
      statement,
      level,
      now,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const attempt: SignatureAttempt = { signature: d.digest, ...(r.failure ? { failure: r.failure } : {}), ...(r.warnings.length ? { warnings: r.warnings } : {}) };
    attempts.push(attempt);
    if (!r.failure) {
      const det = r.details;
      const trustedNote = r.trusted?.global ? ` (certificate from key '${r.trusted.key}', which is trusted for every trust store the policy names)` : '';
      const parts = [
        `notation ${String(det.format)} signature (${String(det.signingScheme)}) by "${String(det.leafSubject)}"`,
        r.trusted ? `trusted via certificate sha256:${r.trusted.cert.sha256} "${r.trusted.cert.subject}"${trustedNote}` : 'authenticity NOT established (logged at this level)',
        det.signingTime ? `signed at ${String(det.signingTime)}` : det.authenticSigningTime ? `authentic signing time ${String(det.authenticSigningTime)}` : '',
        det.timestamp ? `timestamped at ${(det.timestamp as { genTime: string }).genTime}` : '',
        `trust policy statement '${statement.name}' (level ${level.name})`,
      ].filter(Boolean);
      return {
        status: 'verified',
        message: `verified ${parts.join(', ')}`,
        details: { reference: ref, signature: d.digest, ...det },
        warnings: r.warnings.map((w) => w.message),
        attempts,
      };
    }
  }

  if (attempts.length === 0) {
    return {
      status: 'failed',
      code: 'no-signatures',
      message: `no signature is associated with "${ref}", make sure the artifact was signed successfully`,
      details: { reference: ref, policyStatement: statement.name },
      warnings: [],
      attempts,
    };
  }
  const codes = new Set(attempts.map((a) => a.failure?.code));
  const code = codes.size === 1 ? [...codes][0]! : 'all-failed';
  const lines = attempts.map((a) => `signature ${a.signature}: ${a.failure?.message ?? 'passed'}`);
  const limit = limitReached ? ` signature evaluation stopped. The configured limit of ${max} signatures to verify per artifact exceeded.` : '';
  return {
    status: 'failed',
    code,
    message: `notation signature verification failed for ${shown} (trust policy statement '${statement.name}', level ${level.name}): ${attempts.length === 1 ? '' : `none of ${attempts.length} signatures passed: `}${lines.join('; ')}.${limit}`,
    details: { reference: ref, policyStatement: statement.name, level: level.name, ...(limitReached ? { limitReached: max } : {}) },
    warnings: attempts.flatMap((a) => (a.warnings ?? []).map((w) => w.message)),
    attempts,
  };
}
