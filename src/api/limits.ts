// Budgets for every input a tenant or a registry controls. A reconcile that hits one fails with a
// condition naming the budget and the flag that raises it, instead of exhausting the process.
// Modules take the budgets they need through their options; defaults live here, in one table, so
// docs/security.md and `run --help` can list them.

/** A budget was exceeded. `limit` is the budget's name (a key of `Limits`); `flag` the CLI flag that sets it, if any. */
export class LimitError extends Error {
  readonly code = 'limit-exceeded';
  readonly limit: string;
  readonly flag: string | undefined;
  constructor(limit: string, message: string, flag?: string) {
    super(flag ? `${message} (limit ${limit}; raise it with --${flag})` : `${message} (limit ${limit})`);
    this.name = 'LimitError';
    this.limit = limit;
    this.flag = flag;
  }
}

export interface Limits {
  /** Bytes of extracted content per artifact (and of a copied layer); 0 = unlimited. */
  artifactMaxSize: number;
  /** Signatures tried per artifact; the first that passes wins. */
  maxSignatures: number;
  /** Referrer manifests opened per artifact while looking for signatures, signatures or not (at least maxSignatures). */
  maxSignatureReferrers: number;
  /** Bytes of one signature envelope, Sigstore bundle or signed payload read from the registry. */
  maxEnvelopeSize: number;
  /** Bytes of one DER certificate in a signature, a trust store or an RFC 3161 token. */
  maxCertificateSize: number;
  /** Certificates in one signature's chain, one chain annotation or one RFC 3161 token. */
  maxCertificates: number;
  /** Certificates in a tenant's trust material: one verification Secret's trust stores, or one trusted root's CAs and TSAs. */
  maxTrustedCertificates: number;
  /** Cosign public keys in one verification Secret (each signature may be tried against each key). */
  maxPublicKeys: number;
  /** Nesting depth of a CBOR document (COSE envelopes). */
  maxCBORDepth: number;
  /** Nesting depth of a JSON document (JWS envelopes, bundles, payloads, trust policies, signature manifests). */
  maxJSONDepth: number;
  /** Chain building: certificates whose subject matches one issuer name, considered as its parent. */
  maxChainCandidates: number;
  /** Chain building: certificate signature checks while looking for one path (Go crypto/x509 allows 100). */
  maxChainSignatureChecks: number;
  /** Chain building: certificates in one path, the leaf and the trust anchor included. */
  maxChainDepth: number;
  // Registry answers and layers (src/oci, src/storage).
  /** Bytes of one manifest or index, referrers pages included (the distribution spec's 4 MiB). */
  manifestMaxSize: number;
  /** Layers in one manifest. */
  maxLayers: number;
  /** Bytes of a manifest's annotations (keys and values), copied into status.artifact.metadata (Kubernetes allows an object 256 KiB of annotations). */
  annotationsMaxSize: number;
  /** Tags read when listing a repository (semver refs), across all pages. */
  maxTags: number;
  /** Bytes of tag-list responses, across all pages. */
  tagListMaxSize: number;
  /** Referrer descriptors read for one subject, across all pages. */
  maxReferrers: number;
  /** Entries in a layer tarball, counting the parent directories they imply. */
  tarMaxEntries: number;
  /** Bytes of the decompressed tar stream (headers, padding and content): the gzip-bomb bound; 0 = unlimited. */
  tarMaxSize: number;
  /** Bytes of one PAX or GNU long-name header. */
  tarMaxHeaderSize: number;
  /** Bytes of one entry's path (Linux PATH_MAX). */
  tarMaxPathLength: number;
  /** Components of one entry's path. */
  tarMaxPathDepth: number;
  /** Characters of all verify.matchOIDCIdentity expressions together (compiling a 400 KB RE2 expression takes seconds). */
  identityPatternsMaxLength: number;
  /** Milliseconds spent matching spec.ref.semverFilter against a tag list (JavaScript regular expressions backtrack). */
  semverFilterMaxTime: number;
}

export const DefaultLimits: Limits = {
  artifactMaxSize: 512 << 20,
  maxSignatures: 10,
  maxSignatureReferrers: 100,
  maxEnvelopeSize: 4 << 20,
  maxCertificateSize: 64 << 10,
  maxCertificates: 16,
  maxTrustedCertificates: 100,
  maxPublicKeys: 100,
  maxCBORDepth: 16,
  maxJSONDepth: 64,
  maxChainCandidates: 8,
  maxChainSignatureChecks: 100,
  maxChainDepth: 10,
  manifestMaxSize: 4 << 20,
  maxLayers: 1000,
  annotationsMaxSize: 256 << 10,
  maxTags: 100_000,
  tagListMaxSize: 8 << 20,
  maxReferrers: 1000,
  tarMaxEntries: 100_000,
  tarMaxSize: 1 << 30,
  tarMaxHeaderSize: 1 << 20,
  tarMaxPathLength: 4096,
  tarMaxPathDepth: 256,
  identityPatternsMaxLength: 16_384,
  semverFilterMaxTime: 1000,
};

/** The CLI flag of each budget that has one (`run`, and `pull` where it applies). */
export const LimitFlags: Partial<Record<keyof Limits, string>> = {
  artifactMaxSize: 'artifact-max-size',
  maxSignatures: 'max-signatures',
  manifestMaxSize: 'manifest-max-size',
  maxTags: 'max-tags',
  tagListMaxSize: 'tag-list-max-size',
  maxReferrers: 'max-referrers',
  tarMaxEntries: 'tar-max-entries',
  tarMaxSize: 'tar-max-size',
};

/** The LimitError of budget `name`, with its flag. */
export function limitError(name: keyof Limits, message: string): LimitError {
  return new LimitError(name, message, LimitFlags[name]);
}

/** Throws the LimitError of budget `name`. */
export function exceeded(name: keyof Limits, message: string): never {
  throw limitError(name, message);
}

/** Defaults overridden by what is set. */
export function limitsWith(overrides: Partial<Limits> | undefined): Limits {
  return { ...DefaultLimits, ...overrides };
}
