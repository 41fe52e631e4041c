import type { Limits } from '../../api/limits.ts';
import type { VerificationKey } from './keys.ts';
import type { IdentityRule } from './identity.ts';
import type { TrustRoot } from './trustroot.ts';

export type TrustMode =
  | { kind: 'key'; keys: VerificationKey[] }
  | { kind: 'keyless'; rules: IdentityRule[] };

/** Immutable trust configuration built by `prepare`. */
export interface CosignContext {
  mode: TrustMode;
  /** Fulcio CAs, Rekor and CT log keys, TSAs (also used in key mode for Rekor SETs). */
  trust: TrustRoot;
}

/** What one verification adds: its budgets, clock and deadline. */
export interface CheckContext extends CosignContext {
  limits: Limits;
  now: Date;
  signal?: AbortSignal;
}

/**
 * The legacy `.sig` checks get the trusted root on demand: a key-signed layer without a Rekor
 * entry never needs it, and loading it brings in the Sigstore and X.509 stacks.
 */
export interface LegacyContext extends Omit<CheckContext, 'trust'> {
  trust(): Promise<TrustRoot>;
}

/** Media types of Sigstore bundles (`…bundle+json;version=0.3`, `…bundle.v0.3+json`). */
export const BUNDLE_MEDIA_TYPE_PREFIX = 'application/vnd.dev.sigstore.bundle';

export interface TlogInfo {
  logIndex: number;
  integratedTime: number;
  logID: string;
}

/** What a passing signature proved. */
export interface SignatureResult {
  format: 'legacy' | 'bundle';
  /** Key mode: the verifying key. */
  key?: { name: string; fingerprint: string; algorithm: string };
  /** Keyless: the certificate identity and the rule that matched. */
  identity?: { issuer: string; subjects: string[]; matched: { issuer: string; subject: string } };
  tlog?: TlogInfo;
  /** Time used for the certificate checks (ISO), when keyless. */
  signingTime?: string;
}

/**
 * Sizes of the annotation values of one `.sig` layer (inside a manifest bounded at 4 MiB) and of its layer
 * list. Blobs (payloads, bundles) are bounded by the `maxEnvelopeSize` budget.
 */
export const AnnotationLimits = {
  signatureAnnotation: 16 * 1024,
  certificateAnnotation: 32 * 1024,
  chainAnnotation: 256 * 1024,
  bundleAnnotation: 256 * 1024,
  timestampAnnotation: 64 * 1024,
  maxLayers: 1000,
} as const;
