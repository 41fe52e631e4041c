import type { Logger } from 'pino';
import type { Limits } from '../api/limits.ts';
import type { RegistryReader } from '../oci/reader.ts';
import type { Descriptor } from '../oci/types.ts';

// One interface for every signature provider. The controller and the CLI call `prepare` once per
// reconcile with the Secret contents (config errors surface here, naming the key at fault), use
// `fingerprint` as part of the verification cache key, then call `verify`, which never throws: every
// problem, timeouts and registry errors included, ends as a `failed` outcome with a code below.

export type ProviderName = 'notation' | 'cosign';

/** Contents of a Kubernetes Secret (`data`, base64-decoded), or of a mounted Secret directory. */
export interface SecretInput {
  /** "namespace/name" for messages; "dir:<path>" for the CLI. */
  name: string;
  data: Record<string, Buffer>;
}

export interface OIDCIdentityMatch {
  /** Regular expression matched against the certificate's OIDC issuer. */
  issuer: string;
  /** Regular expression matched against the certificate's subject alternative names. */
  subject: string;
}

export interface VerifyConfig {
  provider: ProviderName;
  /** `spec.verify.secretRef` contents; undefined when not set (cosign keyless). */
  secret?: SecretInput;
  /** `spec.verify.trustedRootSecretRef` contents (cosign only), key `trusted_root.json`. */
  trustedRoot?: SecretInput;
  matchOIDCIdentity?: OIDCIdentityMatch[];
}

/** The artifact to verify: always a resolved digest, never a tag. */
export interface VerifyTarget {
  registry: RegistryReader;
  /** The resolved manifest descriptor (mediaType, digest, size) of the artifact. */
  descriptor: Descriptor;
  /** Tag the digest was resolved from, if any (for messages only). */
  tag?: string;
}

export interface VerifyOptions {
  /** Budgets (src/api/limits.ts); unset ones take DefaultLimits. `maxSignatures`: the first that passes wins. */
  limits?: Partial<Limits>;
  /** Verification time; defaults to now. Tests pin it for vectors whose certificates expired. */
  now?: Date;
  /** Aborts discovery and verification; the outcome is then a `timeout` failure. */
  signal?: AbortSignal;
  /** How the deadline behind `signal` is named in the timeout message, e.g. "spec.timeout 5s". */
  deadline?: string;
  log?: Logger;
}

/**
 * Why a verification (or one signature) failed: a closed list, stable for tests, tooling and the controller.
 *
 * Whole verification, no single signature to blame:
 * - `no-signatures`   no signature is associated with the artifact
 * - `all-failed`      several signatures were tried and failed for different reasons (see each attempt)
 * - `no-policy`       notation: no trust policy statement applies to the repository
 * - `unsupported`     cannot be verified at all (cosign: a digest that is not sha256); also per signature
 *                     (a bundle older than v0.3, a message-signature bundle)
 * - `registry-error`  signatures could not be read from the registry; retrying may help
 * - `timeout`         discovery or verification did not finish before the deadline (`VerifyOptions.signal`)
 * - `limit-exceeded`  a budget of src/api/limits.ts was hit; the message names it (also per signature)
 * - `internal-error`  an unexpected exception: a bug, the message carries it
 *
 * Notation, per signature (notation-go's validation types):
 * `envelope-invalid` (undecodable envelope or manifest), `integrity`, `plugin-required`, `authenticity`,
 * `trusted-identity`, `expiry`, `authentic-timestamp`, `revocation`, `target-mismatch` (signs another artifact).
 *
 * Cosign, per signature:
 * `malformed`, `digest-mismatch` (signs another artifact), `signature-invalid`, `key-mismatch`,
 * `tlog-missing`, `rekor-set-invalid`, `tlog-body-mismatch`, `tlog-invalid`, `timestamp-invalid`,
 * `sct-missing`, `sct-invalid`, `chain-invalid`, `certificate-time-invalid`, `identity-mismatch`,
 * `fetch-failed` (a blob the signature names is missing).
 */
export type FailureCode =
  | 'no-signatures'
  | 'all-failed'
  | 'no-policy'
  | 'unsupported'
  | 'registry-error'
  | 'timeout'
  | 'limit-exceeded'
  | 'internal-error'
  | 'envelope-invalid'
  | 'integrity'
  | 'plugin-required'
  | 'authenticity'
  | 'trusted-identity'
  | 'expiry'
  | 'authentic-timestamp'
  | 'revocation'
  | 'target-mismatch'
  | 'malformed'
  | 'digest-mismatch'
  | 'signature-invalid'
  | 'key-mismatch'
  | 'tlog-missing'
  | 'rekor-set-invalid'
  | 'tlog-body-mismatch'
  | 'tlog-invalid'
  | 'timestamp-invalid'
  | 'sct-missing'
  | 'sct-invalid'
  | 'chain-invalid'
  | 'certificate-time-invalid'
  | 'identity-mismatch'
  | 'fetch-failed';

/** A typed failure: `code` is stable, `message` is for people. */
export interface Failure {
  code: FailureCode;
  message: string;
}

/** What happened to one signature that was tried. */
export interface SignatureAttempt {
  /** Digest of the signature manifest, or "<manifest digest> layer N" for a cosign `.sig` layer. */
  signature: string;
  /** First check that failed, or undefined when this signature passed. */
  failure?: Failure;
  /** Checks that failed but are only logged at this verification level (notation permissive/audit). */
  warnings?: Failure[];
}

/**
 * What the passing signature proved about who signed:
 * - `established` the signer is trusted (trust store / key / Fulcio identity);
 * - `audited`     notation `audit` level: the signature is intact but its signer is not trusted (logged only);
 * - `skipped`     the trust policy says `skip`: nothing was checked.
 */
export type Authenticity = 'established' | 'audited' | 'skipped';

interface OutcomeBase {
  provider: ProviderName;
  /** One line for people: the SourceVerified message, the CLI output. */
  message: string;
  /** For `-o json` and logs only (format, scheme, fingerprints, times, policy…): never for decisions. */
  details: Record<string, unknown>;
  /** Logged (non-enforced) failures and discovery notes; the controller emits a Warning event for them. */
  warnings: string[];
  attempts: SignatureAttempt[];
}

export interface VerifiedOutcome extends OutcomeBase {
  status: 'verified';
  authenticity: 'established' | 'audited';
  /** The signature that passed (as in `attempts`). */
  signature: string;
}

export interface SkippedOutcome extends OutcomeBase {
  /** The trust policy says `skip` for this artifact (notation only). */
  status: 'skipped';
  authenticity: 'skipped';
}

export interface FailedOutcome extends OutcomeBase {
  status: 'failed';
  /** The attempts' code when they agree, `all-failed` when they differ, or a whole-verification code. */
  code: FailureCode;
}

export type VerificationOutcome = VerifiedOutcome | SkippedOutcome | FailedOutcome;

/** Failure codes that say the answer is not known yet (the registry, the clock): a retry may pass. */
export const INCONCLUSIVE_CODES: ReadonlySet<FailureCode> = new Set<FailureCode>(['registry-error', 'timeout', 'internal-error']);

/** Trust material parsed from Secrets: immutable, with a fingerprint for the cache key. */
export interface PreparedVerifier {
  readonly provider: ProviderName;
  /** SHA-256 over everything that affects the result (keys, policy, roots, identity rules). */
  readonly fingerprint: string;
  /** Notes about the configuration worth surfacing (e.g. "certificates in key foo.pem trusted for every store"). */
  readonly notes: string[];
  /** Never rejects. */
  verify(target: VerifyTarget, opts: VerifyOptions): Promise<VerificationOutcome>;
}

/** Why `prepare` refused the Secret or spec. */
export type ConfigErrorCode =
  | 'secret-not-found'
  | 'secret-required'
  | 'wrong-provider'
  | 'missing-secret'
  | 'no-policy'
  | 'malformed-policy'
  | 'invalid-policy'
  | 'no-certificates'
  | 'invalid-certificate'
  | 'no-public-keys'
  | 'invalid-public-key'
  | 'missing-trusted-root'
  | 'invalid-trusted-root'
  | 'no-identity'
  | 'invalid-identity';

/**
 * Raised by `prepare` when the Secret or spec is unusable. `message` names the Secret key at fault, e.g.
 * "secret default/notation-config: key 'ca.pem': no PEM certificate found".
 */
export class VerifyConfigError extends Error {
  readonly code: ConfigErrorCode;
  constructor(code: ConfigErrorCode, message: string) {
    super(message);
    this.name = 'VerifyConfigError';
    this.code = code;
  }
}

export interface Provider {
  readonly name: ProviderName;
  prepare(config: VerifyConfig): Promise<PreparedVerifier>;
}
