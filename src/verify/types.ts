import type { Logger } from 'pino';
import type { RegistryReader } from '../oci/reader.ts';
import type { Descriptor } from '../oci/types.ts';

// One interface for every signature provider. The controller and the CLI call
// `prepare` once per reconcile with the Secret contents (config errors surface here, naming the
// key at fault), use `fingerprint` as part of the verification cache key, then call `verify`.

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
  /** Try at most this many signatures; the first that passes wins. Default 10. */
  maxSignatures: number;
  /** Verification time; defaults to now. Tests pin it for vectors whose certificates expired. */
  now?: Date;
  signal?: AbortSignal;
  log?: Logger;
}

/** A typed failure: `code` is stable (tests and tooling match on it), `message` is for people. */
export interface Failure {
  code: string;
  message: string;
}

/** What happened to one signature that was tried. */
export interface SignatureAttempt {
  /** Digest of the signature manifest (or a short label for the CLI). */
  signature: string;
  /** First check that failed, or undefined when this signature passed. */
  failure?: Failure;
  /** Checks that failed but are only logged at this verification level (notation permissive/audit). */
  warnings?: Failure[];
}

export type VerificationOutcome =
  | {
      status: 'verified';
      /** One line for the SourceVerified message, e.g. "notation JWS signature by CN=…". */
      message: string;
      /** Structured details for `-o json` and logs (format, scheme, fingerprints, times, policy…). */
      details: Record<string, unknown>;
      /** Logged (non-enforced) failures; the controller emits a Warning event for them. */
      warnings: string[];
      attempts: SignatureAttempt[];
    }
  | {
      /** The trust policy says `skip` for this artifact (notation only). */
      status: 'skipped';
      message: string;
      details: Record<string, unknown>;
      warnings: string[];
      attempts: SignatureAttempt[];
    }
  | {
      status: 'failed';
      /** Starts with what failed overall; lists per signature tried the first failed check. */
      message: string;
      /** `no-signatures`, `all-failed`, or a specific code when only one failure matters. */
      code: string;
      details: Record<string, unknown>;
      warnings: string[];
      attempts: SignatureAttempt[];
    };

/** Trust material parsed from Secrets: immutable, with a fingerprint for the cache key. */
export interface PreparedVerifier {
  readonly provider: ProviderName;
  /** SHA-256 over everything that affects the result (keys, policy, roots, identity rules). */
  readonly fingerprint: string;
  /** Notes about the configuration worth surfacing (e.g. "certificates in key foo.pem trusted for every store"). */
  readonly notes: string[];
  verify(target: VerifyTarget, opts: VerifyOptions): Promise<VerificationOutcome>;
}

/**
 * Raised by `prepare` when the Secret or spec is unusable. `code` is stable; `message` names the
 * Secret key at fault, e.g. "secret default/notation-config: key 'ca.pem': no PEM certificate found".
 */
export class VerifyConfigError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'VerifyConfigError';
    this.code = code;
  }
}

export interface Provider {
  readonly name: ProviderName;
  prepare(config: VerifyConfig): Promise<PreparedVerifier>;
}
