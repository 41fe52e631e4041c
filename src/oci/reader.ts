import type { Limits } from '../api/limits.ts';
import type { Descriptor, FetchedManifest } from './types.ts';

/**
 * Read access to one repository, as the verifiers need it. The registry client implements it
 * with the object's auth, TLS, proxy, `insecure` and timeout settings, so signature look-ups
 * never use weaker settings than the pull. Tests may implement it over an OCI image layout.
 *
 * Every method verifies what it returns: a manifest fetched by digest must hash to that digest,
 * a blob must match its descriptor's digest and size. Size limits are enforced while reading,
 * so an oversized object is never buffered whole.
 */
export interface RegistryReader {
  /** Registry host as written in the URL after normalisation, e.g. "127.0.0.1:5000" or "docker.io". */
  readonly registry: string;
  /** Repository path, e.g. "org/app". */
  readonly repository: string;

  /**
   * GET a manifest by digest ("sha256:…") or tag. Resolves null when the registry answers 404
   * (MANIFEST_UNKNOWN / NAME_UNKNOWN); rejects with RegistryError on other failures.
   * `maxBytes` defaults to 4 MiB.
   */
  fetchManifest(ref: string, opts?: { maxBytes?: number; accept?: string[] }): Promise<FetchedManifest | null>;

  /** GET a blob; rejects if it is larger than `maxBytes` (default 32 MiB) or fails digest/size checks. */
  fetchBlob(desc: Descriptor, opts?: { maxBytes?: number }): Promise<Buffer>;

  /**
   * Manifests whose `subject` is `subjectDigest`: the OCI 1.1 Referrers API (following `Link`
   * pagination; filtered client-side by `artifactType` unless the registry says it filtered),
   * falling back to the referrers tag schema (`sha256-<hex>` index) when the API answers 404.
   * `artifactType` matches the descriptor's artifactType. Returns [] when there are none.
   */
  referrers(subjectDigest: string, artifactType?: string): Promise<Descriptor[]>;
}

/**
 * Everything one reconcile asks of a repository: resolution, verification reads and the pull.
 * The registry client implements it; unit tests of the reconciler use an in-memory fake.
 */
export interface RegistrySession extends RegistryReader {
  /** HEAD a manifest by tag or digest; null on 404. */
  head(ref: string): Promise<Descriptor | null>;
  listTags(): Promise<string[]>;
  /** Streams a blob; `verified` settles once its digest and size were checked. */
  openBlob(desc: Descriptor): Promise<{ stream: import('node:stream').Readable; verified: Promise<void> }>;
  /** HTTP requests made so far (the steady-state cost check counts them). */
  readonly requests: number;
  /** The budgets the session enforces; resolution takes semverFilterMaxTime from here (defaults when absent). */
  readonly limits?: Limits;
}
