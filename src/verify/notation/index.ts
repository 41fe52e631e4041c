// Notation (Notary Project) signature provider.
//
// prepare(): reads `trustpolicy.oci.json` or `trustpolicy.json` and the certificate keys from the
// Secret, validates them with notation-go's rules, and returns a PreparedVerifier.
// verify(): selects the trust policy statement for `<registry>/<repository>`, discovers the signatures
// (Referrers API or `sha256-<hex>` tag through the RegistryReader), and hands them to the shared
// signature loop (../signatures.ts): the first that passes wins, within the budgets.

import { createHash } from 'node:crypto';
import { LimitError } from '../../api/limits.ts';
import type { Descriptor, ImageManifest } from '../../oci/types.ts';
import { MediaTypes } from '../../oci/types.ts';
import { VerificationError } from '../errors.ts';
import { parseJSON } from '../../util/json.ts';
import { resolveLimits, verifySignatures, type CheckResult } from '../signatures.ts';
import { VerifyConfigError, type PreparedVerifier, type Provider, type VerificationOutcome, type VerifyConfig, type VerifyOptions, type VerifyTarget } from '../types.ts';
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
  type TrustPolicyStatement,
} from './trustpolicy.ts';
import { loadTrustStores } from './truststore.ts';
import { notationError, verifySignature, type SignatureContext, type VerifierContext } from './verifier.ts';

export const MAX_SIGNATURE_MANIFEST_BYTES = 4 * 1024 * 1024;
const LEGACY_ARTIFACT_MANIFEST = 'application/vnd.oci.artifact.manifest.v1+json';
const POLICY_KEYS = ['trustpolicy.oci.json', 'trustpolicy.json'];

export interface NotationOptions {
  /** HTTP client for OCSP/CRL (tests inject a local one). Default: node fetch. */
  fetch?: HttpFetcher;
  /** Per-request revocation timeout, default 2000 ms. */
  revocationTimeoutMs?: number;
  /** Revocation cache shared by every verifier the provider prepares; default: the provider's own. */
  revocationCache?: RevocationCache;
}

/** A provider owning one revocation cache, so OCSP answers and CRLs are shared across objects and dropped with it. */
export function createNotationProvider(options: NotationOptions = {}): Provider {
  const owned = { ...options, revocationCache: options.revocationCache ?? new RevocationCache() };
  return {
    name: 'notation',
    async prepare(config: VerifyConfig): Promise<PreparedVerifier> {
      return prepareNotation(config, owned);
    },
  };
}

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
    revocationCache: options.revocationCache ?? new RevocationCache(),
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

function verifyArtifact(ctx: VerifierContext, policy: TrustPolicyDocument, target: VerifyTarget, opts: VerifyOptions): Promise<VerificationOutcome> {
  const { registry, descriptor } = target;
  const ref = `${registry.registry}/${registry.repository}@${descriptor.digest}`;
  const shown = target.tag ? `${registry.registry}/${registry.repository}:${target.tag}@${descriptor.digest}` : ref;
  return verifySignatures('notation', ref, opts, async () => {
    let statement: TrustPolicyStatement;
    try {
      statement = selectStatement(policy, ref);
    } catch (e) {
      throw new VerificationError('no-policy', `notation verification of ${shown} failed: ${(e as Error).message}`);
    }
    const level = getVerificationLevel(statement.signatureVerification);
    if (level.name === 'skip') {
      return {
        skip: true,
        message: `signature verification skipped by trust policy statement '${statement.name}' (level "skip") for ${ref}`,
        details: { reference: ref, policyStatement: statement.name, level: 'skip' },
      };
    }
    const input: SignatureContext = { ctx, statement, level, target: descriptor, now: opts.now ?? new Date(), limits: resolveLimits(opts.limits), ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.log ? { log: opts.log } : {}) };
    return {
      candidates: (async function* () {
        for (const d of await discover(target)) yield { signature: d.digest, check: () => checkSignatureManifest(registry, d, input) };
      })(),
      notes: [],
      details: { reference: ref, policyStatement: statement.name, level: level.name },
      noSignatures: () => `no signature is associated with "${ref}", make sure the artifact was signed successfully`,
      rejected: (attempts, stoppedAt) => {
        const lines = attempts.map((a) => `signature ${a.signature}: ${a.failure?.message ?? 'passed'}`);
        const limit = stoppedAt !== undefined ? ` signature evaluation stopped. The configured limit of ${stoppedAt} signatures to verify per artifact exceeded.` : '';
        return `notation signature verification failed for ${shown} (trust policy statement '${statement.name}', level ${level.name}): ${attempts.length === 1 ? '' : `none of ${attempts.length} signatures passed: `}${lines.join('; ')}.${limit}`;
      },
    };
  });
}

/** Fetches one referrer's manifest and envelope and verifies the signature in it. */
async function checkSignatureManifest(registry: VerifyTarget['registry'], d: Descriptor, input: SignatureContext): Promise<CheckResult | 'not-a-signature'> {
  const invalid = (reason: string) => notationError('envelope-invalid', reason);
  const fetched = await registry.fetchManifest(d.digest, { maxBytes: MAX_SIGNATURE_MANIFEST_BYTES, accept: [MediaTypes.ociManifest, LEGACY_ARTIFACT_MANIFEST] });
  if (!fetched) throw invalid(`signature manifest ${d.digest} is listed as a referrer but cannot be found`);
  let manifest: ImageManifest & { blobs?: Descriptor[] };
  try {
    manifest = parseJSON(fetched.bytes, `signature manifest ${d.digest}`, input.limits.maxJSONDepth) as ImageManifest & { blobs?: Descriptor[] };
    if (!manifest || typeof manifest !== 'object') throw new Error('not a JSON object');
  } catch (e) {
    if (e instanceof LimitError) throw e;
    throw invalid(`signature manifest ${d.digest} is not valid JSON: ${(e as Error).message}`);
  }
  const mt = manifest.mediaType ?? fetched.descriptor.mediaType ?? d.mediaType;
  if (!isSignatureManifest(manifest, mt)) {
    input.log?.debug({ digest: d.digest }, 'referrer is not a notation signature manifest; ignored');
    return 'not-a-signature';
  }
  if (mt !== MediaTypes.ociManifest && mt !== LEGACY_ARTIFACT_MANIFEST) throw invalid(`signature manifest ${d.digest} has unsupported media type "${mt}"`);
  const layers = mt === LEGACY_ARTIFACT_MANIFEST ? (manifest.blobs ?? []) : (manifest.layers ?? []);
  if (!Array.isArray(layers) || layers.length !== 1) throw invalid(`signature manifest ${d.digest} must have exactly one layer holding the envelope, found ${Array.isArray(layers) ? layers.length : 0}`);
  const raw = layers[0] as Partial<Descriptor> | null;
  if (!raw || typeof raw !== 'object' || typeof raw.digest !== 'string' || typeof raw.mediaType !== 'string' || !Number.isSafeInteger(raw.size) || raw.size! < 0) {
    throw invalid(`signature manifest ${d.digest} has an invalid envelope descriptor (digest, mediaType and size are required)`);
  }
  const layer = raw as Descriptor;
  const max = input.limits.maxEnvelopeSize;
  if (layer.size > max) throw new LimitError('maxEnvelopeSize', `signature envelope ${layer.digest} is ${layer.size} bytes, more than ${max}`);
  let blob: Buffer;
  try {
    blob = await registry.fetchBlob(layer, { maxBytes: max });
  } catch (e) {
    throw invalid(`cannot fetch signature envelope ${layer.digest}: ${(e as Error).message}`);
  }
  const r = await verifySignature(input, layer.mediaType, blob);
  if (r.failure) return { passed: false, failure: r.failure, warnings: r.warnings };
  const det = r.details;
  const { statement, level } = input;
  const trustedNote = r.trusted?.global ? ` (certificate from key '${r.trusted.key}', which is trusted for every trust store the policy names)` : '';
  const parts = [
    `notation ${String(det.format)} signature (${String(det.signingScheme)}) by "${String(det.leafSubject)}"`,
    r.trusted ? `trusted via certificate sha256:${r.trusted.cert.sha256} "${r.trusted.cert.subject}"${trustedNote}` : 'authenticity NOT established (logged at this level)',
    det.signingTime ? `signed at ${String(det.signingTime)}` : det.authenticSigningTime ? `authentic signing time ${String(det.authenticSigningTime)}` : '',
    det.timestamp ? `timestamped at ${(det.timestamp as { genTime: string }).genTime}` : '',
    `trust policy statement '${statement.name}' (level ${level.name})`,
  ].filter(Boolean);
  return { passed: true, authenticity: r.authenticity, message: `verified ${parts.join(', ')}`, details: { signature: d.digest, ...det }, warnings: r.warnings };
}
