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
  /** Bytes of extracted content per artifact; 0 = unlimited. */
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
}

export const DefaultLimits: Limits = {
  artifactMaxSize: 512 << 20,
  maxSignatures: 10,
  maxSignatureReferrers: 100,
  maxEnvelopeSize: 4 << 20,
  maxCertificateSize: 64 << 10,
  maxCertificates: 16,
  maxCBORDepth: 16,
  maxJSONDepth: 64,
  maxChainCandidates: 8,
  maxChainSignatureChecks: 100,
  maxChainDepth: 10,
};
